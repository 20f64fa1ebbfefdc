"""A call session's app tools: run each function call the model makes against ``tools_url``.

:class:`AppTools` lives on the event loop, owned by one :class:`~sipbridge.session.CallSession`.
For each ``function_call`` of an app function it parses the arguments (not a JSON object: an
error output at once, the app is not called), POSTs the signed request
(:mod:`~sipbridge.app.toolcall`, :mod:`~sipbridge.app.toolclient`) as its own task, so parallel
calls run together and the socket reader never waits, and sends the outcome to the model as the
call's ``function_call_output``; :class:`~sipbridge.app.toolturn.ToolTurns` says whether a
``response.create`` follows. Each call is logged once as ``tool_called`` with ``uid``, ``name``,
``latency_ms``, ``outcome`` (``ok`` or the failure kind), ``ok``, ``status`` (the app's HTTP
status) and ``tool_call_id`` (the model's id of the call); failures are warnings with ``detail``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..realtime import upstream as rt
from ..realtime.upstream import Upstream
from . import toolcall
from .toolclient import ToolClient
from .tooldecl import signing_key
from .toolturn import ToolTurns


class AppTools:
    """Runs the app's function calls of one call (event loop thread only)."""

    def __init__(self, *, url: str | None, timeout_ms: int, secret_env: str, uid: str | None,
                 sip_call_id: str, upstream: Callable[[], Upstream], log, loop: asyncio.AbstractEventLoop,
                 context: Callable[[], dict[str, Any]]):
        """``upstream()`` is the call's current model session; ``context()`` gives the
        call's ``caller``, ``called`` and ``metadata`` when a call is made."""
        self.client = ToolClient(url, timeout_ms) if url else None
        self.uid = uid or sip_call_id
        self.sip_call_id = sip_call_id
        self.upstream = upstream
        self.log = log
        self.loop = loop
        self.context = context
        self.turns = ToolTurns()
        self.tasks: set[asyncio.Task] = set()
        self.closed = False
        self.key_error: str | None = None
        try:
            self.key = signing_key(secret_env)
        except ValueError as exc:
            self.key, self.key_error = None, f"${secret_env} {exc}"

    # -- the model calls a function ----------------------------------------------------------
    def call(self, event: rt.FunctionCall) -> None:
        """A finished ``function_call`` of an app function."""
        started = time.monotonic()
        self.turns.called(event.call_id)
        args = toolcall.parse_arguments(event.arguments)
        if isinstance(args, toolcall.Outcome):
            return self._answer(event, args, started)
        if self.client is None or self.key_error:
            why = self.key_error or "no realtime.tools_url for this call"
            return self._answer(event, toolcall.unavailable(why), started)
        ctx = self.context()
        request = toolcall.build_request(
            uid=self.uid, sip_call_id=self.sip_call_id, name=event.name, arguments=args,
            function_call_id=event.call_id, metadata=ctx.get("metadata"), key=self.key,
            msg_id=f"msg_{uuid.uuid4().hex}", timestamp=int(time.time()),
            caller=ctx.get("caller"), called=ctx.get("called"))
        task = self.loop.create_task(self._run(event, request, started))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, event: rt.FunctionCall, request: toolcall.Request, started: float) -> None:
        try:
            outcome = await self.client.post(request)
        except asyncio.CancelledError:  # the call ended first: logged, nothing sent
            self.log.info("tool_called", uid=self.uid, name=event.name, tool_call_id=event.call_id,
                          latency_ms=toolcall.latency_ms(started, time.monotonic()),
                          outcome="cancelled", ok=False, status=None)
            raise
        self._answer(event, outcome, started)

    def _answer(self, event: rt.FunctionCall, outcome: toolcall.Outcome, started: float) -> None:
        fields = dict(uid=self.uid, name=event.name, tool_call_id=event.call_id,
                      latency_ms=toolcall.latency_ms(started, time.monotonic()),
                      outcome=outcome.kind, ok=outcome.ok, status=outcome.status)
        if outcome.ok:
            self.log.info("tool_called", **fields)
        else:
            self.log.warning("tool_called", detail=outcome.detail, **fields)
        if self.closed:
            return
        if event.call_id not in self.turns.running:  # made on an upstream session since replaced
            self.log.info("tool_output_dropped", tool_call_id=event.call_id, why="upstream restarted")
            return
        self.upstream().function_output(event.call_id, outcome.output)
        if self.turns.finished(event.call_id):
            self.upstream().create_response()
        elif self.turns.caller_turn:
            self.log.info("tool_output_held", tool_call_id=event.call_id,
                          why="the caller barged in: the model answers their turn with it")

    # -- the session's events (event loop) ---------------------------------------------------
    def interrupted(self) -> None:
        """The one cancel path ran (see :class:`~sipbridge.app.toolturn.ToolTurns`)."""
        self.turns.interrupted()

    def committed(self, requested: bool) -> None:
        """The caller's turn was committed; ``requested``: the bridge asked for its response."""
        self.turns.committed()
        if requested:
            self.turns.requested()

    def reset(self) -> None:
        """A new upstream session: outputs of calls made on the old one are not sent to it."""
        self.turns.reset()

    def response_created(self) -> None:
        self.turns.response_created()

    def response_done(self) -> None:
        if self.turns.response_done() and not self.closed:
            self.upstream().create_response()

    def refused(self, code: str | None) -> None:
        """An upstream error: a refused ``response.create`` is no longer expected."""
        if code == "conversation_already_has_active_response":
            self.turns.refused()

    async def close(self) -> None:
        """The call is over: running requests are cancelled (nothing is sent after this)."""
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.client is not None:
            await self.client.close()
