"""G.711 µ-law / A-law: bit-exactness against audioop and quantisation properties."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcodecs import (
    alaw_decode,
    alaw_decode_array,
    alaw_encode,
    alaw_encode_array,
    ulaw_decode,
    ulaw_decode_array,
    ulaw_encode,
    ulaw_encode_array,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)
int16s = st.integers(min_value=-32768, max_value=32767)


def ulaw_step(x: int) -> tuple[int, bool]:
    """Quantisation step (16-bit units) of x's µ-law segment, and whether x is below overload.

    G.711 µ-law works on the 14-bit value v = x >> 2; segment s holds
    |v| + 33 in [2**(s+5), 2**(s+6)) and has a step of 2**(s+1).
    """
    magnitude = abs(x >> 2)
    segment = min(max((magnitude + 33).bit_length() - 6, 0), 7)
    return 4 * 2 ** (segment + 1), magnitude <= 8158


def alaw_step(x: int) -> int:
    """Quantisation step (16-bit units) of x's A-law segment.

    G.711 A-law works on the 13-bit value v = x >> 3 with one's-complement
    magnitude; segments 0 and 1 (magnitude < 64) step by 2, segment s >= 2
    by 2**s.
    """
    v = x >> 3
    magnitude = ~v if v < 0 else v
    segment = max(magnitude.bit_length() - 5, 0)
    return 8 * (2 if segment <= 1 else 2**segment)


def test_ulaw_encode_matches_audioop_for_every_int16() -> None:
    """µ-law encoding of all 65,536 int16 values equals audioop.lin2ulaw(width=2)."""
    pcm = ALL_SAMPLES.astype("<i2").tobytes()
    assert ulaw_encode(pcm) == audioop.lin2ulaw(pcm, 2)


def test_alaw_encode_matches_audioop_for_every_int16() -> None:
    """A-law encoding of all 65,536 int16 values equals audioop.lin2alaw(width=2)."""
    pcm = ALL_SAMPLES.astype("<i2").tobytes()
    assert alaw_encode(pcm) == audioop.lin2alaw(pcm, 2)


def test_ulaw_decode_matches_audioop_for_every_code() -> None:
    """µ-law decoding of all 256 characters equals audioop.ulaw2lin(width=2)."""
    assert ulaw_decode(ALL_CODES.tobytes()) == audioop.ulaw2lin(ALL_CODES.tobytes(), 2)


def test_alaw_decode_matches_audioop_for_every_code() -> None:
    """A-law decoding of all 256 characters equals audioop.alaw2lin(width=2)."""
    assert alaw_decode(ALL_CODES.tobytes()) == audioop.alaw2lin(ALL_CODES.tobytes(), 2)


@pytest.mark.parametrize(
    ("encode_bytes", "encode_array", "decode_bytes", "decode_array"),
    [
        (ulaw_encode, ulaw_encode_array, ulaw_decode, ulaw_decode_array),
        (alaw_encode, alaw_encode_array, alaw_decode, alaw_decode_array),
    ],
    ids=["ulaw", "alaw"],
)
def test_array_variants_agree_with_bytes_variants_and_keep_shape(
    encode_bytes, encode_array, decode_bytes, decode_array
) -> None:
    """The numpy variants give the same codes/samples as the bytes API and preserve array shape."""
    samples = ALL_SAMPLES.reshape(256, 256)
    codes = encode_array(samples)
    assert codes.dtype == np.uint8 and codes.shape == (256, 256)
    assert codes.tobytes() == encode_bytes(ALL_SAMPLES.astype("<i2").tobytes())
    decoded = decode_array(ALL_CODES.reshape(16, 16))
    assert decoded.dtype == np.int16 and decoded.shape == (16, 16)
    assert decoded.astype("<i2").tobytes() == decode_bytes(ALL_CODES.tobytes())


@given(int16s)
def test_ulaw_round_trip_error_is_within_half_a_step(x: int) -> None:
    """µ-law decode(encode(x)) is within half of x's segment step (plus the 2 dropped LSBs), and within one step even in overload."""
    out = int(ulaw_decode_array(ulaw_encode_array(np.array([x], dtype=np.int16)))[0])
    step, in_range = ulaw_step(x)
    assert abs(out - x) <= step
    if in_range:
        assert abs(out - x) <= step // 2 + 3


@given(int16s)
def test_alaw_round_trip_error_is_within_half_a_step(x: int) -> None:
    """A-law decode(encode(x)) is within half of x's segment step."""
    out = int(alaw_decode_array(alaw_encode_array(np.array([x], dtype=np.int16)))[0])
    assert abs(out - x) <= alaw_step(x) // 2


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(ulaw_encode_array, ulaw_decode_array), (alaw_encode_array, alaw_decode_array)],
    ids=["ulaw", "alaw"],
)
def test_companding_is_monotone_sign_preserving_and_idempotent(encode, decode) -> None:
    """decode∘encode is non-decreasing, keeps the sign of x, and maps every decoded level to itself."""
    levels = decode(encode(ALL_SAMPLES)).astype(np.int32)
    assert np.all(np.diff(levels) >= 0)
    assert np.all(np.sign(levels) * np.sign(ALL_SAMPLES) >= 0)
    decoded = decode(ALL_CODES)
    assert np.array_equal(decode(encode(decoded)), decoded)


def test_bytes_api_rejects_partial_samples_and_arrays_reject_wrong_dtypes() -> None:
    """An odd byte count raises ValueError; non-int16 samples or non-uint8 codes raise TypeError."""
    with pytest.raises(ValueError):
        ulaw_encode(b"\x00\x01\x02")
    with pytest.raises(ValueError):
        alaw_encode(b"\x00")
    with pytest.raises(TypeError):
        ulaw_encode_array(np.zeros(4, dtype=np.int32))
    with pytest.raises(TypeError):
        alaw_decode_array(np.zeros(4, dtype=np.int16))


def test_empty_input_gives_empty_output() -> None:
    """Encoding or decoding zero samples yields zero bytes."""
    assert ulaw_encode(b"") == alaw_encode(b"") == ulaw_decode(b"") == alaw_decode(b"") == b""
