"""``bench/barge_in.py --provider hydra``: barge-in onset -> silence with Smallest AI Hydra as the
model (the strict local Hydra server, tests/support/hydra_server.py), next to the OpenAI figure
measured in the same run on the same machine.

Calls alternate: one through the Hydra server (its own VAD and turns, turn_detection server_vad;
the answer still streaming when the caller speaks over it 0.8-2.8 s in), one through the
embedded model with the OpenAI protocol (tests/support/barge.py, the default local turns), so
both see the same load. Reported per provider: ``onset_to_silence_ms`` (the interruption's
onset on the wire -> the first agent packet after which it stays silent), leaked packets, and
for Hydra the old answer's packets that reached the caller after the server's
``speech_started`` (target 0) and how the cancel came (the server's own, or the bridge's).
``--append-ms`` sets realtime.append_ms for the Hydra calls (Hydra's docs: 20-40 ms frames).
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
from tests.support.hydra_call import run as run_hydra_call  # noqa: E402

PROMPTS = ["tt-somethingwrong", "vm-goodbye", "auth-thankyou", "hello-world", "tt-weasels"]


def hydra_bench(args) -> int:
    """Run ``args.calls`` Hydra calls and as many OpenAI-protocol ones, interleaved; print one JSON line."""
    started = time.monotonic()
    load0 = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench-barge-hydra-"))
    extra = {"sip": {"media_rate": args.media_rate}}
    hydra_extra = {**extra, "realtime": {"append_ms": args.append_ms}} if args.append_ms else extra
    hydra, openai = [], []
    for i in range(args.calls):
        after, prompt = 0.8 + (0.137 * i) % 2.0, PROMPTS[i % len(PROMPTS)]
        h = run_hydra_call(tmp / f"hydra{i}", barge_after_s=after, interrupt_prompt=prompt,
                           bridge_extra=hydra_extra)
        hydra.append(h)
        print(f"hydra {i}: onset->silence {h.onset_to_silence_ms} ms, old audio after speech_started "
              f"{h.old_audio_after_start}, violations {len(h.server.violations)}", file=sys.stderr)
        if i < args.baseline_calls:
            o = run_call(tmp / f"openai{i}", barge_after_s=after, interrupt_prompt=prompt, bridge_extra=extra)
            openai.append(o)
            print(f"openai {i}: onset->silence {o.onset_to_silence_ms} ms", file=sys.stderr)

    def how(h) -> str:
        done = h.server.of("response.done")
        return (done[0]["response"]["status_details"] or {}).get("reason", "none") if done else "none"

    h95 = summary([h.onset_to_silence_ms for h in hydra])
    o95 = summary([o.onset_to_silence_ms for o in openai])
    out = {
        "bench": "barge_in", "provider": "hydra", "turns": "server_vad",
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_1m_start": round(load0, 2), "loadavg_1m_end": round(os.getloadavg()[0], 2)},
        "media_rate": args.media_rate, "hydra_append_ms": args.append_ms or 100,
        "hydra": {"calls": len(hydra),
                  "onset_to_silence_ms": h95,
                  "leaked_packets": sum(h.leaked_packets for h in hydra),
                  "old_audio_after_speech_started": sum(h.old_audio_after_start for h in hydra),
                  "server_violations": sum(len(h.server.violations) for h in hydra),
                  "cancelled_by": {k: sum(1 for h in hydra if how(h) == k)
                                   for k in sorted({how(h) for h in hydra})}},
        "openai": {"calls": len(openai), "onset_to_silence_ms": o95,
                   "leaked_packets": sum(o.leaked_packets for o in openai)},
        "p95_hydra_minus_openai_ms": (round(h95["p95"] - o95["p95"], 1)
                                      if h95.get("n") and o95.get("n") else None),
        "elapsed_s": round(time.monotonic() - started, 1),
        "command": "python bench/barge_in.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(out))
    return 0
