"""The HTTP edge of the app's tools: POST one signed request, read a bounded reply (aiohttp).

Runs on the worker's event loop, never on the media clock. One :class:`ToolClient` per call
session (its connection pool is closed with the session). The whole exchange (connect, send,
status, body) is bounded by ``timeout_ms``; the body is read at most
:data:`~sipbridge.app.toolcall.MAX_REPLY_BYTES` + 1 bytes, so a huge or endless reply costs
nothing more. Redirects are not followed and no proxy variables are used: the URL is called as
configured. Every failure is an :class:`~sipbridge.app.toolcall.Outcome`, never an exception.
"""

from __future__ import annotations

import asyncio

import aiohttp

from . import toolcall
from .toolcall import MAX_REPLY_BYTES, Outcome, Request


class ToolClient:
    """POSTs :class:`~sipbridge.app.toolcall.Request` values to ``url``."""

    def __init__(self, url: str, timeout_ms: int):
        self.url = url
        self.timeout_ms = timeout_ms
        self._http: aiohttp.ClientSession | None = None

    async def post(self, request: Request) -> Outcome:
        """The app's answer as an Outcome (ok, or the failure the model is told about)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8))
        try:
            return await asyncio.wait_for(self._exchange(request), self.timeout_ms / 1000)
        except asyncio.TimeoutError:
            return toolcall.timed_out(self.timeout_ms)
        except (aiohttp.ClientError, OSError) as exc:
            return toolcall.unreachable(f"{type(exc).__name__}: {exc}")

    async def _exchange(self, request: Request) -> Outcome:
        async with self._http.post(self.url, data=request.body, headers=request.headers,
                                   allow_redirects=False) as resp:
            if not 200 <= resp.status < 300:  # the body is not read: it is never shown anyway
                return toolcall.read_reply(resp.status, b"")
            if resp.content_length is not None and resp.content_length > MAX_REPLY_BYTES:
                return toolcall.too_large(resp.status)
            body = bytearray()
            async for chunk in resp.content.iter_any():
                body += chunk
                if len(body) > MAX_REPLY_BYTES:
                    return toolcall.too_large(resp.status)
            return toolcall.read_reply(resp.status, bytes(body))

    async def close(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()
