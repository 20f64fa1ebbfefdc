"""Call records in SQLite: one writer thread per process, queries on short-lived readers.

The file (``records.path``) is in WAL mode with a busy timeout (readers never wait for the
writer). It has one writer: a plain process's own :class:`RecordStore`, or in a cell the
supervisor's (:mod:`sipbridge.cell.records_sink`; the workers hand it their records over a
unix socket and never open the file). Rows are upserted whole: written when the INVITE is
accepted for handling (``in_progress``), again at answer and at the end, from :class:`~sipbridge.app.records.Update`
snapshots queued by :meth:`RecordStore.submit`, which never blocks (a full queue drops the
write and counts it in ``dropped``; :meth:`RecordStore.room` lets a caller hold back instead).

Each row names the process that made it (``host``, ``worker`` index, ``pid``, ``boot``: a
random id per start; the supervisor's writes carry the worker's, see ``owner``). At start-up,
rows still ``in_progress`` from an earlier boot of the same host and worker (any worker for a
cell's store, ``any_worker``) whose process is gone are closed as ``lost`` (killed mid-call).
Rows older than ``records.keep_days`` are deleted at start and every hour.

:func:`build_query` is the pure SQL builder behind ``GET /v1/records``: filters on the INVITE
time range, a number (caller or called), a status (an outcome name or a SIP code), newest
first, paged with an opaque cursor.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from .records import IN_PROGRESS, LOST, STATUSES, Update, lost_record

log = structlog.get_logger("sipbridge.records")

SCHEMA_VERSION = 1
PRUNE_EVERY_S = 3600.0
BUSY_TIMEOUT_MS = 5000
MAX_LIMIT = 500
DEFAULT_LIMIT = 50

_COLUMNS = ("uid", "sip_call_id", "direction", "status", "caller", "called", "trunk", "route",
            "invite_at", "answer_at", "end_at", "sip_status", "ended_by", "end_reason")

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    uid TEXT PRIMARY KEY,
    sip_call_id TEXT, direction TEXT, status TEXT NOT NULL, caller TEXT, called TEXT,
    trunk TEXT, route TEXT, invite_at REAL, answer_at REAL, end_at REAL, sip_status INTEGER,
    ended_by TEXT, end_reason TEXT,
    host TEXT NOT NULL, worker INTEGER NOT NULL, pid INTEGER NOT NULL, boot TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_invite ON records (invite_at, uid);
CREATE INDEX IF NOT EXISTS records_caller ON records (caller, invite_at);
CREATE INDEX IF NOT EXISTS records_called ON records (called, invite_at);
CREATE INDEX IF NOT EXISTS records_status ON records (status, invite_at);
CREATE INDEX IF NOT EXISTS records_owner ON records (host, worker, status);
"""


