#!/usr/bin/env python3
"""Turn-taking quality per profile on synthetic callers: end-of-utterance latency, false and
missed ends, false starts on music, noise and clicks, and what ``send_silence: false`` saves.

Run: ``python bench/turns.py [--callers N] [--profiles default,fast,...] [--line-noise MODE]
[--prompts crisp|any] [--music-seconds S] [--seed N] [--rate 16000|8000]``. Prints one JSON
object on stdout (progress on stderr). Pure: :class:`TurnEngine` on the real Silero model, no SIP.

Callers (``--callers``, default 40) are built like ``tests/unit/turn/corpus.py`` builds one:
Asterisk prompts trimmed to their speech, 8 kHz, joined with known silences, resampled to
16 kHz and taken through G.711 µ-law. With ``--rate 8000`` every stream (callers and
non-speech alike) stays at 8 kHz: the same source through a G.711 µ-law round trip, no
resampling, scored by 8 kHz engines (``model.new_stream(8000)``); the output's ``rate`` says
which. Each caller has a 0.3-1.5 s lead, 3-5 utterances of 1-3
prompts and 1.5-4 s between utterances. The pauses inside an utterance are under the
profile's ``silence_threshold_ms``: half of them exactly ``silence_threshold_ms - 150`` ms, the
rest uniform from 100 ms to that, so the same callers (same prompts, same gaps) are re-timed
for each profile. ``--prompts crisp`` (default) uses only prompts that reach -40 dBFS within
30 ms of both ends (the precondition of tests/unit/turn/test_corpus.py: then a scripted pause
is the real pause), 0.4-3 s long, tones excluded; ``any`` takes every prompt of 0.4-3 s.
``--line-noise``: ``mixed`` (default: white noise at -60 dBFS under every other caller),
``none``, ``all``.

Per profile (and the defaults, ``default``), every caller and every non-speech stream runs
through its own :class:`TurnEngine`, all of them batched with ``score_pending`` one 20 ms frame
per tick, as a worker's media thread could:

* ``eou_latency_ms``: for each utterance, the first ``SpeechStopped`` decided after its true
  end and before the next utterance starts: ``at_sample`` (the chunk on which the decision was
  made) minus the true end. p50 / p95 / max; ``over_silence_plus_100`` counts those later than
  ``silence_threshold_ms + 100``. ``end_error_ms``: ``audio_end_sample`` minus the true end.
* ``false_ends``: ``SpeechStopped`` decided inside an utterance (after its start, before its
  true end), i.e. in one of its pauses. ``missed_ends``: utterances with no ``SpeechStopped``
  between their true end and the next utterance. ``extra_starts``: ``SpeechStarted`` beyond one
  per utterance (a false end restarts the turn; line noise could start one in a gap).
* ``false_starts``: ``SpeechStarted`` on non-speech: ``music`` (each music-on-hold track,
  ``--music-seconds`` slices from 20 s and 60 s in, each slice scaled to -30 dBFS RMS, on a
  fresh engine), ``music_after_speech`` (one utterance, 1.5 s of silence, then the 60 s slice
  of each track: a call put on hold after the caller spoke), ``noise`` (3 x 20 s of white
  noise at -40 dBFS), ``clicks`` (20 x 100 ms full-scale noise bursts and 20 x 100 ms decaying
  impulses, 2 s apart).
* ``send_silence``: a :class:`~sipbridge.media.gate.SpeechGate` driven by each caller's turn
  events exactly as ``sipbridge/session.py`` drives it (``start`` on ``SpeechOnset``, ``stop``
  on ``SpeechRejected`` and ``SpeechStopped``, then ``offer`` of the frame with the caller's
  sample count): ``streamed_fraction`` is the share of the callers' 20 ms frames that would go
  upstream with ``send_silence: false`` (with ``true``: all of them, 1.0), ``saving`` is one
  minus that, ``speech_covered`` the share of frames holding true speech that are streamed.
  ``non_speech_streamed_fraction``: the same over the music / noise / click streams.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from sipbridge.media.gate import SpeechGate  # noqa: E402
from sipbridge.turn.engine import TurnEngine, score_pending  # noqa: E402
from sipbridge.turn.events import SpeechOnset, SpeechRejected, SpeechStarted, SpeechStopped  # noqa: E402
from sipbridge.turn.settings import PROFILES, TurnSettings, resolve  # noqa: E402
from sipbridge.turn.silero import load_model  # noqa: E402
from tests.support.audio import ulaw_decode, ulaw_encode  # noqa: E402
from tests.unit.turn.corpus import (  # noqa: E402
    MUSIC, PROMPTS, prompt, read_wav, scaled_to, to_line, white_noise,
)

from machine import machine  # noqa: E402 - bench/machine.py

RATE8, RATE = 8000, 16000
FRAMES_PER_SECOND = 50           # 20 ms frames: what the media clock hands the session
NOT_SPEECH = {"beep", "beeperr", "ascending-2tone", "descending-2tone"}
CRISP_MS, LOUD_DBFS = 30, -40.0


def progress(msg: str) -> None:
    print(f"[turns] {msg}", file=sys.stderr, flush=True)


def ms8(ms: float) -> int:
    return int(round(ms * RATE8 / 1000))


def frame_of(rate: int) -> int:
    """Samples in one 20 ms frame at ``rate``."""
    return rate // FRAMES_PER_SECOND


def line(x8k: np.ndarray, rate: int) -> np.ndarray:
    """8 kHz source as the engine hears it: 16 kHz after µ-law (``to_line``), or 8 kHz after µ-law."""
    if rate == RATE:
        return to_line(x8k)
    return ulaw_decode(ulaw_encode(x8k))


def silence(ms: float) -> np.ndarray:
    return np.zeros(ms8(ms), dtype=np.int16)


def edges_ms(x: np.ndarray) -> tuple[int, int]:
    """ms from a trimmed prompt's start to its first 10 ms frame at -40 dBFS, and from its last one to its end."""
    f = x[: len(x) // 80 * 80].astype(np.float64).reshape(-1, 80) / 32768
    level = 10 * np.log10(np.maximum((f**2).mean(axis=1), 1e-20))
    loud = np.flatnonzero(level >= LOUD_DBFS)
    if not len(loud):
        return 10**6, 10**6
    return int(loud[0]) * 10, (len(level) - 1 - int(loud[-1])) * 10


def pick_prompts(kind: str) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(PROMPTS.glob("*.wav")):
        if path.stem in NOT_SPEECH:
            continue
        x = prompt(path.stem)
        if not 0.4 <= len(x) / RATE8 <= 3.0:
            continue
        if kind == "crisp" and max(edges_ms(x)) > CRISP_MS:
            continue
        out[path.stem] = x
    return out


# ----------------------------------------------------------------------------- streams


@dataclass
class Stream:
    """One simulated line: audio at ``rate`` plus the truth about it (sample indices at ``rate``)."""

    kind: str                                   # caller | music | music_after_speech | noise | clicks
    name: str
    rate: int
    audio: np.ndarray
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    pauses: int = 0
    watch_from: int = 0                         # non-speech: starts after this sample are false
    events: list = field(default_factory=list)
    streamed: np.ndarray | None = None          # per frame: sent upstream with send_silence false
    cleared: np.ndarray | None = None           # per frame: sent, then dropped by a clear (rejected onset)


@dataclass
class Layout:
    """A caller's script, independent of the profile: what is said and the silences around it."""

    lead_ms: int
    utterances: list[list[str]]
    pause_u: list[list[float]]                  # per pause: 1.0 = silence - 150, else a fraction
    gaps_ms: list[int]
    noisy: bool
    seed: int


def layouts(count: int, names: list[str], line_noise: str, seed: int) -> list[Layout]:
    out = []
    for i in range(count):
        rng = np.random.default_rng(seed * 1000 + i)
        utts, us, gaps = [], [], []
        for _ in range(int(rng.integers(3, 6))):
            words = [names[int(rng.integers(len(names)))] for _ in range(int(rng.integers(1, 4)))]
            utts.append(words)
            us.append([1.0 if rng.random() < 0.5 else float(rng.random()) for _ in words[1:]])
            gaps.append(int(rng.integers(1500, 4001)))
        noisy = line_noise == "all" or (line_noise == "mixed" and i % 2 == 1)
        out.append(Layout(int(rng.integers(300, 1501)), utts, us, gaps, noisy, seed * 1000 + i))
    return out


def caller(layout: Layout, prompts: dict[str, np.ndarray], silence_ms: int, rate: int) -> Stream:
    """The caller's line audio at ``rate`` for a profile whose ``silence_threshold_ms`` is ``silence_ms``."""
    longest = max(100, silence_ms - 150)
    parts, at = [silence(layout.lead_ms)], ms8(layout.lead_ms)
    starts, ends, pauses = [], [], 0
    for words, us, gap in zip(layout.utterances, layout.pause_u, layout.gaps_ms):
        starts.append(at)
        for k, name in enumerate(words):
            if k:
                pause = longest if us[k - 1] >= 1.0 else 100 + us[k - 1] * (longest - 100)
                parts.append(silence(pause))
                at += len(parts[-1])
                pauses += 1
            parts.append(prompts[name])
            at += len(parts[-1])
        ends.append(at)
        parts.append(silence(gap))
        at += len(parts[-1])
    source = np.concatenate(parts)
    if layout.noisy:
        sigma = 32768.0 * 10 ** (-60.0 / 20)  # as corpus.caller(noise_dbfs=-60): added before the µ-law trip
        noise = np.random.default_rng(layout.seed).normal(0.0, sigma, len(source))
        source = np.clip(source + noise, -32768, 32767).astype(np.int16)
    up = rate // RATE8
    return Stream("caller", f"caller-{layout.seed}", rate, line(source, rate),
                  [up * s for s in starts], [up * e for e in ends], pauses)


def non_speech(music_seconds: float, prompts: dict[str, np.ndarray], rate: int) -> list[Stream]:
    """Music slices, music after an utterance, white noise, clicks (profile-independent), at ``rate``."""
    out = []
    up = rate // RATE8
    names = sorted(prompts)
    for t, path in enumerate(sorted(MUSIC.glob("*.wav"))):
        track = read_wav(path)
        for at_s in (20, 60):
            piece = track[ms8(at_s * 1000): ms8((at_s + music_seconds) * 1000)]
            if len(piece) < RATE8:
                continue
            src = np.concatenate([silence(500), scaled_to(piece, -30.0), silence(1000)])
            out.append(Stream("music", f"{path.stem}@{at_s}s", rate, line(src, rate)))
        piece = track[ms8(60_000): ms8((60 + music_seconds) * 1000)]
        if len(piece) >= RATE8:
            said = prompts[names[(7 * t) % len(names)]]
            src = np.concatenate([silence(500), said, silence(1500), scaled_to(piece, -30.0), silence(1000)])
            out.append(Stream("music_after_speech", f"{path.stem}@60s", rate, line(src, rate),
                              watch_from=up * (ms8(500) + len(said) + ms8(1500))))
    for seed in range(3):
        src = np.concatenate([silence(500), white_noise(20_000, -40.0, seed=100 + seed, rate=RATE8), silence(1000)])
        out.append(Stream("noise", f"white-40dBFS-{seed}", rate, line(src, rate)))
    t = np.arange(RATE8 // 10)
    impulse = (32767 * np.exp(-t / 80) * np.cos(t * 1.3)).astype(np.int16)
    bursts = [scaled_to(white_noise(100, 0.0, seed=200 + k, rate=RATE8), -3.0) for k in range(20)]
    for name, clicks in (("burst-3dBFS", bursts), ("impulse", [impulse] * 20)):
        src = np.concatenate([silence(1000)] + [p for c in clicks for p in (c, silence(1900))])
        out.append(Stream("clicks", f"{name}x20", rate, line(src, rate)))
    return out


# ----------------------------------------------------------------------------- running


def run_all(model, streams: list[Stream], settings: TurnSettings, never_skip: bool = False) -> None:
    """Every stream through its own engine, batched per 20 ms tick; the gate as session.py drives it.

    ``never_skip`` scores every chunk (the engine's below-floor skipping off), for comparison.
    """
    engines = [TurnEngine(model.new_stream(s.rate), settings) for s in streams]
    if never_skip:
        for engine in engines:
            engine._wants_model = lambda chunk, dbfs: True
    gates = [SpeechGate(s.rate) for s in streams]  # one second of ring
    sizes = [frame_of(s.rate) for s in streams]
    frames = [len(s.audio) // size for s, size in zip(streams, sizes)]
    since_onset: list[list[int]] = [[] for _ in streams]  # frames sent since the last onset
    for s, n in zip(streams, frames):
        s.events = []
        s.streamed = np.zeros(n, dtype=bool)
        s.cleared = np.zeros(n, dtype=bool)
    for tick in range(max(frames)):
        live = [i for i, n in enumerate(frames) if tick < n]
        for i in live:
            engines[i].push(streams[i].audio[tick * sizes[i]:(tick + 1) * sizes[i]])
        results = score_pending([engines[i] for i in live])
        for i, events in zip(live, results):
            stream, gate = streams[i], gates[i]
            sent = []
            for event in events:  # CallSession._on_turn -> _gate_turn
                stream.events.append(event)
                if isinstance(event, SpeechOnset):
                    since_onset[i] = []
                    sent += gate.start(event.audio_start_sample)
                elif isinstance(event, SpeechRejected):
                    gate.stop()  # and input_audio_buffer.clear upstream: what was sent is dropped
                    since_onset[i] += sent
                    stream.cleared[since_onset[i]] = True
                    since_onset[i], sent = [], []
                elif isinstance(event, SpeechStopped):
                    gate.stop()
            sent += gate.offer((tick + 1) * sizes[i], tick)  # payload: the frame's index
            since_onset[i] += sent
            stream.streamed[sent] = True


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def score_callers(callers: list[Stream], settings: TurnSettings) -> dict:
    silence_ms = settings.silence_threshold_ms
    latency, end_error, late = [], [], 0
    false_ends = missed = extra_starts = utterances = 0
    streamed = total = speech_frames = speech_streamed = speech_kept = 0
    heads: list[float] = []
    for s in callers:
        rate, frame = s.rate, frame_of(s.rate)
        stops = [e for e in s.events if isinstance(e, SpeechStopped)]
        started = [e for e in s.events if isinstance(e, SpeechStarted)]
        extra_starts += max(0, len(started) - len(s.starts))
        bounds = s.starts[1:] + [len(s.audio) + 1]
        for start, end, following in zip(s.starts, s.ends, bounds):
            utterances += 1
            false_ends += sum(start < e.at_sample <= end for e in stops)
            after = [e for e in stops if end < e.at_sample <= following]
            if not after:
                missed += 1
                continue
            ms = (after[0].at_sample - end) * 1000 / rate
            latency.append(ms)
            end_error.append((after[0].audio_end_sample - end) * 1000 / rate)
            late += ms > silence_ms + 100
        # send_silence=false: which frames went upstream, and did every speech frame go?
        truth = np.zeros(len(s.streamed), dtype=bool)
        for start, end in zip(s.starts, s.ends):
            truth[start // frame: -(-end // frame)] = True
        streamed += int(s.streamed.sum())
        total += len(s.streamed)
        speech_frames += int(truth.sum())
        speech_streamed += int((truth & s.streamed).sum())
        kept = s.streamed & ~s.cleared
        speech_kept += int((truth & kept).sum())
        for start, end in zip(s.starts, s.ends):  # speech at an utterance's start that never reaches the model
            first, last = start // frame, -(-end // frame)
            delivered = np.flatnonzero(kept[first:last])
            head = (delivered[0] if len(delivered) else last - first) * 1000 / FRAMES_PER_SECOND
            if head > 0:
                heads.append(head)
    return {
        "utterances": utterances,
        "eou_latency_ms": {"p50": pct(latency, 50), "p95": pct(latency, 95),
                           "max": round(max(latency), 1) if latency else None, "n": len(latency)},
        "over_silence_plus_100": int(late),
        "end_error_ms": {"p50": pct(end_error, 50), "p5": pct(end_error, 5), "p95": pct(end_error, 95)},
        "false_ends": int(false_ends),
        "missed_ends": int(missed),
        "extra_starts": int(extra_starts),
        "send_silence": {"streamed_fraction": round(streamed / total, 3), "streamed_fraction_send_silence_true": 1.0,
                         "saving": round(1 - streamed / total, 3),
                         "speech_covered": round(speech_streamed / max(1, speech_frames), 4),
                         "speech_delivered": round(speech_kept / max(1, speech_frames), 4),
                         "utterances_head_lost": len(heads),
                         "head_lost_ms": sorted(round(h) for h in heads)},
    }


def score_non_speech(streams: list[Stream]) -> dict:
    counts: dict[str, int] = {}
    onsets: dict[str, int] = {}
    where: list[str] = []
    streamed = total = 0
    for s in streams:
        started = [e for e in s.events if isinstance(e, SpeechStarted) and e.at_sample > s.watch_from]
        counts[s.kind] = counts.get(s.kind, 0) + len(started)
        onsets[s.kind] = onsets.get(s.kind, 0) + sum(
            isinstance(e, SpeechOnset) and e.at_sample > s.watch_from for e in s.events)
        where += [f"{s.kind}:{s.name}@{e.at_sample * 1000 // s.rate}ms" for e in started]
        watch = s.watch_from // frame_of(s.rate)
        streamed += int(s.streamed[watch:].sum())
        total += len(s.streamed) - watch
    return {"false_starts": counts, "onsets": onsets, "false_start_at": where[:20],
            "non_speech_streamed_fraction": round(streamed / max(1, total), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=40)
    parser.add_argument("--profiles", default="default," + ",".join(PROFILES),
                        help="comma-separated: default and/or profile names")
    parser.add_argument("--line-noise", choices=("mixed", "none", "all"), default="mixed",
                        help="-60 dBFS white noise under every other caller (mixed), none or all")
    parser.add_argument("--prompts", choices=("crisp", "any"), default="crisp")
    parser.add_argument("--music-seconds", type=float, default=10.0, help="length of each music slice")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=int, choices=(RATE, RATE8), default=RATE,
                        help="rate the engines score at: 16000 (8 kHz upsampled, as today) or 8000 (as on the wire)")
    parser.add_argument("--never-skip", action="store_true",
                        help="score every chunk (no below-floor skipping), to see what skipping changes")
    args = parser.parse_args()
    t0 = time.monotonic()
    model = load_model()
    prompts = pick_prompts(args.prompts)
    names = sorted(prompts)
    progress(f"{len(names)} {args.prompts} prompts; {args.callers} callers; building non-speech streams")
    scripts = layouts(args.callers, names, args.line_noise, args.seed)
    others = non_speech(args.music_seconds, prompts, args.rate)
    result: dict = {"bench": "turns", "machine": machine(), "rate": args.rate, "never_skip": args.never_skip,
                    "profiles": {}}
    corpus: dict = {}
    for profile in [p for p in args.profiles.split(",") if p]:
        settings = TurnSettings() if profile == "default" else resolve({"profile": profile})
        callers = [caller(s, prompts, settings.silence_threshold_ms, args.rate) for s in scripts]
        streams = callers + others
        audio_s = sum(len(s.audio) for s in streams) / args.rate
        progress(f"{profile}: {len(streams)} streams, {audio_s:.0f} s of audio")
        t1 = time.monotonic()
        run_all(model, streams, settings, args.never_skip)
        longest = max(100, settings.silence_threshold_ms - 150)
        entry = {"settings": {k: getattr(settings, k) for k in ("threshold", "min_speech_ms",
                                                                 "silence_threshold_ms", "prefix_padding_ms",
                                                                 "silence_floor_dbfs")}
                 | {"release_threshold": round(settings.release, 3)},
                 "pause_ms": {"min": 100, "max": longest}}
        entry |= score_callers(callers, settings)
        entry |= score_non_speech(others)
        entry["run_s"] = round(time.monotonic() - t1, 1)
        result["profiles"][profile] = entry
        corpus = {"callers": len(callers), "prompts": f"{len(names)} {args.prompts}",
                  "utterances": sum(len(c.starts) for c in callers),
                  "pauses_in_utterances": sum(c.pauses for c in callers),
                  "caller_audio_s": round(sum(len(c.audio) for c in callers) / args.rate, 1),
                  "speech_s": round(sum(e - s for c in callers for s, e in zip(c.starts, c.ends)) / args.rate, 1),
                  "line_noise": {"mixed": "-60 dBFS on every other caller", "none": None,
                                 "all": "-60 dBFS on every caller"}[args.line_noise],
                  "non_speech_s": {k: round(sum(len(s.audio) for s in others if s.kind == k) / args.rate, 1)
                                   for k in dict.fromkeys(s.kind for s in others)}}
    result["corpus"] = corpus
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    result["command"] = " ".join(["python bench/turns.py", *sys.argv[1:]])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
