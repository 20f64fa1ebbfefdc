"""The cell's record ledger: rows to write, duplicates and late snapshots, a dead worker's calls."""

import pytest

from sipbridge.app.records import ANSWER, END, OPEN, UPDATE, Update, lost_record, new_record
from sipbridge.cell.record_collector import REASON, Collector, parse_batch


def snap(uid, kind=OPEN, status="in_progress", at=100.0, **fields):
    rec = {**new_record(uid, "sip-" + uid, "inbound", at), "status": status, **fields}
    return Update(kind, rec)


def test_open_calls_are_tracked_per_worker_process_until_their_end():
    """Open and answered snapshots keep a call open under its worker and pid; the end closes it."""
    c = Collector()
    assert c.accept(1, 11, 1, snap("a"), 0.0).record["uid"] == "a"
    assert c.accept(1, 11, 2, snap("a", ANSWER, answer_at=101.0), 0.0) is not None
    c.accept(2, 22, 1, snap("b"), 0.0)
    c.accept(1, 12, 1, snap("c"), 0.0)       # worker 1's next process
    assert c.open_of(1, 11) == ["a"] and c.open_of(2, 22) == ["b"] and c.open_of(1, 12) == ["c"]
    ended = c.accept(1, 11, 3, snap("a", END, status="completed"), 0.0)
    assert ended.record["status"] == "completed"
    assert c.open_of(1, 11) == [] and c.open_count == 2


def test_a_dead_workers_open_calls_are_closed_as_lost_at_once_and_no_one_elses():
    """worker_gone closes that process's open calls as lost at ``now`` (from their last snapshot)
    and leaves other workers' and the same index's newer process's calls open."""
    c = Collector()
    c.accept(1, 11, 1, snap("a", at=100.0), 0.0)
    c.accept(1, 11, 2, snap("a", ANSWER, at=100.0, answer_at=101.0, caller="alice"), 0.0)
    c.accept(1, 11, 3, snap("done"), 0.0)
    c.accept(1, 11, 4, snap("done", END, status="completed"), 0.0)
    c.accept(0, 10, 1, snap("other"), 0.0)
    c.accept(1, 12, 1, snap("next"), 0.0)
    rows = c.worker_gone(1, 11, 130.0)
    assert [u.record["uid"] for u in rows] == ["a"] and rows[0].kind == END
    rec = rows[0].record
    assert (rec["status"], rec["end_reason"], rec["ended_by"], rec["end_at"]) == (
        "lost", REASON, "bridge", 130.0)
    assert (rec["caller"], rec["answer_at"], rec["total_s"], rec["talk_s"]) == ("alice", 101.0,
                                                                                30.0, 29.0)
    assert c.open_of(0, 10) == ["other"] and c.open_of(1, 12) == ["next"]
    assert c.worker_gone(1, 11, 131.0) == [] and c.closed_lost == 1


def test_duplicates_and_out_of_order_snapshots_are_ignored():
    """A batch sent twice or a snapshot older than one taken changes nothing; an ended call is
    never reopened by an older in-progress snapshot."""
    c = Collector()
    c.accept(0, 10, 1, snap("a"), 0.0)
    c.accept(0, 10, 3, snap("a", ANSWER, answer_at=101.0), 0.0)
    assert c.accept(0, 10, 3, snap("a", ANSWER, answer_at=101.0), 0.0) is None   # again
    assert c.accept(0, 10, 2, snap("a"), 0.0) is None                            # older
    assert c.accept(0, 10, 5, snap("a", END, status="completed"), 0.0) is not None
    assert c.accept(0, 10, 4, snap("a", ANSWER), 0.0) is None                    # late, older
    assert c.accept(0, 10, 5, snap("a", END, status="completed"), 0.0) is None   # again
    assert c.accept(0, 10, 6, snap("a", UPDATE, status="completed"), 0.0) is not None
    assert c.open_count == 0 and c.stale == 4


def test_a_snapshot_read_after_its_worker_died_is_written_lost_unless_it_is_the_end():
    """In-progress snapshots sent just before the kill and read after worker_gone are written
    closed as lost (never reopened); the worker's own end of the call still wins over lost."""
    c = Collector()
    c.accept(0, 10, 1, snap("a"), 0.0)
    assert [u.record["uid"] for u in c.worker_gone(0, 10, 50.0)] == ["a"]
    assert c.accept(0, 10, 2, snap("a", ANSWER, answer_at=101.0), 0.0) is None
    late = c.accept(0, 10, 3, snap("b"), 51.0)
    assert late.kind == END and late.record["status"] == "lost" and late.record["end_at"] == 51.0
    assert c.open_count == 0
    real = c.accept(0, 10, 4, snap("a", END, status="completed"), 0.0)
    assert real is not None and real.record["status"] == "completed"


def test_close_all_loses_every_open_call_and_memory_stays_bounded():
    """Stopping the cell closes whatever is open; past max_open the oldest open call is
    forgotten (counted), and only max_closed ended calls are remembered."""
    c = Collector(max_open=2, max_closed=2)
    for i, uid in enumerate("abc"):
        c.accept(0, 10, i + 1, snap(uid), 0.0)
    assert c.evicted == 1 and c.open_of(0, 10) == ["b", "c"]
    assert sorted(u.record["uid"] for u in c.close_all(9.0)) == ["b", "c"]
    assert c.open_count == 0 and len(c._closed) == 2


def test_lost_record_leaves_the_snapshot_it_came_from_unchanged():
    """lost_record copies: the collector's kept snapshot is not edited in place."""
    rec = snap("a", at=10.0).record
    out = lost_record(rec, 20.0, "worker_exited")
    assert rec["status"] == "in_progress" and out["status"] == "lost" and out["total_s"] == 10.0
    assert out["talk_s"] is None


def test_parse_batch_takes_a_well_formed_batch_and_names_what_is_wrong_otherwise():
    """A batch is worker, pid, boot and items of seq/kind/record; anything else is a ValueError."""
    rec = snap("a").record
    good = {"worker": 1, "pid": 5, "boot": "b",
            "items": [{"seq": 1, "kind": "open", "record": rec}]}
    worker, pid, boot, items = parse_batch(good)
    assert (worker, pid, boot) == (1, 5, "b") and items[0][0] == 1 and items[0][1].kind == OPEN
    bad = [[], {**good, "worker": -1}, {**good, "pid": True}, {**good, "boot": 3},
           {**good, "items": {}}, {**good, "items": [{"seq": "1", "kind": "open", "record": rec}]},
           {**good, "items": [{"seq": 1, "kind": "nope", "record": rec}]},
           {**good, "items": [{"seq": 1, "kind": "open", "record": {"uid": 3}}]},
           {**good, "items": [7]}]
    for body in bad:
        with pytest.raises(ValueError):
            parse_batch(body)
