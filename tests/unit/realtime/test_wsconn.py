"""SocketSession, the WebSocket plumbing of every adapter, with a toy protocol against a real loopback server."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
import structlog
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from sipbridge.realtime.upstream import CloseInfo, UpstreamError
from sipbridge.realtime.wsconn import SocketSession, is_loopback, refusal

from .helpers import arun, wait_until


class Toy(SocketSession):
    """Handshake: send ``hello``, wait for ``ready``. Every message read is kept."""

    name = "Toy"
    setup_reply = "ready"
    peer = "toy"

    def __init__(self, url: str, api_key: str | None = None, connect_timeout: float = 2.0):
        super().__init__(url, api_key, connect_timeout, structlog.get_logger())
        self.read: list[dict] = []

    async def _handshake(self, ws) -> None:
        await ws.send(json.dumps({"type": "hello"}))
        while json.loads(await ws.recv()).get("type") != "ready":
            pass

    def _ingest(self, message) -> None:
        self.read.append(json.loads(message))


class Server:
    """Answers ``hello`` with ``ready`` (unless ``ready`` is False), records what it receives, then
    runs ``after(ws)``."""

    def __init__(self, ready: bool = True, after=None):
        self.received: list[dict] = []
        self.headers = []
        self._ready, self._after = ready, after

    async def _handler(self, ws):
        self.headers.append(ws.request.headers)
        try:
            self.received.append(json.loads(await ws.recv()))
            if self._ready:
                await ws.send(json.dumps({"type": "ready"}))
            if self._after is not None:
                await self._after(ws)
            async for message in ws:
                self.received.append(json.loads(message))
        except ConnectionClosed:
            pass   # the client gave up (the deadline test)

    async def __aenter__(self) -> str:
        self.server = await serve(self._handler, "127.0.0.1", 0)
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_queued_messages_follow_the_handshake_in_order_and_are_counted():
    """Messages sent before connect() go out after the handshake, in order, with the bearer key, counted in events_out."""

    async def body():
        srv = Server()
        async with srv as url:
            toy = Toy(url, api_key="k-1")
            for i in range(3):
                toy._send({"n": i})
            await toy.connect()
            for i in range(3, 6):
                toy._send({"n": i})
            await wait_until(lambda: len(srv.received) == 7)
            assert [m.get("n") for m in srv.received] == [None, 0, 1, 2, 3, 4, 5]
            assert srv.headers[0]["Authorization"] == "Bearer k-1"
            assert toy.events_out == 6 and toy.connected and toy.pending == 0
            await toy.close()
            assert not toy.connected

    arun(body())


def test_a_failed_connect_names_the_peer_and_counts_what_was_queued():
    """A refused TCP connect is an UpstreamError in the subclass's words; queued and later messages are dropped and counted."""

    async def body():
        toy = Toy(f"ws://127.0.0.1:{_free_port()}")
        toy._send({"n": 0})
        with pytest.raises(UpstreamError, match="cannot connect to toy ws://127.0.0.1"):
            await toy.connect()
        toy._send({"n": 1})
        assert toy.dropped == 2 and toy._state == "failed"
        with pytest.raises(UpstreamError, match="connect\\(\\) on a Toy in state 'failed'; make a new one"):
            await toy.connect()

    arun(body())


def test_no_handshake_reply_within_the_deadline_says_what_was_awaited():
    """A server that never completes the handshake gives 'no <setup_reply> from toy ... within <t> s'."""

    async def body():
        async with Server(ready=False) as url:
            toy = Toy(url, connect_timeout=0.3)
            with pytest.raises(UpstreamError, match=r"no ready from toy ws://.* within 0\.3 s"):
                await toy.connect()

    arun(body())


def test_run_returns_on_a_normal_close_and_raises_with_the_code_otherwise():
    """run() hands messages to _ingest; close 1000 is CloseInfo, close 4001 an UpstreamError with close_code 4001."""

    async def close_with(code):
        async def after(ws):
            await ws.send(json.dumps({"type": "one"}))
            await ws.close(code, "bye")
        return after

    async def body():
        async with Server(after=await close_with(1000)) as url:
            toy = Toy(url)
            await toy.connect()
            assert await toy.run() == CloseInfo(1000, "bye") and toy.read == [{"type": "one"}]
        async with Server(after=await close_with(4001)) as url:
            toy = Toy(url)
            await toy.connect()
            with pytest.raises(UpstreamError, match="toy .* dropped the connection \\(code 4001\\) bye") as err:
                await toy.run()
            assert err.value.close_code == 4001

    arun(body())


def test_close_while_connecting_closes_the_new_socket():
    """close() during connect() wins: connect() raises 'Toy closed while connecting' and nothing more is sent."""

    async def body():
        gate = asyncio.Event()

        class Slow(Toy):
            async def _handshake(self, ws):
                await super()._handshake(ws)
                await gate.wait()

        async with Server() as url:
            toy = Slow(url)
            task = asyncio.ensure_future(toy.connect())
            await asyncio.sleep(0.2)
            await toy.close()
            gate.set()
            with pytest.raises(UpstreamError, match="Toy closed while connecting"):
                await task
            toy._send({"n": 0})
            assert toy.dropped == 1

    arun(body())


def test_loopback_and_refusal_wording():
    """Loopback hosts skip the proxy; a refusal names the status, its phrase, a hint and the body's start."""
    assert is_loopback("ws://127.0.0.1:9/x") and is_loopback("wss://localhost/") and is_loopback("ws://[::1]:1")
    assert not is_loopback("wss://api.example.com/") and not is_loopback("ws://10.0.0.1/")
    assert refusal("wss://h/", 401, b'{"error": "bad key"}') == \
        'upstream wss://h/ refused the WebSocket upgrade: HTTP 401 Unauthorized (API key missing or invalid): ' \
        '{"error": "bad key"}'
    assert refusal("wss://h/", 404, None) == \
        "upstream wss://h/ refused the WebSocket upgrade: HTTP 404 Not Found (wrong URL or unknown model)"
