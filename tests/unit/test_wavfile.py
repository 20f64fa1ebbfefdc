"""read_mono, the one WAV reader of the caller and the embedded model."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from sipbridge.wavfile import WavError, read_mono


def _write(path, samples: np.ndarray, channels: int, rate: int, width: int = 2) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())


def test_channels_are_averaged_unrounded_and_the_rate_is_the_files(tmp_path):
    """Stereo frames come back as the float mean of each frame (a trailing half frame dropped), with the file's rate."""
    _write(tmp_path / "s.wav", np.array([1, 2, -5, -6, 32767, 32767, 7], dtype="<i2"), 2, 22050)
    samples, rate = read_mono(tmp_path / "s.wav")
    assert rate == 22050 and samples.dtype == np.float64
    assert samples.tolist() == [1.5, -5.5, 32767.0]


def test_mono_is_read_as_is(tmp_path):
    """Mono 16-bit samples come back unchanged (as float)."""
    pcm = np.array([0, -32768, 32767, 12], dtype="<i2")
    _write(tmp_path / "m.wav", pcm, 1, 8000)
    samples, rate = read_mono(str(tmp_path / "m.wav"))
    assert rate == 8000 and samples.tolist() == pcm.astype(float).tolist()


def test_unreadable_and_8_bit_files_are_wav_errors_naming_the_file(tmp_path):
    """A missing file, a non-WAV and an 8-bit WAV each raise WavError naming the file and the problem."""
    with pytest.raises(WavError, match="nope.wav: cannot read WAV"):
        read_mono(tmp_path / "nope.wav")
    (tmp_path / "x.wav").write_bytes(b"hello")
    with pytest.raises(WavError, match="x.wav: cannot read WAV: truncated, or not a RIFF/WAVE file"):
        read_mono(tmp_path / "x.wav")
    _write(tmp_path / "b.wav", np.full(80, 128, dtype=np.uint8), 1, 8000, width=1)
    with pytest.raises(WavError, match="b.wav: 8-bit samples; only 16-bit PCM WAV is supported"):
        read_mono(tmp_path / "b.wav")
