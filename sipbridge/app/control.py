"""Live call control: the calls API's view of one worker, and what it may do to a call.

Reading (``GET /v1/calls``, ``GET /v1/calls/{uid}``) takes plain Python attributes only (the
call's flags, the session's counters, the playout buffer and turn engine state): the asyncio
loop is not a pjlib thread, so nothing here calls pjsua. Acting:

* on the session, from the loop (its methods are thread-safe and queue their network side):
  ``interrupt`` (the one cancel path, source ``api``, reason ``client_cancelled``), ``say``,
  ``session`` (the model via ``session.update`` and the local turn engine), ``commit``, ``clear``;
* on the SIP call, on the control thread (``worker.post``), with the outcome awaited so a
  refusal (a REFER pjsua will not send, DTMF on a call with no media) is a 409, not a guess:
  ``hangup`` (BYE), ``transfer`` (REFER), ``dtmf`` (RFC 4733 digits to the caller).

Answers: 202 with ``{"uid", "action"}`` once an action is queued or sent; 404 for an unknown
uid; 409 when the call cannot take the action now (ended, not answered, no session).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import structlog
from aiohttp import web

from ..errors import ConfigError
from . import validate
from .server import ApiContext, error, read_json

log = structlog.get_logger("sipbridge.api")

CONTROL_TIMEOUT_S = 2.0
ACTIONS = ("hangup", "transfer", "interrupt", "say", "session", "commit", "clear", "dtmf")


class Conflict(Exception):
    """The call exists but cannot take this action now (HTTP 409)."""


def live_calls(worker) -> list:
    """The worker's calls that have a session and are not over, oldest first."""
    with worker._calls_lock:
        calls = list(worker.calls.values())
    return [c for c in calls if c.session is not None and not c.disconnected]


def find(worker, uid: str):
    for call in live_calls(worker):
        if call.uid == uid:
            return call
    return None


def _route(call) -> Any:
    route = getattr(call, "route", None)
    if route is None or isinstance(route, (str, int, float, bool)):
        return route
    return getattr(route, "name", None) or str(route)


def summary(call) -> dict[str, Any]:
    """One line of the call list."""
    s = call.session
    parties = getattr(s, "parties", None)
    return {"uid": call.uid, "sip_call_id": call.sip_call_id,
            "direction": getattr(call, "direction", "inbound"),
            "caller": getattr(parties, "caller", None), "called": getattr(parties, "called", None),
            "route": _route(call), "state": state(call)}


def state(call) -> str:
    if call.disconnected:
        return "ended"
    if getattr(call, "confirmed", False):
        return "answered"
    return "ringing"


def playout_state(playout) -> str:
    if playout.paused:
        return "paused"
    return "playing" if playout.playing else "idle"


def view(call) -> dict[str, Any]:
    """Everything the API shows about one call (plain reads: any thread, never pjsua)."""
    s = call.session
    out = summary(call)
    engine = getattr(s, "engine", None)
    turn_state = getattr(getattr(engine, "state", None), "value", None)
    playout = s.playout
    cfg = s.session_config
    out.update({
        "speaking": {"caller": turn_state in ("speaking", "trailing"),
                     "agent": playout.playing and not playout.paused},
        "turn_state": turn_state,
        "playout": {"state": playout_state(playout), "queued_ms": playout.queued_ms,
                    "underruns": playout.underruns},
        "turn_detection": dataclasses.asdict(s.settings),
        "agent": {"voice": cfg.voice, "instructions_set": cfg.instructions is not None,
                  "tools": [t.name for t in cfg.tools], "audio_format": cfg.audio_format,
                  "responding": s.response_id is not None},
        "counters": {"barge_ins": s.barge_ins, "pauses": s.pauses, "held_ms": s.held_ms,
                     "upstream_outages": s.link.outages,
                     "upstream_reconnects": s.link.reconnects,
                     "rtp": dataclasses.asdict(call.rtp_stats) if call.rtp_stats else None},
    })
    return out


