"""The cell's one HTTP interface: the supervisor serves ``api.listen`` for all its workers.

Built with :func:`sipbridge.app.server.build_app`, so the cell's front answers with the same
middlewares as a single process (JSON errors, ``api.rate_per_s`` per client, the bearer token
from ``api.token_env``, ``api.max_body_kb``) and serves the same OpenAPI document. Behind it,
each worker is asked over the local control channel (:mod:`sipbridge.cell.channel`):

* ``/v1/calls/{uid}...`` (GET, actions, outbound progress) goes to the worker named in the uid
  (``c_<worker>_<hex>``, :mod:`sipbridge.cell.uids`); a uid naming no running worker is 404;
* ``GET /v1/calls`` merges every worker's list (each call tagged with its ``worker``);
* ``POST /v1/calls`` is checked here (400 by field), then offered to the ready workers with the
  most free slots first, as the front's :class:`~sipbridge.cell.slots.SlotView` counts them (no
  worker is asked first; a worker answering 503 passes it to the next); none free even on a
  fresh ``/readyz`` of every worker: 503 at once, with ``Retry-After``;
* ``/healthz`` is the supervisor's; ``/readyz`` is ready while one worker is, with per-worker
  detail; ``/metrics`` adds the workers' scrapes up (:mod:`sipbridge.cell.metrics_sum`) plus the
  supervisor's worker restarts;
* ``/v1/records`` reads the cell's records file (the supervisor alone writes it,
  :mod:`sipbridge.cell.records_sink`); ``/v1/events`` merges the workers' live event streams.

It runs on its own asyncio loop in a thread of the supervisor, whose ``select`` loop it never
blocks; what it reads of the supervisor (which workers run, restarts) are plain attributes.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading

import structlog
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..app import api_records, sse
from ..app.guard import api_token
from ..app.metrics import CONTENT_TYPE
from ..app.outbound import parse_request
from ..app.server import ApiContext, ApiServer, error, read_json
from .channel import Channel, WorkerDown
from .merge import cell_readiness, merge_calls
from .metrics_sum import CellMetrics, from_json, render
from .slots import SlotView
from .uids import worker_of

log = structlog.get_logger("sipbridge.cell")

READY_TIMEOUT_S = 2.0       # a worker's /readyz, /v1/calls or /metrics answer
# /metrics: while it is being scraped, the workers are summed in the background every
# METRICS_REFRESH_S and a scrape answers with that sum (at most METRICS_MAX_AGE_S old) at
# once, instead of waiting for eight workers busy with 32 calls (35 ms p50, 80 p95 inline).
# Nobody scraping for METRICS_IDLE_S stops the refresh: an unwatched cell pays nothing.
METRICS_REFRESH_S = 1.0
METRICS_MAX_AGE_S = 2.0
METRICS_IDLE_S = 60.0
# POST /v1/calls: the workers' free slots are polled (/readyz) every SLOTS_REFRESH_S while calls
# are placed (until none for SLOTS_IDLE_S); a view older than SLOTS_MAX_AGE_S is asked inline.
SLOTS_REFRESH_S = 1.0
SLOTS_MAX_AGE_S = 3.0
SLOTS_IDLE_S = 60.0
RETRY_AFTER_S = 1
KEEPALIVE_S = 15.0
POLL_S = 0.5
STREAM_QUEUE = 1000         # events held for one slow /v1/events client before dropping
MAX_EVENT_BYTES = 4 << 20   # one event of a worker's stream (a record with its transcript)
RECONNECT_S = 1.0           # a worker's stream that ended (restart) is opened again after this


class CellApi:
    """``start()``/``stop()`` from the supervisor's thread. ``cell`` is the supervisor: it has
    ``cfg``, ``specs`` (index -> spec), ``running_workers()`` (index -> pid) and
    ``restart_count()``."""

    def __init__(self, cell, workdir, token: str):
        self.cell = cell
        self.cfg = cell.cfg
        self.channel_args = (workdir, token)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sipbridge-cell-api",
                                       daemon=True)
        self.channel: Channel | None = None
        self.sums = CellMetrics()
        self.server: ApiServer | None = None
        self._streams: set[asyncio.Queue] = set()
        self.stream_dropped = 0
        self._metrics: tuple[float, dict, int] | None = None   # (loop time, sum, workers up)
        self._metrics_asked = 0.0                          # loop time of the last scrape
        self._refresher: asyncio.Task | None = None
        self.slots = SlotView(SLOTS_MAX_AGE_S)
        self._placed_asked = 0.0                           # loop time of the last POST /v1/calls
        self._slot_poller: asyncio.Task | None = None

    # -- lifecycle (supervisor thread) ----------------------------------------------------------
    def start(self) -> None:
        """Serve ``api.listen``; raises ListenError (port taken) or ConfigError (token)."""
        self.thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        except BaseException:
            self._halt()
            raise

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(5)
        except Exception:  # noqa: BLE001 - exiting anyway
            log.exception("cell_api_stop_failed")
        self._halt()

    def _halt(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _start(self) -> None:
        self.channel = Channel(*self.channel_args)
        api = self.cfg.api
        token = api_token(api.listen, api.token_env, os.environ)
        ctx = ApiContext(worker=None, config=self.cfg, token=token)
        if self.cfg.records.path:
            from ..app.recordstore import RecordStore   # readers only: records_sink writes
            ctx.extra["records"] = RecordStore(self.cfg.records.path, self.cfg.records.keep_days)
        records = [r for r in api_records.routes(ctx) if r.path != "/v1/events"]
        self.server = ApiServer(ctx, api.listen, [self.routes, *records])
        await self.server.start()

    async def _stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        if self._slot_poller is not None:
            self._slot_poller.cancel()
        for q in list(self._streams):
            _offer(q, None)
        if self.server is not None:
            await self.server.stop()
        if self.channel is not None:
            await self.channel.close()

    # -- helpers ------------------------------------------------------------------------------
    def running(self) -> dict[int, int]:
        return self.cell.running_workers()

    async def _ask_all(self, path: str) -> dict[int, dict | None]:
        """GET ``path`` (JSON) from every running worker at once."""
        running = sorted(self.running())
        answers = await asyncio.gather(*(self.channel.json(i, path, READY_TIMEOUT_S)
                                         for i in running))
        return dict(zip(running, answers))

    @staticmethod
    def _pass(answer) -> web.Response:
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    async def _forward(self, request: web.Request, index: int) -> web.Response:
        body = await request.read() if request.can_read_body else None
        answer = await self.channel.request(index, request.method, request.path_qs, body=body,
                                            content_type=request.headers.get("Content-Type"))
        return self._pass(answer)

    # -- handlers -----------------------------------------------------------------------------
    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "alive", "workers_running": len(self.running()),
                                  "workers": len(self.cell.specs)})

    async def readyz(self, _request: web.Request) -> web.Response:
        body = cell_readiness(await self._ask_all("/readyz"), len(self.cell.specs))
        return web.json_response(body, status=200 if body["ready"] else 503)

    async def metrics(self, _request: web.Request) -> web.Response:
        now = self.loop.time()
        self._metrics_asked = now
        if self._metrics is not None and now - self._metrics[0] <= METRICS_MAX_AGE_S:
            _, families, up = self._metrics
        else:   # the first scrape in a while: sum now, and keep summing while scraped
            families, up = await self._sum_metrics()
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.ensure_future(self._refresh_metrics())
        # the supervisor's own figures are read now, not with the workers' sum
        own = [CounterMetricFamily("sipbridge_worker_restarts", "Worker processes restarted by "
                                   "the cell supervisor", value=self.cell.restart_count()),
               GaugeMetricFamily("sipbridge_cell_workers_up", "Workers of the cell that answered "
                                 "the last scrape", value=up),
               CounterMetricFamily("sipbridge_cell_stream_events_dropped", "Events a slow "
                                   "/v1/events client of the cell missed",
                                   value=self.stream_dropped)]
        sink = getattr(self.cell, "records", None)
        if sink is not None:   # the cell's one records writer (records_sink.py)
            own += sink.metric_families()
        return web.Response(body=render(families, own), headers={"Content-Type": CONTENT_TYPE})

    async def _refresh_metrics(self) -> None:
        while self.loop.time() - self._metrics_asked < METRICS_IDLE_S:
            await asyncio.sleep(METRICS_REFRESH_S)
            try:
                await self._sum_metrics()
            except Exception:  # noqa: BLE001 - the next scrape sums inline
                log.exception("cell_metrics_refresh_failed")
                return

    async def _sum_metrics(self) -> tuple[dict, int]:
        """Ask every running worker for its registry and add them up (kept for the next scrape):
        the summed families and how many workers answered."""
        running = self.running()
        indexes = sorted(self.cell.specs)

        async def scrape(i):
            if i not in running:
                return None
            try:
                answer = await self.channel.request(i, "GET", "/v1/cell/metrics",
                                                    timeout_s=READY_TIMEOUT_S)
                return from_json(json.loads(answer.body)) if answer.status == 200 else None
            except (WorkerDown, ValueError):
                return None
        scraped = await asyncio.gather(*(scrape(i) for i in indexes))
        fresh = []
        for i, families in zip(indexes, scraped):
            self.sums.update(i, running.get(i), families)
            if families is not None:
                fresh.append(i)
        families = self.sums.total(fresh)
        self._metrics = (self.loop.time(), families, len(fresh))
        return families, len(fresh)

    async def list_calls(self, _request: web.Request) -> web.Response:
        return web.json_response(merge_calls(await self._ask_all("/v1/calls")))

    async def one_call(self, request: web.Request) -> web.Response:
        """GET a call, its outbound progress, or an action on it: to the worker holding it."""
        uid = request.match_info["uid"]
        index = worker_of(uid)
        if index is None or index not in self.running():
            return error(404, f"no call {uid} in progress")
        try:
            return await self._forward(request, index)
        except WorkerDown:
            return error(404, f"no call {uid} in progress (its worker is not answering)")

    async def place_call(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = await read_json(request)
        # the workers' own view: they dial through every trunk (cli.worker_config), so a known
        # trunk passes and an unknown one is 400 naming "trunk" here, before any worker is asked
        parse_request(body, self.cfg)
        self._placed_asked = self.loop.time()
        if self._slot_poller is None or self._slot_poller.done():
            self._slot_poller = asyncio.ensure_future(self._poll_slots())
        # a worker without a current report (restarted, slow to answer) is left to the poll
        # while another is known free; the first call in a while asks them all, below
        refusals, tried, asked_all = [], [], False
        while True:
            order = self.slots.order(self.running(), self.loop.time(), skip=tried)
            if not order:   # none free as the view counts: ask them now before saying 503
                if asked_all:
                    break
                asked_all = True
                await self._ask_slots([i for i in sorted(self.running()) if i not in tried])
                continue
            index = order[0]
            tried.append(index)
            self.slots.take(index)
            try:
                answer = await self.channel.request(index, "POST", "/v1/calls", body=raw,
                                                    content_type="application/json")
            except WorkerDown as exc:
                self.slots.full(index)
                refusals.append(str(exc))
                continue
            if answer.status == 503:   # it filled up meanwhile: the next one
                self.slots.full(index)
                refusals.append(f"worker {index}: {answer.body[:200].decode(errors='replace')}")
                continue
            if answer.status == 201:
                self.slots.placed(index, self.loop.time())
                log.info("cell_outbound_placed", worker=index)
            else:
                self.slots.gave_back(index)
            return self._pass(answer)
        log.warning("outbound_refused", status=503, reason="no free call slot in the cell",
                    tried=len(refusals))
        return error(503, "no free call slot in the cell", headers={"Retry-After":
                                                                     str(RETRY_AFTER_S)})

    async def _ask_slot(self, index: int) -> None:
        """Ask worker ``index`` its ``/readyz`` for the slot view (no answer: none free)."""
        pid, asked = self.running().get(index), self.loop.time()
        state = await self.channel.json(index, "/readyz", READY_TIMEOUT_S)
        if pid is not None:
            self.slots.report(index, pid, state, asked)

    async def _ask_slots(self, indexes: list[int]) -> None:
        """Ask workers ``indexes`` at once; each answer counts as it comes."""
        await asyncio.gather(*(self._ask_slot(i) for i in indexes))

    async def _poll_slots(self) -> None:
        """Keep the slot view fresh while calls are placed; stop after SLOTS_IDLE_S without.
        Each worker is asked on its own, so one slow to answer leaves the others' fresh."""
        asking: dict[int, asyncio.Task] = {}
        try:
            while self.loop.time() - self._placed_asked < SLOTS_IDLE_S:
                await asyncio.sleep(SLOTS_REFRESH_S)
                for index in sorted(self.running()):
                    if index not in asking or asking[index].done():
                        asking[index] = asyncio.ensure_future(self._ask_slot(index))
        finally:
            for task in asking.values():
                task.cancel()

    async def events(self, request: web.Request) -> web.StreamResponse:
        resp = sse.response()
        await resp.prepare(request)
        q: asyncio.Queue = asyncio.Queue(STREAM_QUEUE)
        self._streams.add(q)
        relays = [asyncio.create_task(self._relay(i, q)) for i in sorted(self.cell.specs)]
        try:   # the workers' blocks are SSE already: written as they came
            await sse.relay(request, resp, q, b": sipbridge cell events\n\n", bytes,
                            poll_s=POLL_S, keepalive_s=KEEPALIVE_S)
        finally:
            self._streams.discard(q)
            for task in relays:
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)
        return resp

    async def _relay(self, index: int, q: asyncio.Queue) -> None:
        """Copy worker ``index``'s event stream into ``q``, event by event (comments dropped),
        opening it again after a restart, until cancelled."""
        while True:
            if index in self.running():
                try:
                    stream = await self.channel.stream(index, "/v1/events")
                except WorkerDown:
                    stream = None
                if stream is not None:
                    try:   # events are split on blank lines, whatever their length
                        buf = b""
                        async for chunk in stream.content.iter_any():
                            buf += chunk
                            *blocks, buf = buf.split(b"\n\n")
                            for block in blocks:
                                if block.strip() and not block.startswith(b":"):
                                    if not _offer(q, block + b"\n\n"):
                                        self.stream_dropped += 1
                            if len(buf) > MAX_EVENT_BYTES:   # not an event stream: start over
                                break
                    except Exception:  # noqa: BLE001 - the worker went away: open it again
                        pass
                    finally:
                        stream.release()
            await asyncio.sleep(RECONNECT_S)

    def routes(self, _ctx) -> list[web.RouteDef]:
        return [web.get("/healthz", self.healthz), web.get("/readyz", self.readyz),
                web.get("/metrics", self.metrics), web.get("/v1/calls", self.list_calls),
                web.post("/v1/calls", self.place_call), web.get("/v1/events", self.events),
                web.get("/v1/calls/{uid}", self.one_call),
                web.get("/v1/calls/{uid}/progress", self.one_call),
                web.post("/v1/calls/{uid}/{action}", self.one_call)]


def _offer(q: asyncio.Queue, item) -> bool:
    """Put without waiting; a full queue drops its oldest item first (False: one was dropped)."""
    try:
        q.put_nowait(item)
        return True
    except asyncio.QueueFull:
        try:
            q.get_nowait()
        except asyncio.QueueEmpty:
            pass
        q.put_nowait(item)
        return False

