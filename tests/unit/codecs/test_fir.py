"""Prototype filter design: frequency response, linear phase and ratio handling."""

from __future__ import annotations

import numpy as np
import pytest

from sipcodecs import StreamResampler, design_resampler
from sipcodecs.fir import rational_ratio
from sipcodecs.resample import FRACTION_BITS

DIRECTIONS = [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000), (16000, 24000), (24000, 16000)]


def magnitude_response(taps: np.ndarray, rate: int, gain: float) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (Hz) and |H| normalised by the nominal gain, on a fine grid."""
    spectrum = np.abs(np.fft.rfft(taps, 1 << 16)) / gain
    return np.fft.rfftfreq(1 << 16, 1 / rate), spectrum


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_fixed_point_prototype_meets_passband_and_stopband_spec(direction) -> None:
    """The taps in use are flat within 0.1 dB to 0.8 x the lower Nyquist and >= 40 dB down from that Nyquist up."""
    resampler = StreamResampler(*direction)
    design = resampler.design
    freqs, mag = magnitude_response(resampler.fixed_taps, design.filter_rate, design.up * 2.0**FRACTION_BITS)
    nyquist = min(direction) / 2
    passband = mag[freqs <= 0.8 * nyquist]
    stopband = mag[freqs >= nyquist]
    assert np.all(np.abs(20 * np.log10(passband)) <= 0.1)
    assert 20 * np.log10(stopband.max()) <= -40.0


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_prototype_is_symmetric_with_whole_sample_delay(direction) -> None:
    """Both the float and the fixed-point prototypes are symmetric, of odd length, centred on a multiple of up x down."""
    resampler = StreamResampler(*direction)
    design = resampler.design
    for taps in (design.taps, resampler.fixed_taps):
        assert taps.size == 2 * design.half_length + 1
        assert np.array_equal(taps, taps[::-1])
    assert design.half_length % (design.up * design.down) == 0


def test_rational_ratio_reduces_and_bounds_the_factors() -> None:
    """Rates reduce to lowest terms; ratios with a term above 12 or non-positive rates are refused."""
    assert rational_ratio(16000, 24000) == (3, 2)
    assert rational_ratio(24000, 8000) == (1, 3)
    assert rational_ratio(8000, 48000) == (6, 1)
    with pytest.raises(ValueError):
        rational_ratio(44100, 48000)
    with pytest.raises(ValueError):
        rational_ratio(-8000, 8000)


def test_other_small_ratios_get_the_same_guarantees() -> None:
    """An 8 kHz -> 48 kHz design also meets the stopband spec within 1.5 ms of delay."""
    design = design_resampler(8000, 48000)
    freqs, mag = magnitude_response(design.taps, design.filter_rate, design.up)
    assert 20 * np.log10(mag[freqs >= 4000].max()) <= -40.0
    assert design.delay_ms <= 1.5
