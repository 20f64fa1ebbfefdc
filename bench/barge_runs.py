"""The shared runner of ``bench/barge_in.py --provider gemini|hydra|media_stream``.

:func:`interleaved` places ``args.calls`` barge-in calls through one provider (``call``, the
provider's call function from tests/support), each interrupted at the same point of a fixed
schedule (0.8-2.8 s in, five prompts in turn) and, while ``i < args.baseline_calls``, followed by
an OpenAI-protocol call through the embedded model at the same point (tests/support/barge.py),
so both see the same load. Each call gets one line on stderr. :func:`report` adds the machine,
the elapsed time and the command to the provider's JSON and prints it as one line.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.barge import run_call, summary  # noqa: E402

PROMPTS = ["tt-somethingwrong", "vm-goodbye", "auth-thankyou", "hello-world", "tt-weasels"]


@dataclass
class Runs:
    """The calls of one bench run: the provider's results and the OpenAI baseline's."""

    started: float
    load0: float
    provider: list = field(default_factory=list)
    openai: list = field(default_factory=list)


def interleaved(args: Any, tag: str, label: str, call: Callable[..., Any], describe: Callable[[Any], str],
                *, baseline: bool = True) -> Runs:
    """Run the calls (see the module docstring). ``call(path, barge_after_s=, interrupt_prompt=,
    bridge_extra=)`` places one provider call; ``describe(result)`` is its stderr line after
    ``"<label> <i>: "``; ``tag`` names the temporary folder and the calls' folders in it."""
    runs = Runs(time.monotonic(), os.getloadavg()[0])
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-barge-{tag}-"))
    extra = {"sip": {"media_rate": args.media_rate}}
    for i in range(args.calls):
        after, prompt = 0.8 + (0.137 * i) % 2.0, PROMPTS[i % len(PROMPTS)]
        r = call(tmp / f"{tag}{i}", barge_after_s=after, interrupt_prompt=prompt, bridge_extra=extra)
        runs.provider.append(r)
        print(f"{label} {i}: {describe(r)}", file=sys.stderr)
        if baseline and i < args.baseline_calls:
            o = run_call(tmp / f"openai{i}", barge_after_s=after, interrupt_prompt=prompt, bridge_extra=extra)
            runs.openai.append(o)
            print(f"openai {i}: onset->silence {o.onset_to_silence_ms} ms", file=sys.stderr)
    return runs


def baseline(runs: Runs) -> dict:
    """The OpenAI baseline's figures."""
    return {"calls": len(runs.openai), "onset_to_silence_ms": summary([o.onset_to_silence_ms for o in runs.openai]),
            "leaked_packets": sum(o.leaked_packets for o in runs.openai)}


def p95_minus_openai(runs: Runs) -> float | None:
    """The provider's onset -> silence p95 less the baseline's (None without both)."""
    p = summary([r.onset_to_silence_ms for r in runs.provider])
    o = summary([o.onset_to_silence_ms for o in runs.openai])
    return round(p["p95"] - o["p95"], 1) if p.get("n") and o.get("n") else None


def machine(runs: Runs, *, start_and_end: bool = True) -> dict:
    """Cores, Python and the 1-minute load (at the start and the end, or only now)."""
    load = ({"loadavg_1m_start": round(runs.load0, 2), "loadavg_1m_end": round(os.getloadavg()[0], 2)}
            if start_and_end else {"loadavg_1m": round(os.getloadavg()[0], 2)})
    return {"cores": os.cpu_count(), "python": platform.python_version(), **load}


def report(runs: Runs, out: dict) -> int:
    """Print ``out`` with the elapsed time and the command as one JSON line; 0 (the exit status)."""
    out.update({"elapsed_s": round(time.monotonic() - runs.started, 1),
                "command": "python bench/barge_in.py " + " ".join(sys.argv[1:])})
    print(json.dumps(out))
    return 0
