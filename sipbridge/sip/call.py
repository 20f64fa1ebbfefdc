"""One inbound call: pjsua2's ``Call`` with its callbacks forwarded to plain Python methods.

The callbacks run on pjsua's worker thread. They never raise into SWIG; each forwards to the
``CallEvents`` owner (the worker) with the call, so the policy lives there, not here.
"""

from __future__ import annotations

from typing import Protocol

import pjsua2 as pj
import structlog

from ..cell.uids import new_uid
from ..media.port import CallPort
from .tls import srtp_suite
from .rtpstats import read_stats

log = structlog.get_logger("sipbridge.sip")


def _op(code: int, reason: str, headers: tuple[tuple[str, str], ...]) -> "pj.CallOpParam":
    """A call operation's parameters: status ``code``, optional ``reason``, extra headers."""
    prm = pj.CallOpParam(True)
    prm.statusCode = code
    if reason:
        prm.reason = reason
    for name, value in headers:
        hdr = pj.SipHeader()
        hdr.hName = name
        hdr.hValue = value
        prm.txOption.headers.append(hdr)
    return prm


class CallEvents(Protocol):
    def call_disconnected(self, call: "BridgeCall", code: int, reason: str) -> None: ...
    def call_confirmed(self, call: "BridgeCall") -> None: ...
    def call_early(self, call: "BridgeCall", code: int) -> None: ...
    def call_dtmf(self, call: "BridgeCall", digit: str) -> None: ...
    def call_transfer_status(self, call: "BridgeCall", code: int, reason: str, final: bool) -> None: ...
    def acquire_port(self, on_frame, next_frame) -> CallPort: ...
    def release_port(self, port: CallPort) -> None: ...


