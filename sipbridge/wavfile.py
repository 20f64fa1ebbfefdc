"""Read a 16-bit PCM WAV file as mono samples: the one WAV reader of the caller and the embedded model.

``wave`` from the standard library reads the file; several channels are averaged (a trailing
partial frame is dropped); the samples come back as float64 (not yet rounded, so a caller that
resamples rounds once) with the file's rate. An unreadable file or other sample width is a
:class:`WavError` naming the file and the problem; what rates are usable is the caller's to say.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from sipbridge.errors import SipBridgeError


class WavError(SipBridgeError):
    """A WAV file that cannot be used (unreadable, not 16-bit PCM, unsupported rate)."""


def read_mono(path: str | Path) -> tuple[np.ndarray, int]:
    """The file's audio as mono float64 samples (int16 scale) and its sample rate."""
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise WavError(f"{path}: cannot read WAV: {str(exc) or 'truncated, or not a RIFF/WAVE file'}") from None
    if width != 2:
        raise WavError(f"{path}: {8 * width}-bit samples; only 16-bit PCM WAV is supported")
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float64)
    if channels > 1:
        samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
    return samples, rate
