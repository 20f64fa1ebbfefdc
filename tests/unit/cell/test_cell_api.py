"""The cell's API (sipbridge/cell/api.py) on a real loopback port, in front of stand-in workers:
real aiohttp servers on the unix sockets the supervisor would hand its workers, answering
``/readyz``, ``/v1/calls`` and ``POST /v1/calls`` as scripted, and checking the internal token.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from aiohttp import web

from sipbridge import config
from sipbridge.cell.api import CellApi
from sipbridge.cell.channel import socket_path
from sipbridge.errors import ListenError
from tests.support.ports import free_tcp_port

INTERNAL = "internal-token-for-the-test"


class StandIn:
    """Worker ``index``: its readiness, its calls, and the outbound requests it was given."""

    def __init__(self, index: int, calls: int = 0, slots: int = 4, ready: bool = True,
                 refuse: bool = False):
        self.index, self.calls, self.slots, self.ready, self.refuse = index, calls, slots, ready, refuse
        self.placed: list[dict] = []
        self.unauthorized = 0
        self.metrics_asked = 0
        self.events = [{"id": f"msg_{index}_{n}", "type": "call.ended",
                        "data": {"uid": f"c_{index}_{n:016x}", "transcript": "\u00e9" * 40000 * n}}
                       for n in range(2)]

    def app(self) -> web.Application:
        @web.middleware
        async def token(request, handler):
            if request.headers.get("Authorization") != f"Bearer {INTERNAL}":
                self.unauthorized += 1
                return web.json_response({"error": "unauthorized"}, status=401)
            if request.path == "/v1/cell/metrics":
                self.metrics_asked += 1   # not served: a worker without metrics is summed as none
            return await handler(request)

        async def readyz(_r):
            ok = self.ready and self.calls < self.slots
            return web.json_response({"ready": ok, "reasons": [] if ok else ["capacity"],
                                      "calls": self.calls, "slots": self.slots},
                                     status=200 if ok else 503)

        async def calls(_r):
            return web.json_response({"calls": [{"uid": f"c_{self.index}_{n:016x}",
                                                 "state": "answered"} for n in range(self.calls)]})

        async def place(request):
            if self.refuse:
                return web.json_response({"error": "unavailable"}, status=503,
                                         headers={"Retry-After": "1"})
            self.placed.append(await request.json())
            self.calls += 1
            uid = f"c_{self.index}_{len(self.placed):016x}"
            return web.json_response({"uid": uid, "state": "queued"}, status=201,
                                     headers={"Location": f"/v1/calls/{uid}"})

        async def one(request):
            uid = request.match_info["uid"]
            return web.json_response({"uid": uid, "worker": self.index, "query": request.query_string})

        async def events(request):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(b": stand-in\n\n")
            for event in self.events:
                data = json.dumps(event).encode()
                # written in small pieces: an event may span many reads
                text = b"id: " + event["id"].encode() + b"\nevent: " + event["type"].encode() \
                    + b"\ndata: " + data + b"\n\n"
                for i in range(0, len(text), 7000):
                    await resp.write(text[i:i + 7000])
                await resp.write(b": keepalive\n\n")
            for _ in range(300):   # open until the cell lets go of it
                if request.transport is None or request.transport.is_closing():
                    break
                await asyncio.sleep(0.1)
            return resp

        app = web.Application(middlewares=[token])
        app.router.add_get("/v1/events", events)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/v1/calls", calls)
        app.router.add_post("/v1/calls", place)
        app.router.add_get("/v1/calls/{uid}", one)
        return app


class Cell:
    """What CellApi reads of the supervisor."""

    def __init__(self, cfg, running: dict[int, int]):
        self.cfg = cfg
        self.specs = {0: None, 1: None, 2: None}
        self.running = running
        self.restarts = 0

    def running_workers(self):
        return dict(self.running)

    def restart_count(self):
        return self.restarts


@pytest.fixture
def front(tmp_path):
    workers = [StandIn(0, calls=3), StandIn(1, calls=1), StandIn(2, calls=2)]
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    runners = []

    async def serve(w):
        runner = web.AppRunner(w.app())
        await runner.setup()
        await web.UnixSite(runner, socket_path(tmp_path, w.index)).start()
        runners.append(runner)
    for w in workers:
        asyncio.run_coroutine_threadsafe(serve(w), loop).result(5)
    port = free_tcp_port()
    cfg = config.build({"api": {"listen": f"127.0.0.1:{port}"}, "records": {"path": None},
                        "trunks": [{"name": "carrier", "registrar": "sip:127.0.0.1:5099",
                                    "username": "acme", "password_env": "PW"}]},
                       environ={"PW": "secret"})
    cell = Cell(cfg, {0: 100, 1: 101, 2: 102})
    api = CellApi(cell, tmp_path, INTERNAL)
    api.start()
    yield f"http://127.0.0.1:{port}", workers, cell
    api.stop()
    for r in runners:
        asyncio.run_coroutine_threadsafe(r.cleanup(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)


def call(url, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def test_outbound_goes_to_the_worker_with_most_free_slots(front):
    """POST /v1/calls reaches worker 1 (3 free slots), its 201 and Location passed on as is."""
    url, workers, _ = front
    status, body, headers = call(url + "/v1/calls", "POST", {"to": "sip:100@127.0.0.1:5099"})
    assert status == 201 and body["uid"].startswith("c_1_"), body
    assert headers["Location"] == f"/v1/calls/{body['uid']}"
    assert [len(w.placed) for w in workers] == [0, 1, 0]
    assert workers[1].placed == [{"to": "sip:100@127.0.0.1:5099"}]
    assert sum(w.unauthorized for w in workers) == 0


def test_outbound_passes_over_a_worker_that_filled_up_meanwhile(front):
    """A worker answering 503 after all is skipped for the next best one."""
    url, workers, _ = front
    workers[1].refuse = True
    status, body, _ = call(url + "/v1/calls", "POST", {"to": "sip:100@127.0.0.1:5099"})
    assert status == 201 and body["uid"].startswith("c_2_"), body


def test_outbound_with_no_free_slot_in_the_cell_is_503_at_once(front):
    """Every worker full, not ready or down: 503 JSON with Retry-After, nothing placed."""
    url, workers, cell = front
    workers[0].calls, workers[1].ready = 4, False
    del cell.running[2]
    status, body, headers = call(url + "/v1/calls", "POST", {"to": "sip:100@127.0.0.1:5099"})
    assert status == 503 and body["error"] == "unavailable" and headers["Retry-After"] == "1"
    assert [w.placed for w in workers] == [[], [], []]


def test_a_bad_outbound_body_is_400_before_any_worker_is_asked(front):
    """A body the workers would refuse is refused at the front, naming the field."""
    url, workers, _ = front
    status, body, _ = call(url + "/v1/calls", "POST", {"to": "sip:x@y", "ring_timeout_s": "soon"})
    assert status == 400 and body["field"] == "ring_timeout_s", body
    assert [w.placed for w in workers] == [[], [], []]


def test_a_number_through_a_known_trunk_is_placed_and_an_unknown_trunk_is_400(front):
    """The workers dial through the cell's trunks: a known one goes to a worker as is, an
    unknown one is refused at the front naming ``trunk``, with nothing placed."""
    url, workers, _ = front
    status, body, _ = call(url + "/v1/calls", "POST", {"to": "100", "trunk": "nope"})
    assert status == 400 and body["field"] == "trunk" and "carrier" in body["message"], body
    assert [w.placed for w in workers] == [[], [], []]
    status, body, _ = call(url + "/v1/calls", "POST", {"to": "100", "trunk": "carrier"})
    assert status == 201 and body["uid"].startswith("c_1_"), body
    assert workers[1].placed == [{"to": "100", "trunk": "carrier"}]


def test_list_merges_and_requests_reach_the_worker_named_in_the_uid(front):
    """GET /v1/calls merges all workers' calls; GET /v1/calls/{uid} (query kept) goes to the
    worker in the uid; a uid naming no running worker, or none, is 404."""
    url, _, cell = front
    status, body, _ = call(url + "/v1/calls")
    assert status == 200 and [c["worker"] for c in body["calls"]] == [0, 0, 0, 1, 2, 2]
    status, body, _ = call(url + "/v1/calls/c_2_00000000000000ab?x=1")
    assert status == 200 and body == {"uid": "c_2_00000000000000ab", "worker": 2, "query": "x=1"}
    del cell.running[2]
    for uid in ("c_2_00000000000000ab", "c_5_00000000000000ab", "c_00000000000000ab"):
        status, body, _ = call(url + f"/v1/calls/{uid}")
        assert status == 404 and body["error"] == "not_found", uid
    status, body, _ = call(url + "/v1/calls")
    assert body["workers_unavailable"] == [] and {c["worker"] for c in body["calls"]} == {0, 1}


def test_readyz_is_ready_while_one_worker_is(front):
    """Two full or stopped workers and one ready: 200 with each worker's detail; none: 503."""
    url, workers, cell = front
    workers[0].calls = 4
    del cell.running[2]
    status, body, _ = call(url + "/readyz")
    assert status == 200 and body["workers_ready"] == 1 and body["workers"]["1"]["ready"]
    assert body["workers"]["2"]["reasons"] == ["worker: not running"]
    workers[1].ready = False
    status, body, _ = call(url + "/readyz")
    assert status == 503 and body["reasons"] == ["no worker is ready"]


