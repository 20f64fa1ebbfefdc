"""Fast access to pjsua2 ``MediaFrame`` buffers.

SWIG exposes ``MediaFrame.buf`` as a ``std::vector<unsigned char>`` proxy whose ``bytes()``
conversion copies element by element (~340-460 µs for a 640-byte frame, measured). The proxy's
``this`` is the address of the vector object; with libstdc++ its first two words are the
begin and end pointers of the contiguous storage, so one ``ctypes.string_at`` copies the frame
in ~3 µs. The layout is checked once at import against a known buffer; if it does not hold (a
different C++ runtime), :func:`read_frame` falls back to the slow, always-correct path.

Writing is the mirror image: ``frame.buf = pj.ByteVector(data)`` converts the bytes through
SWIG's generic sequence code (~34 µs hot, the largest single item of a loaded worker's media
thread after Silero, bench/README.md "Where the time goes"); :func:`write_frame` instead resizes
the frame's own vector (one C++ call) and copies the data into its storage with ``memmove`` (~12 µs).
It is checked at import the same way and falls back to ``ByteVector`` if the check fails.
"""

from __future__ import annotations

import ctypes

import pjsua2 as pj

_PTRS = ctypes.POINTER(ctypes.c_void_p)


def _read_fast(vec) -> bytes:
    begin, end = ctypes.cast(int(vec.this), _PTRS)[0:2]
    if not begin or end <= begin:
        return b""
    return ctypes.string_at(begin, end - begin)


def _read_slow(vec) -> bytes:
    return bytes(vec)


def _layout_holds() -> bool:
    probe = bytes(range(256)) * 3
    vec = pj.ByteVector(probe)
    try:
        return _read_fast(vec) == probe and _read_fast(pj.ByteVector()) == b""
    except (ValueError, OSError, TypeError):
        return False


def _write_fast(frame, data: bytes) -> None:
    frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
    vec = frame.buf  # the frame's own vector (a reference, not a copy)
    vec.resize(len(data))
    if data:
        ctypes.memmove(ctypes.c_void_p.from_address(int(vec.this)).value, data, len(data))
    frame.size = len(data)


def _write_slow(frame, data: bytes) -> None:
    frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
    frame.buf = pj.ByteVector(data)
    frame.size = len(data)


def _write_layout_holds() -> bool:
    probe = bytes(range(256)) * 3
    try:
        frame = pj.MediaFrame()
        _write_fast(frame, probe)
        again = pj.MediaFrame()
        _write_fast(again, probe[:10])
        _write_fast(again, probe[:640])
        return (bytes(frame.buf) == probe and frame.size == len(probe)
                and bytes(again.buf) == probe[:640] and again.size == 640
                and frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO)
    except (ValueError, OSError, TypeError, AttributeError):
        return False


FAST_PATH = _layout_holds()
_read = _read_fast if FAST_PATH else _read_slow
FAST_WRITE = FAST_PATH and _write_layout_holds()
_write = _write_fast if FAST_WRITE else _write_slow


def read_frame(frame: "pj.MediaFrame") -> bytes:
    """Return the payload of ``frame`` as bytes (the fast path when the vector layout allows)."""
    return _read(frame.buf)


def write_frame(frame: "pj.MediaFrame", data: bytes) -> None:
    """Fill ``frame`` with 16-bit PCM ``data`` as an audio frame (fast path when it checked out)."""
    _write(frame, data)
