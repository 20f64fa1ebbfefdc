"""POST /v1/calls and GET /v1/calls/{uid}/progress on a real aiohttp server on loopback.

The worker is a stand-in (pjsua2 may not be imported in pytest): a real control thread runs
posted commands, and ``place_call`` records the validated request it is given, then returns a
uid or refuses as the dialer does.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import urllib.error
import urllib.request

import pytest

from sipbridge import config
from sipbridge.app import api_outbound
from sipbridge.app.outbound import Refused
from sipbridge.app.progress import Progress
from sipbridge.app.server import ApiContext, ApiServer
from tests.support.ports import free_tcp_port


class Dialer:
    def __init__(self):
        self.progress: dict[str, Progress] = {}

    def state(self, uid):
        p = self.progress.get(uid)
        return None if p is None else p.as_dict()


class Worker:
    def __init__(self):
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self.dialer = Dialer()
        self.placed: list = []
        self.threads: list[str] = []
        self.refuse: Refused | None = None
        threading.Thread(target=self._run, name="control", daemon=True).start()

    def _run(self):
        while (cmd := self._commands.get()) is not None:
            cmd()

    def post(self, command):
        self._commands.put(command)

    def place_call(self, request):
        self.threads.append(threading.current_thread().name)
        if self.refuse is not None:
            raise self.refuse
        self.placed.append(request)
        uid = f"c_{len(self.placed):016x}"
        p = Progress(time.time())
        p.on_invite_sent(time.time())
        self.dialer.progress[uid] = p
        return uid


@pytest.fixture
def api(loop):
    worker = Worker()
    cfg = config.build({"trunks": [{"name": "carrier", "registrar": "sip:10.1.2.3:5080",
                                    "username": "acme", "password_env": "PW"}]}, {"PW": "x"})
    port = free_tcp_port()
    server = ApiServer(ApiContext(worker, cfg), f"127.0.0.1:{port}", [api_outbound.routes])
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)

    def request(method, path, body=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read()), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()), dict(e.headers)
    yield worker, request
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
    worker.post(None)


def test_a_call_is_placed_on_the_control_thread_and_answered_201(api):
    """A valid body is dialled by place_call on the control thread; 201 carries uid, state and Location."""
    worker, request = api
    status, body, headers = request("POST", "/v1/calls", {
        "to": "+4930123", "trunk": "carrier", "from": "100", "headers": {"X-Ref": "7"}})
    assert status == 201, body
    assert body["uid"] == "c_0000000000000001" and body["state"] == "queued"
    assert body["progress"]["invite_sent_at"] is not None
    assert headers["Location"] == "/v1/calls/c_0000000000000001"
    assert worker.threads == ["control"]
    placed = worker.placed[0]
    assert placed.uri == "sip:+4930123@10.1.2.3:5080" and placed.headers == (("X-Ref", "7"),)
    status, progress, _ = request("GET", "/v1/calls/c_0000000000000001/progress")
    assert status == 200 and progress["state"] == "queued" and progress["uid"] == body["uid"]


def test_no_free_slot_is_503_json_with_retry_after(api):
    """A refusal for want of a slot is 503 JSON (error unavailable) with Retry-After, at once."""
    worker, request = api
    worker.refuse = Refused(503, "no free call slot (4 of 4 in use)")
    t0 = time.monotonic()
    status, body, headers = request("POST", "/v1/calls", {"to": "sip:a@127.0.0.1"})
    assert time.monotonic() - t0 < 1.0
    assert (status, body["error"]) == (503, "unavailable")
    assert body["message"] == "no free call slot (4 of 4 in use)" and headers["Retry-After"] == "1"


def test_a_target_pjsua_refuses_is_400_on_to(api):
    """A Refused(400, field=to) from the dialer is a 400 naming to."""
    worker, request = api
    worker.refuse = Refused(400, "INVITE not sent: Invalid URI", "to")
    status, body, _ = request("POST", "/v1/calls", {"to": "sip:a@127.0.0.1"})
    assert (status, body["field"]) == (400, "to")


def test_bad_bodies_never_reach_the_worker(api):
    """Broken JSON, a non-object, a missing to and a bad header are 400 by field; place_call is never called."""
    worker, request = api
    cases = ((b"{", "body"), (b"[1]", "body"), (b"{}", "to"),
             (b'{"to": "sip:a@h", "headers": {"Contact": "x"}}', "headers.Contact"))
    for raw, field in cases:
        status, body, _ = request("POST", "/v1/calls", raw=raw)
        assert (status, body.get("field")) == (400, field), body
    assert worker.threads == []


def test_progress_of_an_unknown_call_is_404(api):
    """GET /v1/calls/{uid}/progress for a uid the dialer does not know is 404 JSON."""
    _worker, request = api
    status, body, _ = request("GET", "/v1/calls/c_ffffffffffffffff/progress")
    assert status == 404 and body["error"] == "not_found"
