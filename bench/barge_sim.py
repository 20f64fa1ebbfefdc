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
"""

from __future__ import annotations

import argparse
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
from sipbridge.turn.settings import resolve  # noqa: E402
from sipbridge.turn.silero import load_model  # noqa: E402
from tests.support import audio  # noqa: E402
from tests.support.barge import _sound, reply_pcm, summary  # noqa: E402

FRAME_8K = 160
SILENT_DBFS = -55.0
SKIP_PREFIXES = ("digits/", "letters/", "phonetic/")


class _NoLoop:
    """Stands in for the event loop: what the session queues to the network is only counted."""

    def __init__(self) -> None:
        self.cancels = 0

    def call_soon_threadsafe(self, fn, *_args) -> None:
        if getattr(fn, "__name__", "") == "_cancel_upstream":
            self.cancels += 1


def _frames_dbfs(pcm: np.ndarray) -> np.ndarray:
    n = len(pcm) // FRAME_8K
    x = pcm[: n * FRAME_8K].astype(np.float64).reshape(n, FRAME_8K)
    power = (x * x).mean(axis=1)
    return 10 * np.log10(np.maximum(power, 1e-9) / 32768.0 ** 2)


def simulate(model, interrupt: np.ndarray | None, at_ms: int, *, echo=None,
             total_ms: int = 6000, rate: int = 16000) -> dict:
    """One call: the agent talks from 0 ms; ``interrupt`` (8 kHz) starts at ``at_ms``.

    ``echo`` = (delay_ms, attenuation_db) of the line echo of the agent's own output.
    ``rate``: the session's media rate (8000: no resampler on either leg).
    """
    cfg = config_mod.Config(sip=config_mod.SipConfig(media_rate=rate), turn_detection=resolve({}))
    loop = _NoLoop()
    session = CallSession(call_id="sim", config=cfg, url="ws://127.0.0.1:9", api_key=None,
                          loop=loop, vad_model=model, on_end=lambda _r: None)
    reply = audio.resample(reply_pcm(), 8000, rate)
    session.playout.push(reply.tobytes(), "item", session.playout.generation)
    n_frames = total_ms // 20
    caller = np.zeros(n_frames * FRAME_8K, dtype=np.int16)
    if interrupt is not None:
        start = at_ms * 8
        piece = interrupt[: len(caller) - start]
        caller[start: start + len(piece)] = piece
    native = rate == 8000                      # the line's own rate: no resampler either way
    down, up = (None, None) if native else (StreamResampler(rate, 8000), StreamResampler(8000, rate))
    sent_back: list[np.ndarray] = []           # agent output at 8 kHz, frame by frame
    out_levels = []
    delay_frames, gain = 0, 0.0
    if echo is not None:
        delay_frames, gain = max(1, round(echo[0] / 20)), 10 ** (-echo[1] / 20)
    for k in range(n_frames):
        frame = caller[k * FRAME_8K:(k + 1) * FRAME_8K].astype(np.float64)
        if echo is not None and k >= delay_frames:
            frame = frame + gain * sent_back[k - delay_frames]
        line = audio.ulaw_decode(audio.ulaw_encode(np.clip(frame, -32768, 32767).astype(np.int16)))
        wire_in = line.astype("<i2").tobytes()
        session.on_caller_frame(wire_in if native else up.process(wire_in))
        out = session.next_frame()
        out8 = np.frombuffer(out if native else down.process(out), dtype=np.int16)
        wire = audio.ulaw_decode(audio.ulaw_encode(out8)).astype(np.float64)
        sent_back.append(wire)
        out_levels.append(audio.dbfs(out8) if np.any(out8) else -120.0)
    return {"out_dbfs": np.array(out_levels), "barge_ins": loop.cancels,
            "pauses": session.pauses, "held_ms": session.held_ms}


def onset_to_silence(res: dict, interrupt: np.ndarray, at_ms: int, span: int = 3) -> float | None:
    """Speech onset (the first of ``span`` frames above -40 dBFS) -> the agent silent for good."""
    loud = _frames_dbfs(interrupt) > -40.0
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
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    started = time.monotonic()
    model = load_model()
    delays, first, missed, slow = [], [], 0, []
    for i, (name, pcm) in enumerate(prompts(args.prompts, args.names)):
        for j in range(args.offsets):
            at_ms = 1200 + 20 * ((i * 7 + j * 37) % 100)
            res = simulate(model, pcm, at_ms, echo=args.echo,
                           total_ms=at_ms + len(pcm) // 8 + 600, rate=args.rate)
            d = onset_to_silence(res, pcm, at_ms)
            first.append(onset_to_silence(res, pcm, at_ms, span=1))
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
        "bench": "barge_sim",
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "rate": args.rate,
        "interruptions": len(delays),
        "onset_to_silence_ms": summary(delays),
        "first_sound_to_silence_ms": summary(first),
        "missed": missed,
        "over_120_ms": slow,
        "false": false,
        "elapsed_s": round(time.monotonic() - started, 1),
        "command": "python bench/barge_sim.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
