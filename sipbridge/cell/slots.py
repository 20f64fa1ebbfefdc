"""The cell front's view of its workers' free call slots, so ``POST /v1/calls`` asks nobody first.

Asking every worker's ``/readyz`` before forwarding an outbound call put a fan-out (the slowest of
N answers) on every call's setup: p95 28.6 ms through a 3-worker cell. Instead the front keeps
this view, fed by ``/readyz`` answers it already gets (a background poll while the API places
calls, the cell's own ``/readyz``) and corrected by its own doing:

* :meth:`SlotView.take` when it forwards a call to a worker (one slot less, at once, so two
  requests in flight do not both count the same last slot); :meth:`SlotView.placed` when the
  worker said 201, :meth:`SlotView.gave_back` when it refused for another reason (400...);
* :meth:`SlotView.full` when the worker answered 503 or did not answer: none free there until
  its next report;
* a report asked at ``asked_at`` replaces the count, minus the calls forwarded since (and still
  in flight) which the worker may not have counted yet.

A report older than ``max_age_s``, or from a worker process since replaced (another pid), is
no view at all (:meth:`SlotView.stale` names those workers): that worker is offered no call
until it reports again. When the view has no worker to offer, the front asks every worker's
``/readyz`` before it answers 503. Pure: times are passed in; the I/O is in
:mod:`sipbridge.cell.api`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .merge import free_slots


@dataclass
class _Worker:
    pid: int | None
    reported_at: float          # when the report was asked for
    free: int                   # free slots the report said, less what was refused since
    in_flight: int = 0          # forwarded, no answer yet
    placed_at: list[float] = field(default_factory=list)   # 201s since the report was asked


class SlotView:
    """Free slots per worker index, as last reported and corrected by the front's own calls."""

    def __init__(self, max_age_s: float):
        self.max_age_s = max_age_s
        self._workers: dict[int, _Worker] = {}

    def report(self, index: int, pid: int | None, state: dict | None, asked_at: float) -> None:
        """Worker ``index`` (process ``pid``) answered ``/readyz`` with ``state`` (None: it did
        not answer: no free slot) to a request sent at ``asked_at``. An older report than the
        one held is ignored."""
        old = self._workers.get(index)
        if old is not None and old.pid == pid and old.reported_at > asked_at:
            return
        kept = old if old is not None and old.pid == pid else None
        self._workers[index] = _Worker(
            pid, asked_at, free_slots(state),
            in_flight=kept.in_flight if kept else 0,
            placed_at=[t for t in kept.placed_at if t > asked_at] if kept else [])

    def stale(self, running: Mapping[int, int], now: float) -> list[int]:
        """Running workers (index -> pid) with no usable report: none yet, another process's, or
        older than ``max_age_s``."""
        return [i for i in sorted(running) if self._current(i, running[i], now) is None]

    def free(self, index: int) -> int:
        """Free slots the view counts for worker ``index`` (0 when unknown)."""
        w = self._workers.get(index)
        return 0 if w is None else max(0, w.free - w.in_flight - len(w.placed_at))

    def order(self, running: Mapping[int, int], now: float,
              skip: Iterable[int] = ()) -> list[int]:
        """Workers to offer a call to, best first: a current report with a free slot left, the
        most free first, then the lowest index; ``skip`` (already tried) left out. Empty: none
        free as far as the view knows."""
        skipped = set(skip)
        free = {i: self.free(i) for i in running
                if i not in skipped and self._current(i, running[i], now) is not None}
        return sorted((i for i, n in free.items() if n > 0), key=lambda i: (-free[i], i))

    def take(self, index: int) -> None:
        """A call is being forwarded to ``index``: its slot counts as taken from now."""
        w = self._workers.get(index)
        if w is not None:
            w.in_flight += 1

    def placed(self, index: int, now: float) -> None:
        """``index`` placed it (201): counted until a report asked after ``now`` includes it."""
        w = self._workers.get(index)
        if w is not None:
            w.in_flight = max(0, w.in_flight - 1)
            w.placed_at.append(now)

    def gave_back(self, index: int) -> None:
        """``index`` refused the call for a reason other than capacity: the slot is free again."""
        w = self._workers.get(index)
        if w is not None:
            w.in_flight = max(0, w.in_flight - 1)

    def full(self, index: int) -> None:
        """``index`` refused the call as full (503) or did not answer: nothing free there until
        its next report."""
        w = self._workers.get(index)
        if w is not None:
            w.in_flight = max(0, w.in_flight - 1)
            w.free = 0
            w.placed_at.clear()

    def _current(self, index: int, pid: int, now: float) -> _Worker | None:
        w = self._workers.get(index)
        if w is None or w.pid != pid or now - w.reported_at > self.max_age_s:
            return None
        return w
