"""A cell worker's records go to its supervisor, the cell's one writer (never to the file).

:class:`RecordPusher` stands where a plain process has its
:class:`~sipbridge.app.recordstore.RecordStore`: the call feed (the tap's thread) calls
:meth:`RecordPusher.submit` with each record snapshot, which returns at once. Snapshots wait in
a bounded table keyed by call: a newer snapshot of a call still waiting replaces the older one
(rows are written whole, so nothing is lost by it), hence a slow supervisor holds one entry per
call, not one per change; past ``queue_size`` calls waiting, new ones are dropped and counted.

A task on the worker's asyncio loop POSTs what waits, in order, in batches of at most
:data:`BATCH` (``POST /v1/cell/records`` on :func:`~sipbridge.cell.records_sink.sink_path`,
the cell's per-run token), one batch in flight; a busy supervisor (503) or an error keeps the
batch and sends it again after a backoff (0.1 s doubling to 2 s); a batch refused as malformed
(400, 413) is dropped and counted. Every snapshot carries a sequence number that
grows per process, so a batch sent twice (its answer lost) is recognised by the supervisor.
Nothing here runs on the media clock or blocks the worker's loop.

The worker learns the socket from :data:`RECORDS_ENV`, which the supervisor sets only with
``records.path`` on (see :func:`records_sink`).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections import OrderedDict

import aiohttp
import structlog

from ..app.records import Update
from .channel import TOKEN_ENV

log = structlog.get_logger("sipbridge.records")

RECORDS_ENV = "SIPBRIDGE_CELL_RECORDS_SOCKET"
PATH = "/v1/cell/records"
BATCH = 64
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.1, 2.0
POST_TIMEOUT_S = 10.0


def records_sink(environ) -> tuple[str, str] | None:
    """In a cell's worker: ``(socket path, token)`` of the supervisor's records sink; None
    outside a cell or with records off. Read before :func:`~sipbridge.cell.channel.
    worker_channel`, which takes the token out of ``environ``."""
    path, token = environ.get(RECORDS_ENV), environ.get(TOKEN_ENV)
    return (path, token) if path and token else None


class RecordPusher:
    """``submit`` from any thread; ``start``/``stop`` from the control thread (loop running)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, path: str, token: str,
                 worker: int | None, queue_size: int = 10000):
        self.loop, self.path, self.token = loop, path, token
        self.worker, self.pid, self.boot = worker or 0, os.getpid(), os.urandom(8).hex()
        self.queue_size = queue_size
        self._waiting: OrderedDict[str, tuple[int, Update]] = OrderedDict()   # uid -> (seq, upd)
        self._lock = threading.Lock()
        self._seq = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        self._in_flight = 0
        self.dropped = 0      # calls whose snapshot found the table full
        self.sent = 0         # snapshots the supervisor took
        self.retries = 0      # batches sent again
        self._logged_drops = 0

    # -- any thread -----------------------------------------------------------------------------
    def submit(self, update: Update) -> None:
        """Queue one snapshot for the supervisor (never blocks)."""
        uid = update.record["uid"]
        with self._lock:
            if uid not in self._waiting and len(self._waiting) >= self.queue_size:
                self.dropped += 1
                return
            self._seq += 1
            first = not self._waiting
            self._waiting.pop(uid, None)            # the newer snapshot goes to the back
            self._waiting[uid] = (self._seq, update)
        if first:
            try:
                self.loop.call_soon_threadsafe(self._poke)
            except RuntimeError:   # the loop is closed: shutting down
                pass

    @property
    def pending(self) -> int:
        return len(self._waiting) + self._in_flight

    # -- control thread -------------------------------------------------------------------------
    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(5)

    def stop(self, deadline_s: float = 2.0) -> None:
        """Send what waits for at most ``deadline_s``, then stop (what is left is counted)."""
        try:
            asyncio.run_coroutine_threadsafe(self._stop(deadline_s), self.loop).result(
                deadline_s + 2)
        except Exception:  # noqa: BLE001 - shutting down: what is left is logged as left
            pass
        log.info("records_pushed", sent=self.sent, dropped=self.dropped, retries=self.retries,
                 left=self.pending)

    # -- the loop -------------------------------------------------------------------------------
    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _start(self) -> None:
        self._wake = asyncio.Event()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=self.path),
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT_S))
        self._task = asyncio.ensure_future(self._run())
        if self._waiting:
            self._wake.set()

    async def _stop(self, deadline_s: float) -> None:
        end = self.loop.time() + deadline_s
        while self.pending and self.loop.time() < end:
            await asyncio.sleep(0.02)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if self._session is not None:
            await self._session.close()

    def _take(self) -> list[tuple[int, Update]]:
        with self._lock:
            batch = []
            while self._waiting and len(batch) < BATCH:
                batch.append(self._waiting.popitem(last=False)[1])
            self._in_flight = len(batch)
            return batch

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while batch := self._take():
                body = json.dumps({"worker": self.worker, "pid": self.pid, "boot": self.boot,
                                   "items": [{"seq": seq, "kind": u.kind, "record": u.record}
                                             for seq, u in batch]}, default=str).encode()
                backoff = BACKOFF_MIN_S
                while (status := await self._post(body)) not in (200, 400, 413):
                    self.retries += 1
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                if status == 200:
                    self.sent += len(batch)
                else:   # refused as malformed: sending it again would not help
                    self.dropped += len(batch)
                    log.warning("records_push_refused", status=status, rows=len(batch))
                self._in_flight = 0
                if self.dropped > self._logged_drops:   # counted on the tap thread, said here
                    log.warning("records_push_dropped", dropped=self.dropped,
                                waiting=len(self._waiting), limit=self.queue_size)
                    self._logged_drops = self.dropped

    async def _post(self, body: bytes) -> int | None:
        """The supervisor's answer status; None when it could not be asked."""
        try:
            async with self._session.post("http://cell" + PATH, data=body,
                                          headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                return resp.status
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - refused, reset, timeout: sent again after a backoff
            return None
