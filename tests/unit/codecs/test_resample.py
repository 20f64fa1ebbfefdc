"""StreamResampler: streaming exactness, timing, frequency behaviour and saturation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipcodecs import StreamResampler
from sipcodecs.resample import FRACTION_BITS

UPSAMPLING = [(8000, 16000), (8000, 24000), (16000, 24000)]
DOWNSAMPLING = [(16000, 8000), (24000, 8000), (24000, 16000)]
DIRECTIONS = UPSAMPLING + DOWNSAMPLING
directions = st.sampled_from(DIRECTIONS)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
resampler_settings = settings(max_examples=40, deadline=None)


def noise(seed: int, n: int, amplitude: int = 32768) -> np.ndarray:
    """n uniformly random int16 samples in [-amplitude, amplitude)."""
    rng = np.random.default_rng(seed)
    return rng.integers(-amplitude, amplitude, n).astype(np.int16)


def tone(freq: float, rate: int, n: int, amplitude: float, phase: float = 0.0) -> np.ndarray:
    """A sampled sine, rounded to int16."""
    return np.rint(amplitude * np.sin(2 * np.pi * freq * np.arange(n) / rate + phase)).astype(np.int16)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def direct_reference(resampler: StreamResampler, x: np.ndarray) -> np.ndarray:
    """Textbook zero-stuff / convolve / decimate with the resampler's own fixed-point taps, unrounded."""
    up, down = resampler.design.up, resampler.design.down
    stuffed = np.zeros(x.size * up)
    stuffed[::up] = x
    full = np.convolve(stuffed, resampler.fixed_taps)[::down][: x.size * up // down]
    return full * 2.0**-FRACTION_BITS


def split(x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Cut x into consecutive chunks of the given sizes, the remainder as a last chunk."""
    cuts = np.cumsum(sizes)
    cuts = cuts[cuts < x.size]
    return np.split(x, cuts)


@resampler_settings
@given(directions, st.lists(st.integers(0, 500), max_size=12), seeds)
def test_chunked_bytes_output_equals_one_shot_array_output(direction, sizes, seed) -> None:
    """Feeding a stream as arbitrary byte chunks yields exactly the one-shot output."""
    x = noise(seed, sum(sizes) + 37)
    whole = StreamResampler(*direction).process_array(x)
    streaming = StreamResampler(*direction)
    chunked = b"".join(streaming.process(chunk.astype("<i2").tobytes()) for chunk in split(x, sizes))
    assert chunked == whole.astype("<i2").tobytes()


@resampler_settings
@given(directions, st.lists(st.integers(0, 700), min_size=1, max_size=20))
def test_output_length_is_exact_after_every_chunk(direction, sizes) -> None:
    """After N input samples in total, exactly floor(N * out_rate / in_rate) samples have come out."""
    in_rate, out_rate = direction
    resampler = StreamResampler(in_rate, out_rate)
    consumed = produced = 0
    for size in sizes:
        produced += resampler.process_array(np.zeros(size, dtype=np.int16)).size
        consumed += size
        assert produced == consumed * out_rate // in_rate


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_output_equals_direct_upsample_filter_decimate(direction) -> None:
    """The polyphase stream equals rounding and saturating the direct-form computation, for full-scale noise."""
    resampler = StreamResampler(*direction)
    x = noise(7, 3001)
    expected = np.clip(np.rint(direct_reference(resampler, x)), -32768, 32767)
    assert np.array_equal(resampler.process_array(x), expected)


@resampler_settings
@given(
    directions,
    st.floats(0.01, 1.0),
    st.floats(500.0, 25000.0),
    st.floats(0.0, 2 * math.pi),
)
def test_passband_sine_keeps_frequency_and_amplitude_after_the_delay(direction, where, amplitude, phase) -> None:
    """A sine up to 0.8 x the lower Nyquist comes out as the same sine delayed by delay_samples, level within 0.5 dB."""
    in_rate, out_rate = direction
    freq = where * 0.8 * min(in_rate, out_rate) / 2
    resampler = StreamResampler(in_rate, out_rate)
    y = resampler.process_array(tone(freq, in_rate, in_rate // 5, amplitude, phase)).astype(np.float64)
    n = np.arange(y.size)
    expected = amplitude * np.sin(2 * np.pi * freq * (n - resampler.delay_samples) / out_rate + phase)
    settled = slice(2 * resampler.delay_samples + 2, None)
    assert abs(20 * math.log10(rms(y[settled]) / rms(expected[settled]))) <= 0.5
    assert np.max(np.abs(y[settled] - expected[settled])) <= 0.02 * amplitude + 1.5


@resampler_settings
@given(st.sampled_from(DOWNSAMPLING), st.floats(0.0, 1.0), st.floats(0.0, 2 * math.pi))
def test_tone_above_output_nyquist_is_attenuated_40_db(direction, where, phase) -> None:
    """When decimating, a tone between the output and input Nyquist frequencies comes out >= 40 dB down."""
    in_rate, out_rate = direction
    # Stay 1 % clear of either Nyquist: a tone exactly there aliases onto
    # itself and its sampled RMS then depends on the phase, not the filter.
    low, high = 1.01 * out_rate / 2, 0.99 * in_rate / 2
    freq = low + where * (high - low)
    resampler = StreamResampler(in_rate, out_rate)
    x = tone(freq, in_rate, in_rate // 4, 20000.0, phase)
    y = resampler.process_array(x)
    settled = y[2 * resampler.delay_samples + 2 :]
    assert rms(settled) <= 0.01 * rms(x)


@resampler_settings
@given(st.sampled_from(UPSAMPLING), st.floats(0.005, 0.95), st.floats(0.0, 2 * math.pi))
def test_images_above_input_nyquist_are_attenuated_40_db(direction, where, phase) -> None:
    """When interpolating, everything but the input tone itself (i.e. its images) is >= 40 dB below the tone."""
    in_rate, out_rate = direction
    freq = where * in_rate / 2
    resampler = StreamResampler(in_rate, out_rate)
    y = resampler.process_array(tone(freq, in_rate, in_rate // 4, 20000.0, phase)).astype(np.float64)
    n = np.arange(y.size)[2 * resampler.delay_samples + 2 :]
    settled = y[n]
    basis = np.stack([np.sin(2 * np.pi * freq * n / out_rate), np.cos(2 * np.pi * freq * n / out_rate)], axis=1)
    fit, *_ = np.linalg.lstsq(basis, settled, rcond=None)
    assert rms(settled - basis @ fit) <= 0.01 * 20000.0 / math.sqrt(2)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_full_scale_input_saturates_instead_of_wrapping(direction) -> None:
    """Overshoot beyond int16 on a full-scale square wave is clipped to 32767 / -32768, never wrapped."""
    in_rate, out_rate = direction
    period = in_rate // 200
    x = np.where(np.arange(in_rate // 10) % period < period // 2, 32767, -32768).astype(np.int16)
    resampler = StreamResampler(in_rate, out_rate)
    exact = direct_reference(resampler, x)
    assert exact.max() > 32767.5 and exact.min() < -32768.5  # the filter really overshoots
    y = resampler.process_array(x)
    assert np.array_equal(y, np.clip(np.rint(exact), -32768, 32767))
    assert y.max() == 32767 and y.min() == -32768


@resampler_settings
@given(
    st.lists(st.floats(100.0, 3000.0), min_size=1, max_size=6),
    st.lists(st.floats(0.0, 2 * math.pi), min_size=6, max_size=6),
)
def test_8k_16k_8k_round_trip_is_close_to_identity(freqs, phases) -> None:
    """Up- then down-sampling a 100-3000 Hz signal gives it back, delayed, with >= 35 dB SNR."""
    n = 4000
    t = np.arange(n) / 8000
    x = np.rint(sum(4000 * np.sin(2 * np.pi * f * t + p) for f, p in zip(freqs, phases))).astype(np.int16)
    up, down = StreamResampler(8000, 16000), StreamResampler(16000, 8000)
    y = down.process_array(up.process_array(x)).astype(np.float64)
    delay = up.delay_samples // 2 + down.delay_samples
    assert delay == 24  # 1.5 ms + 1.5 ms at 8 kHz
    warm = 2 * delay
    error = y[warm + delay :] - x[warm : n - delay]
    assert rms(error) <= rms(x[warm : n - delay]) * 10 ** (-35 / 20)


@resampler_settings
@given(directions, st.integers(-32768, 32767))
def test_constant_input_comes_out_unchanged(direction, value) -> None:
    """Once the filter has filled, a constant input produces exactly the same constant."""
    resampler = StreamResampler(*direction)
    y = resampler.process_array(np.full(800, value, dtype=np.int16))
    assert np.all(y[2 * resampler.delay_samples + 1 :] == value)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_impulse_response_is_symmetric_about_the_reported_delay(direction) -> None:
    """An input impulse produces a response that peaks at delay_samples and is mirror-symmetric about it."""
    resampler = StreamResampler(*direction)
    x = np.zeros(400, dtype=np.int16)
    x[0] = 16384
    y = resampler.process_array(x)
    d = resampler.delay_samples
    assert int(np.argmax(y)) == d
    assert np.array_equal(y[: 2 * d + 1], y[2 * d :: -1])
    assert not np.any(y[2 * d + 1 :])


@pytest.mark.parametrize(
    ("direction", "delay_ms"),
    [((8000, 16000), 1.5), ((16000, 8000), 1.5), ((8000, 24000), 1.5), ((24000, 8000), 1.5),
     ((16000, 24000), 0.75), ((24000, 16000), 0.75)],
)
def test_delay_is_short_and_consistent_between_units(direction, delay_ms) -> None:
    """Group delay is at most 1.5 ms and delay_samples equals delay_ms at the output rate."""
    resampler = StreamResampler(*direction)
    assert resampler.delay_ms == pytest.approx(delay_ms)
    assert resampler.delay_samples == round(delay_ms * direction[1] / 1000)


@resampler_settings
@given(directions, seeds)
def test_reset_restarts_the_stream(direction, seed) -> None:
    """After reset() the resampler reproduces a fresh instance's output for the same input."""
    x = noise(seed, 777)
    resampler = StreamResampler(*direction)
    first = resampler.process_array(x[:333])
    resampler.process_array(noise(seed + 1, 91))
    resampler.reset()
    assert np.array_equal(resampler.process_array(x[:333]), first)


def test_equal_rates_pass_samples_through() -> None:
    """Converting a rate to itself returns the input unchanged with zero delay."""
    resampler = StreamResampler(16000, 16000)
    x = noise(3, 500)
    assert resampler.delay_samples == 0
    assert np.array_equal(resampler.process_array(x), x)


def test_invalid_rates_and_inputs_are_rejected() -> None:
    """Large-ratio rate pairs and odd byte counts raise ValueError; non-int16 or 2-D arrays are refused."""
    with pytest.raises(ValueError):
        StreamResampler(44100, 48000)
    with pytest.raises(ValueError):
        StreamResampler(0, 8000)
    resampler = StreamResampler(8000, 16000)
    with pytest.raises(ValueError):
        resampler.process(b"\x00\x00\x00")
    with pytest.raises(TypeError):
        resampler.process_array(np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError):
        resampler.process_array(np.zeros((2, 10), dtype=np.int16))
