"""A simulated telephone echo path, for the echo canceller's tests and bench.

What the bridge sends at 16 kHz goes out as G.711 at 8 kHz; somewhere past the network a
hybrid (or a speakerphone) reflects part of it, a few ms to a few tens of ms later and a few
to 20 dB down, through a short dispersive impulse response; the reflection is added to what
the caller says and to the line's noise, G.711-coded again and comes back, where the bridge
resamples it to 16 kHz. :func:`line_echo` builds that near-end signal from the far-end one,
sample-exactly, with the sipcodecs resampler and G.711 tables the bridge itself uses, and
:class:`EchoPath` reports where the echo truly lies (the resamplers' group delays included).
With ``rate=8000`` the bridge's media runs at the line's own rate: no resampler on either leg.

Everything is a pure function of its arguments (noise is seeded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sipcodecs import StreamResampler, alaw_decode_array, alaw_encode_array, ulaw_decode_array, ulaw_encode_array

LINE_RATE = 8000
PORT_RATE = 16000


def _g711(x8k: np.ndarray, law: str) -> np.ndarray:
    """A G.711 encode/decode round trip of float or int16 samples (saturating to int16 first)."""
    pcm = np.clip(np.rint(x8k), -32768, 32767).astype(np.int16)
    if law == "ulaw":
        return ulaw_decode_array(ulaw_encode_array(pcm))
    if law == "alaw":
        return alaw_decode_array(alaw_encode_array(pcm))
    if law == "none":
        return pcm
    raise ValueError(f"law must be ulaw, alaw or none, got {law!r}")


def hybrid_ir(length_ms: float = 6.0, seed: int = 1) -> np.ndarray:
    """A dispersive 8 kHz echo impulse response: a main tap at index 0 and a decaying, sign-alternating tail.

    Normalised to unit energy (white noise keeps its power through it); the main tap stays the
    largest, so the echo's delay is that of index 0.
    """
    n = max(1, int(round(length_ms * LINE_RATE / 1000)))
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    tail = rng.standard_normal(n) * 0.45 * np.exp(-k / (n / 4.0))
    tail[1:4] += (-0.5, 0.3, -0.15)[: max(0, min(3, n - 1))]
    tail[0] = 1.0
    peak = np.abs(tail[1:]).max() if n > 1 else 0.0
    if peak >= 0.8:  # keep the main tap clearly dominant whatever the seed
        tail[1:] *= 0.8 / peak
    return tail / np.sqrt(np.sum(tail * tail))


@dataclass(frozen=True)
class EchoPath:
    """An echo path: ``delay_ms`` (hybrid plus network), ``atten_db`` under the far end, optional IR, law."""

    delay_ms: float = 20.0
    atten_db: float = 12.0
    ir: tuple[float, ...] | None = None
    law: str = "ulaw"

    @property
    def resampler_delay_samples(self) -> int:
        """16 kHz samples the two resamplers (16k -> 8k out, 8k -> 16k back) add."""
        return _resampler_delay(PORT_RATE)

    @property
    def true_delay_samples(self) -> int:
        """Where the echo's main tap lies after the far sample it reflects, at 16 kHz."""
        return self.true_delay_samples_at(PORT_RATE)

    @property
    def true_delay_ms(self) -> float:
        return self.true_delay_samples * 1000 / PORT_RATE

    def true_delay_samples_at(self, rate: int) -> int:
        """The same in samples of a bridge running at ``rate`` (8 kHz: the line's own, no resamplers)."""
        return int(round(self.delay_ms * LINE_RATE / 1000)) * (_check_rate(rate) // LINE_RATE) + _resampler_delay(rate)

    def true_delay_ms_at(self, rate: int) -> float:
        return self.true_delay_samples_at(rate) * 1000 / rate


def _check_rate(rate: int) -> int:
    if rate <= 0 or rate % LINE_RATE:
        raise ValueError(f"the bridge's rate must be a multiple of {LINE_RATE}, got {rate}")
    return rate


def _resampler_delay(rate: int) -> int:
    """Samples at ``rate`` the two resamplers (rate -> 8k out, 8k -> rate back) add; none at 8 kHz."""
    if _check_rate(rate) == LINE_RATE:
        return 0
    return (StreamResampler(rate, LINE_RATE).delay_samples * rate // LINE_RATE
            + StreamResampler(LINE_RATE, rate).delay_samples)


def line_echo(far: np.ndarray, path: EchoPath, *, caller8: np.ndarray | None = None,
              noise_dbfs: float | None = None, seed: int = 0,
              paths: list[tuple[int, EchoPath]] | None = None, rate: int = PORT_RATE) -> np.ndarray:
    """The near-end signal the bridge receives while sending ``far`` (int16 at ``rate``), at ``rate``.

    ``rate``: the bridge's media rate, 16 kHz (resampled to and from the 8 kHz line) or 8 kHz
    (the line's own: the same G.711 codings and echo, no resampler).

    ``caller8`` (int16 at 8 kHz, the caller's own voice as spoken, same time base) is added at
    the phone, with white noise of ``noise_dbfs`` RMS when given. ``paths`` switches the echo
    path at given 8 kHz sample indices: ``[(0, p0), (n1, p1), ...]`` (``path`` is then unused);
    each segment's echo is that path's response to the whole far signal, so the change is abrupt.
    """
    far = np.asarray(far, dtype=np.int16)
    native = _check_rate(rate) == LINE_RATE
    down = far if native else StreamResampler(rate, LINE_RATE).process_array(far)
    segments = paths if paths else [(0, path)]
    out = np.zeros(len(down), dtype=np.float64)
    for i, (start, p) in enumerate(segments):
        end = segments[i + 1][0] if i + 1 < len(segments) else len(down)
        sent = _g711(down, p.law).astype(np.float64)  # what the far side decodes
        ir = np.asarray(p.ir if p.ir is not None else (1.0,), dtype=np.float64)
        echo = np.convolve(sent, ir)[: len(sent)]
        lag = int(round(p.delay_ms * LINE_RATE / 1000))
        delayed = np.zeros(len(sent))
        if lag < len(sent):
            delayed[lag:] = echo[: len(sent) - lag]
        out[start:end] = delayed[start:end] * 10 ** (-p.atten_db / 20)
    if caller8 is not None:
        c = np.asarray(caller8, dtype=np.float64)[: len(out)]
        out[: len(c)] += c
    if noise_dbfs is not None:
        out += np.random.default_rng(seed).standard_normal(len(out)) * 32768.0 * 10 ** (noise_dbfs / 20)
    received = _g711(out, segments[-1][1].law)
    up = received if native else StreamResampler(LINE_RATE, rate).process_array(received)
    if len(up) < len(far):
        up = np.concatenate([up, np.zeros(len(far) - len(up), np.int16)])
    return up[: len(far)]


def place_caller(x8k: np.ndarray, at_s: float, gain_db: float, seconds: float) -> np.ndarray:
    """The caller's voice at the phone (8 kHz float): ``x8k`` scaled by ``gain_db`` from ``at_s``."""
    out = np.zeros(int(seconds * 8000))
    x = x8k.astype(np.float64) * 10 ** (gain_db / 20)
    start = int(at_s * 8000)
    out[start: start + len(x)] = x[: len(out) - start]
    return out


def onset16(at_s: float, delay_samples: int) -> int:
    """An onset at ``at_s`` in the bridge's 16 kHz samples, after an 8 -> 16 kHz resampler's delay."""
    return onset_at(at_s, PORT_RATE, delay_samples)


def onset_at(at_s: float, rate: int, delay_samples: int = 0) -> int:
    """An onset at ``at_s`` (on the 8 kHz line) in the bridge's samples at ``rate``, after ``delay_samples``."""
    return int(at_s * LINE_RATE) * (_check_rate(rate) // LINE_RATE) + delay_samples
