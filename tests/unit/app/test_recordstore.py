"""The SQLite record store on real temp files (sipbridge/app/recordstore.py)."""

import json
import sqlite3
import subprocess
import sys

import pytest

from sipbridge.app.records import END, OPEN, Update, new_record
from sipbridge.app.recordstore import (SCHEMA_VERSION, Query, QueryError, RecordStore,
                                       build_query, close_lost, connect, decode_cursor,
                                       encode_cursor, open_schema, prune)


def rec(uid, at, caller="alice", called="sales", status="completed", sip_status=200):
    r = new_record(uid, f"sip-{uid}", "inbound", at)
    r.update(caller=caller, called=called, status=status, sip_status=sip_status)
    return r


def run_store(path, records, clock=lambda: 1000.0, keep_days=30):
    store = RecordStore(str(path), keep_days, worker=0, clock=clock)
    store.start()
    for r in records:
        store.submit(Update(END, r))
    store.stop()
    return store


def test_the_builder_combines_filters_newest_first_with_one_extra_row():
    """Every filter becomes a parameterised condition; LIMIT asks one row more than the page."""
    sql, params = build_query(Query(since=10.0, until=20.0, number="+1555", status="lost", limit=5))
    assert sql == ("SELECT record FROM records WHERE invite_at >= ? AND invite_at < ? AND "
                   "(caller = ? OR called = ?) AND status = ? ORDER BY invite_at DESC, uid DESC "
                   "LIMIT ?")
    assert params == [10.0, 20.0, "+1555", "+1555", "lost", 6]
    sql, params = build_query(Query(status="486"))
    assert "sip_status = ?" in sql and params == [486, 51]


@pytest.mark.parametrize("query,field", [(Query(limit=0), "limit"), (Query(limit=501), "limit"),
                                         (Query(status="weird"), "status"),
                                         (Query(cursor="!!notacursor"), "cursor"),
                                         (Query(cursor=encode_cursor(1.0, "u")[:-3]), "cursor")])
def test_bad_filters_are_refused_naming_the_field(query, field):
    """A limit out of range, an unknown status or a forged cursor raise QueryError(field)."""
    with pytest.raises(QueryError) as err:
        build_query(query)
    assert err.value.field == field


def test_cursor_round_trip():
    """A cursor decodes to the (invite time, uid) it was made from."""
    assert decode_cursor(encode_cursor(12.5, "c_1")) == (12.5, "c_1")


def test_rows_are_written_upserted_and_paged(tmp_path):
    """Open then end rows of one uid make one row; pages follow the cursor to the end, newest first."""
    path = tmp_path / "r.db"
    first = rec("c_a", 100.0, status="in_progress", sip_status=None)
    store = RecordStore(str(path), 30, worker=0, clock=lambda: 1000.0)
    store.start()
    store.submit(Update(OPEN, first))
    for i, at in enumerate([100.0, 101.0, 102.0, 102.0, 103.0]):
        store.submit(Update(END, rec(f"c_{'abcde'[i]}", at, caller=f"n{i % 2}")))
    store.stop()
    assert store.written == 6 and store.dropped == 0 and store.failed == 0
    page, cursor = store.query(Query(limit=2))
    assert [r["uid"] for r in page] == ["c_e", "c_d"]
    seen = [r["uid"] for r in page]
    while cursor:
        page, cursor = store.query(Query(limit=2, cursor=cursor))
        seen += [r["uid"] for r in page]
    assert seen == ["c_e", "c_d", "c_c", "c_b", "c_a"]
    assert store.get("c_a")["status"] == "completed"       # the end replaced the open row
    assert store.get("nope") is None
    by_number, _ = store.query(Query(number="n1"))
    assert [r["uid"] for r in by_number] == ["c_d", "c_b"]
    ranged, _ = store.query(Query(since=101.0, until=103.0))
    assert [r["uid"] for r in ranged] == ["c_d", "c_c", "c_b"]


def test_the_file_is_wal_with_the_schema_version(tmp_path):
    """journal_mode is WAL and user_version the schema's; a newer file is refused."""
    path = tmp_path / "r.db"
    run_store(path, [])
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="schema"):
        RecordStore(str(path), 30).start()


def test_retention_deletes_calls_older_than_keep_days(tmp_path):
    """Rows whose INVITE is older than keep_days go at start; 0 keeps everything."""
    path = tmp_path / "r.db"
    day = 86400.0
    run_store(path, [rec("c_old", 0.0), rec("c_new", 25 * day)], clock=lambda: 26 * day)
    conn = connect(str(path))
    assert prune(conn, 40 * day, 0) == 0
    assert prune(conn, 40 * day, 30) == 1             # c_old (40 days) goes, c_new (15) stays
    assert [r[0] for r in conn.execute("SELECT uid FROM records")] == ["c_new"]


