"""Bytes <-> int16 array helpers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcodecs import array_to_pcm16, pcm16_to_array


@given(st.binary(max_size=64).filter(lambda b: len(b) % 2 == 0))
def test_bytes_round_trip_through_arrays(data: bytes) -> None:
    """pcm16_to_array reads little-endian int16 and array_to_pcm16 writes the same bytes back."""
    samples = pcm16_to_array(data)
    assert samples.size == len(data) // 2
    if samples.size:
        assert int(samples[0]) == int.from_bytes(data[:2], "little", signed=True)
    assert array_to_pcm16(samples) == data


def test_odd_byte_count_and_wrong_dtype_are_rejected() -> None:
    """A half sample raises ValueError; non-int16 arrays raise TypeError rather than being cast."""
    with pytest.raises(ValueError):
        pcm16_to_array(b"\x01\x02\x03")
    with pytest.raises(TypeError):
        array_to_pcm16(np.array([70000], dtype=np.int32))


def test_byte_swapped_int16_is_serialised_little_endian() -> None:
    """A big-endian int16 array is written as the same values in little-endian order."""
    assert array_to_pcm16(np.array([1, -2], dtype=">i2")) == b"\x01\x00\xfe\xff"
