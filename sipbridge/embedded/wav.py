"""Load a WAV file as 24 kHz mono pcm16 LE, the embedded model's reply format.

Only 16-bit PCM WAV is read (:mod:`sipbridge.wavfile`); several
channels are averaged, and other sample rates are resampled by linear
interpolation (good enough for a test fixture, not for production audio).
"""

from __future__ import annotations

import numpy as np

from sipbridge.wavfile import WavError, read_mono  # noqa: F401 - WavError re-exported

TARGET_RATE = 24000


def load_wav_24k(path: str) -> bytes:
    """Return the file's audio as 24 kHz mono pcm16 little-endian bytes."""
    samples, rate = read_mono(path)
    if rate != TARGET_RATE and len(samples) > 1:
        n_out = max(1, round(len(samples) * TARGET_RATE / rate))
        positions = np.arange(n_out) * (rate / TARGET_RATE)
        samples = np.interp(positions, np.arange(len(samples)), samples)
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()
