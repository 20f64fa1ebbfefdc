"""One inbound call: pjsua2's ``Call`` with its callbacks forwarded to plain Python methods.

The callbacks run on pjsua's worker thread. They never raise into SWIG; each forwards to the
``CallEvents`` owner (the worker) with the call, so the policy lives there, not here.
"""

from __future__ import annotations

from typing import Protocol

import pjsua2 as pj
import structlog

from ..media.port import CallPort, port_format

log = structlog.get_logger("sipbridge.sip")


class CallEvents(Protocol):
    def call_disconnected(self, call: "BridgeCall", code: int, reason: str) -> None: ...
    def call_confirmed(self, call: "BridgeCall") -> None: ...
    def call_dtmf(self, call: "BridgeCall", digit: str) -> None: ...
    def media_port_created(self, port: CallPort) -> None: ...


class BridgeCall(pj.Call):
    """An inbound call whose audio is attached to a :class:`CallPort` once media is up."""

    def __init__(self, account, call_id: int, events: CallEvents, sip_call_id: str):
        super().__init__(account, call_id)
        self.events = events
        self.sip_call_id = sip_call_id
        self.session = None           # the CallSession, set by the worker
        self.port: CallPort | None = None
        self._media = None
        self.disconnected = False

    def onCallState(self, prm):  # noqa: N802
        try:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
                self.events.call_confirmed(self)
            elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.disconnected:
                self.disconnected = True
                self.events.call_disconnected(self, info.lastStatusCode, info.lastReason)
        except Exception:  # noqa: BLE001
            log.exception("call_state_handler_failed", call_id=self.sip_call_id)

    def onCallMediaState(self, prm):  # noqa: N802
        try:
            self._attach_media()
        except Exception:  # noqa: BLE001
            log.exception("call_media_handler_failed", call_id=self.sip_call_id)

    def _attach_media(self) -> None:
        info = self.getInfo()
        for i, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            am = self.getAudioMedia(i)
            if self.port is None:
                session = self.session
                if session is None:
                    return
                port = CallPort(session.on_caller_frame, session.next_frame)
                port.createPort(f"call{self.getId()}", port_format())
                self.events.media_port_created(port)
                self.port = port
            am.startTransmit(self.port)
            self.port.startTransmit(am)
            self._media = am
            log.info("media_active", call_id=self.sip_call_id,
                     codec=self._codec_name(i))
            return

    def _codec_name(self, index: int) -> str:
        try:
            si = self.getStreamInfo(index)
            return f"{si.codecName}/{si.codecClockRate}"
        except Exception:  # noqa: BLE001
            return "unknown"

    def onDtmfDigit(self, prm):  # noqa: N802
        try:
            self.events.call_dtmf(self, prm.digit)
        except Exception:  # noqa: BLE001
            log.exception("dtmf_handler_failed", call_id=self.sip_call_id)

    def answer_op(self, code: int) -> None:
        """Send a provisional or final 2xx answer (180 Ringing, 200 OK)."""
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        self.answer(prm)

    def hangup_op(self, code: int, reason: str = "", retry_after: int | None = None) -> None:
        """Reject (before answer: ``code`` is the final response) or end with BYE."""
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        if reason:
            prm.reason = reason
        if retry_after is not None:
            hdr = pj.SipHeader()
            hdr.hName = "Retry-After"
            hdr.hValue = str(retry_after)
            prm.txOption.headers.append(hdr)
        self.hangup(prm)

    def is_confirmed(self) -> bool:
        try:
            return self.getInfo().state == pj.PJSIP_INV_STATE_CONFIRMED
        except Exception:  # noqa: BLE001 - the call is already gone
            return False

    def release_media(self) -> None:
        """Detach and drop the port (on the control thread, after disconnect)."""
        self._media = None
        self.port = None
