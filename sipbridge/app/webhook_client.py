"""The incoming-call webhook's HTTP client (aiohttp, on the worker's event loop).

One :class:`WebhookClient` per worker keeps one connection pool to the app. :meth:`ask` signs and
POSTs a payload built by :mod:`sipbridge.app.webhook` and waits at most ``app.webhook_timeout_ms``
for the whole reply; it never raises: a failure comes back as the ``on_webhook_failure``
decision, carrying the failure's reason. Cancelling the task (the caller hung up) cancels the
request. Nothing here runs on the pjsua or the media clock thread.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

import aiohttp

from . import signing
from .webhook import MAX_REPLY_BYTES, Decision, WebhookFailure, encode, on_failure, parse_reply


class WebhookClient:
    def __init__(self, url: str, key: bytes, timeout_ms: int, failure_policy: str,
                 clock: Callable[[], float] = time.time):
        self.url = url
        self.key = key
        self.timeout_s = timeout_ms / 1000
        self.failure_policy = failure_policy
        self.clock = clock
        self._http: aiohttp.ClientSession | None = None

    async def ask(self, body: dict) -> tuple[Decision, str | None]:
        """The app's decision for one call, and the failure detail when the fallback was taken."""
        try:
            return await asyncio.wait_for(self._post(body), self.timeout_s), None
        except WebhookFailure as exc:
            return on_failure(self.failure_policy, exc.reason), exc.detail
        except (asyncio.TimeoutError, TimeoutError):
            return (on_failure(self.failure_policy, "timeout"),
                    f"no reply within {round(self.timeout_s * 1000)} ms")
        except aiohttp.ClientError as exc:
            return on_failure(self.failure_policy, "connection"), f"{type(exc).__name__}: {exc}"[:200]
        except OSError as exc:
            return on_failure(self.failure_policy, "connection"), str(exc)[:200]

    async def _post(self, body: dict) -> Decision:
        if self._http is None:
            # no per-host limit: one call's slow webhook must not hold another's INVITE back
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        data = encode(body)
        headers = signing.headers(self.key, "msg_" + secrets.token_hex(12), int(self.clock()), data)
        async with self._http.post(self.url, data=data, headers=headers,
                                   allow_redirects=False) as resp:
            if not 200 <= resp.status < 300:
                return parse_reply(resp.status, b"")  # raises: the body is not read
            reply = b""
            while len(reply) <= MAX_REPLY_BYTES:  # a larger body is refused, not buffered
                chunk = await resp.content.read(MAX_REPLY_BYTES + 1 - len(reply))
                if not chunk:
                    break
                reply += chunk
            return parse_reply(resp.status, reply)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
