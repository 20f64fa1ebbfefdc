"""Low-latency streaming polyphase resampler for 16-bit telephony audio.

Rational resampling by ``up / down`` (see :mod:`sipcodecs.fir`) defines
output sample ``n`` at filter-rate time ``t = n · down`` as

    y[n] = Σ_j h[j] · x_up[t − j],   x_up[i] = x[i / up] if up | i else 0.

Only every ``up``-th tap meets a non-zero input, so with phase
``p = t mod up`` and newest input ``k = ⌊t / up⌋`` this is the short
polyphase sum ``y[n] = Σ_m h[p + m·up] · x[k − m]`` (Crochiere & Rabiner).
Outputs come in blocks of ``up`` that consume ``down`` inputs each; block
``b`` reads one fixed-length window of input starting at ``b · down``, so a
whole chunk is a single matrix product ``windows · block_matrix`` over a
strided (zero-copy) view of the input history.

Exactness.  Each polyphase branch is normalised to unit DC gain, and every
tap is rounded to an integer multiple of ``2**-FRACTION_BITS`` and stored as
a float64 integer.  With int16 inputs every partial sum is an integer below
``2**53`` in magnitude and is therefore exact in float64, whatever order
BLAS adds the products in.  The result is then scaled, rounded half-to-even
and saturated to int16 (never wrapped).  Consequently the output is a pure
function of the input samples: any chunking of a stream gives bit-identical
output, and a constant input produces the same constant.

Timing.  Filter state starts at silence (the stream is causal: nothing is
emitted before it is computable).  After ``N`` input samples in total,
exactly ``⌊N · up / down⌋`` output samples have been returned, so fractional
phase carries across calls.  The symmetric prototype gives a constant group
delay of :attr:`StreamResampler.delay_samples` output samples: a signal
``s(t)`` comes out as ``s(t − delay)``.  To drain the tail at end of stream,
feed ``ceil(delay_samples · in_rate / out_rate)`` zero samples.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .fir import ResamplerDesign, design_resampler
from .pcm import pcm16_to_array, require_int16

__all__ = ["FRACTION_BITS", "StreamResampler", "quantise_polyphase"]

#: Fixed-point precision of the taps (Q30): ~180 dB below full scale, and
#: 2**15 · 2**30 · Σ|h| stays far inside float64's 53-bit integer range.
FRACTION_BITS = 30
_INT16_MIN, _INT16_MAX = -32768, 32767
_F64 = np.dtype(np.float64).itemsize


def quantise_polyphase(design: ResamplerDesign) -> npt.NDArray[np.float64]:
    """Split the prototype into ``up`` unit-gain branches in Q30 fixed point.

    Returns an ``(up, K)`` array of integer-valued float64 where row ``p``
    holds ``h[p], h[p + up], h[p + 2·up], …`` (zero-padded to a common
    length ``K = ⌈len(h) / up⌉``), each row scaled to sum to ``2**30``
    before rounding.  Mirror branches ``p`` and ``up − p`` have equal sums,
    so scaling and rounding keep the interleaved prototype symmetric, i.e.
    exactly linear phase.
    """
    taps, up = np.asarray(design.taps, dtype=np.float64), design.up
    length = -(-taps.size // up) * up
    branches = np.zeros(length)
    branches[: taps.size] = taps
    branches = branches.reshape(-1, up).T
    branches = branches / branches.sum(axis=1, keepdims=True)
    fixed = np.rint(np.ldexp(branches, FRACTION_BITS))
    worst_sum = float(np.abs(fixed).sum(axis=1).max()) * -_INT16_MIN
    if worst_sum >= 2.0**53:
        raise ValueError("filter too long for exact float64 accumulation")
    return fixed


class StreamResampler:
    """Stateful ``in_rate → out_rate`` converter for a mono int16 stream.

    Feed consecutive chunks of any length (including empty ones and odd
    sample counts) to :meth:`process` (bytes) or :meth:`process_array`
    (int16 arrays); output is identical to converting the concatenated
    stream in one call.  One instance per stream; not thread-safe.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._design = design_resampler(in_rate, out_rate)
        up, down = self._design.up, self._design.down
        branches = quantise_polyphase(self._design)
        self._branches = branches
        taps_per_branch = branches.shape[1]
        # Block row r (output n = b·up + r) reads x[b·down + ⌊r·down/up⌋ − m]
        # for m < K; lay each branch reversed at its offset in a window that
        # starts at x[b·down − (K − 1)].
        window = taps_per_branch + ((up - 1) * down) // up
        block = np.zeros((up, window))
        for r in range(up):
            offset = (r * down) // up
            block[r, offset : offset + taps_per_branch] = branches[(r * down) % up, ::-1]
        self._block_t = np.ascontiguousarray(block.T)
        self._window = window
        self._lookback = taps_per_branch - 1
        self._scale = 2.0**-FRACTION_BITS
        self.reset()

    # -- configuration -------------------------------------------------

    @property
    def in_rate(self) -> int:
        """Input sample rate in Hz."""
        return self._design.in_rate

    @property
    def out_rate(self) -> int:
        """Output sample rate in Hz."""
        return self._design.out_rate

    @property
    def design(self) -> ResamplerDesign:
        """The floating-point prototype this instance was built from."""
        return self._design

    @property
    def fixed_taps(self) -> npt.NDArray[np.float64]:
        """The prototype actually used: integer-valued, in units of ``2**-30``.

        The branches interleaved back into one ``len(design.taps)``-tap,
        symmetric prototype of DC gain ``up · 2**30``; convolving the
        zero-stuffed input with it, decimating, scaling by ``2**-30``,
        rounding and saturating reproduces :meth:`process_array` exactly.
        """
        return self._branches.T.reshape(-1)[: self._design.taps.size].copy()

    @property
    def delay_samples(self) -> int:
        """Group delay in output-rate samples (integer by design)."""
        return self._design.delay_samples

    @property
    def delay_ms(self) -> float:
        """Group delay in milliseconds."""
        return self._design.delay_ms

    # -- streaming -----------------------------------------------------

    def reset(self) -> None:
        """Forget all history, as if freshly constructed (state = silence)."""
        self._history = np.zeros(self._lookback)
        self._consumed = 0  # input samples received so far
        self._produced = 0  # output samples returned so far

    def process(self, pcm16: bytes) -> bytes:
        """Convert the next chunk of little-endian 16-bit PCM bytes."""
        return self.process_array(pcm16_to_array(pcm16)).astype("<i2", copy=False).tobytes()

    def process_array(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Convert the next chunk of a 1-D int16 array; returns a new int16 array."""
        chunk = require_int16(samples)
        if chunk.ndim != 1:
            raise ValueError(f"expected a 1-D array, got shape {chunk.shape}")
        up, down = self._design.up, self._design.down
        consumed = self._consumed + chunk.size
        target = consumed * up // down
        first = self._produced
        if target == first:
            self._history = np.concatenate((self._history, chunk), dtype=np.float64)
            self._consumed = consumed
            return np.empty(0, dtype=np.int16)

        block0 = first // up
        blocks = -(-target // up) - block0
        available = self._history.size + chunk.size
        shortfall = (blocks - 1) * down + self._window - available
        parts = (self._history, chunk)
        if shortfall > 0:  # the last, partial block peeks past the data
            parts += (np.zeros(shortfall),)
        buffer = np.concatenate(parts, dtype=np.float64)
        windows = np.ndarray(
            (blocks, self._window), np.float64, buffer=buffer, strides=(down * _F64, _F64)
        )
        acc = windows.dot(self._block_t).reshape(-1)[first - block0 * up : target - block0 * up]
        acc *= self._scale
        np.rint(acc, out=acc)
        out = acc.clip(_INT16_MIN, _INT16_MAX).astype(np.int16)

        self._history = buffer[(target // up - block0) * down : available]
        self._consumed = consumed
        self._produced = target
        return out
