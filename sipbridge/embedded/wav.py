"""Load a WAV file as 24 kHz mono pcm16 LE, the embedded model's reply format.

Only 16-bit PCM WAV is read (``wave`` from the standard library); several
channels are averaged, and other sample rates are resampled by linear
interpolation (good enough for a test fixture, not for production audio).
"""

from __future__ import annotations

import wave

import numpy as np

from sipbridge.errors import SipBridgeError

TARGET_RATE = 24000


class WavError(SipBridgeError):
    """The reply WAV file is unreadable or not 16-bit PCM."""


def load_wav_24k(path: str) -> bytes:
    """Return the file's audio as 24 kHz mono pcm16 little-endian bytes."""
    try:
        with wave.open(path, "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise WavError(f"{path}: cannot read WAV: {exc}") from None
    if width != 2:
        raise WavError(f"{path}: {8 * width}-bit samples; only 16-bit PCM is supported")
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64)
    if channels > 1:
        samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
    if rate != TARGET_RATE and len(samples) > 1:
        n_out = max(1, round(len(samples) * TARGET_RATE / rate))
        positions = np.arange(n_out) * (rate / TARGET_RATE)
        samples = np.interp(positions, np.arange(len(samples)), samples)
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()
