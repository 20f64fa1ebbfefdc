"""``bench/barge_in.py --provider hydra``: barge-in onset -> silence with Smallest AI Hydra as the
model (the strict local Hydra server, tests/support/hydra_server.py), next to the OpenAI figure
measured in the same run on the same machine.

Calls alternate: one through the Hydra server (its own VAD and turns, turn_detection server_vad;
the answer still streaming when the caller speaks over it 0.8-2.8 s in), one through the
embedded model with the OpenAI protocol (tests/support/barge.py, the default local turns), so
both see the same load (bench/barge_runs.py). Reported per provider: ``onset_to_silence_ms``
(the interruption's onset on the wire -> the first agent packet after which it stays silent),
leaked packets, and for Hydra the old answer's packets that reached the caller after the
server's ``speech_started`` (target 0) and how the cancel came (the server's own, or the
bridge's). ``--append-ms`` sets realtime.append_ms for the Hydra calls (Hydra's docs: 20-40 ms
frames).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from barge_runs import baseline, interleaved, machine, p95_minus_openai, report  # noqa: E402
from tests.support.barge import summary  # noqa: E402
from tests.support.hydra_call import run as run_hydra_call  # noqa: E402


def hydra_bench(args) -> int:
    """Run ``args.calls`` Hydra calls and as many OpenAI-protocol ones, interleaved; print one JSON line."""
    def call(path, bridge_extra, **kw):
        if args.append_ms:
            bridge_extra = {**bridge_extra, "realtime": {"append_ms": args.append_ms}}
        return run_hydra_call(path, bridge_extra=bridge_extra, **kw)

    runs = interleaved(args, "hydra", "hydra", call,
                       lambda h: f"onset->silence {h.onset_to_silence_ms} ms, old audio after speech_started "
                                 f"{h.old_audio_after_start}, violations {len(h.server.violations)}")
    hydra = runs.provider

    def how(h) -> str:
        done = h.server.of("response.done")
        return (done[0]["response"]["status_details"] or {}).get("reason", "none") if done else "none"

    return report(runs, {
        "bench": "barge_in", "provider": "hydra", "turns": "server_vad", "machine": machine(runs),
        "media_rate": args.media_rate, "hydra_append_ms": args.append_ms or 100,
        "hydra": {"calls": len(hydra),
                  "onset_to_silence_ms": summary([h.onset_to_silence_ms for h in hydra]),
                  "leaked_packets": sum(h.leaked_packets for h in hydra),
                  "old_audio_after_speech_started": sum(h.old_audio_after_start for h in hydra),
                  "server_violations": sum(len(h.server.violations) for h in hydra),
                  "cancelled_by": {k: sum(1 for h in hydra if how(h) == k)
                                   for k in sorted({how(h) for h in hydra})}},
        "openai": baseline(runs),
        "p95_hydra_minus_openai_ms": p95_minus_openai(runs),
    })