class QueryError(ValueError):
    """A filter that cannot be used; ``field`` names it."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


@dataclass(frozen=True)
class Query:
    """Filters of a records query (times are epoch seconds on the INVITE)."""

    since: float | None = None
    until: float | None = None
    number: str | None = None
    status: str | None = None      # an outcome (completed, lost, ...) or a SIP code ("486")
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


def encode_cursor(invite_at: float, uid: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([invite_at, uid]).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[float, str]:
    try:
        at, uid = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not isinstance(uid, str):
            raise ValueError
        return float(at), uid
    except (ValueError, TypeError):
        raise QueryError("cursor", "not a cursor this server handed out") from None


def build_query(q: Query) -> tuple[str, list]:
    """``(sql, params)`` selecting ``record`` JSON, newest INVITE first, one row over ``limit``
    (its presence means there is a next page). Raises :class:`QueryError` on a bad filter."""
    if not 1 <= q.limit <= MAX_LIMIT:
        raise QueryError("limit", f"must be 1..{MAX_LIMIT}")
    where, params = [], []
    if q.since is not None:
        where.append("invite_at >= ?")
        params.append(q.since)
    if q.until is not None:
        where.append("invite_at < ?")
        params.append(q.until)
    if q.number is not None:
        where.append("(caller = ? OR called = ?)")
        params += [q.number, q.number]
    if q.status is not None:
        if q.status.isdigit() and len(q.status) == 3:
            where.append("sip_status = ?")
            params.append(int(q.status))
        elif q.status in STATUSES:
            where.append("status = ?")
            params.append(q.status)
        else:
            raise QueryError("status", f"one of {', '.join(STATUSES)} or a 3-digit SIP code")
    if q.cursor is not None:
        at, uid = decode_cursor(q.cursor)
        where.append("(invite_at < ? OR (invite_at = ? AND uid < ?))")
        params += [at, at, uid]
    sql = "SELECT record FROM records"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY invite_at DESC, uid DESC LIMIT ?"
    params.append(q.limit + 1)
    return sql, params


def connect(path: str, timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout_ms / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
    return conn


def open_schema(conn: sqlite3.Connection) -> None:
    """WAL, and the schema at :data:`SCHEMA_VERSION` (RuntimeError for a newer file)."""
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"records file has schema {version}, this version reads {SCHEMA_VERSION}")
    conn.executescript(SCHEMA)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def prune(conn: sqlite3.Connection, now: float, keep_days: int) -> int:
    """Delete rows whose call began more than ``keep_days`` before ``now``; the count."""
    if keep_days <= 0:
        return 0
    cur = conn.execute("DELETE FROM records WHERE invite_at < ?", (now - keep_days * 86400.0,))
    return cur.rowcount


def close_lost(conn: sqlite3.Connection, host: str, worker: int | None, boot: str, now: float,
               alive: Callable[[int], bool]) -> list[str]:
    """Close as ``lost`` the open rows of earlier boots of this host and worker (None: any
    worker, a cell's store) whose process is gone (``alive(pid)`` false); the uids closed."""
    sql = "SELECT uid, pid, record FROM records WHERE host = ? AND status = ? AND boot != ?"
    params: list = [host, IN_PROGRESS, boot]
    if worker is not None:
        sql += " AND worker = ?"
        params.append(worker)
    closed = []
    for uid, pid, text in conn.execute(sql, params).fetchall():
        if alive(pid):
            continue
        rec = lost_record(json.loads(text), now, "worker_restarted")
        conn.execute("UPDATE records SET status = ?, ended_by = ?, end_reason = ?, end_at = ?, "
                     "record = ? WHERE uid = ?", (LOST, "bridge", "worker_restarted", now,
                                                  json.dumps(rec), uid))
        closed.append(uid)
    return closed


def pid_alive(pid: int) -> bool:
    """Whether another process with this pid runs here (our own pid is an earlier boot's)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RecordStore:
    """The process's SQLite writer (a thread) and its readers."""

    def __init__(self, path: str, keep_days: int, worker: int | None = None,
                 queue_size: int = 10000, clock: Callable[[], float] = time.time,
                 any_worker: bool = False):
        # any_worker: a cell's store (the supervisor's), whose rows name each call's worker
        self.path, self.keep_days, self.any_worker = path, keep_days, any_worker
        self.host, self.worker, self.pid = socket.gethostname(), worker or 0, os.getpid()
        self.boot = os.urandom(8).hex()
        self._clock = clock
        self._queue: queue.Queue = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.dropped = 0
        self.written = 0
        self.failed = 0
        self.lost_closed: list[str] = []

    def start(self) -> None:
        """Open the file, close lost calls, prune; then start the writer. Raises on a bad file."""
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._conn = connect(self.path)
        open_schema(self._conn)
        now = self._clock()
        self.lost_closed = close_lost(self._conn, self.host, None if self.any_worker else
                                      self.worker, self.boot, now, pid_alive)
        pruned = prune(self._conn, now, self.keep_days)
        log.info("records_opened", path=self.path, lost=len(self.lost_closed), pruned=pruned,
                 boot=self.boot)
        self._thread = threading.Thread(target=self._run, name="sipbridge-records", daemon=True)
        self._thread.start()

    def submit(self, update: Update, owner: tuple | None = None) -> None:
        """Queue a row write (any thread, never blocks). ``owner``: ``(worker, pid, boot)`` of
        the process that made the record, when it is not this one (a cell's supervisor)."""
        try:
            self._queue.put_nowait(update if owner is None else (update, owner))
        except queue.Full:
            self.dropped += 1

    def room(self) -> int:
        """Writes :meth:`submit` can queue now without dropping any."""
        return max(0, self._queue.maxsize - self._queue.qsize())

    def stop(self, timeout: float = 3.0) -> None:
        """Write what is queued (at most ``timeout`` s), then close."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        self._thread = None
        log.info("records_closed", written=self.written, dropped=self.dropped, failed=self.failed)

    def _run(self) -> None:
        next_prune = self._clock() + PRUNE_EVERY_S
        conn = self._conn
        while True:
            try:
                item = self._queue.get(timeout=60)
            except queue.Empty:
                item = ()
            batch = [] if item == () else [item]
            while item is not None and len(batch) < 200:
                try:
                    item = self._queue.get_nowait()
                    batch.append(item)
                except queue.Empty:
                    break
            stop = None in batch
            self._write([u for u in batch if u is not None], conn)
            now = self._clock()
            if now >= next_prune:
                next_prune = now + PRUNE_EVERY_S
                try:
                    prune(conn, now, self.keep_days)
                except sqlite3.Error as exc:
                    log.warning("records_prune_failed", error=str(exc))
            if stop:
                conn.close()
                return

    def _write(self, batch: list, conn: sqlite3.Connection) -> None:
        if not batch:
            return
        own = (self.host, self.worker, self.pid, self.boot)
        try:
            conn.execute("BEGIN")
            for item in batch:
                update, owner = ((item, own) if isinstance(item, Update) else
                                 (item[0], (self.host, *item[1])))
                rec = update.record
                row = [rec.get(c) for c in _COLUMNS] + list(owner) + [json.dumps(rec, default=str)]
                conn.execute(_UPSERT, row)
            conn.execute("COMMIT")
            self.written += len(batch)
        except sqlite3.Error as exc:
            self.failed += len(batch)
            log.warning("records_write_failed", error=str(exc), rows=len(batch))
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    # -- readers (any thread but the media clock; the API runs them in an executor) -----------
    def query(self, q: Query) -> tuple[list[dict], str | None]:
        """One page of records and the cursor of the next page (None on the last)."""
        sql, params = build_query(q)
        with _reader(self.path) as conn:
            rows = [json.loads(r[0]) for r in conn.execute(sql, params).fetchall()]
        more = len(rows) > q.limit
        rows = rows[:q.limit]
        cursor = encode_cursor(rows[-1]["invite_at"] or 0.0, rows[-1]["uid"]) if more else None
        return rows, cursor

    def get(self, uid: str) -> dict | None:
        with _reader(self.path) as conn:
            row = conn.execute("SELECT record FROM records WHERE uid = ?", (uid,)).fetchone()
        return json.loads(row[0]) if row else None


_UPSERT = (f"INSERT INTO records ({', '.join(_COLUMNS)}, host, worker, pid, boot, record) "
           f"VALUES ({', '.join('?' * (len(_COLUMNS) + 5))}) ON CONFLICT(uid) DO UPDATE SET "
           + ", ".join(f"{c} = excluded.{c}" for c in (*_COLUMNS[1:], "pid", "boot", "record")))


class _reader:
    """A short-lived connection (sqlite3 connections are not shared across threads here)."""

    def __init__(self, path: str):
        self.conn = connect(path)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc) -> None:
        self.conn.close()
