"""``bench/barge_in.py --provider gemini``: barge-in onset -> silence with Google Gemini Live as
the model, against the strict local Gemini Live server (tests/support/gemini_server.py).

Each call: the caller says ~4 s, the server echoes it back in real time (still generating when
the caller interrupts, as Gemini does for a long answer), the caller speaks over the answer
0.8-2.8 s in (bench/barge_runs.py; no baseline calls here). Reported like the OpenAI bench:
``onset_to_silence_ms`` (the interruption's onset on the wire -> the first agent packet after
which it stays silent), ``onset_to_stop_ms`` (-> the server receiving the stop signal:
``activityStart`` with the bridge's turns, its own ``interrupted`` with ``--server-turns``),
leaked packets. Compare with ``bench/barge_in.py`` (OpenAI protocol, embedded model) run on the
same machine at the same load.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from barge_runs import interleaved, machine, report  # noqa: E402
from tests.support.barge import summary  # noqa: E402
from tests.support.gemini_barge import run_gemini_call  # noqa: E402


def gemini_bench(args) -> int:
    """Run ``args.calls`` barge-in calls against the Gemini server; print one JSON line."""
    turns = {"type": "server_vad"} if getattr(args, "server_turns", False) else None
    runs = interleaved(args, "gemini", "call", lambda path, **kw: run_gemini_call(path, turns=turns, **kw),
                       lambda r: f"onset->silence {r.onset_to_silence_ms} ms, onset->stop {r.onset_to_stop_ms} ms, "
                                 f"leaked {r.leaked_packets}, refusals {len(r.refusals)}",
                       baseline=False)
    calls = runs.provider
    return report(runs, {
        "bench": "barge_in", "provider": "gemini", "turns": "server_vad" if turns else "silero",
        "machine": machine(runs, start_and_end=False),
        "media_rate": args.media_rate,
        "calls": len(calls),
        "barged": sum(1 for r in calls if any(e.get("event") == "barge_in" for e in r.bridge_log)),
        "onset_to_silence_ms": summary([r.onset_to_silence_ms for r in calls]),
        "onset_to_stop_ms": summary([r.onset_to_stop_ms for r in calls]),
        "leaked_packets": sum(r.leaked_packets for r in calls),
        "refusals": sum(len(r.refusals) for r in calls),
    })
