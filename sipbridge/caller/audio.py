"""The caller's WAV files: read what to say at the media rate, write what was heard.

Read: 16-bit PCM WAV, mono or stereo (channels averaged; :mod:`sipbridge.wavfile`), at 8, 16 or
24 kHz, resampled to the call's rate with :class:`sipcodecs.StreamResampler` (its group delay is
trimmed, so sample 0 of the file is sample 0 of the result). Anything else is a :class:`WavError` naming the file
and what is wrong with it. Frames: the audio cut into 20 ms frames of bytes, the last one
padded with silence, as the media port hands them out.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from sipcodecs import StreamResampler

from ..wavfile import WavError, read_mono  # noqa: F401 - WavError re-exported

RATES = (8000, 16000, 24000)
FRAME_MS = 20


def read_wav(path: str | Path, rate: int) -> np.ndarray:
    """The file's audio as mono int16 at ``rate``."""
    samples, src = read_mono(path)
    if src not in RATES or rate not in RATES:
        raise WavError(f"{path}: {src} Hz; supported rates are "
                       + ", ".join(f"{r // 1000} kHz" for r in RATES))
    return resample(np.round(samples).astype(np.int16), src, rate)


def resample(pcm: np.ndarray, src: int, dst: int) -> np.ndarray:
    """``pcm`` from ``src`` to ``dst`` Hz, aligned to the input (the filter delay removed)."""
    if src == dst or len(pcm) == 0:
        return np.asarray(pcm, dtype=np.int16)
    rs = StreamResampler(src, dst)
    tail = -(-rs.delay_samples * src // dst) + 1
    out = rs.process_array(np.concatenate([pcm, np.zeros(tail, dtype=np.int16)]))
    want = len(pcm) * dst // src
    return out[rs.delay_samples: rs.delay_samples + want]


def frames(pcm: np.ndarray, rate: int) -> list[bytes]:
    """``pcm`` as 20 ms frames of little-endian bytes, the last padded with silence."""
    n = rate * FRAME_MS // 1000
    count = -(-len(pcm) // n)
    padded = np.zeros(count * n, dtype="<i2")
    padded[: len(pcm)] = pcm
    data = padded.tobytes()
    return [data[i * 2 * n:(i + 1) * 2 * n] for i in range(count)]


def write_wav(path: str | Path, pcm: np.ndarray, rate: int) -> None:
    """Write mono int16 ``pcm`` at ``rate`` as a 16-bit PCM WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
