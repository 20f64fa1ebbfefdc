"""One outgoing test call on pjsua2: dial, play frames, keep what comes back, hang up.

The thin edge of ``sipbridge call``: its own pjsua2 endpoint in this process (null sound
device, G.711 only, conference clock at 8 kHz like the bridge), a UDP transport on
``bind`` (port 0: the kernel picks a free one) and RTP on kernel-chosen ports on the same
address. pjsua runs with no worker thread: the calling thread polls ``libHandleEvents``, so
call callbacks run here; only the frame callbacks run on pjmedia's clock thread.

Media clock: :class:`ProbePort` counts clock ticks (20 ms) from the moment the call's media is
connected. Tick ``t`` hands out frame ``t`` of
what to say (silence after its end) and files the frame received on that tick under ``t``
(pjmedia calls receive, then request, each tick), so both directions share one sample clock.
The answer is noted as the tick it happened on.

Shutdown follows the library's rule (a ``Call`` or ``AudioMediaPort`` alive at ``libDestroy``
aborts the process): the call is over, the account shut down, tracebacks dropped, ``gc``
run, and the call and port proxies disowned (their C++ objects are left to the exiting
process, as the bridge does with its ports) before ``libDestroy``.
"""

from __future__ import annotations

import ctypes
import gc
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import pjsua2 as pj

from ..errors import SipBridgeError
from ..media.frames import read_frame, write_frame
from ..media.port import port_format
from ..sip.stack import CODEC_PRIORITIES, library_path

RATE = 8000
FRAME_BYTES = RATE * 20 // 1000 * 2


class CallError(SipBridgeError):
    """The call could not be placed: the local address cannot be bound, the URI is refused."""


def _reason(exc: "pj.Error") -> str:
    return (getattr(exc, "reason", "") or exc.info()).strip()