def test_rows_of_a_dead_earlier_boot_are_closed_as_lost(tmp_path):
    """Open rows of this host and worker from an earlier boot whose pid is gone become lost;
    rows of a live process, of another worker, and ended rows stay as they are."""
    path = tmp_path / "r.db"
    conn = connect(str(path))
    open_schema(conn)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    rows = [("c_dead", "h", 0, int(dead), "boot1", "in_progress"),
            ("c_live", "h", 0, 1, "boot1", "in_progress"),          # pid 1 is alive
            ("c_other", "h", 1, int(dead), "boot1", "in_progress"),
            ("c_done", "h", 0, int(dead), "boot1", "completed"),
            ("c_mine", "h", 0, int(dead), "boot2", "in_progress")]
    for uid, host, worker, pid, boot, status in rows:
        body = json.dumps({**rec(uid, 50.0), "status": status})
        conn.execute("INSERT INTO records (uid, status, invite_at, host, worker, pid, boot, record)"
                     " VALUES (?, ?, 50.0, ?, ?, ?, ?, ?)", (uid, status, host, worker, pid, boot, body))
    alive = lambda pid: pid == 1
    assert close_lost(conn, "h", 0, "boot2", 80.0, alive) == ["c_dead"]
    status = dict(conn.execute("SELECT uid, status FROM records"))
    assert status == {"c_dead": "lost", "c_live": "in_progress", "c_other": "in_progress",
                      "c_done": "completed", "c_mine": "in_progress"}
    body = json.loads(conn.execute("SELECT record FROM records WHERE uid='c_dead'").fetchone()[0])
    assert (body["status"], body["end_reason"], body["end_at"], body["total_s"]) == (
        "lost", "worker_restarted", 80.0, 30.0)


def test_a_restarted_store_closes_the_calls_its_killed_predecessor_left_open(tmp_path):
    """A store process killed with an open row: the next store on the file closes it as lost."""
    path = tmp_path / "r.db"
    script = (
        "import os, sys, time\n"
        "from sipbridge.app.records import OPEN, Update, new_record\n"
        "from sipbridge.app.recordstore import RecordStore\n"
        f"s = RecordStore({str(path)!r}, 30, worker=0)\n"
        "s.start(); s.submit(Update(OPEN, new_record('c_k', 's', 'inbound', time.time())))\n"
        "while s.written < 1: time.sleep(0.01)\n"
        "os.kill(os.getpid(), 9)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == -9, proc.stderr
    store = RecordStore(str(path), 30, worker=0)
    store.start()
    store.stop()
    assert store.lost_closed == ["c_k"] and store.get("c_k")["status"] == "lost"


def test_submit_never_blocks_and_counts_what_a_full_queue_drops(tmp_path):
    """With the writer not started, a queue of 2 takes 2 writes and drops the rest (counted)."""
    store = RecordStore(str(tmp_path / "r.db"), 30, queue_size=2)
    for i in range(5):
        store.submit(Update(OPEN, rec(f"c_{i}", 1.0)))
    assert store.dropped == 3


def test_a_cells_store_names_each_rows_worker_and_closes_any_workers_lost_rows(tmp_path):
    """Rows submitted with an owner carry that worker's index, pid and boot; a store opened with
    any_worker (the supervisor's) closes open rows of every worker whose process is gone."""
    path = tmp_path / "r.db"
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip())
    store = RecordStore(str(path), 30, any_worker=True, clock=lambda: 100.0)
    store.start()
    store.submit(Update(OPEN, rec("c_w2", 50.0, status="in_progress")), (2, dead, "bootw2"))
    store.submit(Update(OPEN, rec("c_w0", 50.0, status="in_progress")), (0, 1, "bootw0"))
    store.submit(Update(END, rec("c_mine", 50.0)))
    store.stop()
    conn = connect(str(path))
    owners = {r[0]: r[1:] for r in conn.execute("SELECT uid, worker, pid, boot FROM records")}
    assert owners["c_w2"] == (2, dead, "bootw2") and owners["c_w0"] == (0, 1, "bootw0")
    assert owners["c_mine"] == (0, store.pid, store.boot)
    again = RecordStore(str(path), 30, any_worker=True, clock=lambda: 90.0)
    again.start()
    again.stop()
    assert again.lost_closed == ["c_w2"]        # pid 1 (c_w0's) is alive
    body = again.get("c_w2")
    assert (body["status"], body["end_reason"], body["total_s"]) == (
        "lost", "worker_restarted", 40.0)


def test_room_says_how_many_writes_fit_before_one_is_dropped(tmp_path):
    """room() is the queue's free space: a caller that waits for it never loses a write."""
    store = RecordStore(str(tmp_path / "r.db"), 30, queue_size=3)
    assert store.room() == 3
    store.submit(Update(OPEN, rec("c_1", 1.0)))
    assert store.room() == 2 and store.dropped == 0
