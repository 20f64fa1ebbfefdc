"""The per-call pjsua2 audio port: the seam between pjmedia's clock thread and Python.

pjmedia calls :meth:`CallPort.onFrameReceived` then :meth:`CallPort.onFrameRequested` every
20 ms on its clock thread, for every call of the process in turn. A tick without caller audio is delivered as silence, so
time keeps flowing for the turn detector. Both callbacks must be cheap
and must never raise into SWIG: an exception is counted, logged once per second at most, and the
frame is answered with silence, so one bad call cannot stall the media of the others.

Ports are never destroyed while the library runs: a :class:`PortPool` hands a finished call's
port to the next call. Destroying one (dropping its Python object) while pjmedia's clock thread
was inside its callbacks crashed workers (``'CallPort' object has no attribute 'frames_in'``,
then SIGSEGV; about one run in three of ten calls a second): pjmedia removes a conference port
asynchronously, after the destructor has returned. An idle port is bound to nothing, receives
no caller audio and answers silence; :meth:`SipStack.destroy` disowns the pool's ports.
"""

from __future__ import annotations

from collections.abc import Callable

import pjsua2 as pj
import structlog

from .frames import read_frame, write_frame
from .reuse import Reuse

log = structlog.get_logger("sipbridge.media")

PORT_RATE = 16000   # the default, ``sip.media_rate``; 8000 is the call's own rate
FRAME_MS = 20


def frame_bytes(rate: int = PORT_RATE) -> int:
    """Bytes of one 20 ms mono PCM16 frame at ``rate``."""
    return rate * FRAME_MS // 1000 * 2


FRAME_BYTES = frame_bytes()


def port_format(rate: int = PORT_RATE) -> "pj.MediaFormatAudio":
    """Mono, 16-bit, 20 ms frames at ``rate``: what the caller's audio is turned into. At 16 kHz
    pjmedia's conference resamples the 8 kHz call both ways; at 8 kHz it passes frames as they are."""
    fmt = pj.MediaFormatAudio()
    fmt.type = pj.PJMEDIA_TYPE_AUDIO
    fmt.id = pj.PJMEDIA_FORMAT_PCM
    fmt.clockRate = rate
    fmt.channelCount = 1
    fmt.bitsPerSample = 16
    fmt.frameTimeUsec = FRAME_MS * 1000
    fmt.avgBps = rate * 16
    fmt.maxBps = rate * 16
    return fmt


def _drop(_pcm: bytes) -> None:
    return None


class CallPort(pj.AudioMediaPort):
    """Hands caller frames to ``on_frame`` and asks ``next_frame`` for the agent's next frame."""

    def __init__(self, on_frame: Callable[[bytes], None] | None = None,
                 next_frame: Callable[[], bytes] | None = None, rate: int = PORT_RATE):
        super().__init__()
        self.rate = rate
        self._frame_bytes = frame_bytes(rate)
        self._silence = bytes(self._frame_bytes)
        self.bind(on_frame, next_frame)

    def bind(self, on_frame: Callable[[bytes], None] | None,
             next_frame: Callable[[], bytes] | None) -> None:
        """Serve a (new) call: its frame callbacks, fresh counters. ``None``: idle."""
        self.frames_in = 0
        self.frames_empty = 0
        self.errors = 0
        self._last_error_log = -1
        # one tuple, swapped in one assignment: a callback running meanwhile on the clock
        # thread sees the old pair or the new pair, never one of each
        self._calls = (on_frame or _drop, next_frame or self._idle)

    def _idle(self) -> bytes:
        return self._silence

    def onFrameReceived(self, frame):  # noqa: N802 - pjsua2 naming
        try:
            data = read_frame(frame) if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO else b""
            if len(data) != self._frame_bytes:
                # no RTP this tick (caller muted, loss, a sender that stopped): the turn
                # engine counts time in samples, so it must still see 20 ms pass
                self.frames_empty += 1
                data = self._silence
            else:
                self.frames_in += 1
            self._calls[0](data)
        except Exception:  # noqa: BLE001 - nothing may escape into the clock thread
            self._error("rx")

    def onFrameRequested(self, frame):  # noqa: N802 - pjsua2 naming
        try:
            data = self._calls[1]()
        except Exception:  # noqa: BLE001
            self._error("tx")
            data = self._silence
        try:
            write_frame(frame, data)
        except Exception:  # noqa: BLE001
            self._error("tx-write")

    def _error(self, where: str) -> None:
        self.errors += 1
        # at most one log line per 50 errors (one second of frames) per port
        if self.errors // 50 != self._last_error_log:
            self._last_error_log = self.errors // 50
            log.exception("media_callback_failed", where=where, errors=self.errors)


class PortPool:
    """Audio ports for the calls of one worker, reused from call to call, never destroyed.

    ``track`` is told of every port created (so the SIP stack can disown them at ``libDestroy``).
    The pool holds at most as many ports as calls were ever up at once, plus those released
    and not yet reused.
    """

    def __init__(self, track: Callable[[CallPort], None] = lambda _p: None, rate: int = PORT_RATE):
        self._track = track
        self.rate = rate
        self._ports: Reuse[CallPort] = Reuse()

    def acquire(self, on_frame: Callable[[bytes], None], next_frame: Callable[[], bytes]) -> CallPort:
        """A port bound to a call's callbacks: a released one, or a new one (pjsua thread)."""
        port = self._ports.take()
        if port is None:
            port = CallPort(rate=self.rate)
            port.createPort(f"bridge{self._ports.size}", port_format(self.rate))
            self._ports.add(port)
            self._track(port)
        port.bind(on_frame, next_frame)
        return port

    def release(self, port: CallPort) -> None:
        """The call is over (its stream has left the conference): idle the port for the next."""
        port.bind(None, None)
        self._ports.give_back(port)

    @property
    def size(self) -> int:
        return self._ports.size
