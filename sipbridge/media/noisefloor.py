"""The caller line's background level, and how voice-like a frame is.

Pure and per call: fed once per 20 ms caller frame, time in samples.

:class:`NoiseFloor` follows the background by minimum statistics: the frame powers are
smoothed (a one-pole average over about 20 ms; with 60 ms the gaps between a talker's words
did not reach the noise and the floor crept into the speech), and the floor is the lowest
smoothed power over the last ``window_ms``, kept as the minima of ``window_ms / sub_ms``
sub-windows so a frame costs a comparison. It falls at once and rises towards that minimum
with a time constant of ``rise_ms``, so music, hum, babble and road noise raise it within
two or three seconds, while a caller talking (whose pauses between words drop the smoothed
power) does not lift it. Speech is what stands *above* it.

:func:`voicing` is a cheap periodicity measure: the highest normalised autocorrelation of the
last 40 ms at pitch lags of 60-400 Hz (after halving a 16 kHz frame to 8 kHz), corrected for
the shrinking overlap. Vowels score 0.6-0.95; breaths, road noise and hiss 0.1-0.4; a click
(a few ms long) finds nothing to correlate with at those lags and scores low too. Music scores
high (it is periodic): telling it from a voice is left to the background level and Silero.

:func:`sibilance` catches what voicing cannot: a caller's first word that starts with an /s/
("stop", "sorry", "so"), unvoiced for 60-150 ms before its vowel.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

_FULL = 32768.0 * 32768.0


class NoiseFloor:
    """Minimum-statistics floor of the caller's frame levels (see the module docstring)."""

    def __init__(self, *, rate: int = 16000, window_ms: int = 1600, sub_ms: int = 200,
                 smooth_ms: int = 20, rise_ms: int = 500, start_dbfs: float | None = None):
        self.rate = rate
        self.sub = sub_ms * rate // 1000
        self.subs = max(1, window_ms // sub_ms)
        self.smooth_samples = smooth_ms * rate // 1000
        self.rise_samples = rise_ms * rate // 1000
        self.floor_dbfs = start_dbfs            # None: the first frame's level
        self._smoothed: float | None = None       # smoothed power (linear, re full scale)
        self._mins: deque[float] = deque(maxlen=self.subs - 1 if self.subs > 1 else 1)
        self._cur_min = math.inf
        self._cur_start = 0
        self._last = 0

    def update(self, end_sample: int, level_dbfs: float) -> float:
        """One frame ending at ``end_sample`` at ``level_dbfs`` (``-inf`` for digital silence);
        returns the floor in dBFS."""
        dt = max(end_sample - self._last, 1)
        self._last = end_sample
        power = 10 ** (max(level_dbfs, -90.0) / 10)   # digital silence counts as -90 dBFS
        if self._smoothed is None:
            self._smoothed = power
        else:
            a = math.exp(-dt / max(self.smooth_samples, 1))
            self._smoothed = a * self._smoothed + (1 - a) * power
        self._cur_min = min(self._cur_min, self._smoothed)
        if end_sample - self._cur_start >= self.sub:
            if self.subs > 1:
                self._mins.append(self._cur_min)
            self._cur_start = end_sample
            self._cur_min = self._smoothed
        lowest = min([self._cur_min, *self._mins])
        target = 10 * math.log10(max(lowest, 1e-10))
        if self.floor_dbfs is None or target <= self.floor_dbfs:
            self.floor_dbfs = target
        else:
            # towards the window's minimum with a time constant of rise_ms
            self.floor_dbfs += (target - self.floor_dbfs) * (1 - math.exp(-dt / max(self.rise_samples, 1)))
        return self.floor_dbfs


def voicing(frame: np.ndarray, previous: np.ndarray | None, rate: int) -> float:
    """Periodicity (0..1) of ``previous`` + ``frame`` (int16 at ``rate``) at pitch lags 60-400 Hz."""
    x = frame if previous is None else np.concatenate((previous, frame))
    x = x.astype(np.float64)
    if rate == 16000:
        x = x[: len(x) // 2 * 2].reshape(-1, 2).sum(axis=1)   # a crude half-band cut and 8 kHz
    elif rate != 8000:
        raise ValueError(f"voicing works at 8 or 16 kHz, not {rate}")
    x = x - x.mean()
    n = len(x)
    lo, hi = 8000 // 400, min(8000 // 60, n - n // 4)
    if hi <= lo:
        return 0.0
    size = 1 << (2 * n - 1).bit_length()
    spec = np.fft.rfft(x, size)
    r = np.fft.irfft(spec.real ** 2 + spec.imag ** 2, size)[: hi + 1]
    if r[0] <= 1e-3 * n:
        return 0.0
    lags = np.arange(lo, hi + 1)
    norm = r[lo: hi + 1] / r[0] * n / (n - lags)
    return float(min(max(norm.max(), 0.0), 1.0))


def sibilance(frame: np.ndarray, rate: int) -> tuple[float, float]:
    """A frame's energy at 2.4-3.6 kHz, the top of the phone band, and at 0.1-3.6 kHz.

    Their ratio over a few frames tells an /s/ or /sh/: through a phone line it puts 45-70 %
    of its energy at the top (the Asterisk prompts' "saved", "something", "simul-"); vowels,
    hum, music, road noise and breaths under 40 % (the noise corpus's tuning part: breaths'
    99th percentile 38 %); a click's transient scores high, but for one frame, not for the
    three in a row an /s/ lasts. The band stops at 3.6 kHz so a 16 kHz line (resampled from
    the 8 kHz codec, whose filter rolls off above ~3.4 kHz) scores about as the 8 kHz one.
    """
    x = frame.astype(np.float64)
    x = x - x.mean()
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1.0 / rate)
    return (float(spec[(f >= 2400) & (f < 3600)].sum()),
            float(spec[(f >= 100) & (f < 3600)].sum()))


def frame_power_dbfs(frame: np.ndarray) -> float:
    """RMS level of an int16 frame in dBFS (``-inf`` for digital silence)."""
    f = frame.astype(np.float64)
    power = float(np.dot(f, f)) / max(len(frame), 1)
    return 10 * math.log10(power / _FULL) if power > 0 else -math.inf
