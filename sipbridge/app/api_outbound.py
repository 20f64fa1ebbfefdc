"""``POST /v1/calls``: place an outbound call; ``GET /v1/calls/{uid}/progress``: how it went.

The body is checked on the loop (:func:`~sipbridge.app.outbound.parse_request`: 400 naming the
field), then the worker dials on its control thread (:meth:`Worker.place_call`). Answers:

* 201 ``{"uid", "state", "progress"}`` with ``Location: /v1/calls/<uid>`` once the INVITE is out;
* 503 ``{"error": "unavailable", ...}`` with ``Retry-After`` at once when no call slot is free
  or the worker is draining: the request is never queued;
* 400 when pjsua refuses the target itself (``field``: ``to``).

The progress (``queued``, ``ringing``, ``answered``, ``ended``, ``failed``, ``no-answer``,
``busy``, ``cancelled``; see :mod:`sipbridge.app.progress`) stays readable for the last
1000 outbound calls after they end; ``GET /v1/calls/{uid}`` shows a live call in full.
"""

from __future__ import annotations

import time

import structlog
from aiohttp import web

from .control import on_control
from .outbound import Refused, parse_request
from .server import ApiContext, error, read_json

log = structlog.get_logger("sipbridge.api")

RETRY_AFTER_S = 1


def routes(ctx: ApiContext) -> list[web.RouteDef]:
    worker = ctx.worker

    async def create(request: web.Request) -> web.Response:
        received = time.time()
        body = await read_json(request)
        call = parse_request(body, ctx.config)   # BadRequest -> 400 (server middleware)
        try:
            uid = await on_control(worker, lambda: worker.place_call(call))
        except Refused as exc:
            log.warning("outbound_refused", status=exc.status, reason=exc.reason, to=call.uri)
            headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else None
            return error(exc.status, exc.reason, exc.field, headers=headers)
        progress = worker.dialer.state(uid)
        log.info("outbound_requested", uid=uid, received_at=received,
                 invite_sent_at=progress["invite_sent_at"])
        return web.json_response({"uid": uid, "state": progress["state"], "progress": progress},
                                 status=201, headers={"Location": f"/v1/calls/{uid}"})

    async def progress(request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        state = worker.dialer.state(uid)
        if state is None:
            return error(404, f"no outbound call {uid}")
        return web.json_response({"uid": uid, **state})

    return [web.post("/v1/calls", create), web.get("/v1/calls/{uid}/progress", progress)]
