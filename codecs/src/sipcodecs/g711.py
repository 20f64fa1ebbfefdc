"""ITU-T G.711 A-law and µ-law companding for 16-bit linear PCM.

G.711 ("Pulse code modulation (PCM) of voice frequencies") codes each
8 kHz sample in eight bits with one of two segmented logarithmic laws, the
piecewise-linear approximations of

* µ-law (µ = 255): ``F(x) = sgn(x) · ln(1 + µ|x|) / ln(1 + µ)``, applied to a
  14-bit uniform signal (sign + 13 magnitude bits); 8 segments per polarity,
  16 intervals per segment, the step doubling from one segment to the next;
* A-law (A = 87.6): ``F(x) = sgn(x) · A|x| / (1 + ln A)`` for ``|x| <= 1/A``
  and ``sgn(x) · (1 + ln(A|x|)) / (1 + ln A)`` above, applied to a 13-bit
  uniform signal (sign + 12 magnitude bits); again 8 segments × 16 intervals,
  the two innermost segments sharing the smallest step (the "13-segment" law).

An 8-bit character is ``P SSS QQQQ``: polarity bit, 3-bit segment number,
4-bit interval within the segment.  On the line the µ-law character has all
eight bits inverted, the A-law character has the even bits (2, 4, 6, 8,
counting from the polarity bit as bit 1, i.e. mask ``0x55``) inverted; in
both laws a positive sample has polarity bit 1.  The decoder emits the
mid-value of the quantisation interval the character names.

16-bit samples are reduced to the law's uniform width by dropping the low
bits with an arithmetic shift (``>> 2`` for µ-law, ``>> 3`` for A-law),
which is what ``audioop.lin2ulaw``/``lin2alaw`` do with ``width=2``; the
tables below are therefore bit-identical to ``audioop`` in both directions.

The tables are computed once at import from the segment arithmetic above:
a 65,536-entry encode table indexed by the sample's bit pattern and a
256-entry decode table indexed by the character, so every conversion is a
single vectorised ``numpy.take``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .pcm import PCM16, pcm16_to_array, require_int16

__all__ = [
    "ulaw_encode",
    "ulaw_decode",
    "alaw_encode",
    "alaw_decode",
    "ulaw_encode_array",
    "ulaw_decode_array",
    "alaw_encode_array",
    "alaw_decode_array",
    "ULAW_ENCODE_TABLE",
    "ULAW_DECODE_TABLE",
    "ALAW_ENCODE_TABLE",
    "ALAW_DECODE_TABLE",
]

#: µ-law bias in 14-bit units: with 33 added, segment ``s`` holds the biased
#: magnitudes ``[2**(s+5), 2**(s+6))``, so segment 0 is ``|v|`` = 0..30.
_ULAW_BIAS = 33
#: Largest biased µ-law magnitude still inside segment 7 (2**13 - 1); larger
#: magnitudes saturate to the outermost interval.
_ULAW_BIASED_MAX = 0x1FFF
_ULAW_LINE_MASK = 0xFF  # "all bits inverted"
_ALAW_LINE_MASK = 0x55  # "even bits inverted"


def _all_int16() -> npt.NDArray[np.int32]:
    """Every int16 value, widened to int32, in bit-pattern order 0x0000..0xFFFF."""
    return np.arange(1 << 16, dtype=np.uint16).view(np.int16).astype(np.int32)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    """µ-law character for every 16-bit sample (G.711 µ-law, 14-bit input).

    The 14-bit sample ``v = x >> 2`` is split into sign and magnitude; the
    magnitude plus 33 lies in ``[2**(s+5), 2**(s+6))`` for segment ``s`` and
    the interval is the next four bits below the leading one.
    """
    value = _all_int16() >> 2
    negative = value < 0
    biased = np.minimum(np.abs(value) + _ULAW_BIAS, _ULAW_BIASED_MAX)
    segment = np.searchsorted(1 << np.arange(6, 13), biased, side="right")
    interval = (biased >> (segment + 1)) & 0xF
    character = (negative << 7) | (segment << 4) | interval
    return (character ^ _ULAW_LINE_MASK).astype(np.uint8)


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    """Interval mid-value, scaled to 16 bits, for every µ-law character.

    Segment ``s`` interval ``q`` decodes to ``(2q + 33) · 2**s − 33`` in
    14-bit units, i.e. four times that in 16-bit units.
    """
    character = np.arange(256, dtype=np.int32) ^ _ULAW_LINE_MASK
    segment = (character >> 4) & 0x7
    interval = character & 0xF
    magnitude = (((2 * interval + _ULAW_BIAS) << segment) - _ULAW_BIAS) << 2
    return np.where(character & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    """A-law character for every 16-bit sample (G.711 A-law, 13-bit input).

    The 13-bit sample ``v = x >> 3`` is split into polarity and the
    one's-complement magnitude (``~v`` for negative ``v``), so ``-1`` and
    ``0`` share the innermost interval on either side of zero.  Magnitudes
    below 32 are segment 0, otherwise the segment is the position of the
    leading one minus 4; segments 0 and 1 both use a step of 2.
    """
    value = _all_int16() >> 3
    positive = value >= 0
    magnitude = np.where(positive, value, ~value)
    segment = np.searchsorted(1 << np.arange(5, 12), magnitude, side="right")
    interval = (magnitude >> np.maximum(segment, 1)) & 0xF
    character = (positive << 7) | (segment << 4) | interval
    return (character ^ _ALAW_LINE_MASK).astype(np.uint8)


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    """Interval mid-value, scaled to 16 bits, for every A-law character.

    In 13-bit units segment 0 interval ``q`` decodes to ``2q + 1`` and
    segment ``s >= 1`` to ``(2q + 33) · 2**(s−1)``; times 8 for 16 bits.
    """
    character = np.arange(256, dtype=np.int32) ^ _ALAW_LINE_MASK
    segment = (character >> 4) & 0x7
    interval = character & 0xF
    magnitude = np.where(
        segment == 0,
        2 * interval + 1,
        (2 * interval + 33) << np.maximum(segment - 1, 0),
    ) << 3
    return np.where(character & 0x80, magnitude, -magnitude).astype(np.int16)


def _read_only(table: np.ndarray) -> np.ndarray:
    table.flags.writeable = False
    return table


#: ``ULAW_ENCODE_TABLE[x.view(uint16)]`` is the µ-law character of int16 ``x``.
ULAW_ENCODE_TABLE = _read_only(_ulaw_encode_table())
#: ``ULAW_DECODE_TABLE[c]`` is the int16 sample µ-law character ``c`` decodes to.
ULAW_DECODE_TABLE = _read_only(_ulaw_decode_table())
#: ``ALAW_ENCODE_TABLE[x.view(uint16)]`` is the A-law character of int16 ``x``.
ALAW_ENCODE_TABLE = _read_only(_alaw_encode_table())
#: ``ALAW_DECODE_TABLE[c]`` is the int16 sample A-law character ``c`` decodes to.
ALAW_DECODE_TABLE = _read_only(_alaw_decode_table())


def _require_uint8(codes: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    array = np.asarray(codes)
    if array.dtype != np.uint8:
        raise TypeError(f"expected uint8 G.711 characters, got dtype {array.dtype}")
    return array


def ulaw_encode_array(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    """µ-law encode an int16 array (any shape) into uint8 characters."""
    return ULAW_ENCODE_TABLE.take(require_int16(samples).view(np.uint16))


def ulaw_decode_array(codes: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """Decode uint8 µ-law characters (any shape) into int16 samples."""
    return ULAW_DECODE_TABLE.take(_require_uint8(codes))


def alaw_encode_array(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    """A-law encode an int16 array (any shape) into uint8 characters."""
    return ALAW_ENCODE_TABLE.take(require_int16(samples).view(np.uint16))


def alaw_decode_array(codes: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """Decode uint8 A-law characters (any shape) into int16 samples."""
    return ALAW_DECODE_TABLE.take(_require_uint8(codes))


def ulaw_encode(pcm16: bytes) -> bytes:
    """µ-law encode little-endian 16-bit PCM; ``audioop.lin2ulaw(pcm16, 2)``."""
    return ULAW_ENCODE_TABLE.take(pcm16_to_array(pcm16).view("<u2")).tobytes()


def ulaw_decode(data: bytes) -> bytes:
    """Decode µ-law characters to little-endian 16-bit PCM; ``audioop.ulaw2lin(data, 2)``."""
    return ULAW_DECODE_TABLE.take(np.frombuffer(data, dtype=np.uint8)).astype(PCM16, copy=False).tobytes()


def alaw_encode(pcm16: bytes) -> bytes:
    """A-law encode little-endian 16-bit PCM; ``audioop.lin2alaw(pcm16, 2)``."""
    return ALAW_ENCODE_TABLE.take(pcm16_to_array(pcm16).view("<u2")).tobytes()


def alaw_decode(data: bytes) -> bytes:
    """Decode A-law characters to little-endian 16-bit PCM; ``audioop.alaw2lin(data, 2)``."""
    return ALAW_DECODE_TABLE.take(np.frombuffer(data, dtype=np.uint8)).astype(PCM16, copy=False).tobytes()
