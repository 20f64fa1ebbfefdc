"""The worker's one Python thread for the native ports: once per media tick, every call's audio.

pjmedia's clock thread runs the C ports (``port.c``) and writes the process's eventfd on the
first caller frame of a tick. The pump wakes, lets the tick's other ports deliver
(``settle_s``), then, over all bound ports: first drains every caller ring into
``CallSession.on_caller_frame`` (so the tick's turn decisions, batched by ``TickBatch``, are
taken), then tops every agent ring up to ``depth`` frames from ``CallSession.next_frame``.

Why ``depth = 1`` keeps truncation exact: in a tick pjmedia asks for the agent's frame before
it hands over the caller's, so when the pump runs, the frame it pushed last tick has just been
sent and the ring is empty. A barge-in decided from this tick's caller audio therefore finds
nothing queued: the playout buffer's count of audio handed out is what the caller heard, and
the frame pulled right after the decision is already silence. A pause or clear from another
thread (DTMF, the API, the provider's VAD) reaches the C flags directly (:class:`PortFlags`).

Every N ticks (``sip.pump_ticks``, 1..3): the C side wakes the pump once a caller ring holds N
frames; the pump then replays the N ticks in their order (:meth:`Pump.tick`): for each one, every
call's caller frame, then one agent frame per call, so that after the round N agent frames are
queued. The sessions see the same alternation as at N = 1 (the Silero batch still scores one
round per tick for all calls), only later: a decision from the oldest frame of a round comes up
to (N-1)*20 ms after that audio arrived, and the echo reference (``next_frame``) leads the
caller's frames by N-1 frames (a constant: the echo canceller reads a delay N-1 frames longer).
A barge-in decided mid-round finds the agent frames pushed earlier in the round still queued:
``PortFlags.unsent`` counts them and ``PlayoutBuffer.clear(unsent)`` gives them back, so the
reported ``audio_end_ms`` is still what went on the wire.

Callbacks never raise out of :meth:`Pump.tick`: one call's error is counted and logged at
most once per second of frames, and the other calls' audio goes on.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable

import structlog

from ..priority import _raise_one
from .lib import NativePort

log = structlog.get_logger("sipbridge.media")

SETTLE_S = 0.001   # the conference reads and writes all its ports within a fraction of this
DEPTH = 1          # agent frames queued ahead of the clock (see the module doc)
MAX_TICKS = 3      # sip.pump_ticks: the C rings hold 8 agent and 32 caller frames


def _drop(_pcm: bytes) -> None:
    return None


def _name_thread(name: bytes) -> None:
    try:
        ctypes.CDLL(None).prctl(15, name, 0, 0, 0)   # PR_SET_NAME
    except (OSError, AttributeError):
        pass


class PortFlags:
    """The C side's pause/clear of one call's agent audio; inert once the port serves another call."""

    __slots__ = ("_port", "_epoch")

    def __init__(self, port: NativePort, epoch: int):
        self._port, self._epoch = port, epoch

    def _mine(self) -> bool:
        return self._port.epoch == self._epoch

    def pause(self) -> None:
        if self._mine():
            self._port.pause(True)

    def resume(self) -> None:
        if self._mine():
            self._port.pause(False)

    def unsent(self) -> int:
        """Agent frames pulled from the playout buffer and still queued here, not yet on the
        wire (0 up to the pump's depth): what a clear now drops (``PlayoutBuffer.clear(unsent)``)."""
        return self._port.out_queued() if self._mine() else 0

    def clear(self) -> None:
        """Queued agent frames are dropped and the pause lifted (as PlayoutBuffer.clear does)."""
        if self._mine():
            self._port.clear()
            self._port.pause(False)


class CallAudio:
    """A bound port with its call's two callbacks; what the pump walks over."""

    def __init__(self, port: NativePort, slot: int):
        self.port, self.slot = port, slot
        self.rate = port.rate
        self._silence = bytes(port.frame_bytes)
        self.errors = 0
        self._last_error_log = -1
        self._calls: tuple[Callable[[bytes], None], Callable[[], bytes]] = (_drop, self._idle)
        self.epoch = port.epoch
        self.flags: PortFlags | None = None

    def _idle(self) -> bytes:
        return self._silence

    def bind(self, on_frame: Callable[[bytes], None] | None,
             next_frame: Callable[[], bytes] | None) -> None:
        """Serve a call (or, with None, nothing): the C side forgets the previous one's frames."""
        self.errors = 0
        self._last_error_log = -1
        self._calls = (on_frame or _drop, next_frame or self._idle)
        self.epoch = self.port.bind(on_frame is not None)
        self.flags = PortFlags(self.port, self.epoch) if on_frame is not None else None

    def drain(self) -> int:
        """Caller frames of this call to its session, oldest first; how many."""
        on_frame, epoch, port = self._calls[0], self.epoch, self.port
        count = 0
        while True:
            got = port.pop_in()
            if got is None:
                return count
            if got[1] != epoch:   # queued for the call this port served before
                continue
            count += 1
            try:
                on_frame(got[0])
            except Exception:  # noqa: BLE001 - the other calls go on
                self._error("rx")

    def take(self) -> list[bytes]:
        """Every caller frame of this call the ring holds, oldest first (not yet delivered)."""
        epoch, port = self.epoch, self.port
        out = []
        while (got := port.pop_in()) is not None:
            if got[1] == epoch:   # not one queued for the call this port served before
                out.append(got[0])
        return out

    def deliver(self, pcm: bytes) -> None:
        """One caller frame to the session."""
        try:
            self._calls[0](pcm)
        except Exception:  # noqa: BLE001 - the other calls go on
            self._error("rx")

    def fill(self, depth: int = DEPTH) -> int:
        """Agent frames until ``depth`` are queued; how many were pushed.

        While the agent is paused (the C side holds its queued frames), the session still gets
        its one ``next_frame`` per tick (its clock: the echo canceller's reference is the
        silence on the wire, the hang-up timer runs); that frame is silence and is dropped, not
        queued (``PlayoutBuffer.pull`` does not count a paused pull among the unsent). Audio
        (a resume landed meanwhile) is queued."""
        next_frame, port = self._calls[1], self.port
        if port.paused:
            gen = port.gen
            try:
                pcm = next_frame()
            except Exception:  # noqa: BLE001
                self._error("tx")
                return 0
            if pcm == self._silence or len(pcm) != port.frame_bytes:
                return 0
            return int(port.push_out(pcm, gen))
        pushed = 0
        while port.out_queued() < depth:
            gen = port.gen   # read before pulling: a clear meanwhile makes this frame stale
            try:
                pcm = next_frame()
                if len(pcm) != port.frame_bytes:
                    raise ValueError(f"agent frame of {len(pcm)} bytes")
            except Exception:  # noqa: BLE001
                self._error("tx")
                pcm = self._silence
            if not port.push_out(pcm, gen):
                break
            pushed += 1
        return pushed

    def _error(self, where: str) -> None:
        self.errors += 1
        if self.errors // 50 != self._last_error_log:
            self._last_error_log = self.errors // 50
            log.exception("media_callback_failed", where=where, errors=self.errors, port="native")


class Pump:
    """The thread that serves every bound :class:`CallAudio` of the worker, once per tick."""

    def __init__(self, lib, settle_s: float = SETTLE_S, depth: int | None = None,
                 priority: str = "none", ticks: int = 1):
        if not 1 <= ticks <= MAX_TICKS:
            raise ValueError(f"pump ticks must be 1..{MAX_TICKS}, got {ticks}")
        self.ticks = ticks   # sip.pump_ticks: Python runs once every this many media ticks
        self.depth = (DEPTH if ticks == 1 else ticks) if depth is None else depth
        self.lib, self.settle_s = lib, settle_s
        self.priority = priority   # sip.media_priority: the pump does what the clock did
        self._lock = threading.Lock()
        self._audio: dict[int, CallAudio] = {}
        self._snapshot: tuple[CallAudio, ...] = ()
        self._stop = False
        self._fd = -1
        self._thread: threading.Thread | None = None
        self.wakes = 0
        self.frames_in = 0

    def start(self) -> None:
        self._fd = os.eventfd(0, os.EFD_CLOEXEC)
        if not self.lib.sb_set_wake_every(self.ticks):
            raise ValueError(f"the native port refused pump ticks {self.ticks}")
        self.lib.sb_set_wake_fd(self._fd)
        self._thread = threading.Thread(target=self._run, name="sipbridge-media-pump", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop = True
        self.lib.sb_set_wake_fd(-1)
        self.lib.sb_set_wake_every(1)
        os.eventfd_write(self._fd, 1)
        self._thread.join(timeout=2)
        os.close(self._fd)
        self._thread = None

    def add(self, audio: CallAudio) -> None:
        with self._lock:
            self._audio[id(audio)] = audio
            self._snapshot = tuple(self._audio.values())

    def remove(self, audio: CallAudio) -> None:
        with self._lock:
            self._audio.pop(id(audio), None)
            self._snapshot = tuple(self._audio.values())

    def tick(self, audio: tuple[CallAudio, ...]) -> int:
        """One round: every caller ring drained, then every agent ring topped up (N = 1); the
        N ticks a round covers replayed one by one otherwise (:meth:`_ticks`)."""
        if self.ticks != 1:
            return self._ticks(audio)
        frames = 0
        for a in audio:
            frames += a.drain()
        for a in audio:
            a.fill(self.depth)
        return frames

    def _ticks(self, audio: tuple[CallAudio, ...]) -> int:
        """Tick by tick, oldest first: every call's frame of that tick, then one agent frame per
        call (the last ``depth`` ticks), so that the round ends with ``depth`` queued. A call
        holding fewer frames (it joined mid-round) takes part in the last ticks only: its frames
        stay in step with the other calls' (one Silero round per tick)."""
        got = [a.take() for a in audio]
        rounds = max(map(len, got), default=0)
        for k in range(rounds):
            for a, frames in zip(audio, got):
                i = k - rounds + len(frames)
                if i >= 0:
                    a.deliver(frames[i])
            ahead = self.depth - (rounds - 1 - k)
            if ahead > 0:
                for a in audio:
                    a.fill(ahead)
        if rounds == 0:
            for a in audio:
                a.fill(self.depth)
        return sum(map(len, got))

    def _run(self) -> None:
        _name_thread(b"sb-media-pump")   # top -H / /proc/PID/task/TID/comm show it apart
        got = _raise_one(threading.get_native_id(), self.priority) if self.priority != "none" else None
        log.info("media_pump_started", priority=self.priority, got=got)
        while not self._stop:
            try:
                os.eventfd_read(self._fd)
            except OSError:
                return
            if self._stop:
                return
            if self.settle_s:
                time.sleep(self.settle_s)
            self.lib.sb_wake_ack()   # puts from here on wake the next round
            self.wakes += 1
            try:
                self.frames_in += self.tick(self._snapshot)
            except Exception:  # noqa: BLE001 - the pump must outlive any one round
                log.exception("media_pump_failed")
