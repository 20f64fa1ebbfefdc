"""A real application tools backend (aiohttp) on 127.0.0.1, on its own thread and event loop.

It records every request (headers, raw body, parsed JSON, arrival time) and answers per function
name with a :class:`Behaviour`: a JSON reply, a status, a delay, a hold until the test releases
it, or no answer at all.

    with ToolsBackend({"lookup": Behaviour(reply={"beeps": 2})}) as app:
        app.url, app.requests, app.wait_requests(n), app.release("lookup")
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .ports import free_tcp_port


@dataclass
class Behaviour:
    reply: Any = None            # JSON value answered (with status)
    status: int = 200
    delay_s: float = 0.0         # wait before answering
    hold: bool = False           # wait for release(name) before answering
    hang: bool = False           # never answer


class ToolsBackend:
    def __init__(self, behaviours: dict[str, Behaviour] | None = None):
        self.behaviours = behaviours or {}
        self.requests: list[dict] = []
        self.port = free_tcp_port()
        self.url = f"http://127.0.0.1:{self.port}/tools"
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tools-backend", daemon=True)
        self._thread.start()
        self._released: dict[str, asyncio.Event] = {}
        self._runner = self._call(self._start())

    def _call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/tools", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=0.2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        self.requests.append({"headers": dict(request.headers), "body": body, "json": parsed,
                              "t": time.monotonic()})
        name = parsed.get("name") if isinstance(parsed, dict) else None
        how = self.behaviours.get(name, Behaviour(reply={"ok": True}))
        if how.hang:
            await asyncio.sleep(3600)
        if how.hold:
            await self._event(name).wait()
        if how.delay_s:
            await asyncio.sleep(how.delay_s)
        return web.json_response(how.reply, status=how.status)

    def _event(self, name: str) -> asyncio.Event:
        return self._released.setdefault(name, asyncio.Event())

    def release(self, name: str) -> None:
        """Let a held function answer now."""
        self.loop.call_soon_threadsafe(lambda: self._event(name).set())

    def wait_requests(self, count: int = 1, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"the tools backend got {len(self.requests)} requests, not {count}"
            time.sleep(0.005)
        return list(self.requests)

    async def _cancel_rest(self) -> None:
        """Handlers still waiting (a hung or held function) are cancelled, not left pending."""
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def close(self) -> None:
        try:
            self._call(self._runner.cleanup())
            self._call(self._cancel_rest())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
