"""The webhook client against a real aiohttp app on loopback: signing, timeout, errors, cancel."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web
from standardwebhooks import Webhook

from sipbridge.app import signing
from sipbridge.app.webhook_client import WebhookClient

SECRET = signing.new_secret()
BODY = {"type": "call.incoming", "call_id": "c_1", "called": "+1555"}


async def _serve(handler):
    app = web.Application()
    app.router.add_post("/hook", handler)
    # a slow handler still sleeping once the client has given up is cancelled at cleanup after
    # 0.1 s instead of being waited for (it was, to its end: 2-3 s a test)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}/hook"


def ask(handler, timeout_ms=500, policy="default_agent", url=None, cancel_after=None):
    async def main():
        runner, hook = await _serve(handler)
        client = WebhookClient(url or hook, signing.secret_key(SECRET), timeout_ms, policy)
        try:
            started = time.monotonic()
            task = asyncio.ensure_future(client.ask(BODY))
            if cancel_after is not None:
                await asyncio.sleep(cancel_after)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    return "cancelled", time.monotonic() - started
            return await task, time.monotonic() - started
        finally:
            await client.close()
            await runner.cleanup()
    return asyncio.run(main())


def test_request_is_signed_and_verified_by_the_standard_library():
    """The POST verifies with the standardwebhooks library and the reply's decision comes back."""
    seen = {}

    async def handler(request):
        raw = await request.read()
        seen["payload"] = Webhook(SECRET).verify(raw, dict(request.headers))
        return web.json_response({"action": "reject", "status": 486, "reason": "Busy Here"})

    (decision, detail), _ = ask(handler)
    assert seen["payload"] == BODY
    assert (decision.action, decision.status, decision.reason, decision.failure, detail) == \
        ("reject", 486, "Busy Here", None, None)


def test_a_slow_webhook_times_out_at_the_limit():
    """A webhook slower than webhook_timeout_ms fails with reason timeout, after about that long."""
    async def handler(request):
        await asyncio.sleep(3)
        return web.json_response({"action": "accept"})

    (decision, detail), took = ask(handler, timeout_ms=200, policy="reject")
    assert (decision.action, decision.status, decision.failure) == ("reject", 503, "timeout")
    assert "200 ms" in detail and 0.19 <= took < 1.0


def test_connection_refused_is_a_connection_failure():
    """Nothing listening: reason connection, the default agent takes the call."""
    from tests.support.ports import free_tcp_port

    async def handler(request):  # pragma: no cover - never reached
        return web.json_response({})

    (decision, detail), _ = ask(handler, url=f"http://127.0.0.1:{free_tcp_port()}/hook")
    assert (decision.action, decision.failure) == ("accept", "connection") and detail


def test_garbage_and_errors_are_failures():
    """A 500 is reason status; a 200 with garbage is reason malformed."""
    async def error(request):
        return web.Response(status=500, text="boom")

    async def garbage(request):
        return web.Response(status=200, body=b"\x00\xffnot json")

    assert ask(error)[0][0].failure == "status"
    assert ask(garbage)[0][0].failure == "malformed"


def test_a_huge_reply_is_refused_not_buffered():
    """A reply larger than the limit is refused as malformed."""
    async def handler(request):
        return web.Response(status=200, body=json.dumps({"action": "accept",
                                                         "instructions": "x" * 1_000_000}).encode())

    (decision, detail), _ = ask(handler, timeout_ms=3000)
    assert decision.failure == "malformed" and "larger" in detail


def test_cancel_stops_the_request():
    """Cancelling the ask (the caller hung up) ends it at once, before the webhook answers."""
    async def handler(request):
        await asyncio.sleep(2)
        return web.json_response({"action": "accept"})

    result, took = ask(handler, timeout_ms=5000, cancel_after=0.1)
    assert result == "cancelled" and took < 0.5
