"""The caller line's tracked background (minimum statistics) and the voicing measure."""

import numpy as np
import pytest

from sipbridge.media.noisefloor import NoiseFloor, frame_power_dbfs, sibilance, voicing

F = 320  # samples per 20 ms frame at 16 kHz


def feed(nf: NoiseFloor, levels, start: int = 0) -> tuple[int, float]:
    t = start
    for level in levels:
        t += F
        floor = nf.update(t, level)
    return t, floor


def test_the_floor_falls_at_once_and_rises_towards_the_window_minimum():
    """A quieter frame lowers the floor at once; a louder steady level lifts it within ~3 s."""
    nf = NoiseFloor(start_dbfs=-40.0)
    t, floor = feed(nf, [-70.0] * 5)
    assert floor < -60.0
    t, floor = feed(nf, [-30.0] * 25, t)                   # 0.5 s: the old minimum is in the window
    assert floor < -55.0
    t, floor = feed(nf, [-30.0] * 125, t)                  # 3 s in all
    assert -32.0 < floor <= -30.0


def test_a_talker_with_pauses_between_words_does_not_lift_the_floor():
    """300 ms words at -20 dBFS with 150 ms pauses over -60 dBFS line noise leave the floor near the noise."""
    nf = NoiseFloor()
    t, floor = feed(nf, [-60.0] * 50)
    for _ in range(12):                                     # 5.4 s of talking
        t, floor = feed(nf, [-20.0] * 15, t)
        t, floor = feed(nf, [-60.0] * 8, t)
        assert floor < -45.0


def test_music_like_levels_settle_the_floor_under_their_quiet_moments():
    """A background swinging between -32 and -22 dBFS is followed: the floor ends within 3 dB under its quiet parts."""
    nf = NoiseFloor(start_dbfs=-65.0)
    rng = np.random.default_rng(3)
    levels = -27.0 + 5.0 * np.sin(np.arange(200) / 6.0) + rng.normal(0, 0.5, 200)
    _t, floor = feed(nf, levels)
    assert -36.0 < floor < -29.0


def test_digital_silence_counts_as_minus_90_dbfs():
    """Frames of digital silence (-inf dBFS) do not drive the floor below -90 dBFS."""
    nf = NoiseFloor()
    _t, floor = feed(nf, [float("-inf")] * 20)
    assert floor == pytest.approx(-90.0)


def _tone(freqs, rate, ms=40, seed=0):
    t = np.arange(rate * ms // 1000) / rate
    x = sum(np.sin(2 * np.pi * f * t + k) / (k + 1) for k, f in enumerate(freqs))
    return (x / np.abs(x).max() * 8000).astype(np.int16)


@pytest.mark.parametrize("rate", [16000, 8000])
def test_a_vowel_like_harmonic_sound_is_voiced_and_noise_is_not(rate):
    """Harmonics of 140 Hz score over 0.8; white noise under 0.4; a 4 ms click in silence under 0.3."""
    vowel = _tone([140, 280, 420, 560, 700], rate)
    half = len(vowel) // 2
    assert voicing(vowel[half:], vowel[:half], rate) > 0.8
    noise = (np.random.default_rng(1).standard_normal(len(vowel)) * 3000).astype(np.int16)
    assert voicing(noise[half:], noise[:half], rate) < 0.4
    click = np.zeros(len(vowel), dtype=np.int16)
    k = rate * 4 // 1000
    click[half + 10: half + 10 + k] = (np.random.default_rng(2).standard_normal(k) * 20000).astype(np.int16)
    assert voicing(click[half:], click[:half], rate) < 0.3


def band_noise(lo, hi, rate, n, seed=0, level=3000.0):
    """Gaussian noise with only lo..hi Hz in it (int16, ``n`` samples)."""
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / rate)
    x = np.fft.irfft(spec * ((f >= lo) & (f <= hi)), n)
    return (x / x.std() * level).astype(np.int16)


def top_share(frame, rate):
    top, total = sibilance(frame, rate)
    return top / total if total else 0.0


@pytest.mark.parametrize("rate", [16000, 8000])
def test_an_s_is_sibilant_and_vowels_breaths_hum_and_white_noise_are_not(rate):
    """A 2.6-3.5 kHz hiss has over 80 % of its energy at the top of the band; a vowel, a 0.3-2 kHz breath and a 100 Hz hum under 10 %; white noise over three frames about a third."""
    n = rate // 50
    assert top_share(band_noise(2600, 3500, rate, n), rate) > 0.8
    assert top_share(_tone([140, 280, 420, 560, 700], rate, ms=20), rate) < 0.1
    assert top_share(band_noise(300, 2000, rate, n, seed=3), rate) < 0.1
    assert top_share(_tone([100], rate, ms=20), rate) < 0.1
    white = band_noise(0, rate / 2, rate, 3 * n, seed=4)   # three frames, pooled
    pooled = [sum(x) for x in zip(*(sibilance(white[k: k + n], rate) for k in range(0, 3 * n, n)))]
    assert 0.25 < pooled[0] / pooled[1] < 0.42    # (at 16 kHz only the line's band counts)
    assert sibilance(np.zeros(n, dtype=np.int16), rate) == (0.0, 0.0)


def test_voicing_of_silence_is_zero_and_other_rates_are_refused():
    """Digital silence scores 0; a rate other than 8 or 16 kHz is an error."""
    assert voicing(np.zeros(320, dtype=np.int16), None, 16000) == 0.0
    with pytest.raises(ValueError):
        voicing(np.zeros(480, dtype=np.int16), None, 24000)


def test_frame_power_dbfs_of_a_full_scale_square_wave_is_zero():
    """A full-scale square wave is 0 dBFS; digital silence is -inf."""
    square = np.array([32767, -32768] * 160, dtype=np.int16)
    assert frame_power_dbfs(square) == pytest.approx(0.0, abs=0.01)
    assert frame_power_dbfs(np.zeros(320, dtype=np.int16)) == float("-inf")
