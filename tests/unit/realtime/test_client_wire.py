"""RealtimeClient against a scripted raw WebSocket server: headers, URL, odd and hostile upstreams."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.server import serve

from sipbridge.realtime import protocol as p
from sipbridge.realtime.client import RealtimeClient, UpstreamError, with_model
from sipbridge.realtime.events import Malformed, ResponseCreated

from .helpers import arun, wait_until

CREATED = json.dumps({"type": "session.created", "event_id": "e1", "session": {"id": "s"}})
UPDATED = json.dumps({"type": "session.updated", "event_id": "e2", "session": {"id": "s"}})


class Scripted:
    """A raw server: greets, answers session.update with ``answer``, then runs ``after(ws)``."""

    def __init__(self, answer: str | None = UPDATED, after=None):
        self.requests = []
        self.received: list[dict] = []
        self._answer, self._after = answer, after

    def _capture(self, connection, request):
        self.requests.append(request)

    async def _handler(self, ws):
        await ws.send(CREATED)
        self.received.append(json.loads(await ws.recv()))
        if self._answer is not None:
            await ws.send(self._answer)
        if self._after is not None:
            await self._after(ws)
        else:
            async for message in ws:
                self.received.append(json.loads(message))

    async def start(self):
        self.server = await serve(self._handler, "127.0.0.1", 0, process_request=self._capture)
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()


def test_with_model_appends_and_replaces():
    """with_model adds ?model= and keeps other query parameters, replacing an existing model."""
    assert with_model("wss://api.example/v1/realtime", "gpt-x") == "wss://api.example/v1/realtime?model=gpt-x"
    assert with_model("ws://h:1/rt?a=1&model=old", "new m") == "ws://h:1/rt?a=1&model=new+m"


def test_beta_headers_and_model_query():
    """A beta client sends Bearer auth, OpenAI-Beta: realtime=v1 and ?model= on the upgrade, then a beta update."""

    async def body():
        srv = Scripted()
        url = await srv.start()
        cfg = p.SessionConfig(model="ignored", api="beta")
        client = RealtimeClient(url + "/v1/realtime", "gpt-test", "sk-123", cfg, lambda e: None)
        await client.connect()
        (req,) = srv.requests
        assert req.path == "/v1/realtime?model=gpt-test"
        assert req.headers["Authorization"] == "Bearer sk-123"
        assert req.headers["OpenAI-Beta"] == "realtime=v1"
        assert srv.received[0]["session"]["input_audio_format"] == "pcm16"
        await client.close()
        await srv.stop()

    arun(body())


def test_ga_without_key_sends_no_auth_headers():
    """A GA client without a key sends neither Authorization nor OpenAI-Beta."""

    async def body():
        srv = Scripted()
        url = await srv.start()
        client = RealtimeClient(url, "m", None, p.SessionConfig(model="m"), lambda e: None)
        await client.connect()
        headers = srv.requests[0].headers
        assert "Authorization" not in headers and "OpenAI-Beta" not in headers
        await client.close()
        await srv.stop()

    arun(body())


def test_no_session_updated_times_out():
    """A server that never answers session.update makes connect() fail with UpstreamError after connect_timeout."""

    async def body():
        srv = Scripted(answer=None, after=lambda ws: ws.wait_closed())
        url = await srv.start()
        client = RealtimeClient(url, "m", None, p.SessionConfig(model="m"), lambda e: None, connect_timeout=0.3)
        with pytest.raises(UpstreamError, match="no session.updated"):
            await client.connect()
        await srv.stop()

    arun(body())


def test_error_reply_to_session_update_raises():
    """An error event in answer to session.update makes connect() raise with its code and message."""

    async def body():
        err = json.dumps({"type": "error", "event_id": "e", "error": {"type": "invalid_request_error",
                          "code": "invalid_value", "message": "Invalid voice", "event_id": None}})
        srv = Scripted(answer=err, after=lambda ws: ws.wait_closed())
        url = await srv.start()
        client = RealtimeClient(url, "m", None, p.SessionConfig(model="m"), lambda e: None)
        with pytest.raises(UpstreamError, match="invalid_value: Invalid voice"):
            await client.connect()
        await srv.stop()

    arun(body())


def test_close_during_setup_raises():
    """A server that closes before session.updated makes connect() raise UpstreamError carrying the close code."""

    async def body():
        async def slam(ws):
            await ws.close(4001, "go away")

        srv = Scripted(answer=None, after=slam)
        url = await srv.start()
        client = RealtimeClient(url, "m", None, p.SessionConfig(model="m"), lambda e: None)
        with pytest.raises(UpstreamError) as info:
            await client.connect()
        assert info.value.close_code == 4001 and "go away" in str(info.value)
        await srv.stop()

    arun(body())


def test_malformed_frames_are_counted_and_abnormal_close_raises():
    """Garbage frames reach on_event as Malformed and are counted; a 1011 close makes run() raise UpstreamError."""

    async def misbehave(ws):
        await ws.send("this is not json")
        await ws.send(b"\xff\x00binary")
        await ws.send(json.dumps({"type": "response.created", "response": {"id": "r1"}}))
        await ws.close(1011, "internal error")

    async def body():
        srv = Scripted(after=misbehave)
        url = await srv.start()
        events = []
        client = RealtimeClient(url, "m", None, p.SessionConfig(model="m"), events.append)
        await client.connect()
        with pytest.raises(UpstreamError) as info:
            await client.run()
        assert info.value.close_code == 1011
        assert client.malformed == 2
        assert sum(isinstance(e, Malformed) for e in events) == 2
        assert ResponseCreated("r1") in events
        assert client.events_in == 5
        await client.close()
        await srv.stop()

    arun(body())


def test_writer_preserves_order():
    """Events sent back-to-back arrive at the server in send order and are counted in events_out."""

    async def body():
        srv = Scripted()
        url = await srv.start()
        client = RealtimeClient(url, "m", None, p.SessionConfig(model="m"), lambda e: None)
        await client.connect()
        sent = [p.input_audio_append(bytes([i, 0]) * 10) for i in range(50)] + [p.input_audio_commit()]
        for ev in sent:
            client.send(ev)
        await wait_until(lambda: len(srv.received) == 1 + len(sent))
        assert [r["event_id"] for r in srv.received[1:]] == [e["event_id"] for e in sent]
        assert client.events_out == 1 + len(sent) and client.pending == 0
        await client.close()
        await srv.stop()

    arun(body())


def test_send_during_connect_is_queued_and_failed_client_drops():
    """A send while connect() is in flight is delivered after session.update; after a failed connect sends are dropped."""

    async def body():
        srv = Scripted()
        url = await srv.start()
        client = RealtimeClient(url, "m", None, p.SessionConfig(model="m"), lambda e: None)
        connecting = asyncio.create_task(client.connect())
        await asyncio.sleep(0)
        commit = p.input_audio_commit()
        client.send(commit)
        await connecting
        assert client.connected
        await wait_until(lambda: len(srv.received) == 2)
        assert [r["type"] for r in srv.received] == ["session.update", "input_audio_buffer.commit"]
        with pytest.raises(UpstreamError, match="state 'open'"):
            await client.connect()
        await client.close()
        assert not client.connected
        await srv.stop()

        dead = RealtimeClient(url, "m", None, p.SessionConfig(model="m"), lambda e: None, connect_timeout=0.5)
        with pytest.raises(UpstreamError):
            await dead.connect()
        dead.send(p.response_create())
        assert dead.dropped == 1 and dead.pending == 0

    arun(body())
