"""Conversions between 16-bit linear PCM byte strings and numpy arrays.

Every byte-oriented entry point of :mod:`sipcodecs` speaks the same wire
format: signed 16-bit two's-complement samples, little-endian, mono, no
header -- the layout RTP L16 payloads use *after* byte-swapping and the one
``audioop`` uses with ``width=2`` on little-endian hosts.  Keeping the
conversion in one place means the codecs and the resampler agree on it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["PCM16", "pcm16_to_array", "array_to_pcm16", "require_int16"]

#: The wire dtype: signed 16-bit, little-endian.
PCM16 = np.dtype("<i2")


def pcm16_to_array(pcm16: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    """Return a read-only int16 view of little-endian 16-bit PCM bytes.

    No copy is made.  A buffer with an odd number of bytes is not a whole
    number of samples and raises :class:`ValueError` (``audioop`` raises
    ``audioop.error`` in the same situation).
    """
    nbytes = pcm16.nbytes if isinstance(pcm16, memoryview) else len(pcm16)
    if nbytes % 2:
        raise ValueError(f"16-bit PCM needs an even number of bytes, got {nbytes}")
    return np.frombuffer(pcm16, dtype=PCM16)


def array_to_pcm16(samples: npt.NDArray[np.int16]) -> bytes:
    """Serialise an int16 array as little-endian 16-bit PCM bytes."""
    return require_int16(samples).astype(PCM16, copy=False).tobytes()


def require_int16(samples: npt.ArrayLike) -> npt.NDArray[np.int16]:
    """Return ``samples`` as an int16 ndarray, refusing any other dtype.

    Silently casting wider integers or floats would wrap out-of-range values,
    which is exactly the failure the rest of the package guards against, so
    the caller must decide how to get to int16.  A byte-swapped int16 array
    (``>i2`` on a little-endian host) is accepted and returned in native order.
    """
    array = np.asarray(samples)
    if array.dtype.kind != "i" or array.dtype.itemsize != 2:
        raise TypeError(f"expected int16 samples, got dtype {array.dtype}")
    return array.astype(np.int16, copy=False)
