"""Kaiser-windowed-sinc low-pass prototypes for rational resampling.

A conversion from ``in_rate`` to ``out_rate`` is done as ``up``-fold
zero-stuffing, one low-pass FIR at the *filter rate* ``up · in_rate`` (which
equals ``down · out_rate``), and ``down``-fold decimation, where
``up / down`` is ``out_rate / in_rate`` in lowest terms.  This module only
designs that FIR; :mod:`sipcodecs.resample` runs it in polyphase form.

Specification (fixed by the barge-in latency budget, not by audio fidelity):

* passband ``0 .. 0.8 · f_N`` and stopband ``f_N .. ∞``, where ``f_N`` is
  the lower of the two Nyquist frequencies -- so nothing that would alias
  into the output, and no image of the input, survives above ``f_N``;
* at least :data:`STOPBAND_DB` of stopband attenuation, which by Kaiser's
  design equations also bounds passband ripple to about ±0.07 dB;
* odd length ``2·D + 1`` and symmetric, hence exactly linear phase with a
  group delay of ``D`` filter-rate samples; ``D`` is the smallest value
  that meets the attenuation *and* is a multiple of ``up · down``, so the
  delay is a whole number of samples at both the input and output rates
  (a multiple of ``1 / gcd(in_rate, out_rate)`` seconds, 0.125 ms for the
  8/16/24 kHz family).

Kaiser's empirical formulas (J. F. Kaiser, "Nonrecursive digital filter
design using the I0-sinh window function", 1974), for a stopband
attenuation of ``A`` dB and transition width ``Δω`` rad/sample:

* window shape ``β = 0.1102 (A − 8.7)`` for ``A > 50``,
  ``β = 0.5842 (A − 21)^0.4 + 0.07886 (A − 21)`` for ``21 <= A <= 50``,
  ``β = 0`` below;
* length ``N − 1 = (A − 7.95) / (2.285 Δω)``.

The resulting group delays are 1.5 ms for every pair involving 8 kHz
(``f_N`` = 4 kHz, 800 Hz transition) and 0.75 ms for 16 ↔ 24 kHz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "PASSBAND_FRACTION",
    "STOPBAND_DB",
    "MAX_FACTOR",
    "ResamplerDesign",
    "design_resampler",
    "kaiser_beta",
    "rational_ratio",
]

#: Passband edge as a fraction of the lower Nyquist frequency.
PASSBAND_FRACTION = 0.8
#: Design stopband attenuation in dB (the guaranteed figure is >= 40 dB).
STOPBAND_DB = 42.0
#: Largest interpolation or decimation factor accepted (keeps filters short).
MAX_FACTOR = 12


def rational_ratio(in_rate: int, out_rate: int) -> tuple[int, int]:
    """Return ``(up, down)``, ``out_rate / in_rate`` in lowest terms.

    Raises :class:`ValueError` for non-positive rates or for ratios whose
    terms exceed :data:`MAX_FACTOR` (e.g. 44100 ↔ 48000 = 160/147).
    """
    if in_rate <= 0 or out_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {in_rate} and {out_rate}")
    common = math.gcd(in_rate, out_rate)
    up, down = out_rate // common, in_rate // common
    if max(up, down) > MAX_FACTOR:
        raise ValueError(
            f"{in_rate} -> {out_rate} Hz reduces to {up}/{down}; factors above "
            f"{MAX_FACTOR} are not supported"
        )
    return up, down


def kaiser_beta(attenuation_db: float) -> float:
    """Kaiser window ``β`` for a stopband attenuation of ``attenuation_db``."""
    a = attenuation_db
    if a > 50.0:
        return 0.1102 * (a - 8.7)
    if a >= 21.0:
        return 0.5842 * (a - 21.0) ** 0.4 + 0.07886 * (a - 21.0)
    return 0.0


@dataclass(frozen=True, eq=False)
class ResamplerDesign:
    """A linear-phase prototype low-pass for one ``in_rate → out_rate`` pair.

    ``taps`` has length ``2 · half_length + 1``, runs at ``filter_rate`` and
    has DC gain ``up`` (compensating the energy lost to zero-stuffing).
    """

    in_rate: int
    out_rate: int
    up: int
    down: int
    half_length: int
    beta: float
    cutoff_hz: float
    taps: npt.NDArray[np.float64]

    @property
    def filter_rate(self) -> int:
        """Rate the prototype runs at: ``up · in_rate == down · out_rate``."""
        return self.up * self.in_rate

    @property
    def delay_samples(self) -> int:
        """Group delay in output-rate samples (an exact integer by design)."""
        return self.half_length // self.down

    @property
    def delay_ms(self) -> float:
        """Group delay in milliseconds."""
        return 1000.0 * self.half_length / self.filter_rate


def design_resampler(
    in_rate: int,
    out_rate: int,
    *,
    attenuation_db: float = STOPBAND_DB,
    passband_fraction: float = PASSBAND_FRACTION,
) -> ResamplerDesign:
    """Design the Kaiser-windowed-sinc prototype for ``in_rate → out_rate``.

    The ideal low-pass ``h[n] = 2 f_c / f_s · sinc(2 f_c n / f_s)`` is cut
    off half way through the transition band and multiplied by a Kaiser
    window; equal rates get the identity filter (no delay).
    """
    up, down = rational_ratio(in_rate, out_rate)
    if up == down == 1:
        return ResamplerDesign(in_rate, out_rate, 1, 1, 0, 0.0, in_rate / 2, np.ones(1))
    filter_rate = up * in_rate
    nyquist = min(in_rate, out_rate) / 2
    transition_hz = (1.0 - passband_fraction) * nyquist
    cutoff_hz = nyquist - transition_hz / 2
    delta_omega = 2.0 * math.pi * transition_hz / filter_rate
    half_length = (attenuation_db - 7.95) / (2.285 * delta_omega) / 2
    granule = up * down
    half_length = granule * math.ceil(half_length / granule - 1e-9)
    beta = kaiser_beta(attenuation_db)
    n = np.arange(-half_length, half_length + 1)
    normalised_cutoff = 2.0 * cutoff_hz / filter_rate
    taps = up * normalised_cutoff * np.sinc(normalised_cutoff * n) * np.kaiser(2 * half_length + 1, beta)
    taps.flags.writeable = False
    return ResamplerDesign(in_rate, out_rate, up, down, half_length, beta, cutoff_hz, taps)
