"""The cell's one records writer: the supervisor takes the workers' records and writes them.

With ``records.path`` set, the supervisor opens the file (:class:`~sipbridge.app.recordstore.
RecordStore`, one writer thread, WAL) before any worker starts, and serves a unix socket in its
private working directory (:func:`sink_path`, mode 0600, the cell's per-run bearer token of
:mod:`sipbridge.cell.channel`) on an asyncio loop of its own thread. Each worker POSTs its record
snapshots there in batches (``POST /v1/cell/records``, :mod:`sipbridge.cell.records_push`):

* 200: the batch is queued for the writer (its rows chosen by the pure
  :class:`~sipbridge.cell.record_collector.Collector`);
* 503 with nothing taken when the writer's queue has no room for the whole batch (a slow
  disk): the worker keeps the batch and sends it again, so a slow disk costs latency, not rows
  (up to the worker's own bound, :mod:`sipbridge.cell.records_push`);
* 400 for a malformed batch, 401 without the token (both counted, logged once a minute at most).

:meth:`RecordsSink.worker_gone` (supervisor thread, as soon as it reaps a worker) closes that
worker process's open calls as ``lost``; :meth:`RecordsSink.stop` (after the last worker has
exited) closes what is still open the same way, then writes what is queued. ``GET /v1/records``
at the cell's front reads :attr:`RecordsSink.store`'s file.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

import structlog
from aiohttp import web

from ..app.recordstore import RecordStore
from ..errors import ConfigError
from .record_collector import Collector, parse_batch
from .records_push import BATCH

log = structlog.get_logger("sipbridge.cell")

PATH = "/v1/cell/records"
MAX_BATCH_BYTES = 64 << 20   # a batch of records with their transcripts
REFUSAL_LOG_EVERY_S = 60.0


def sink_path(workdir: str | Path) -> str:
    """Where the supervisor takes the workers' records."""
    return str(Path(workdir) / "records.sock")


class RecordsSink:
    """``start()``/``worker_gone()``/``stop()`` from the supervisor's thread."""

    def __init__(self, records_cfg, workdir: str | Path, token: str, clock=time.time,
                 queue_size: int = 10000):
        self.path = sink_path(workdir)
        self.token = token
        self.clock = clock
        self.store = RecordStore(records_cfg.path, records_cfg.keep_days, any_worker=True,
                                 clock=clock, queue_size=max(queue_size, BATCH))
        self.collector = Collector()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sipbridge-cell-records",
                                       daemon=True)
        self._runner: web.AppRunner | None = None
        self.taken = 0      # snapshots handed in
        self.busy = 0       # batches sent back (503: the writer's queue was full)
        self.refused = 0    # malformed or unauthorised batches
        self._last_refusal_log = -REFUSAL_LOG_EVERY_S
        self._boots: dict[tuple[int, int], str] = {}   # (worker, pid) -> boot, while it runs

    # -- supervisor thread ----------------------------------------------------------------------
    def start(self) -> None:
        """Open the file (ConfigError naming ``records.path`` when it cannot be), then serve."""
        try:
            self.store.start()
        except (OSError, sqlite3.Error, RuntimeError) as exc:
            raise ConfigError("records.path", f"{self.store.path}: {exc}") from None
        self.thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)
        except BaseException:
            self._halt()
            self.store.stop()
            raise

    def worker_gone(self, worker: int, pid: int) -> None:
        """Worker ``worker`` (process ``pid``) exited: its open calls are lost (returns at once)."""
        try:
            self.loop.call_soon_threadsafe(self._gone, worker, pid)
        except RuntimeError:   # stopped already
            pass

    def stop(self, timeout: float = 3.0) -> None:
        """Stop taking records, close what is still open as lost, write the queue, close."""
        if self.thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(timeout + 2)
            except Exception:  # noqa: BLE001 - exiting anyway
                log.exception("cell_records_stop_failed")
            self._halt()
        self.store.stop(timeout)
        log.info("cell_records_closed", taken=self.taken, busy=self.busy, refused=self.refused,
                 stale=self.collector.stale, lost=self.collector.closed_lost)

    def metric_families(self) -> list:
        """The writer's counters for the cell's ``/metrics`` (read from any thread)."""
        from prometheus_client.core import CounterMetricFamily
        return [CounterMetricFamily("sipbridge_cell_records_written", "Record rows the cell's "
                                    "supervisor wrote", value=self.store.written),
                CounterMetricFamily("sipbridge_cell_records_dropped", "Record rows the cell's "
                                    "writer dropped (queue full) or failed to write",
                                    value=self.store.dropped + self.store.failed),
                CounterMetricFamily("sipbridge_cell_records_held_back", "Batches of records sent "
                                    "back to a worker to send again (the writer's queue was full)",
                                    value=self.busy),
                CounterMetricFamily("sipbridge_cell_records_lost_calls", "Calls closed as lost "
                                    "because their worker exited with them up",
                                    value=self.collector.closed_lost)]

    def _halt(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    # -- the loop -------------------------------------------------------------------------------
    async def _serve(self) -> None:
        app = web.Application(client_max_size=MAX_BATCH_BYTES)
        app.router.add_post(PATH, self._take)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        if os.path.exists(self.path):
            os.unlink(self.path)
        await web.UnixSite(self._runner, self.path).start()
        os.chmod(self.path, 0o600)

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        for update in self.collector.close_all(self.clock()):
            self.store.submit(update)

    def _gone(self, worker: int, pid: int) -> None:
        lost = self.collector.worker_gone(worker, pid, self.clock())
        owner = (worker, pid, self._boots.pop((worker, pid), ""))
        for update in lost:
            self.store.submit(update, owner)
        if lost:
            log.warning("cell_records_lost", worker=worker, pid=pid,
                        uids=[u.record["uid"] for u in lost])

    async def _take(self, request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return self._refuse(401, "a bearer token is required")
        try:
            worker, pid, boot, items = parse_batch(json.loads(await request.read()))
        except ValueError as exc:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return self._refuse(400, str(exc))
        if self.store.room() < len(items):
            self.busy += 1
            return web.json_response({"error": "busy", "message": "records writer queue full"},
                                     status=503, headers={"Retry-After": "1"})
        now, owner = self.clock(), (worker, pid, boot)
        self._boots[(worker, pid)] = boot
        for seq, update in items:
            row = self.collector.accept(worker, pid, seq, update, now)
            if row is not None:
                self.store.submit(row, owner)
        self.taken += len(items)
        return web.json_response({"taken": len(items)})

    def _refuse(self, status: int, why: str) -> web.Response:
        self.refused += 1
        now = time.monotonic()
        if now - self._last_refusal_log >= REFUSAL_LOG_EVERY_S:
            self._last_refusal_log = now
            log.warning("cell_records_refused", status=status, reason=why, refused=self.refused)
        return web.json_response({"error": "refused", "message": why}, status=status)
