"""The per-call pjsua2 audio port: the seam between pjmedia's clock thread and Python.

pjmedia calls :meth:`CallPort.onFrameReceived` then :meth:`CallPort.onFrameRequested` every
20 ms on its clock thread, for every call of the process in turn. A tick without caller audio is delivered as silence, so
time keeps flowing for the turn detector. Both callbacks must be cheap
and must never raise into SWIG: an exception is counted, logged once per second at most, and the
frame is answered with silence, so one bad call cannot stall the media of the others.
"""

from __future__ import annotations

from collections.abc import Callable

import pjsua2 as pj
import structlog

from .frames import read_frame, write_frame

log = structlog.get_logger("sipbridge.media")

PORT_RATE = 16000
FRAME_MS = 20
FRAME_BYTES = PORT_RATE * FRAME_MS // 1000 * 2


def port_format() -> "pj.MediaFormatAudio":
    """16 kHz, mono, 16-bit, 20 ms frames: what the caller's audio is turned into."""
    fmt = pj.MediaFormatAudio()
    fmt.type = pj.PJMEDIA_TYPE_AUDIO
    fmt.id = pj.PJMEDIA_FORMAT_PCM
    fmt.clockRate = PORT_RATE
    fmt.channelCount = 1
    fmt.bitsPerSample = 16
    fmt.frameTimeUsec = FRAME_MS * 1000
    fmt.avgBps = PORT_RATE * 16
    fmt.maxBps = PORT_RATE * 16
    return fmt


class CallPort(pj.AudioMediaPort):
    """Hands caller frames to ``on_frame`` and asks ``next_frame`` for the agent's next frame."""

    def __init__(self, on_frame: Callable[[bytes], None], next_frame: Callable[[], bytes]):
        super().__init__()
        self._on_frame = on_frame
        self._next_frame = next_frame
        self._silence = bytes(FRAME_BYTES)
        self.frames_in = 0
        self.frames_empty = 0
        self.errors = 0
        self._last_error_log = -1

    def onFrameReceived(self, frame):  # noqa: N802 - pjsua2 naming
        try:
            data = read_frame(frame) if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO else b""
            if len(data) != FRAME_BYTES:
                # no RTP this tick (caller muted, loss, a sender that stopped): the turn
                # engine counts time in samples, so it must still see 20 ms pass
                self.frames_empty += 1
                data = self._silence
            else:
                self.frames_in += 1
            self._on_frame(data)
        except Exception:  # noqa: BLE001 - nothing may escape into the clock thread
            self._error("rx")

    def onFrameRequested(self, frame):  # noqa: N802 - pjsua2 naming
        try:
            data = self._next_frame()
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
