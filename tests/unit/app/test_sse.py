"""sipbridge/app/sse.py on a real local aiohttp server: opening, items, keepalive, both ends."""

import asyncio

import aiohttp
from aiohttp import web

from sipbridge.app import sse


async def serve(q: asyncio.Queue, finished: list, encode=bytes, keepalive_s=0.1):
    """A server whose /s relays ``q`` (polling every 20 ms); ``finished`` gets True on return."""
    async def stream(request):
        resp = sse.response()
        await resp.prepare(request)
        try:
            await sse.relay(request, resp, q, b": hello\n\n", encode, poll_s=0.02,
                            keepalive_s=keepalive_s)
        finally:
            finished.append(True)
        return resp

    app = web.Application()
    app.router.add_get("/s", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/s"


def test_items_are_written_encoded_after_the_opening_and_none_ends_the_stream():
    """The client reads the opening comment, each item as encode(item), then EOF after None."""
    async def main():
        q, finished = asyncio.Queue(), []
        runner, url = await serve(q, finished, encode=lambda n: f"data: {n}\n\n".encode(),
                                  keepalive_s=60)
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                headers = dict(resp.headers)
                for n in (1, 2):
                    q.put_nowait(n)
                q.put_nowait(None)
                body = await asyncio.wait_for(resp.read(), 2)
        await runner.cleanup()
        return headers, body, finished

    headers, body, finished = asyncio.run(main())
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["Cache-Control"] == "no-cache"
    assert body == b": hello\n\ndata: 1\n\ndata: 2\n\n"
    assert finished == [True]


def test_an_idle_stream_gets_a_keepalive_comment_every_keepalive_s():
    """Idle for 0.5 s with keepalive_s 0.1, the client reads only keepalive comments (2 or more)."""
    async def main():
        q, finished = asyncio.Queue(), []
        runner, url = await serve(q, finished)
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                await asyncio.sleep(0.5)
                q.put_nowait(None)
                body = await asyncio.wait_for(resp.read(), 2)
        await runner.cleanup()
        return body

    body = asyncio.run(main())
    keepalives = body.count(b": keepalive\n\n")
    assert keepalives >= 2
    assert body == b": hello\n\n" + b": keepalive\n\n" * keepalives


def test_a_client_that_leaves_ends_the_relay_without_an_item():
    """Closing the client ends relay within a few polls, though nothing was ever queued."""
    async def main():
        q, finished = asyncio.Queue(), []
        runner, url = await serve(q, finished, keepalive_s=60)
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert await resp.content.readline() == b": hello\n"
        for _ in range(100):
            if finished:
                break
            await asyncio.sleep(0.01)
        await runner.cleanup()
        return finished, q.qsize()

    finished, left = asyncio.run(main())
    assert finished == [True] and left == 0
