"""Server-Sent Events plumbing: write a queue's items to one client until either side ends.

Both ``GET /v1/events`` (one process, :mod:`sipbridge.app.api_records`) and the cell's merged
stream (:mod:`sipbridge.cell.api`) open a :func:`response`, fill an ``asyncio.Queue`` from their
own source and hand both to :func:`relay`, which writes an opening comment, then each item as
``encode(item)``; a ``None`` item means the server is stopping. While the queue is idle it
checks every ``poll_s`` that the client is still connected (a client gone ends the relay, so
its queue is freed within ``poll_s``, not at the next event) and writes a comment every
``keepalive_s`` so proxies keep the connection open. Freeing the queue is the caller's
(``finally``), whatever ended the relay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web


def response() -> web.StreamResponse:
    """An unprepared ``text/event-stream`` response that caches nothing."""
    return web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})


async def relay(request: web.Request, resp: web.StreamResponse, q: asyncio.Queue,
                opening: bytes, encode: Callable[[object], bytes], *, poll_s: float,
                keepalive_s: float) -> None:
    """Write ``opening``, then every item of ``q`` as ``encode(item)``, until a ``None`` item
    or the client leaves (a reset connection ends it quietly; other errors propagate)."""
    try:
        await resp.write(opening)
        idle = 0.0
        while True:
            try:
                item = await asyncio.wait_for(q.get(), poll_s)
            except asyncio.TimeoutError:
                transport = request.transport
                if transport is None or transport.is_closing():
                    return                  # the client went away: free its queue now
                idle += poll_s
                if idle >= keepalive_s:
                    idle = 0.0
                    await resp.write(b": keepalive\n\n")
                continue
            if item is None:                # the server is stopping
                return
            idle = 0.0
            await resp.write(encode(item))
    except ConnectionResetError:            # the client went away
        pass
