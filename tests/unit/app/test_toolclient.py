"""ToolClient against a real aiohttp server on 127.0.0.1: answers, slow, dead, huge, failing."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web

from sipbridge.app import toolcall
from sipbridge.app.toolcall import MAX_REPLY_BYTES
from sipbridge.app.toolclient import ToolClient
from tests.support.ports import free_tcp_port


def req() -> toolcall.Request:
    return toolcall.build_request(uid="c_1", sip_call_id="s", name="f", arguments={"x": 1},
                                  function_call_id="call_1", metadata={}, key=None, msg_id="m",
                                  timestamp=1)


async def handler(request: web.Request) -> web.StreamResponse:
    kind = request.path.strip("/")
    if kind == "ok":
        body = await request.json()
        return web.json_response({"echo": body["arguments"]})
    if kind == "slow":
        await asyncio.sleep(5)
        return web.json_response({})
    if kind == "fail":
        return web.Response(status=503, text="down")
    if kind == "redirect":
        raise web.HTTPFound("/ok")
    if kind == "huge_declared":
        return web.Response(body=b"[" + b"1," * MAX_REPLY_BYTES + b"1]", content_type="application/json")
    if kind == "huge_chunked":  # no Content-Length: the limit holds while reading
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b" " * 8192)
        await resp.write(b"{}")
        return resp
    if kind == "drip":  # headers at once, then the body never ends
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b'{"a": ')
        await asyncio.sleep(5)
        return resp
    return web.Response(status=404)


async def call(path: str, timeout_ms: int = 1000, port: int | None = None):
    runner = web.AppRunner(web.Application(), shutdown_timeout=0.2)
    runner.app.router.add_route("POST", "/{tail:.*}", handler)
    await runner.setup()
    own = free_tcp_port()
    site = web.TCPSite(runner, "127.0.0.1", own)
    await site.start()
    client = ToolClient(f"http://127.0.0.1:{port or own}/{path}", timeout_ms)
    try:
        started = time.monotonic()
        out = await client.post(req())
        return out, (time.monotonic() - started) * 1000
    finally:
        await client.close()
        await runner.cleanup()


def run(coro):
    return asyncio.run(coro)


def test_a_json_answer_is_the_output():
    """The app's JSON reply comes back as the output; the app saw the parsed arguments."""
    out, _ = run(call("ok"))
    assert out.ok and json.loads(out.output) == {"echo": {"x": 1}} and out.status == 200


@pytest.mark.parametrize("path", ["slow", "drip"])
def test_an_app_that_does_not_answer_in_time_is_a_timeout_at_the_deadline(path):
    """No reply (or a body that never ends) within timeout_ms: tool_timeout, not much later."""
    out, ms = run(call(path, timeout_ms=300))
    assert out.kind == toolcall.TIMEOUT
    assert 290 <= ms < 1500, ms


def test_nothing_listening_is_unreachable():
    """A refused connection is tool_unreachable, at once."""
    out, ms = run(call("ok", port=free_tcp_port()))
    assert out.kind == toolcall.UNREACHABLE and ms < 1000


@pytest.mark.parametrize("path, status", [("fail", 503), ("redirect", 302), ("nothing", 404)])
def test_a_non_2xx_answer_is_an_http_error(path, status):
    """A 5xx, a redirect (not followed) or a 404 is tool_http_error with the status."""
    out, _ = run(call(path))
    assert out.kind == toolcall.HTTP_ERROR and out.status == status


@pytest.mark.parametrize("path", ["huge_declared", "huge_chunked"])
def test_a_reply_over_64_kb_is_refused_without_reading_it_all(path):
    """A declared or streamed body over MAX_REPLY_BYTES is a bad reply."""
    out, _ = run(call(path))
    assert out.kind == toolcall.BAD_REPLY and out.detail == f"reply over {MAX_REPLY_BYTES} bytes"
    assert json.loads(out.output)["error"] == "tool_bad_reply"
