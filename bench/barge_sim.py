"""Barge-in decisions replayed offline, frame by frame (prints one JSON object).

    python bench/barge_sim.py [--prompts 60] [--offsets 3] [--rate 16000|8000]

The real :class:`CallSession` media path (echo canceller, turn engine with the real Silero
model, barge-in policy, playout buffer) runs on the media clock played by this script, with no
network: the model's answer is already in the playout buffer and what the session would send
upstream is dropped. The caller leg is built like a phone line builds it: the agent's own
output, optionally echoed back (delayed, attenuated), plus the caller's interrupting prompt,
through G.711 mu-law at 8 kHz and back to 16 kHz (``--rate 8000``: the session runs at the
line's rate, ``sip.media_rate`` 8000, and neither leg is resampled). Because nothing here waits
on a socket or a scheduler, the figures are the policy's own, repeatable to the sample, on a
loaded machine too; ``bench/barge_in.py`` measures the same on the wire (add the wire's 20-40 ms).

Reported:

* ``onset_to_silence_ms``: the interruption's speech onset (its first run of three 20 ms frames
  louder than -40 dBFS, as sent by the caller) -> the first agent frame from which the agent
  stays silent (p50/p95/max), over Asterisk prompts tried at several offsets into the answer;
* ``first_sound_to_silence_ms``: the same from its first frame louder than -40 dBFS (a breath
  before the first word counts here);
* ``missed``: interruptions the agent never stopped for;
* ``false``: on lines carrying only echo, music on hold or clicks: cancels (false barge-ins),
  pauses (audible stutters) and the agent audio those pauses held back in total.

``--corpus tune|heldout`` replays the background corpus instead (:func:`corpus`;
``--corpus-late MS`` interrupts MS later, past the echo canceller's search), and
``--long-calls N`` adds N calls of music (``--long-kinds``) under the agent per part
(:func:`long_run`): the share of calls with a pause, and with a gap over 100 ms.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog  # noqa: E402
from sipcodecs import StreamResampler  # noqa: E402

from sipbridge import config as config_mod  # noqa: E402
from sipbridge.session import CallSession  # noqa: E402
from sipbridge.turn.events import SpeechStarted  # noqa: E402
from sipbridge.turn.settings import resolve  # noqa: E402
from sipbridge.turn.silero import load_model  # noqa: E402
from tests.support import audio  # noqa: E402
from tests.support.barge import _over, _sound, reply_pcm, summary  # noqa: E402

_NC = importlib.util.spec_from_file_location("noise_corpus", Path(__file__).with_name("noise_corpus.py"))
noise_corpus = importlib.util.module_from_spec(_NC)
_NC.loader.exec_module(noise_corpus)

FRAME_8K = 160
SILENT_DBFS = -55.0
SKIP_PREFIXES = ("digits/", "letters/", "phonetic/")


class _NoLoop:
    """Stands in for the event loop: what the session queues to the network is only counted."""

    def __init__(self) -> None:
        self.cancels = 0
        self.commits = 0
        self.frame = 0                 # the call's frame being played (set by simulate)
        self.commit_frames: list[int] = []

    def call_soon_threadsafe(self, fn, *_args) -> None:
        name = getattr(fn, "__name__", "")
        if name == "_cancel_upstream":
            self.cancels += 1
        elif name == "_commit_turn":
            self.commits += 1
            self.commit_frames.append(self.frame)


def _frames_dbfs(pcm: np.ndarray) -> np.ndarray:
    n = len(pcm) // FRAME_8K
    x = pcm[: n * FRAME_8K].astype(np.float64).reshape(n, FRAME_8K)
    power = (x * x).mean(axis=1)
    return 10 * np.log10(np.maximum(power, 1e-9) / 32768.0 ** 2)


TRIGGER = config_mod.BargeInConfig().trigger   # barge_in.trigger of the simulated calls (--trigger)
PUMP_TICKS = None   # --pump-ticks N: the session behind a real C native port and its pump (sip.pump_ticks)


def simulate(model, interrupt: np.ndarray | None, at_ms: int, *, echo=None,
             total_ms: int = 6000, rate: int = 16000, background: np.ndarray | None = None,
             agent_at_ms: int | None = 0) -> dict:
    """One call: the agent talks from ``agent_at_ms``; ``interrupt`` (8 kHz) starts at ``at_ms``.

    ``echo`` = (delay_ms, attenuation_db) of the line echo of the agent's own output.
    ``rate``: the session's media rate (8000: no resampler on either leg).
    ``background`` (8 kHz) is on the caller's line from the start of the call, under
    everything; ``agent_at_ms`` None: the agent never talks. Besides the agent's output levels
    and the counts, ``paused`` says per frame whether the agent was held by a pause.
    """
    cfg = config_mod.Config(sip=config_mod.SipConfig(media_rate=rate), turn_detection=resolve({}),
                            barge_in=config_mod.BargeInConfig(trigger=TRIGGER))
    loop = _NoLoop()
    session = CallSession(call_id="sim", config=cfg, url="ws://127.0.0.1:9", api_key=None,
                          loop=loop, vad_model=model, on_end=lambda _r: None)
    started = []
    on_turn = session._on_turn

    def counting(event) -> None:
        if isinstance(event, SpeechStarted):
            started.append(event.at_sample)
        on_turn(event)

    session._on_turn = counting
    pump = port = None
    if PUMP_TICKS:   # the clock drives the C port (agent frame out, caller frame in); the pump every N ticks
        from sipbridge.media.native.lib import NativePort
        from sipbridge.media.native.pump import CallAudio, Pump
        port = CallAudio(NativePort(rate, rate // 50 * 2, "sim"), 0)
        port.bind(session.on_caller_frame, session.next_frame)
        session.media_flags = port.flags
        pump = Pump(port.port.lib, ticks=PUMP_TICKS)
    reply = audio.resample(reply_pcm(), 8000, rate)
    agent_frame = None if agent_at_ms is None else agent_at_ms // 20
    n_frames = total_ms // 20
    caller = np.zeros(n_frames * FRAME_8K, dtype=np.float64)
    if interrupt is not None:
        start = at_ms * 8
        piece = interrupt[: len(caller) - start]
        caller[start: start + len(piece)] = piece
    if background is not None:
        piece = background[: len(caller)]
        caller[: len(piece)] += piece
    native = rate == 8000                      # the line's own rate: no resampler either way
    down, up = (None, None) if native else (StreamResampler(rate, 8000), StreamResampler(8000, rate))
    sent_back: list[np.ndarray] = []           # agent output at 8 kHz, frame by frame
    out_levels, paused = [], []
    delay_frames, gain = 0, 0.0
    if echo is not None:
        delay_frames, gain = max(1, round(echo[0] / 20)), 10 ** (-echo[1] / 20)
    for k in range(n_frames):
        loop.frame = k
        if k == agent_frame:
            session.playout.push(reply.tobytes(), "item", session.playout.generation)
        frame = caller[k * FRAME_8K:(k + 1) * FRAME_8K].copy()
        if echo is not None and k >= delay_frames:
            frame = frame + gain * sent_back[k - delay_frames]
        line = audio.ulaw_decode(audio.ulaw_encode(np.clip(frame, -32768, 32767).astype(np.int16)))
        wire_in = line.astype("<i2").tobytes()
        if pump is None:
            session.on_caller_frame(wire_in if native else up.process(wire_in))
            out = session.next_frame()
        else:
            out = port.port.get()
            port.port.put(wire_in if native else up.process(wire_in))
            if (k + 1) % PUMP_TICKS == 0:
                pump.tick((port,))
        paused.append(session.playout.paused)
        out8 = np.frombuffer(out if native else down.process(out), dtype=np.int16)
        wire = audio.ulaw_decode(audio.ulaw_encode(out8)).astype(np.float64)
        sent_back.append(wire)
        out_levels.append(audio.dbfs(out8) if np.any(out8) else -120.0)
    if port is not None:
        port.port.free()
    return {"out_dbfs": np.array(out_levels), "barge_ins": loop.cancels,
            "pauses": session.pauses, "held_ms": session.held_ms, "commits": loop.commits,
            "commit_frames": loop.commit_frames,
            "started": len(started),
            "paused": np.array(paused, dtype=bool)}


def longest_gap_ms(res: dict) -> int:
    """The longest stretch the agent was held by one pause, in ms."""
    best = run = 0
    for p in res["paused"]:
        run = run + 1 if p else 0
        best = max(best, run)
    return 20 * best


def onset_to_silence(res: dict, interrupt: np.ndarray, at_ms: int, span: int = 3,
                     background: np.ndarray | None = None) -> float | None:
    """Speech onset (the first of ``span`` frames above -40 dBFS) -> the agent silent for good.

    With ``background`` (the line's background, 8 kHz, from the call's start), the onset is
    the *audible* one: the first of ``span`` frames of the speech above -40 dBFS and at or
    above the background's own level in the same frame (a word's faint start 7 dB under the
    music is heard by nobody; the metric without it is reported next to it).
    """
    loud = _frames_dbfs(interrupt) > -40.0
    if background is not None:
        start = at_ms * 8
        under = background[start: start + len(loud) * FRAME_8K]
        under = np.pad(under, (0, len(loud) * FRAME_8K - len(under)))
        loud &= _frames_dbfs(interrupt) >= _frames_dbfs(under)
    runs = [k for k in range(len(loud)) if loud[k:k + span].all() and len(loud[k:k + span]) == span]
    if not runs:
        return None
    onset_frame = at_ms // 20 + runs[0]
    end_frame = at_ms // 20 + len(loud)
    out = res["out_dbfs"]
    for k in range(onset_frame, min(end_frame, len(out))):
        if np.all(out[k:end_frame] < SILENT_DBFS):
            return float((k - onset_frame) * 20)
    return None


def speech_span(interrupt: np.ndarray, at_ms: int) -> tuple[int, int]:
    """Frames of the call from the interruption's first to its last frame above -40 dBFS."""
    loud = np.flatnonzero(_frames_dbfs(interrupt) > -40.0)
    return at_ms // 20 + int(loud[0]), at_ms // 20 + int(loud[-1]) + 1


