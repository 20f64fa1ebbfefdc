"""The cell's record ledger (pure: no I/O, time passed in): which rows to write, and which calls
to close as ``lost`` when a worker dies.

A cell's workers do not open the records file; each hands its record snapshots to the
supervisor (:mod:`sipbridge.cell.records_push` -> :mod:`sipbridge.cell.records_sink`), tagged
with the worker's index and pid and a sequence number that grows with every snapshot that
worker process sends. :meth:`Collector.accept` turns one such item into the row write, or
nothing:

* a snapshot whose sequence number is not above the last one taken for that call is a
  duplicate or arrived out of order (a batch sent again after a lost answer): ignored;
* an ``in_progress`` snapshot of a call already closed (ended, or closed as lost) is ignored:
  a call is never reopened; a newer final one (the session's late counters, or the worker's
  own end read after its death) is written, also over a ``lost``;
* an ``in_progress`` snapshot from a worker process already seen dead is written closed as
  ``lost`` at once (it was sent just before the kill and read just after).

:meth:`Collector.worker_gone` closes as ``lost`` (``end_reason: worker_exited``) every call
still open from that worker process: the supervisor calls it as soon as it reaps the worker, so
the record says ``lost`` without waiting for the restart. :meth:`Collector.close_all` does the
same for every worker, when the cell stops. Memory is bounded: at most ``max_open`` open calls
(the oldest dropped, counted in ``evicted``) and ``max_closed`` remembered closed ones.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from ..app.records import END, IN_PROGRESS, OPEN, UPDATE, Update, lost_record

KINDS = (OPEN, "answer", END, UPDATE)
REASON = "worker_exited"


class Collector:
    """Rows to write for the records the workers hand in; calls open per worker process."""

    def __init__(self, max_open: int = 20000, max_closed: int = 4096, max_dead: int = 64):
        self._open: OrderedDict[str, tuple[tuple[int, int], int, dict]] = OrderedDict()
        self._closed: OrderedDict[str, tuple[int, bool]] = OrderedDict()   # uid -> (seq, lost)
        self._dead: deque[tuple[int, int]] = deque(maxlen=max_dead)        # (worker, pid)
        self.max_open, self.max_closed = max_open, max_closed
        self.stale = 0      # duplicates and out-of-order snapshots ignored
        self.evicted = 0    # open calls forgotten to stay bounded
        self.closed_lost = 0

    @property
    def open_count(self) -> int:
        return len(self._open)

    def open_of(self, worker: int, pid: int) -> list[str]:
        """The uids of the calls open from that worker process, oldest first."""
        return [uid for uid, (key, _, _) in self._open.items() if key == (worker, pid)]

    def accept(self, worker: int, pid: int, seq: int, update: Update, now: float) -> Update | None:
        """The row write for one snapshot from worker ``worker`` (process ``pid``), or None."""
        rec = update.record
        uid, key = rec["uid"], (worker, pid)
        final = rec.get("status") != IN_PROGRESS
        was = self._open.get(uid)
        if was is not None:
            if seq <= was[1]:
                self.stale += 1
                return None
        elif uid in self._closed:
            if seq <= self._closed[uid][0] or not final:
                self.stale += 1
                return None
        if final:
            self._open.pop(uid, None)
            self._remember(uid, seq, False)
            return update
        if key in self._dead:       # sent just before the worker died, read just after
            self._open.pop(uid, None)
            self._remember(uid, seq, True)
            self.closed_lost += 1
            return Update(END, lost_record(rec, now, REASON))
        self._open[uid] = (key, seq, rec)
        self._open.move_to_end(uid)
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)
            self.evicted += 1
        return update

    def worker_gone(self, worker: int, pid: int, now: float) -> list[Update]:
        """Close the calls open from that worker process as ``lost``: the rows to write."""
        if (worker, pid) not in self._dead:
            self._dead.append((worker, pid))
        return [self._lose(uid, now) for uid in self.open_of(worker, pid)]

    def close_all(self, now: float) -> list[Update]:
        """Close every open call as ``lost`` (the cell is stopping and no worker is left)."""
        return [self._lose(uid, now) for uid in list(self._open)]

    def _lose(self, uid: str, now: float) -> Update:
        _key, seq, rec = self._open.pop(uid)
        self._remember(uid, seq, True)
        self.closed_lost += 1
        return Update(END, lost_record(rec, now, REASON))

    def _remember(self, uid: str, seq: int, lost: bool) -> None:
        self._closed[uid] = (seq, lost)
        self._closed.move_to_end(uid)
        while len(self._closed) > self.max_closed:
            self._closed.popitem(last=False)


def parse_batch(body) -> tuple[int, int, str, list[tuple[int, Update]]]:
    """``(worker, pid, boot, [(seq, update)...])`` from a pushed batch (JSON already decoded);
    ValueError naming what is wrong with it."""
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    worker, pid, boot, items = (body.get("worker"), body.get("pid"), body.get("boot"),
                                body.get("items"))
    for name, value in (("worker", worker), ("pid", pid)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name}: a non-negative integer")
    if not isinstance(boot, str) or not isinstance(items, list):
        raise ValueError("boot: a string; items: a list")
    out = []
    for i, item in enumerate(items):
        item = item if isinstance(item, dict) else {}
        seq, kind, rec = item.get("seq"), item.get("kind"), item.get("record")
        if (not isinstance(seq, int) or isinstance(seq, bool) or kind not in KINDS
                or not isinstance(rec, dict) or not isinstance(rec.get("uid"), str)
                or not isinstance(rec.get("status"), str)):
            raise ValueError(f"items[{i}]: seq (int), kind, record with uid and status")
        out.append((seq, Update(kind, rec)))
    return worker, pid, boot, out

