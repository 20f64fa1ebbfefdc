"""The worker's HTTP interface: one aiohttp application on the worker's own asyncio loop.

``build_app(ctx, extra_routes)`` assembles it: the middlewares below, ``GET /v1/openapi.yaml``,
and the routes of each feature module (a ``routes(ctx) -> list[web.RouteDef]`` function, or
RouteDefs themselves). :class:`ApiServer` serves it at ``api.listen``; a port that is taken
raises :class:`~sipbridge.errors.ListenError` (one line, exit 1, like a taken SIP port).

Middlewares, outermost first, so a refusal costs little and always reads the same:

1. errors: every error is JSON ``{"error": code, "message": ..., "field"?: ...}``; an
   unexpected exception is logged and answered 500, never a dropped connection;
2. rate: ``api.rate_per_s`` requests per second per client IP (burst: one second's worth),
   over it 429 with ``Retry-After``;
3. auth: with a token set (``api.token_env``), ``Authorization: Bearer <token>`` on every path
   but ``/healthz`` and ``/readyz``, else 401;
4. size: a declared ``Content-Length`` over ``api.max_body_kb`` is 413 before the body is read
   (a chunked body hits aiohttp's ``client_max_size``, the same limit, also 413).

Handlers run on the loop: they read the worker's state and queue anything that touches pjsua
to the control thread (``worker.post``); nothing here runs on the media clock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import structlog
from aiohttp import web

from ..errors import ListenError
from .guard import OPEN_PATHS, RateGate, parse_listen, token_ok
from .validate import BadRequest, parse_json

log = structlog.get_logger("sipbridge.api")

JSON_ERRORS = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
               409: "conflict", 413: "body_too_large", 429: "too_many_requests",
               503: "unavailable", 504: "timeout"}


@dataclass
class ApiContext:
    """What route handlers may use: the worker (its calls, ``post``, ``loop``), the config, the
    bearer token, the metrics registry and the event tap (None until built), and a clock."""

    worker: Any
    config: Any
    token: str | None = None
    metrics: Any = None
    tap: Any = None
    now: Callable[[], float] = time.monotonic
    extra: dict = field(default_factory=dict)   # feature modules keep their state here


CTX = web.AppKey("ctx", ApiContext)
RATE_GATE = web.AppKey("rate_gate", RateGate)


def error(status: int, message: str, field: str | None = None, headers: dict | None = None,
          code: str | None = None) -> web.Response:
    """A JSON error response."""
    body: dict[str, Any] = {"error": code or JSON_ERRORS.get(status, "error"), "message": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status, headers=headers)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (``{}`` when empty); raises :class:`BadRequest`."""
    return parse_json(await request.read())


def build_app(ctx: ApiContext, extra_routes: Iterable = ()) -> web.Application:
    """The application: middlewares, the OpenAPI document, and ``extra_routes``.

    Each item of ``extra_routes`` is a ``routes(ctx)`` function or a ``web.RouteDef``.
    """
    api = ctx.config.api
    gate = RateGate(api.rate_per_s)
    max_body = api.max_body_kb * 1024

    @web.middleware
    async def errors(request: web.Request, handler):
        try:
            return await handler(request)
        except BadRequest as exc:
            return error(400, exc.reason, exc.field)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items() if k in ("Retry-After", "Allow")}
            return error(exc.status, exc.reason if exc.status != 413 else
                         f"request body over api.max_body_kb ({api.max_body_kb} KiB)",
                         headers=headers)
        except Exception:  # noqa: BLE001 - a bug must not take the connection down silently
            log.exception("api_handler_failed", path=request.path, method=request.method)
            return error(500, "internal error (logged)", code="internal")

    @web.middleware
    async def rate(request: web.Request, handler):
        take = gate.take(request.remote or "?", ctx.now())
        if not take.allowed:
            return error(429, f"over api.rate_per_s ({api.rate_per_s}/s) for this client",
                         headers={"Retry-After": str(take.retry_after)})
        return await handler(request)

    @web.middleware
    async def auth(request: web.Request, handler):
        if request.path not in OPEN_PATHS and not token_ok(
                request.headers.get("Authorization"), ctx.token):
            return error(401, "missing or wrong bearer token",
                         headers={"WWW-Authenticate": 'Bearer realm="sipbridge"'})
        return await handler(request)

    @web.middleware
    async def size(request: web.Request, handler):
        if request.content_length is not None and request.content_length > max_body:
            return error(413, f"request body over api.max_body_kb ({api.max_body_kb} KiB)")
        return await handler(request)

    app = web.Application(middlewares=[errors, rate, auth, size], client_max_size=max_body)
    app[CTX] = ctx
    app[RATE_GATE] = gate
    app.router.add_get("/v1/openapi.yaml", _openapi)
    for item in extra_routes:
        app.router.add_routes(item(ctx) if callable(item) else [item])
    return app


async def _openapi(_request: web.Request) -> web.Response:
    text = resources.files("sipbridge.app").joinpath("openapi.yaml").read_text()
    return web.Response(text=text, content_type="application/yaml")


class ApiServer:
    """Serves :func:`build_app` at ``listen`` on the running loop (``start``/``stop`` there)."""

    def __init__(self, ctx: ApiContext, listen: str | None, routes: Iterable = (),
                 unix_path: str | None = None):
        # unix_path: a cell's worker serves its supervisor there instead (sipbridge/cell/channel.py)
        self.unix_path = unix_path
        self.host, self.port = parse_listen(listen) if unix_path is None else (unix_path, 0)
        self.app = build_app(ctx, routes)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = (web.TCPSite(self._runner, self.host, self.port, backlog=128)
                if self.unix_path is None else web.UnixSite(self._runner, self.unix_path))
        try:
            await site.start()
            if self.unix_path is not None:
                os.chmod(self.unix_path, 0o600)   # the supervisor (same user) only
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            where = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
            why = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio rewords strerror
            raise ListenError(f"cannot listen for the API on {where}: {why}") from None
        log.info("api_listening", host=self.host, port=self.port,
                 token="required" if self.app[CTX].token else "none (loopback only)")

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

