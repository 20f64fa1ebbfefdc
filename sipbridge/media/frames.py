"""Fast access to pjsua2 ``MediaFrame`` buffers.

SWIG exposes ``MediaFrame.buf`` as a ``std::vector<unsigned char>`` proxy whose ``bytes()``
conversion copies element by element (~340-460 µs for a 640-byte frame, measured). The proxy's
``this`` is the address of the vector object; with libstdc++ its first two words are the
begin and end pointers of the contiguous storage, so one ``ctypes.string_at`` copies the frame
in ~3 µs. The layout is checked once at import against a known buffer; if it does not hold (a
different C++ runtime), :func:`read_frame` falls back to the slow, always-correct path.
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


FAST_PATH = _layout_holds()
_read = _read_fast if FAST_PATH else _read_slow


def read_frame(frame: "pj.MediaFrame") -> bytes:
    """Return the payload of ``frame`` as bytes (the fast path when the vector layout allows)."""
    return _read(frame.buf)


def write_frame(frame: "pj.MediaFrame", data: bytes) -> None:
    """Fill ``frame`` with 16-bit PCM ``data`` as an audio frame."""
    frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
    frame.buf = pj.ByteVector(data)
    frame.size = len(data)
