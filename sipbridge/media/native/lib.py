"""ctypes binding of the native port library (``port.c``): one :class:`NativePort` per port.

Loading builds the library first when it is missing or stale (:mod:`.build`). Nothing here
touches pjsua: the rings, flags and callbacks can be driven from a test through the port's own
function pointers. The pjmedia struct mirrors below must match ``port.c`` (checked against its
``sb_layout`` at load) and the running pjmedia (checked by :mod:`.layout` at start-up).
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

from . import build

ST_NAMES = ("frames_in", "frames_empty", "in_dropped", "frames_out", "underruns",
            "stale_dropped", "paused_frames", "out_idle")
FRAME_NONE, FRAME_AUDIO = 0, 1


class PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("slen", ctypes.c_long)]


class PjFormat(ctypes.Structure):   # pjmedia_format with its audio detail
    _fields_ = [("id", ctypes.c_uint32), ("type", ctypes.c_uint32),
                ("detail_type", ctypes.c_uint32), ("clock_rate", ctypes.c_uint32),
                ("channel_count", ctypes.c_uint32), ("frame_time_usec", ctypes.c_uint32),
                ("bits_per_sample", ctypes.c_uint32), ("avg_bps", ctypes.c_uint32),
                ("max_bps", ctypes.c_uint32)]


class PjPortInfo(ctypes.Structure):
    _fields_ = [("name", PjStr), ("signature", ctypes.c_uint32), ("dir", ctypes.c_uint32),
                ("fmt", PjFormat)]


class PjFrame(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("buf", ctypes.c_void_p), ("size", ctypes.c_size_t),
                ("timestamp", ctypes.c_uint64), ("bit_info", ctypes.c_uint32)]


FRAME_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(PjFrame))


class PjPort(ctypes.Structure):
    _fields_ = [("info", PjPortInfo), ("pdata", ctypes.c_void_p), ("ldata", ctypes.c_long),
                ("grp_lock", ctypes.c_void_p), ("get_clock_src", ctypes.c_void_p),
                ("put_frame", FRAME_CB), ("get_frame", FRAME_CB),
                ("on_destroy", ctypes.c_void_p)]


def expected_layout() -> list[int]:
    """What ``sb_layout`` must answer, from the Python mirrors (same order as in port.c)."""
    return [ctypes.sizeof(PjPortInfo), PjPortInfo.signature.offset, PjPortInfo.dir.offset,
            PjPortInfo.fmt.offset, PjFormat.clock_rate.offset, ctypes.sizeof(PjFormat),
            PjPort.grp_lock.offset, PjPort.put_frame.offset, PjPort.get_frame.offset,
            PjPort.on_destroy.offset, ctypes.sizeof(PjPort),
            PjFrame.buf.offset, PjFrame.size.offset, PjFrame.timestamp.offset,
            ctypes.sizeof(PjFrame)]


class LayoutError(RuntimeError):
    """A pjmedia struct as declared here does not match the library (or port.c)."""


_lib = None
_lib_lock = threading.Lock()


def load(path: Path | None = None):
    """The library (built if needed), its functions declared; one per process."""
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _declare(ctypes.CDLL(str(path or build.ensure())))
            _check_mirrors(_lib)
        return _lib


def _declare(lib):
    vp, u32, i = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int
    sigs = {
        "sb_port_new": (vp, [u32, u32, ctypes.c_char_p]), "sb_port_free": (None, [vp]),
        "sb_port_bind": (u32, [vp, i]), "sb_port_pause": (None, [vp, i]),
        "sb_port_paused": (i, [vp]), "sb_port_clear": (u32, [vp]), "sb_port_gen": (u32, [vp]),
        "sb_port_epoch": (u32, [vp]), "sb_port_destroyed": (i, [vp]),
        "sb_port_push_out": (i, [vp, ctypes.c_char_p, u32, u32]),
        "sb_port_out_queued": (u32, [vp]),
        "sb_port_pop_in": (i, [vp, vp, u32, ctypes.POINTER(u32)]),
        "sb_port_stats": (None, [vp, ctypes.POINTER(ctypes.c_uint64), i]),
        "sb_set_wake_fd": (None, [i]), "sb_wake_ack": (None, []),
        "sb_set_wake_every": (i, [u32]),
        "sb_layout": (i, [ctypes.POINTER(ctypes.c_uint64), i]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def _check_mirrors(lib) -> None:
    want = expected_layout()
    out = (ctypes.c_uint64 * 32)()
    count = lib.sb_layout(out, 32)
    got = list(out[:len(want)])
    if count < len(want) or got != want:
        raise LayoutError(f"port.c and lib.py disagree on pjmedia layouts: {got} != {want}")


class NativePort:
    """One C port: its address (what pjmedia gets), rings, flags and counters."""

    def __init__(self, rate: int, frame_bytes: int, name: str, lib=None):
        self.lib = lib or load()
        self.rate, self.frame_bytes = rate, frame_bytes
        self.addr = self.lib.sb_port_new(rate, frame_bytes, name.encode()[:31])
        if not self.addr:
            raise ValueError(f"sb_port_new refused rate={rate} frame_bytes={frame_bytes}")
        self.base = PjPort.from_address(self.addr)
        self._buf = ctypes.create_string_buffer(frame_bytes)
        self._tag = ctypes.c_uint32()
        self.epoch = 0

    # -- pump / control side -------------------------------------------------------------------
    def bind(self, bound: bool) -> int:
        """Serve a new call (or none): earlier frames in either ring are ignored from now on."""
        self.epoch = self.lib.sb_port_bind(self.addr, 1 if bound else 0)
        return self.epoch

    def pause(self, paused: bool = True) -> None:
        self.lib.sb_port_pause(self.addr, 1 if paused else 0)

    def clear(self) -> int:
        """Drop every agent frame queued so far; the next packet is silence or newer audio."""
        return self.lib.sb_port_clear(self.addr)

    @property
    def gen(self) -> int:
        return self.lib.sb_port_gen(self.addr)

    @property
    def paused(self) -> bool:
        return bool(self.lib.sb_port_paused(self.addr))

    def push_out(self, pcm: bytes, gen: int) -> bool:
        """Queue one agent frame pulled under ``gen``; False when the ring is full."""
        status = self.lib.sb_port_push_out(self.addr, pcm, len(pcm), gen)
        if status < 0:
            raise ValueError(f"agent frame of {len(pcm)} bytes")
        return status == 1

    def out_queued(self) -> int:
        return self.lib.sb_port_out_queued(self.addr)

    def pop_in(self) -> tuple[bytes, int] | None:
        """The oldest caller frame and the bind epoch it was stamped with, or None."""
        n = self.lib.sb_port_pop_in(self.addr, self._buf, self.frame_bytes, ctypes.byref(self._tag))
        if n < 0:
            return None
        return ctypes.string_at(self._buf, n), self._tag.value

    def stats(self) -> dict[str, int]:
        out = (ctypes.c_uint64 * len(ST_NAMES))()
        self.lib.sb_port_stats(self.addr, out, len(ST_NAMES))
        return dict(zip(ST_NAMES, out))

    # -- what pjmedia does (tests, and the start-up check) ----------------------------------------
    def put(self, pcm: bytes | None) -> None:
        """Call the port's put_frame as pjmedia would: ``None`` is a frame without audio."""
        frame = PjFrame(type=FRAME_NONE if pcm is None else FRAME_AUDIO)
        keep = None
        if pcm is not None:
            keep = ctypes.create_string_buffer(pcm, len(pcm))
            frame.buf, frame.size = ctypes.addressof(keep), len(pcm)
        self.base.put_frame(self.addr, ctypes.byref(frame))

    def get(self) -> bytes:
        """Call the port's get_frame as pjmedia would; the frame's bytes."""
        out = ctypes.create_string_buffer(b"\x55" * self.frame_bytes, self.frame_bytes)
        frame = PjFrame(type=FRAME_NONE, buf=ctypes.addressof(out), size=self.frame_bytes)
        self.base.get_frame(self.addr, ctypes.byref(frame))
        if frame.type != FRAME_AUDIO:
            raise LayoutError("get_frame did not answer an audio frame")
        return out.raw[:frame.size]

    def free(self) -> None:
        """Only for a port pjmedia never saw."""
        if self.addr:
            self.lib.sb_port_free(self.addr)
            self.addr = None


def set_wake_fd(fd: int, lib=None) -> None:
    (lib or load()).sb_set_wake_fd(fd)


def wake_ack(lib=None) -> None:
    (lib or load()).sb_wake_ack()
