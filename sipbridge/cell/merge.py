"""The cell API's pure decisions: merging the workers' answers and picking a worker.

Each function takes what the workers answered (``None`` for a worker that did not answer:
down, restarting, or too slow) and returns plain data; the I/O is in
:mod:`sipbridge.cell.api`. A worker is named by its index in the cell.
"""

from __future__ import annotations

from collections.abc import Mapping


def merge_calls(answers: Mapping[int, dict | None]) -> dict:
    """``GET /v1/calls`` for the cell: every worker's calls, each tagged with its ``worker``,
    in worker order, and which workers could not be asked (their calls are missing, not gone)."""
    calls, missing = [], []
    for index in sorted(answers):
        answer = answers[index]
        if not isinstance(answer, dict) or not isinstance(answer.get("calls"), list):
            missing.append(index)
            continue
        calls += [{**c, "worker": index} for c in answer["calls"] if isinstance(c, dict)]
    return {"calls": calls, "workers_unavailable": missing}


def free_slots(state: dict | None) -> int:
    """Free call slots in one worker's ``/readyz`` answer (0 when it is not ready)."""
    if not isinstance(state, dict) or state.get("ready") is not True:
        return 0
    slots, calls = state.get("slots"), state.get("calls")
    if not isinstance(slots, int) or not isinstance(calls, int):
        return 0
    return max(0, slots - calls)


def outbound_order(states: Mapping[int, dict | None]) -> list[int]:
    """Workers to offer an outbound call to, best first: ready ones with a free slot, the most
    free slots first (spreads calls), then the lowest index. Empty: no free slot in the cell."""
    free = {i: free_slots(s) for i, s in states.items()}
    return sorted((i for i, n in free.items() if n > 0), key=lambda i: (-free[i], i))


def cell_readiness(states: Mapping[int, dict | None], expected: int) -> dict:
    """``/readyz`` for the cell: ready while at least one worker is; the per-worker detail.

    ``expected`` is the cell's size: a worker missing from ``states`` (not running) counts as
    not ready, with that reason."""
    workers = {}
    for index in range(expected):
        state = states.get(index)
        if isinstance(state, dict):
            workers[str(index)] = {"ready": state.get("ready") is True,
                                   "reasons": state.get("reasons", []),
                                   "calls": state.get("calls"), "slots": state.get("slots")}
        else:
            why = "not running" if index not in states else "did not answer"
            workers[str(index)] = {"ready": False, "reasons": [f"worker: {why}"],
                                   "calls": None, "slots": None}
    ready = [int(i) for i, w in workers.items() if w["ready"]]
    return {"ready": bool(ready), "workers_ready": len(ready), "workers": workers,
            "calls": sum(w["calls"] or 0 for w in workers.values()),
            "slots_free": sum(free_slots(states.get(i)) for i in ready),
            "reasons": [] if ready else ["no worker is ready"]}
