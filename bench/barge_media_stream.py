"""``bench/barge_in.py --provider media_stream``: barge-in onset -> silence with a Twilio Media
Streams bot as the model (the strict local bot, tests/support/twilio_bot.py, driven by
tests/support/media_stream_barge.py), next to the OpenAI figure measured in the same run.

Calls alternate: one through the bot (it sends a ~9 s answer after the caller's sentence and its
``clear`` 440 ms after the caller speaks over it, as a Pipecat pipeline does; the line must go
silent on the bridge's own pause before that), one through the embedded model with the OpenAI
protocol (tests/support/barge.py, the default local turns), so both see the same load
(bench/barge_runs.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from barge_runs import baseline, interleaved, machine, p95_minus_openai, report  # noqa: E402
from tests.support.barge import summary  # noqa: E402
from tests.support.media_stream_barge import run as run_ms_call  # noqa: E402


def media_stream_bench(args) -> int:
    """Run ``args.calls`` media_stream calls and ``args.baseline_calls`` OpenAI ones, interleaved."""
    runs = interleaved(args, "ms", "media_stream", run_ms_call,
                       lambda m: f"onset->silence {m.onset_to_silence_ms} ms, leaked {m.leaked_packets}, "
                                 f"violations {len(m.violations)}")
    ms = runs.provider
    return report(runs, {
        "bench": "barge_in", "provider": "media_stream", "machine": machine(runs),
        "media_rate": args.media_rate,
        "media_stream": {"calls": len(ms), "onset_to_silence_ms": summary([m.onset_to_silence_ms for m in ms]),
                         "onset_to_clear_ms": summary([m.onset_to_clear_ms for m in ms]),
                         "leaked_packets": sum(m.leaked_packets for m in ms),
                         "bot_violations": sum(len(m.violations) for m in ms),
                         "barged": sum(1 for m in ms if m.barge_ins)},
        "openai": baseline(runs),
        "p95_media_stream_minus_openai_ms": p95_minus_openai(runs),
    })