def test_a_taken_port_is_a_listen_error(front, tmp_path):
    """A second cell API on the same api.listen raises ListenError (exit 1), not a hang."""
    url, _, cell = front
    other = CellApi(Cell(cell.cfg, {}), tmp_path, INTERNAL)
    with pytest.raises(ListenError):
        other.start()


def test_events_merge_every_workers_stream_each_event_once(front):
    """GET /v1/events at the cell carries each worker's events once, whole (a 240 kB one too),
    the workers' comment lines left out."""
    url, workers, _ = front
    import http.client
    conn = http.client.HTTPConnection(url[len("http://"):].split(":")[0],
                                      int(url.rsplit(":", 1)[1]), timeout=10)
    conn.request("GET", "/v1/events")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    got, fields, comments = [], {}, 0
    while len(got) < 6:
        line = resp.readline().decode().rstrip("\n")
        if line.startswith(":"):
            comments += 1
        elif not line:
            if fields:
                got.append((fields["id"], fields["event"], json.loads(fields["data"])))
            fields = {}
        else:
            key, _, value = line.partition(": ")
            fields[key] = value
    conn.close()
    want = {e["id"]: e for w in workers for e in w.events}
    assert sorted(i for i, _, _ in got) == sorted(want)
    for i, etype, event in got:
        assert event == want[i] and etype == "call.ended"
    assert comments == 1   # the cell's own opening comment only


def test_metrics_are_summed_in_the_background_while_scraped(front):
    """A scrape answers from the workers' sum of the last second without asking them again, while
    the supervisor's own figures (restarts) are read at the scrape."""
    url, workers, cell = front

    def scrape() -> str:
        with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
            assert r.status == 200
            return r.read().decode()
    assert "sipbridge_worker_restarts_total 0.0" in scrape()
    assert all(w.metrics_asked == 1 for w in workers)
    cell.restarts = 1
    second = scrape()
    assert all(w.metrics_asked == 1 for w in workers)   # answered from the kept sum
    assert "sipbridge_worker_restarts_total 1.0" in second
    deadline = time.monotonic() + 5
    while not all(w.metrics_asked >= 2 for w in workers):   # the refresh, about once a second
        assert time.monotonic() < deadline, [w.metrics_asked for w in workers]
        time.sleep(0.1)