class BridgeCall(pj.Call):
    """An inbound call whose audio is attached to a :class:`CallPort` once media is up."""

    def __init__(self, account, call_id: int, events: CallEvents, sip_call_id: str):
        super().__init__(account, call_id)
        self.events = events
        self.sip_call_id = sip_call_id
        # the bridge's own id of the call: API paths, webhooks, events and records use it (a SIP
        # Call-ID is the far end's choice, may hold any characters and repeats across forks)
        # (a cell's worker puts its index in it: c_<index>_<hex>, see sipbridge/cell/uids.py)
        self.uid = new_uid(getattr(events, "worker_index", None))
        self.session = None           # the CallSession, set by the worker
        self.port: CallPort | None = None
        self._media = None
        self.disconnected = False
        self.confirmed = False        # answered (ACKed): readable from any thread, unlike getInfo()
        self.rtp_stats = None         # last RtpStats snapshot (watchdog, then at the BYE)
        self.direction = "inbound"    # "outbound": placed by the API (sip/dialer.py)
        self.progress = None          # an outbound call's app.progress.Progress

    def onCallState(self, prm):  # noqa: N802
        try:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
                self.confirmed = True
                self.events.call_confirmed(self)
            elif info.state == pj.PJSIP_INV_STATE_EARLY and self.direction == "outbound":
                self.events.call_early(self, info.lastStatusCode)  # 18x: the far end rings
            elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.disconnected:
                self.disconnected = True
                self.events.call_disconnected(self, info.lastStatusCode, info.lastReason)
        except Exception:  # noqa: BLE001
            log.exception("call_state_handler_failed", call_id=self.sip_call_id)

    def onCallTsxState(self, prm):  # noqa: N802
        # A BYE (either side's) is the last moment the stream exists: by the DISCONNECTED
        # state callback pjsua has destroyed it, so the final RTP counters are read here.
        try:
            if not self.disconnected and prm.e.body.tsxState.tsx.method == "BYE":
                self.rtp_stats = read_stats(self) or self.rtp_stats
        except Exception:  # noqa: BLE001
            log.exception("call_tsx_handler_failed", call_id=self.sip_call_id)

    def onCallMediaState(self, prm):  # noqa: N802
        try:
            self._attach_media()
        except Exception:  # noqa: BLE001
            log.exception("call_media_handler_failed", call_id=self.sip_call_id)

    def attach_media(self) -> None:
        """Connect the call's audio to its session (an outbound call's, at the answer)."""
        self._attach_media()

    def _attach_media(self) -> None:
        if self.direction == "outbound" and not self.confirmed:
            return  # early media (ringback, announcements) is not the callee: not for the model
        info = self.getInfo()
        for i, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            am = self.getAudioMedia(i)
            if self.port is None:
                session = self.session
                if session is None:
                    return
                self.port = self.events.acquire_port(session.on_caller_frame, session.next_frame)
                # the native port's pause/clear flags (None for the pjsua2 port): barge-in
                # silences its very next packet from any thread
                session.media_flags = getattr(self.port, "flags", None)
            if hasattr(self.port, "connect"):  # native (media/native): pjsua's C API joins slots
                self.port.connect(am.getPortId())
            else:
                am.startTransmit(self.port)
                self.port.startTransmit(am)
            self._media = am
            log.info("media_active", call_id=self.sip_call_id,
                     codec=self._codec_name(i), srtp=self._srtp_suite())
            return

    def _srtp_suite(self) -> str | None:
        """The SRTP crypto suite protecting this call's audio, None for plain RTP."""
        try:
            return srtp_suite(self.dump(True, ""))
        except Exception:  # noqa: BLE001
            return None

    def _codec_name(self, index: int) -> str:
        try:
            si = self.getStreamInfo(index)
            return f"{si.codecName}/{si.codecClockRate}"
        except Exception:  # noqa: BLE001
            return "unknown"

    def onCallTransferStatus(self, prm):  # noqa: N802
        try:
            self.events.call_transfer_status(self, prm.statusCode, prm.reason, prm.finalNotify)
        except Exception:  # noqa: BLE001
            log.exception("transfer_status_handler_failed", call_id=self.sip_call_id)

    def onDtmfDigit(self, prm):  # noqa: N802
        try:
            self.events.call_dtmf(self, prm.digit)
        except Exception:  # noqa: BLE001
            log.exception("dtmf_handler_failed", call_id=self.sip_call_id)

    def transfer_op(self, target: str) -> None:
        """Send REFER asking the caller's side to call ``target`` (a blind transfer)."""
        self.xfer(target, pj.CallOpParam(True))

    def answer_op(self, code: int) -> None:
        """Send a provisional or final 2xx answer (180 Ringing, 200 OK)."""
        self.answer(_op(code, "", ()))

    def reject_op(self, code: int, reason: str = "",
                  headers: tuple[tuple[str, str], ...] = ()) -> None:
        """Refuse the INVITE with final response ``code`` (>= 300) carrying ``headers``.

        For use inside ``onIncomingCall``: there pjsua defers a hangup until the call is set up
        and then sends it without the extra headers, while a deferred *answer* keeps them, so a
        401's ``WWW-Authenticate`` or a 503's ``Retry-After`` must go out as an answer.
        """
        self.answer(_op(code, reason, headers))

    def hangup_op(self, code: int, reason: str = "", retry_after: int | None = None,
                  headers: tuple[tuple[str, str], ...] = ()) -> None:
        """Reject (before answer: ``code`` is the final response) or end with BYE.

        ``headers`` (name, value) pairs go on that response or BYE, e.g. a 401's
        ``WWW-Authenticate``; ``retry_after`` is shorthand for a ``Retry-After`` header.
        """
        if retry_after is not None:
            headers = (*headers, ("Retry-After", str(retry_after)))
        self.hangup(_op(code, reason, headers))

    def is_confirmed(self) -> bool:
        try:
            return self.getInfo().state == pj.PJSIP_INV_STATE_CONFIRMED
        except Exception:  # noqa: BLE001 - the call is already gone
            return False

    def release_media(self) -> None:
        """Give the port back to the pool (on the control thread, after disconnect)."""
        self._media = None
        port, self.port = self.port, None
        if port is not None:
            self.events.release_port(port)
