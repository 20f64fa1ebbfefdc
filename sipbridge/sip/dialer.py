"""Outbound calls of one worker: capacity check, INVITE, ring timeout, progress, the session.

:meth:`Dialer.place` runs on the control thread (pjsua2 calls only from there). It refuses at
once (:class:`Refused`, HTTP 503 in the API) when every call slot is taken or the worker is
draining: a request is never queued behind busy calls. Otherwise it builds the call's session,
sends the INVITE (``makeCall`` from the trunk's account, whose ``AuthCredInfo`` answers a
401/407, or from the bridge's own account for a ``sip:`` URI without a trunk) and returns the
call's uid. A cell's worker dials the same way, straight to the trunk: its trunk accounts are
dial-only (no REGISTER: the cell's front holds the registration), with the same credentials,
outbound proxy and From domain (:func:`sipbridge.cli.worker_config`).

The model session is opened *while the far end rings*, not before the INVITE and not at the
answer: before would put the model's connect time (hundreds of ms for a hosted model) into every
call's setup; at the answer would leave the callee in dead air for that long. Ringing lasts
seconds, so the agent is ready when the callee picks up (``bench/outbound.py`` measures both).
The callee's early media (183) is not sent to the model: the audio is attached at the answer.

Progress (:class:`~sipbridge.app.progress.Progress`) is fed from pjsua's callbacks and logged as
``outbound_progress`` (uid, call_id, state, status, reason) at each change; ``call.progress``
and :meth:`state` give it to the API, also for a while after the call is gone.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict

import pjsua2 as pj
import structlog

from ..app.outbound import Refused
from ..app.progress import Progress
from ..session import CallSession
from .call import BridgeCall
from .callerid import Parties

log = structlog.get_logger("sipbridge.outbound")

RECENT = 1000            # finished outbound calls whose state the API can still read
SHUTDOWN_REASONS = ("shutdown", "drain_timeout")


class Dialer:
    def __init__(self, worker, clock=time.time):
        self.w = worker
        self.clock = clock
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, Progress] = OrderedDict()

    # -- control thread -----------------------------------------------------------------------
    def place(self, request) -> str:
        """Dial ``request`` (an :class:`~sipbridge.app.outbound.OutboundRequest`); the uid."""
        w = self.w
        if w._stopping:
            raise Refused(503, "draining: not placing new calls")
        with w._calls_lock:  # calls with a session, and inbound ones still asking the webhook
            active = sum(1 for c in w.calls.values() if not c.disconnected and (
                c.session is not None or getattr(c, "opening", None) is not None))
        if active >= w.stack.capacity:
            raise Refused(503, f"no free call slot ({active} of {w.stack.capacity} in use)")
        account, host = self._account(request.trunk)
        call = BridgeCall(account, pj.PJSUA_INVALID_ID, w, "")
        call.direction = "outbound"
        call.progress = progress = Progress(self.clock())
        call.trunk = request.trunk
        call.metadata = dict(request.agent.metadata)
        w.stack.track(call)
        prm = pj.CallOpParam(True)
        local = request.from_uri(host)
        if local is not None:
            prm.txOption.localUri = local
        for name, value in request.headers:
            hdr = pj.SipHeader()
            hdr.hName, hdr.hValue = name, value
            prm.txOption.headers.append(hdr)
        try:  # the INVITE goes out first: the session is built while it travels
            call.makeCall(request.uri, prm)
        except pj.Error as exc:
            call.thisown = 0   # it never held a slot; see Worker._forget on destroying Calls
            reason = (getattr(exc, "reason", "") or exc.info()).strip()
            progress.on_failed(f"INVITE not sent: {reason}", self.clock())
            self._log(call, request)
            if "URI" in reason.upper():
                raise Refused(400, f"INVITE not sent: {reason}", "to") from None
            raise Refused(503, f"INVITE not sent: {reason}") from None
        progress.on_invite_sent(self.clock())
        call.sip_call_id = call.getInfo().callIdString
        with w._calls_lock:
            w.calls[call.getId()] = call
        self._log(call, request)
        session = CallSession(call_id=call.sip_call_id, config=request.config,
                              url=w.upstream_url, api_key=w.api_key, loop=w.loop,
                              vad_model=w.vad_model, vad_batch=w.vad_batch,
                              on_end=lambda reason: w.post(lambda: w._end(call, reason)),
                              on_transfer=lambda t: w.post(lambda: w._transfer(call, t)),
                              parties=Parties(request.from_user or "unknown", request.called),
                              metadata=call.metadata, uid=call.uid)
        call.session = session
        # the model connects while the far end rings (see the module docstring)
        future = asyncio.run_coroutine_threadsafe(session.start(), w.loop)
        future.add_done_callback(lambda f: w.post(lambda: self._opened(call, f)))
        call.opening = future
        if call.confirmed:  # answered before the session existed (a UAS quicker than us)
            call.attach_media()
            session.greet()
        timer = threading.Timer(request.ring_timeout_s, w.post,
                                args=(lambda: self._ring_timeout(call),))
        timer.daemon = True
        timer.name = f"ring-{call.uid}"
        call.ring_timer = timer
        timer.start()
        return call.uid

    def _account(self, trunk: str | None):
        """The pjsua2 account to dial from and the host of the From URI."""
        w = self.w
        if trunk is None:
            return w.stack.account, f"{w.config.sip.public_host or w.config.sip.host}:" \
                                    f"{w.config.sip.port}"
        for reg in w.trunks.trunks:
            if reg.trunk.name == trunk and reg.account is not None:
                return reg.account, reg.trunk.registrar_hostport
        raise Refused(503, f"trunk {trunk!r} is not set up", "trunk")

    def _opened(self, call: BridgeCall, future) -> None:
        """The model session is up (or failed) while the call rings or talks."""
        call.opening = None
        if call.disconnected or future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            return
        log.warning("upstream_unavailable", call_id=call.sip_call_id, uid=call.uid,
                    reason=str(exc))
        self.give_up(call, "upstream_unavailable")

    def _ring_timeout(self, call: BridgeCall) -> None:
        if call.disconnected or call.progress.state not in ("queued", "ringing"):
            return
        log.info("outbound_ring_timeout", call_id=call.sip_call_id, uid=call.uid)
        self.give_up(call, "ring_timeout")

    def give_up(self, call: BridgeCall, why: str) -> None:
        """Hang up (CANCEL before the answer, BYE after it) for ``why``."""
        with self._lock:
            call.progress.on_give_up(why)
        if not call.disconnected:
            try:
                call.hangup_op(487 if not call.confirmed else 200)
            except pj.Error as exc:
                log.warning("outbound_hangup_failed", uid=call.uid, error=str(exc))

    def on_end(self, call: BridgeCall, reason: str) -> None:
        """The worker is ending ``call`` (API hangup, drain): name the cause before the answer."""
        with self._lock:
            call.progress.on_give_up("shutdown" if reason in SHUTDOWN_REASONS else "cancel")

    def state(self, uid: str) -> dict | None:
        """The progress of a live or recently finished outbound call, None if unknown."""
        with self.w._calls_lock:
            live = next((c for c in self.w.calls.values() if c.uid == uid), None)
        with self._lock:
            progress = live.progress if live is not None else self._recent.get(uid)
            return None if progress is None else progress.as_dict()

    # -- pjsua worker thread ------------------------------------------------------------------
    def on_early(self, call: BridgeCall, code: int) -> None:
        with self._lock:
            changed = call.progress.on_provisional(code, self.clock())
        if changed:
            self._log(call)

    def on_confirmed(self, call: BridgeCall) -> None:
        self._stop_timer(call)
        with self._lock:
            changed = call.progress.on_answered(self.clock())
        if changed:
            self._log(call)

    def on_disconnected(self, call: BridgeCall, code: int, reason: str) -> None:
        self._stop_timer(call)
        with self._lock:
            changed = call.progress.on_disconnected(code, reason, self.clock())
            self._recent[call.uid] = call.progress
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        if changed:
            self._log(call)

    @staticmethod
    def _stop_timer(call: BridgeCall) -> None:
        timer = getattr(call, "ring_timer", None)
        if timer is not None:
            timer.cancel()

    def _log(self, call: BridgeCall, request=None) -> None:
        p = call.progress
        fields = {}
        if request is not None:
            fields = {"to": request.uri, "called": request.called, "trunk": request.trunk,
                      "caller": request.from_user,
                      "ring_timeout_s": request.ring_timeout_s}
        log.info("outbound_progress", uid=call.uid, call_id=call.sip_call_id or None,
                 state=p.state, status=p.status, reason=p.reason, **fields)
