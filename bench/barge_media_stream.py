"""``bench/barge_in.py --provider media_stream``: barge-in onset -> silence with a Twilio Media
Streams bot as the model (the strict local bot, tests/support/twilio_bot.py, driven by
tests/support/media_stream_barge.py), next to the OpenAI figure measured in the same run.

Calls alternate: one through the bot (it sends a ~9 s answer after the caller's sentence and its
``clear`` 440 ms after the caller speaks over it, as a Pipecat pipeline does; the line must go
silent on the bridge's own pause before that), one through the embedded model with the OpenAI
protocol (tests/support/barge.py, the default local turns), so both see the same load.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.barge import run_call, summary  # noqa: E402
from tests.support.media_stream_barge import run as run_ms_call  # noqa: E402

PROMPTS = ["tt-somethingwrong", "vm-goodbye", "auth-thankyou", "hello-world", "tt-weasels"]


def media_stream_bench(args) -> int:
    """Run ``args.calls`` media_stream calls and ``args.baseline_calls`` OpenAI ones, interleaved."""
    started = time.monotonic()
    load0 = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench-barge-ms-"))
    extra = {"sip": {"media_rate": args.media_rate}}
    ms, openai = [], []
    for i in range(args.calls):
        after, prompt = 0.8 + (0.137 * i) % 2.0, PROMPTS[i % len(PROMPTS)]
        m = run_ms_call(tmp / f"ms{i}", barge_after_s=after, interrupt_prompt=prompt, bridge_extra=extra)
        ms.append(m)
        print(f"media_stream {i}: onset->silence {m.onset_to_silence_ms} ms, leaked {m.leaked_packets}, "
              f"violations {len(m.violations)}", file=sys.stderr)
        if i < args.baseline_calls:
            o = run_call(tmp / f"openai{i}", barge_after_s=after, interrupt_prompt=prompt, bridge_extra=extra)
            openai.append(o)
            print(f"openai {i}: onset->silence {o.onset_to_silence_ms} ms", file=sys.stderr)
    m95 = summary([m.onset_to_silence_ms for m in ms])
    o95 = summary([o.onset_to_silence_ms for o in openai])
    out = {
        "bench": "barge_in", "provider": "media_stream",
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_1m_start": round(load0, 2), "loadavg_1m_end": round(os.getloadavg()[0], 2)},
        "media_rate": args.media_rate,
        "media_stream": {"calls": len(ms), "onset_to_silence_ms": m95,
                         "onset_to_clear_ms": summary([m.onset_to_clear_ms for m in ms]),
                         "leaked_packets": sum(m.leaked_packets for m in ms),
                         "bot_violations": sum(len(m.violations) for m in ms),
                         "barged": sum(1 for m in ms if m.barge_ins)},
        "openai": {"calls": len(openai), "onset_to_silence_ms": o95,
                   "leaked_packets": sum(o.leaked_packets for o in openai)},
        "p95_media_stream_minus_openai_ms": (round(m95["p95"] - o95["p95"], 1)
                                             if m95.get("n") and o95.get("n") else None),
        "elapsed_s": round(time.monotonic() - started, 1),
        "command": "python bench/barge_in.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(out))
    return 0
