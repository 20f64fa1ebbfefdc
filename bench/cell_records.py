"""The cell's records hand-off, measured in one process: a worker's RecordPusher on its own
loop thread POSTs to the supervisor's RecordsSink over a unix socket, into SQLite (WAL).

Prints: the cost of ``submit`` on the caller's thread (the tap's, in a worker), the latency from
``submit`` of one call's end to its row being in the file (one at a time, idle), and the rows per
second for a burst of calls (open, answer, end each) until every row is there.

    .venv/bin/python bench/cell_records.py [--calls 2000] [--single 200]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from sipbridge.app.records import ANSWER, END, OPEN, Update, new_record
from sipbridge.cell.records_push import RecordPusher
from sipbridge.cell.records_sink import RecordsSink
from sipbridge.config import RecordsConfig


def snap(uid: str, kind: str, status: str = "in_progress") -> Update:
    rec = new_record(uid, "sip-" + uid, "inbound", time.time())
    rec.update(status=status, caller="+4930123456", called="sales",
               transcript=[{"role": "caller", "text": "hello " * 40, "item_id": "i", "at": 1.0}])
    return Update(kind, rec)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--single", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cell-records-"))
    db = str(tmp / "r.db")
    sink = RecordsSink(RecordsConfig(path=db, keep_days=30), tmp, "t" * 40)
    sink.start()
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    pusher = RecordPusher(loop, sink.path, "t" * 40, 0)
    pusher.start()
    reader = sqlite3.connect(db)

    def status(uid):
        row = reader.execute("SELECT status FROM records WHERE uid = ?", (uid,)).fetchone()
        return row[0] if row else None

    latencies = []
    for i in range(args.single):
        uid = f"s{i}"
        t0 = time.perf_counter()
        pusher.submit(snap(uid, END, "completed"))
        while status(uid) != "completed":
            time.sleep(0.0002)
        latencies.append((time.perf_counter() - t0) * 1000)
    updates = [snap(f"b{i}", kind, st) for i in range(args.calls)
               for kind, st in ((OPEN, "in_progress"), (ANSWER, "in_progress"),
                                (END, "completed"))]
    t0 = time.perf_counter()
    costs = []
    for u in updates:
        c0 = time.perf_counter()
        pusher.submit(u)
        costs.append((time.perf_counter() - c0) * 1e6)
    while reader.execute("SELECT count(*) FROM records WHERE uid LIKE 'b%' AND status = "
                         "'completed'").fetchone()[0] < args.calls:
        time.sleep(0.005)
    burst_s = time.perf_counter() - t0
    pusher.stop(2.0)
    sink.stop()
    print(f"submit on the caller's thread: p50 {pct(costs, 50):.1f} us, p99 {pct(costs, 99):.1f} us"
          f" ({len(costs)} snapshots)")
    print(f"one call's end to its row in the file: p50 {pct(latencies, 50):.2f} ms, "
          f"p95 {pct(latencies, 95):.2f} ms ({args.single} calls, one at a time)")
    print(f"burst: {args.calls} calls x 3 snapshots all written in {burst_s:.2f} s "
          f"({args.calls / burst_s:.0f} calls/s); pushed {pusher.sent}, coalesced "
          f"{len(updates) - pusher.sent}, dropped {pusher.dropped + sink.store.dropped}, "
          f"held back {sink.busy}")


if __name__ == "__main__":
    main()
