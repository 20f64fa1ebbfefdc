"""Barge-in on real calls, measured on the wire (prints one JSON object).

    python bench/barge_in.py [--calls 20] [--false-calls 3] [--media-rate 16000|8000]

Each call: ``sipbridge run`` with a recording model server that answers every turn with ~9 s
of speech (streamed at 4x real time), SIPp signalling, and an RtpPeer caller
(tests/support/barge.py) that says a sentence, waits for the answer, and speaks over it after
a varied delay. Reported, over the calls:

* ``onset_to_silence_ms``: the interruption's speech onset leaving the caller (the first
  sample louder than -40 dBFS opening 60 ms that loud) -> the first agent packet after which
  the agent stays silent (target p95 <= 120);
* ``first_sound_to_silence_ms``: the same from its first 20 ms louder than -40 dBFS (a breath
  before the first word counts here);
* ``loud_onset_to_silence_ms``: the same from the first 20 ms louder than -30 dBFS;
* ``onset_to_cancel_ms``: the same onset -> ``response.cancel`` at the model server;
* ``truncate_error_ms``: ``audio_end_ms`` minus how far into the answer the caller heard (by
  cross-correlation of the last audio received with the answer; target |error| <= 20);
* ``leaked_packets``: agent packets louder than -45 dBFS after it went silent (target 0);
* ``false_barge_ins``: cancels on calls where the caller only echoes the agent (12 dB down,
  40 ms late), only plays music on hold at -30 dBFS over it, or only clicks (target 0), or
  has music at -25 dBFS on the line all call long; with the pauses (``barge_in_resumed``) and
  the longest of them;
* ``over_music``: ``--over-music`` calls with that music all call long, the caller's
  sentences 12 dB over it: onset -> silence (the prompt's own onset, as scheduled), leaks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.barge import run_call, summary  # noqa: E402


PROMPTS = ["tt-somethingwrong", "vm-goodbye", "auth-thankyou", "hello-world", "tt-weasels"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--false-calls", type=int, default=2, help="calls per false-barge-in case")
    ap.add_argument("--media-rate", type=int, choices=(16000, 8000), default=8000,
                    help="the bridge's sip.media_rate (default: the bridge's default, 8000)")
    ap.add_argument("--pump-ticks", type=int, choices=(1, 2, 3), default=None,
                    help="the bridge's sip.pump_ticks (default: the bridge's default)")
    ap.add_argument("--over-music", type=int, default=5,
                    help="calls interrupting over -25 dBFS music playing all call long")
    ap.add_argument("--provider", choices=("openai", "gemini", "hydra", "media_stream"), default="openai",
                    help="the model: openai (the embedded model, OpenAI's protocol) | gemini "
                    "(the local Gemini Live server; bench/barge_gemini.py) | hydra (the local "
                    "Hydra server, with OpenAI calls interleaved as the baseline; bench/barge_hydra.py) | "
                    "media_stream (the local Twilio Media Streams bot, OpenAI interleaved; "
                    "bench/barge_media_stream.py)")
    ap.add_argument("--baseline-calls", type=int, default=None,
                    help="hydra, media_stream: OpenAI-protocol calls interleaved (default: --calls)")
    ap.add_argument("--append-ms", type=int, default=None, help="hydra: realtime.append_ms")
    ap.add_argument("--server-turns", action="store_true", help="gemini: Gemini's own turns")
    ap.add_argument("--trigger", choices=("level", "voice"), default=None,
                    help="barge_in.trigger of the bridge (default: the bridge's default)")
    args = ap.parse_args()
    if args.provider == "hydra":
        from barge_hydra import hydra_bench
        args.baseline_calls = args.calls if args.baseline_calls is None else args.baseline_calls
        return hydra_bench(args)
    if args.provider == "media_stream":
        from barge_media_stream import media_stream_bench
        args.baseline_calls = args.calls if args.baseline_calls is None else args.baseline_calls
        return media_stream_bench(args)
    if args.provider == "gemini":
        from barge_gemini import gemini_bench
        return gemini_bench(args)
    extra = {"sip": {"media_rate": args.media_rate}}
    if args.pump_ticks:
        extra["sip"]["pump_ticks"] = args.pump_ticks
    if args.trigger:
        extra["barge_in"] = {"trigger": args.trigger}
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="bench-barge-"))
    calls = []
    for i in range(args.calls):
        prompt = PROMPTS[i % len(PROMPTS)]
        r = run_call(tmp / f"call{i}", barge_after_s=0.8 + (0.137 * i) % 2.0, interrupt_prompt=prompt,
                     bridge_extra=extra)
        calls.append(r)
        print(f"call {i}: onset->silence {r.onset_to_silence_ms} ms, truncate error "
              f"{r.truncate_error_ms} ms, leaked {r.leaked_packets}", file=sys.stderr)
    false = {}
    cases = {
        "echo_12db_40ms": dict(speak_over=False, echo=(40.0, 12.0)),
        "echo_6db_20ms": dict(speak_over=False, echo=(20.0, 6.0)),
        "music_-30dbfs": dict(interrupt_sound="music"),
        "clicks": dict(interrupt_sound="clicks"),
        "music_all_call_-25dbfs": dict(speak_over=False, background="music"),
    }
    for name, kwargs in cases.items():
        results = [run_call(tmp / f"{name}{i}", bridge_extra=extra, **kwargs) for i in range(args.false_calls)]
        resumed = [e for r in results for e in r.bridge_log if e.get("event") == "barge_in_resumed"]
        false[name] = {"calls": len(results), "false_barge_ins": sum(r.cancels for r in results),
                       "pauses": len(resumed),
                       "longest_pause_ms": max((e.get("paused_ms") or 0 for e in resumed), default=0)}
        print(f"{name}: {false[name]}", file=sys.stderr)
    over = []
    for i in range(args.over_music):
        r = run_call(tmp / f"over_music{i}", barge_after_s=0.8 + (0.137 * i) % 2.0,
                     interrupt_prompt=PROMPTS[i % len(PROMPTS)], background="music", bridge_extra=extra)
        over.append(r)
        print(f"over music {i}: onset->silence {r.onset_to_silence_ms} ms", file=sys.stderr)
    out = {
        "bench": "barge_in",
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_1m": round(os.getloadavg()[0], 2)},
        "media_rate": args.media_rate,
        "pump_ticks": args.pump_ticks,
        "calls": len(calls),
        "barged": sum(1 for r in calls if len(r.barge_ins) == 1),
        "onset_to_silence_ms": summary([r.onset_to_silence_ms for r in calls]),
        "first_sound_to_silence_ms": summary([r.first_sound_to_silence_ms for r in calls]),
        "loud_onset_to_silence_ms": summary([r.loud_onset_to_silence_ms for r in calls]),
        "onset_to_cancel_ms": summary([r.onset_to_cancel_ms for r in calls]),
        "truncate_error_ms": summary([abs(r.truncate_error_ms) if r.truncate_error_ms is not None
                                      else None for r in calls]),
        "leaked_packets": sum(r.leaked_packets for r in calls),
        "false_barge_ins": false,
        "over_music": {"calls": len(over),
                       "barged": sum(1 for r in over if len(r.barge_ins) == 1),
                       "onset_to_silence_ms": summary([r.onset_to_silence_ms for r in over]),
                       "loud_onset_to_silence_ms": summary([r.loud_onset_to_silence_ms for r in over]),
                       "leaked_packets": sum(r.leaked_packets for r in over)},
        "elapsed_s": round(time.monotonic() - started, 1),
        "command": "python bench/barge_in.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