def resumed_while_speaking(res: dict, interrupt: np.ndarray, at_ms: int) -> bool:
    """The agent was paused during the interruption, then heard again before it ended."""
    first, last = speech_span(interrupt, at_ms)
    held = np.flatnonzero(res["paused"][first:last])
    # the frame after the pause still carries the 16 -> 8 kHz resampler's tail: skip it
    return bool(len(held)) and bool((res["out_dbfs"][first + held[0] + 2:last] > SILENT_DBFS).any())


def paused_before_onset(res: dict, interrupt: np.ndarray, at_ms: int) -> bool:
    """A pause (or a cancel) came before the interruption's first sound."""
    first, _last = speech_span(interrupt, at_ms)
    return bool(res["paused"][:first].any())


def prompts(limit: int, names: list[str] | None = None) -> list[tuple[str, np.ndarray]]:
    """Every ``len/limit``-th Asterisk prompt of 0.6-3 s (or exactly ``names``), trimmed, 8 kHz."""
    root = audio.ASTERISK_SOUNDS
    chosen = names or sorted(p.stem for p in root.glob("*.wav"))[:: max(1, 358 // limit)]
    out = []
    for name in chosen:
        pcm = audio.trim_silence(audio.load_wav(root / f"{name}.wav", rate=8000), rate=8000)
        if names or 600 <= len(pcm) / 8 <= 3000:
            out.append((name, pcm))
        if len(out) == limit:
            break
    return out


FIRST_WORDS = "hello-world"


def first_turn(model, prompts_: list[tuple[str, np.ndarray]], offsets: int, rate: int,
               verbose: bool = False, music: bool = False) -> dict:
    """The caller speaks first, on a line that opens in digital silence (the wire's pattern).

    Digital silence until 500 ms (the caller's RTP not flowing yet), ``FIRST_WORDS`` then,
    the agent's answer 600 ms after it, and the interruption 0.7-2.4 s into the answer;
    the figures are the interruption's, as for the clean interruptions. ``music``: as on
    the wire's music calls (tests/support/barge.py), music at -25 dBFS from 200 ms to the
    end, the caller 12 dB over it; then also ``music_alone``: the same calls with no
    interruption, the agent talking 8 s over the music (pauses, longest gap, cancels).
    """
    hello = audio.trim_silence(audio.load_wav(audio.ASTERISK_SOUNDS / f"{FIRST_WORDS}.wav",
                                              rate=8000), rate=8000)
    bed = None
    if music:
        bed = np.concatenate([np.zeros(1600, dtype=np.int16), _sound("bed")])
        hello = _over(hello, bed[1600:])
    agent_ms = 500 + len(hello) // 8 + 600
    delays, resumed, early, slow = [], 0, 0, []
    for i, (name, pcm) in enumerate(prompts_):
        if music:
            pcm = _over(pcm, bed[1600:])
        for j in range(offsets):
            at_ms = agent_ms + 700 + 20 * ((i * 7 + j * 37) % 86)
            caller = np.zeros(at_ms * 8 - 4000 + len(pcm), dtype=np.float64)
            caller[: len(hello)] = hello
            caller[at_ms * 8 - 4000:] = pcm
            res = simulate(model, caller, 500, total_ms=at_ms + len(pcm) // 8 + 600, rate=rate,
                           agent_at_ms=agent_ms, background=bed)
            d = onset_to_silence(res, pcm, at_ms)
            delays.append(d)
            resumed += resumed_while_speaking(res, pcm, at_ms)
            early += paused_before_onset(res, pcm, at_ms) or res["barge_ins"] > 1
            if d is None or d > 120:
                slow.append({"prompt": name, "at_ms": at_ms, "ms": d})
            if verbose:
                print(f"first turn, then {name} @{at_ms}: {d}", file=sys.stderr)
    out = {"interruptions": len(delays), "onset_to_silence_ms": summary(delays),
           "missed": sum(1 for d in delays if d is None), "resumed_while_speaking": resumed,
           "paused_before_onset": early, "over_120_ms": slow}
    if music:
        alone = []
        for k in range(3):
            piece = bed[: len(bed) - 8000 * k]
            res = simulate(model, hello, 500, total_ms=agent_ms + 8000, rate=rate,
                           agent_at_ms=agent_ms, background=np.concatenate(
                               [np.zeros(1600), piece[1600 + 8000 * k:]]) if k else bed)
            alone.append((res["pauses"], longest_gap_ms(res), res["barge_ins"]))
        out["music_alone"] = {"calls": len(alone), "calls_paused": sum(1 for p, _g, _c in alone if p),
                              "pauses": sum(p for p, _g, _c in alone),
                              "longest_gap_ms": max(g for _p, g, _c in alone),
                              "cancels": sum(c for _p, _g, c in alone)}
    return out


def corpus(model, part: str, cases: int, prompts_per_kind: int, rate: int = 16000,
           verbose: bool = False, late_ms: int = 0) -> dict:
    """The background corpus (bench/noise_corpus.py) of ``part``, per kind of background.

    * ``under_agent``: the background from the call's start, the agent talking from 2 s to
      8 s: calls with any pause, pauses, the longest gap (ms), cancels;
    * ``starts_under_agent``: the agent talking from 0, the background appearing 2 s in;
    * ``agent_silent``: 8 s of background alone then 2 s of quiet, nobody talking: turns
      committed (the model would answer the TV), and Silero's SpeechStarted events;
    * ``speech_over``: the background from the start, the agent from 2 s, a prompt of the part
      at 10-15 dB over the background from 3-4 s: onset -> silent, missed, pauses before the
      onset, the agent heard again after it went silent while the caller still spoke; and the
      same speech with the agent silent: turns taken (committed), of ``interruptions``, the
      caller's last frame -> the commit (``agent_silent_end_of_turn_ms``) and commits before
      it (``agent_silent_cut_off``: the agent would answer a caller still talking).
      ``late_ms`` (``--corpus-late``) moves the speech that much later (its call 10 s long):
      at 3-4 s the agent has talked 1-2 s, inside the echo canceller's search (the session's
      first 1 s of agent speech on an echo-free line), where most interruptions are not.
    """
    out: dict = {}
    prompts_ = noise_corpus.speech(part, 200)
    for kind in noise_corpus.KINDS:
        under, starts, silent, over = [], [], [], []
        for i in range(cases):
            bg, _level = noise_corpus.background(kind, part, i, 8000)
            r = simulate(model, None, 0, background=bg, agent_at_ms=2000, total_ms=8000, rate=rate)
            under.append((r["pauses"], longest_gap_ms(r), r["barge_ins"]))
            late = np.concatenate([np.zeros(2000 * 8, dtype=np.int16), bg[: 4000 * 8]])
            r = simulate(model, None, 0, background=late, agent_at_ms=0, total_ms=6000, rate=rate)
            starts.append((r["pauses"], longest_gap_ms(r), r["barge_ins"]))
            r = simulate(model, None, 0, background=bg, agent_at_ms=None, total_ms=10000, rate=rate)
            silent.append((r["commits"], r["started"]))
            if verbose:
                print(f"{part} {kind} {i}: under {under[-1]} starts {starts[-1]} commits {silent[-1]}",
                      file=sys.stderr)
        resumed_n = taken = 0
        eou: list[int] = []
        for j in range(prompts_per_kind):
            i = j % cases
            bg, bg_level = noise_corpus.background(kind, part, i, 10000 if late_ms else 8000)
            name, pcm = prompts_[(j * 7 + noise_corpus.KINDS.index(kind) * 3) % len(prompts_)]
            snr = 10.0 + (j * 2.5) % 6
            gain = 10 ** ((bg_level + snr - noise_corpus.speech_level(pcm)) / 20)
            speech = np.clip(pcm * gain, -32768, 32767).astype(np.int16)
            at_ms = 3000 + late_ms + 20 * ((j * 13) % 50)
            r = simulate(model, speech, at_ms, background=bg, agent_at_ms=2000,
                         total_ms=at_ms + len(pcm) // 8 + 600, rate=rate)
            d = onset_to_silence(r, speech, at_ms)
            heard = onset_to_silence(r, speech, at_ms, background=bg)
            early = paused_before_onset(r, speech, at_ms) or r["barge_ins"] > 1
            resumed = resumed_while_speaking(r, speech, at_ms)
            over.append((d, early, name, at_ms, round(snr, 1), heard))
            resumed_n += resumed
            r = simulate(model, speech, at_ms, background=bg, agent_at_ms=None,
                         total_ms=at_ms + len(pcm) // 8 + 1500, rate=rate)
            taken += r["commits"] >= 1
            first, last = speech_span(speech, at_ms)
            after = [f for f in r["commit_frames"] if f >= first]
            if after:   # the caller's last frame -> the commit (negative: before they finished)
                eou.append((after[0] + 1 - last) * 20)
            if verbose:
                print(f"{part} {kind} over {name}@{at_ms} snr {snr:.1f}: {d} early={early}",
                      file=sys.stderr)
        out[kind] = {
            "under_agent": {"calls": cases, "calls_paused": sum(1 for p, _g, _c in under if p),
                            "pauses": sum(p for p, _g, _c in under),
                            "longest_gap_ms": max(g for _p, g, _c in under),
                            "cancels": sum(c for _p, _g, c in under)},
            "starts_under_agent": {"calls": cases, "calls_paused": sum(1 for p, _g, _c in starts if p),
                                   "pauses": sum(p for p, _g, _c in starts),
                                   "longest_gap_ms": max(g for _p, g, _c in starts),
                                   "cancels": sum(c for _p, _g, c in starts)},
            "agent_silent": {"calls": cases, "turns_committed": sum(c for c, _s in silent),
                             "speech_started": sum(s for _c, s in silent)},
            "speech_over": {"interruptions": len(over),
                            "onset_to_silence_ms": summary([d for d, *_ in over]),
                            "audible_onset_to_silence_ms": summary([o[5] for o in over]),
                            "missed": sum(1 for d, *_ in over if d is None),
                            "paused_before_onset": sum(1 for _d, e, *_ in over if e),
                            "resumed_while_speaking": resumed_n,
                            "agent_silent_turns_taken": taken,
                            "agent_silent_end_of_turn_ms": summary(eou),
                            "agent_silent_cut_off": sum(1 for e in eou if e <= 0),
                            "over_120_ms": [{"prompt": n, "at_ms": a, "snr_db": s, "ms": d,
                                             "audible_ms": h}
                                            for d, _e, n, a, s, h in over if d is None or d > 120]},
        }
    return out


def long_run(model, part: str, kind: str, calls: int, rate: int = 8000) -> dict:
    """``calls`` calls of the corpus's ``kind`` (cases 0..calls-1 of ``part``) under the agent.

    The corpus's ``under_agent`` has a few calls per kind: too few to see a failure in 2-6 %
    of calls, which the issue's target (no pause in >= 95 % of calls, no gap over 100 ms ever)
    is about. Each call: the background from the start, the agent talking from 2 s to 10 s.
    Reports the calls with any pause, the calls with a gap over 100 ms, the longest gap, the
    cancels, and each paused call (case, level, pauses, longest gap).
    """
    rows = []
    for i in range(calls):
        bg, level = noise_corpus.background(kind, part, i, 10000)
        r = simulate(model, None, 0, background=bg, agent_at_ms=2000, total_ms=10000, rate=rate)
        rows.append((i, level, r["pauses"], longest_gap_ms(r), r["barge_ins"]))
    paused = [row for row in rows if row[2]]
    return {"calls": calls, "calls_paused": len(paused),
            "calls_with_gap_over_100_ms": sum(1 for row in rows if row[3] > 100),
            "pauses": sum(row[2] for row in rows),
            "longest_gap_ms": max((row[3] for row in rows), default=0),
            "cancels": sum(row[4] for row in rows),
            "paused": [{"case": i, "level_dbfs": lv, "pauses": p, "longest_gap_ms": g}
                       for i, lv, p, g, _c in paused]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=60)
    ap.add_argument("--offsets", type=int, default=3)
    ap.add_argument("--names", nargs="*", help="these prompts only (e.g. the wire bench's five)")
    ap.add_argument("--echo", nargs=2, type=float, metavar=("DELAY_MS", "ATTEN_DB"),
                    help="the interruptions come over a line echo of the agent")
    ap.add_argument("--rate", type=int, choices=(16000, 8000), default=16000,
                    help="the session's media rate (sip.media_rate)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--trigger", choices=("level", "voice"), default=config_mod.BargeInConfig().trigger,
                    help="barge_in.trigger of the simulated calls (default: the bridge's default)")
    ap.add_argument("--corpus", choices=noise_corpus.PARTS, action="append",
                    help="the background corpus (bench/noise_corpus.py) instead: tune, heldout")
    ap.add_argument("--corpus-cases", type=int, default=6, help="calls per kind of background")
    ap.add_argument("--corpus-speech", type=int, default=8, help="interruptions per kind")
    ap.add_argument("--corpus-late", type=int, default=0, metavar="MS",
                    help="with --corpus: the interruptions MS later (e.g. 2000: past the echo "
                         "canceller's search at the start of the agent's speech)")
    ap.add_argument("--long-calls", type=int, default=0, metavar="N",
                    help="with --corpus: also N calls of each --long-kinds background under the "
                         "agent (the share of calls paused; the corpus's own cases are few)")
    ap.add_argument("--long-kinds", nargs="*", default=["music"], choices=noise_corpus.KINDS)
    ap.add_argument("--first-turn", type=int, default=8, metavar="N",
                    help="the caller speaks first on a digitally silent line, then interrupts: "
                         "N prompts x --offsets (0: skip)")
    ap.add_argument("--first-turn-only", action="store_true",
                    help="only that case (no clean interruptions, no false cases)")
    ap.add_argument("--pump-ticks", type=int, choices=(1, 2, 3),
                    help="replay through the native port's C rings and pump at sip.pump_ticks N "
                         "(the wire frame is what get_frame sends; without it: next_frame's output)")
    args = ap.parse_args()
    global TRIGGER, PUMP_TICKS
    TRIGGER = args.trigger
    PUMP_TICKS = args.pump_ticks
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    started = time.monotonic()
    model = load_model()
    if args.corpus:
        res = {part: corpus(model, part, args.corpus_cases, args.corpus_speech, args.rate,
                            args.verbose, args.corpus_late)
               if args.corpus_speech or args.corpus_cases else {}
               for part in args.corpus}
        for part in args.corpus if args.long_calls else ():
            res[part]["long"] = {kind: long_run(model, part, kind, args.long_calls, args.rate)
                                 for kind in args.long_kinds}
        print(json.dumps({"bench": "barge_sim_corpus", "rate": args.rate, "trigger": TRIGGER, "parts": res,
                          "elapsed_s": round(time.monotonic() - started, 1),
                          "command": "python bench/barge_sim.py " + " ".join(sys.argv[1:])},
                         indent=2))
        return 0
    spread = prompts(60, args.names)[:: max(1, 60 // max(args.first_turn, 1))][: args.first_turn]
    turn_first = turn_music = None
    if args.first_turn:
        turn_first = first_turn(model, spread, args.offsets, args.rate, args.verbose)
        turn_music = first_turn(model, spread, args.offsets, args.rate, args.verbose, music=True)
    if args.first_turn_only:
        print(json.dumps({"bench": "barge_sim", "trigger": TRIGGER, "rate": args.rate,
                          "first_turn": turn_first, "first_turn_music": turn_music,
                          "elapsed_s": round(time.monotonic() - started, 1),
                          "command": "python bench/barge_sim.py " + " ".join(sys.argv[1:])}, indent=2))
        return 0
    delays, first, missed, slow, resumed, early = [], [], 0, [], 0, 0
    for i, (name, pcm) in enumerate(prompts(args.prompts, args.names)):
        for j in range(args.offsets):
            at_ms = 1200 + 20 * ((i * 7 + j * 37) % 100)
            res = simulate(model, pcm, at_ms, echo=args.echo,
                           total_ms=at_ms + len(pcm) // 8 + 600, rate=args.rate)
            d = onset_to_silence(res, pcm, at_ms)
            first.append(onset_to_silence(res, pcm, at_ms, span=1))
            resumed += resumed_while_speaking(res, pcm, at_ms)
            early += paused_before_onset(res, pcm, at_ms)
            if d is None:
                missed += 1
            delays.append(d)
            if d is None or d > 120:
                slow.append({"prompt": name, "at_ms": at_ms, "ms": d})
            if args.verbose:
                print(f"{name} @{at_ms}: {d}", file=sys.stderr)
    false = {}
    cases = {
        "echo_12db_40ms": dict(interrupt=None, echo=(40, 12)),
        "echo_6db_20ms": dict(interrupt=None, echo=(20, 6)),
        "echo_6db_60ms": dict(interrupt=None, echo=(60, 6)),
        "echo_8db_13ms": dict(interrupt=None, echo=(13, 8)),
        "music_-30dbfs": dict(interrupt=_sound("music")),
        "clicks": dict(interrupt=_sound("clicks")),
    }
    for name, kw in cases.items():
        runs = [simulate(model, kw["interrupt"], 1000 + 300 * r, echo=kw.get("echo"), total_ms=6000,
                         rate=args.rate)
                for r in range(3)]
        false[name] = {"calls": len(runs), "cancels": sum(r["barge_ins"] for r in runs),
                       "pauses": sum(r["pauses"] for r in runs),
                       "held_ms": sum(r["held_ms"] for r in runs)}
    out = {
        "bench": "barge_sim", "trigger": TRIGGER, "pump_ticks": PUMP_TICKS,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "rate": args.rate,
        "interruptions": len(delays),
        "onset_to_silence_ms": summary(delays),
        "first_sound_to_silence_ms": summary(first),
        "missed": missed,
        "resumed_while_speaking": resumed,
        "paused_before_onset": early,
        "over_120_ms": slow,
        "false": false,
        "first_turn": turn_first,
        "first_turn_music": turn_music,
        "elapsed_s": round(time.monotonic() - started, 1),
        "command": "python bench/barge_sim.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