async def on_control(worker, fn, timeout: float = CONTROL_TIMEOUT_S):
    """Run ``fn()`` on the worker's control thread; its result (or exception) comes back here."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def settle(ok: bool, value) -> None:
        if not fut.done():
            (fut.set_result if ok else fut.set_exception)(value)

    def run() -> None:
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - handed back to the request
            loop.call_soon_threadsafe(settle, False, exc)
        else:
            loop.call_soon_threadsafe(settle, True, result)

    worker.post(run)
    return await asyncio.wait_for(fut, timeout)


def apply_session(session, change: validate.SessionChange) -> dict[str, Any]:
    """Apply a ``session`` change: turn detection first (it may refuse, changing nothing),
    then the model. Returns the turn settings in effect."""
    if change.tools and getattr(getattr(session, "app_tools", None), "client", 1) is None:
        raise validate.BadRequest("tools", "this call has no tools_url (realtime.tools_url, its "
                                  "route's or its webhook reply's): its functions could not run")
    if change.turn_detection is not None:
        try:
            session.update_turn_detection(change.turn_detection)
        except ConfigError as exc:
            raise validate.BadRequest(exc.key, exc.reason) from None
    session.update_model(change.instructions, change.voice, change.tools)
    return dataclasses.asdict(session.settings)


class CallControl:
    """The handlers of ``/v1/calls``; ``ctx.worker`` holds the calls."""

    def __init__(self, ctx: ApiContext):
        self.ctx = ctx
        self.worker = ctx.worker

    def _call(self, request: web.Request):
        uid = request.match_info["uid"]
        call = find(self.worker, uid)
        if call is None:
            raise web.HTTPNotFound(reason=f"no call {uid} in progress")
        return call

    async def list(self, _request: web.Request) -> web.Response:
        return web.json_response({"calls": [summary(c) for c in live_calls(self.worker)]})

    async def get(self, request: web.Request) -> web.Response:
        return web.json_response(view(self._call(request)))

    async def act(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        call = self._call(request)
        body = await read_json(request)
        try:
            result = await getattr(self, "_" + action)(call, body)
        except Conflict as exc:
            return error(409, str(exc))
        except asyncio.TimeoutError:
            return error(504, f"the worker did not act on {action} within {CONTROL_TIMEOUT_S} s")
        log.info("api_action", uid=call.uid, call_id=call.sip_call_id, action=action)
        return web.json_response({"uid": call.uid, "action": action, **(result or {})},
                                 status=200 if action == "session" else 202)

    @staticmethod
    def _session_of(call):
        s = call.session
        if s is None or s.closed:
            raise Conflict("the call has no model session (ending)")
        return s

    # -- SIP side: control thread ---------------------------------------------------------------
    async def _hangup(self, call, body) -> None:
        validate.empty(body)

        def bye():
            if call.disconnected:
                raise Conflict("the call has ended")
            self.worker._end(call, "api_hangup")
        await on_control(self.worker, bye)

    async def _transfer(self, call, body) -> dict:
        target = validate.transfer(body)

        def refer():
            if call.disconnected:
                raise Conflict("the call has ended")
            if not call.confirmed:
                raise Conflict("the call is not answered yet")
            log.info("call_transfer", call_id=call.sip_call_id, target=target, source="api")
            try:
                call.transfer_op(target)
            except Exception as exc:  # noqa: BLE001 - pj.Error
                raise Conflict(f"REFER not sent: {getattr(exc, 'reason', '') or exc}") from None
        await on_control(self.worker, refer)
        return {"to": target}

    async def _dtmf(self, call, body) -> dict:
        digits = validate.dtmf(body)

        def dial():
            if call.disconnected:
                raise Conflict("the call has ended")
            if not call.confirmed:
                raise Conflict("the call is not answered yet")
            try:
                call.dialDtmf(digits)  # RFC 4733 telephone-events (pjsua's default method)
            except Exception as exc:  # noqa: BLE001 - pj.Error, e.g. no audio stream
                raise Conflict(f"digits not sent: {getattr(exc, 'reason', '') or exc}") from None
        await on_control(self.worker, dial)
        return {"digits": digits}

    # -- the session: from the loop -------------------------------------------------------------
    async def _interrupt(self, call, body) -> dict:
        validate.empty(body)
        s = self._session_of(call)
        playing = s.playout.playing
        s.interrupt("client_cancelled", source="api")
        return {"was_playing": playing}

    async def _say(self, call, body) -> None:
        instructions = validate.say(body)
        self._session_of(call).say(instructions)

    async def _session(self, call, body) -> dict:
        change = validate.session(body)
        return {"turn_detection": apply_session(self._session_of(call), change)}

    async def _commit(self, call, body) -> None:
        validate.empty(body)
        self._session_of(call).commit_turn()

    async def _clear(self, call, body) -> None:
        validate.empty(body)
        self._session_of(call).clear_turn()


def routes(ctx: ApiContext) -> list[web.RouteDef]:
    c = CallControl(ctx)
    pattern = "{action:" + "|".join(ACTIONS) + "}"
    return [web.get("/v1/calls", c.list), web.get("/v1/calls/{uid}", c.get),
            web.post("/v1/calls/{uid}/" + pattern, c.act)]
