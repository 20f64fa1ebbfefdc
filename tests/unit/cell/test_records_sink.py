"""The cell's one records writer for real, in one process: a RecordPusher (a worker's side) on
its own loop POSTs to a RecordsSink (the supervisor's side) over a unix socket, into SQLite."""

import asyncio
import json
import os
import socket
import sqlite3
import threading
import time

import pytest

from sipbridge.app.records import ANSWER, END, OPEN, Update, new_record
from sipbridge.cell.records_push import RecordPusher, records_sink
from sipbridge.cell.records_sink import RecordsSink
from sipbridge.config import RecordsConfig

TOKEN = "t" * 40


def snap(uid, kind=OPEN, status="in_progress", **fields):
    return Update(kind, {**new_record(uid, "sip-" + uid, "inbound", 100.0), "status": status,
                         **fields})


def rows(path) -> dict:
    conn = sqlite3.connect(path)
    try:
        return {uid: (json.loads(body), worker, pid) for uid, body, worker, pid in
                conn.execute("SELECT uid, record, worker, pid FROM records")}
    finally:
        conn.close()


def counters(sink) -> dict:
    return {f.name: f.samples[0].value for f in sink.metric_families()}


def wait(probe, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def make_sink(tmp_path, **kw):
    sink = RecordsSink(RecordsConfig(path=str(tmp_path / "r.db"), keep_days=30), tmp_path, TOKEN,
                       **kw)
    sink.start()
    return sink


def test_records_pushed_by_a_worker_are_written_by_the_sink_and_a_dead_workers_calls_lost(
        tmp_path, loop):
    """Open/answer/end snapshots from worker 1 land as rows naming worker 1 and its pid; when
    the supervisor reports that process gone, its still-open call is written lost at once."""
    sink = make_sink(tmp_path)
    pusher = RecordPusher(loop, sink.path, TOKEN, 1)
    pusher.start()
    try:
        pusher.submit(snap("done"))
        pusher.submit(snap("done", END, status="completed"))
        pusher.submit(snap("up"))
        pusher.submit(snap("up", ANSWER, answer_at=101.0))
        db = str(tmp_path / "r.db")
        got = wait(lambda: (lambda r: r if len(r) == 2 and r["up"][0]["answer_at"] else None)(
            rows(db)))
        assert got["done"][0]["status"] == "completed" and got["up"][0]["status"] == "in_progress"
        assert {(w, p) for _, w, p in got.values()} == {(1, os.getpid())}
        sink.worker_gone(1, os.getpid())
        lost = wait(lambda: (lambda r: r if r["up"]["status"] == "lost" else None)(
            {u: v[0] for u, v in rows(db).items()}))
        assert lost["up"]["end_reason"] == "worker_exited" and lost["done"]["status"] == "completed"
        assert pusher.dropped == 0 and sink.refused == 0
        wait(lambda: counters(sink)["sipbridge_cell_records_written"] >= 3)   # snapshots coalesce
        assert counters(sink)["sipbridge_cell_records_lost_calls"] == 1
    finally:
        pusher.stop(1.0)
        sink.stop()


def test_a_slow_disk_holds_the_workers_records_back_and_loses_none(tmp_path, loop):
    """With the file locked by another writer and a 64-row queue, the sink answers 503 and the
    pusher sends again; once the lock goes, all 300 calls' rows are there and none was dropped."""
    sink = make_sink(tmp_path, queue_size=64)
    db = str(tmp_path / "r.db")
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")     # the writer now waits (busy_timeout 5 s): a slow disk
    pusher = RecordPusher(loop, sink.path, TOKEN, 0)
    pusher.start()
    try:
        for i in range(300):
            pusher.submit(snap(f"c{i}"))
            pusher.submit(snap(f"c{i}", END, status="completed"))
        wait(lambda: sink.busy > 0)
        time.sleep(0.5)
        blocker.execute("COMMIT")
        done = wait(lambda: (lambda r: r if len(r) == 300 and all(
            v[0]["status"] == "completed" for v in r.values()) else None)(rows(db)), 20)
        assert len(done) == 300
        assert pusher.dropped == 0 and sink.store.dropped == 0 and pusher.retries > 0
        got = counters(sink)
        assert got["sipbridge_cell_records_held_back"] > 0
        assert got["sipbridge_cell_records_dropped"] == 0
    finally:
        blocker.close()
        pusher.stop(1.0)
        sink.stop()


def test_the_sink_refuses_a_wrong_token_and_a_malformed_batch_and_stays_up(tmp_path):
    """No or a wrong token is 401, a body that is not a batch is 400 (both counted); a good
    batch after them is taken."""
    sink = make_sink(tmp_path)

    def post(body: bytes, auth: str | None) -> bytes:
        s = socket.socket(socket.AF_UNIX)
        s.connect(sink.path)
        head = (f"POST /v1/cell/records HTTP/1.1\r\nHost: c\r\nConnection: close\r\n"
                f"Content-Length: {len(body)}\r\n" + (f"Authorization: {auth}\r\n" if auth else ""))
        s.sendall(head.encode() + b"\r\n" + body)
        line = s.recv(100).split(b"\r\n")[0]
        s.close()
        return line
    try:
        rec = snap("a").record
        good = json.dumps({"worker": 0, "pid": 7, "boot": "b",
                           "items": [{"seq": 1, "kind": "open", "record": rec}]}).encode()
        assert b" 401 " in post(good, None) + b" " and b" 401 " in post(good, "Bearer no") + b" "
        assert b" 400 " in post(b"{nope", f"Bearer {TOKEN}") + b" "
        assert b" 400 " in post(b'{"worker": 0}', f"Bearer {TOKEN}") + b" "
        assert b" 200 " in post(good, f"Bearer {TOKEN}") + b" "
        assert sink.refused == 4
        wait(lambda: "a" in rows(str(tmp_path / "r.db")))
        assert oct(os.stat(sink.path).st_mode & 0o777) == "0o600"
    finally:
        sink.stop()


def test_a_waiting_call_keeps_only_its_newest_snapshot_and_a_full_table_drops_new_calls(loop):
    """Snapshots of a call not yet sent collapse into the newest (with a newer sequence number);
    past queue_size calls waiting, a new call's snapshot is dropped and counted."""
    pusher = RecordPusher(loop, "/nonexistent.sock", TOKEN, 2, queue_size=2)   # never started
    pusher.submit(snap("a"))
    pusher.submit(snap("b"))
    pusher.submit(snap("a", ANSWER, answer_at=101.0))
    pusher.submit(snap("c"))
    waiting = list(pusher._waiting.items())
    assert [uid for uid, _ in waiting] == ["b", "a"] and pusher.dropped == 1
    assert waiting[1][1][0] == 3 and waiting[1][1][1].kind == ANSWER and pusher.pending == 2


def test_records_sink_is_read_from_the_environment_only_with_both_socket_and_token():
    """A worker finds the sink from the supervisor's two variables and leaves the token there
    for the control channel to take."""
    env = {"SIPBRIDGE_CELL_RECORDS_SOCKET": "/x.sock", "SIPBRIDGE_CELL_CONTROL_TOKEN": "tok"}
    assert records_sink(env) == ("/x.sock", "tok") and "SIPBRIDGE_CELL_CONTROL_TOKEN" in env
    assert records_sink({"SIPBRIDGE_CELL_RECORDS_SOCKET": "/x.sock"}) is None
    assert records_sink({"SIPBRIDGE_CELL_CONTROL_TOKEN": "tok"}) is None


def test_a_cell_workers_logged_call_reaches_the_supervisors_file_and_the_worker_opens_none(
        tmp_path, loop):
    """A worker's Recording with a sink pushes instead of storing: the call logged through
    structlog is written by the sink, and the worker's own records.path is never created."""
    import dataclasses
    import io

    import structlog

    from sipbridge import logs
    from sipbridge.app.callfeed import Recording
    from sipbridge.config import Config
    logs.configure("info", "json", stream=io.StringIO())
    sink = make_sink(tmp_path)
    own = tmp_path / "worker-own.db"
    cfg = Config()
    cfg = dataclasses.replace(cfg, records=dataclasses.replace(cfg.records, path=str(own)),
                              api=dataclasses.replace(cfg.api, listen=None))
    rec = Recording(cfg, loop, 2, sink=(sink.path, TOKEN))
    assert rec.store is None and rec.pusher is not None
    rec.start()
    try:
        log = structlog.get_logger("t").bind(call_id="cw@1")
        log.info("call_incoming", uid="c_2_cw", caller="a", called="b")
        log.info("call_answered")
        log.info("call_ended", status=200, reason="bye")
    finally:
        rec.stop()
        sink.stop()
    got = rows(str(tmp_path / "r.db"))["c_2_cw"]
    assert got[0]["status"] == "completed" and got[1] == 2 and got[2] == os.getpid()
    assert not own.exists() and rec.pusher.pending == 0
