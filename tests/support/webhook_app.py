"""A real aiohttp application on 127.0.0.1 acting as the bridge's incoming-call webhook.

It runs on its own thread and event loop; every request is checked with the ``standardwebhooks``
library (an independent verifier, not our signer) and kept with its verdict. What it answers is
up to the test: ``answer(payload) -> (delay_s, status, body)``, body a dict (JSON) or bytes.

API::

    WebhookApp(secret, answer)   # context manager
        .url, .requests -> list[Request], .wait(count, timeout) -> list[Request]
    Request(payload, headers, verified, received_at, answered_at)
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from standardwebhooks import Webhook

Answer = Callable[[dict], "tuple[float, int, dict | bytes]"]


@dataclass
class Request:
    payload: dict | None
    headers: dict
    verified: bool
    received_at: float
    answered_at: float | None = None


class WebhookApp:
    def __init__(self, secret: str, answer: Answer):
        self.verifier = Webhook(secret)
        self.answer = answer
        self.requests: list[Request] = []
        self._cond = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="webhook-app", daemon=True)
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            payload, verified = self.verifier.verify(raw, dict(request.headers)), True
        except Exception:  # noqa: BLE001 - standardwebhooks raises WebhookVerificationError
            payload, verified = None, False
        rec = Request(payload, dict(request.headers), verified, time.monotonic())
        with self._cond:
            self.requests.append(rec)
            self._cond.notify_all()
        delay, status, body = self.answer(payload or {})
        if delay:
            await asyncio.sleep(delay)
        rec.answered_at = time.monotonic()
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return web.Response(status=status, body=data, content_type="application/json")

    def wait(self, count: int, timeout: float = 10.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the webhook got {len(self.requests)} requests, not {count}")
                self._cond.wait(left)
            return list(self.requests)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