class ProbePort(pj.AudioMediaPort):
    """Plays ``frames`` from the first tick on and keeps every received frame by tick."""

    def __init__(self, frames: list[bytes]):
        super().__init__()
        self.frames = frames
        self.tick = 0
        self.live = False   # set once the call's media is connected: the clock starts then
        self.received: dict[int, bytes] = {}
        self.errors = 0
        self._silence = bytes(FRAME_BYTES)

    def onFrameReceived(self, frame):  # noqa: N802 - pjsua2 naming
        try:
            if self.live and frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
                data = read_frame(frame)
                if len(data) == FRAME_BYTES:
                    self.received[self.tick] = data
        except Exception:  # noqa: BLE001 - nothing may escape into the clock thread
            self.errors += 1

    def onFrameRequested(self, frame):  # noqa: N802
        try:
            if not self.live:
                write_frame(frame, self._silence)
                return
            t = self.tick
            write_frame(frame, self.frames[t] if t < len(self.frames) else self._silence)
            self.tick = t + 1
        except Exception:  # noqa: BLE001
            self.errors += 1

    def sent_pcm(self, ticks: int) -> np.ndarray:
        said = b"".join(self.frames[:ticks])
        pcm = np.frombuffer(said, dtype="<i2")
        return np.concatenate([pcm, np.zeros(ticks * FRAME_BYTES // 2 - len(pcm), np.int16)])

    def received_pcm(self, ticks: int) -> np.ndarray:
        out = np.zeros(ticks * FRAME_BYTES // 2, dtype=np.int16)
        for t, data in list(self.received.items()):
            if t < ticks:
                out[t * FRAME_BYTES // 2:(t + 1) * FRAME_BYTES // 2] = np.frombuffer(data, "<i2")
        return out


class _Call(pj.Call):
    """Records state changes; connects the port both ways once media is up."""

    def __init__(self, acc, port: ProbePort):
        super().__init__(acc)
        self.port = port
        self.connected = False
        self.confirmed_tick: int | None = None
        self.confirmed_at: float | None = None
        self.disconnected = False
        self.status: int | None = None
        self.reason = ""

    def onCallState(self, prm):  # noqa: N802
        ci = self.getInfo()
        if ci.lastStatusCode:
            self.status, self.reason = int(ci.lastStatusCode), ci.lastReason
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_tick is None:
            self.confirmed_at = time.monotonic()
            self.confirmed_tick = self.port.tick
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True

    def onCallMediaState(self, prm):  # noqa: N802
        if self.connected:
            return
        ci = self.getInfo()
        for i, media in enumerate(ci.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                am = self.getAudioMedia(i)
                self.port.live = True
                self.port.startTransmit(am)
                am.startTransmit(self.port)
                self.connected = True
                return


@dataclass
class CallResult:
    """What the edge saw: SIP outcome, and the two sides' audio from the answer on."""

    answered: bool
    status: int | None
    reason: str
    setup_ms: float | None
    hung_up_by: str
    sent: np.ndarray          # int16 at RATE, tick 0 = first media tick
    received: np.ndarray
    answer_ms: float          # where the answer falls on that clock


class _Log(pj.LogWriter):
    def __init__(self):
        super().__init__()

    def write(self, entry):  # noqa: D401
        try:
            sys.stderr.write(entry.msg if entry.msg.endswith("\n") else entry.msg + "\n")
        except Exception:  # noqa: BLE001
            pass


def _count_sigint(presses: list[int]):
    """Count Ctrl-C presses in ``presses`` (in the main thread) until the returned function is
    called. A flag, not KeyboardInterrupt: raised while pjsua2 runs one of our callbacks inside
    ``libHandleEvents`` (the log writer, a call state), the binding swallowed it and the call
    played on to its end (a loaded CI machine, tests/integration/test_first_call.py)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: presses.append(1))
    return lambda: signal.signal(signal.SIGINT, previous)


def place_call(uri: str, frames: list[bytes], hold_s: float, bind: str = "127.0.0.1",
               answer_timeout_s: float = 30.0, pj_log_level: int = 1) -> CallResult:
    """Dial ``uri``, play ``frames`` then ``hold_s`` of silence, hang up, return what happened."""
    host, _, port = bind.partition(":")
    # quiet from the start: libCreate logs its set-up before libInit's log settings apply
    ctypes.CDLL(library_path()).pj_log_set_level(ctypes.c_int(pj_log_level))
    ep = pj.Endpoint()
    ep.libCreate()
    acc = call = probe = writer = None
    try:
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.userAgent = "sipbridge-call"
        cfg.medConfig.clockRate = RATE
        cfg.medConfig.sndClockRate = RATE
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        cfg.medConfig.ptime = 20
        cfg.medConfig.threadCnt = 1
        writer = _Log()
        cfg.logConfig.writer = writer
        cfg.logConfig.level = pj_log_level
        cfg.logConfig.consoleLevel = pj_log_level
        cfg.logConfig.decor = 0
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()
        tcfg = pj.TransportConfig()
        tcfg.port = int(port or 0)
        tcfg.boundAddress = host
        try:
            tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        except pj.Error as exc:
            raise CallError(f"cannot listen for SIP on {bind}: {_reason(exc)}") from None
        local_port = ep.transportGetInfo(tid).localName.rsplit(":", 1)[1]
        ep.libStart()
        for codec in ep.codecEnum2():
            ep.codecSetPriority(codec.codecId, CODEC_PRIORITIES.get(codec.codecId, 0))

        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:caller@{host}:{local_port}"
        mt = acfg.mediaConfig.transportConfig
        mt.boundAddress = host
        mt.port = 0
        acc = pj.Account()
        acc.create(acfg, True)

        probe = ProbePort(frames)
        probe.createPort("caller", port_format(RATE))
        call = _Call(acc, probe)
        started = time.monotonic()
        try:
            call.makeCall(uri, pj.CallOpParam(True))
        except pj.Error as exc:
            raise CallError(f"cannot call {uri}: {_reason(exc)}") from None
        end_tick = len(frames) + int(round(hold_s * 50))
        hangup_at: float | None = None
        timed_out = False
        presses: list[int] = []   # Ctrl-C: hang up now and report what was heard; twice: give up
        restore = _count_sigint(presses)
        try:
            while not call.disconnected:
                ep.libHandleEvents(20)
                if len(presses) > 1:
                    break
                now = time.monotonic()
                if call.disconnected:
                    break
                if hangup_at is not None:
                    if now - hangup_at > 10:  # the far end never answered our BYE or CANCEL
                        break
                    continue
                answered = call.confirmed_tick is not None
                timed_out = not answered and now - started > answer_timeout_s
                if presses or timed_out or (answered and probe.tick >= end_tick):
                    call.hangup(pj.CallOpParam(True))
                    hangup_at = now
        finally:
            restore()
        interrupted = bool(presses)
        hung_up_by = "agent" if hangup_at is None else "caller"
        answered = call.confirmed_tick is not None
        ticks = probe.tick
        result = CallResult(
            answered=answered,
            status=200 if answered else (None if timed_out or interrupted else call.status),
            reason="OK" if answered else (f"no answer within {answer_timeout_s:g} s" if timed_out
                                          else "cancelled (Ctrl-C)" if interrupted
                                          else call.reason or "no response"),
            setup_ms=(call.confirmed_at - started) * 1000 if answered else None,
            hung_up_by=hung_up_by,
            sent=probe.sent_pcm(ticks), received=probe.received_pcm(ticks),
            answer_ms=(call.confirmed_tick or 0) * 20.0)
        return result
    finally:
        _destroy(ep, acc, call, probe)


def _destroy(ep, acc, call, probe) -> None:
    """Hang up what is left and tear the library down without tripping its assertions."""
    try:
        if call is not None and call.isActive():
            ep.hangupAllCalls()
            deadline = time.monotonic() + 3
            while not call.disconnected and time.monotonic() < deadline:
                ep.libHandleEvents(20)
        if acc is not None:
            acc.shutdown()
    finally:
        sys.last_traceback = sys.last_value = None
        gc.collect()
        for obj in (call, probe, acc):
            if obj is not None:
                obj.thisown = 0
        ep.libDestroy()
