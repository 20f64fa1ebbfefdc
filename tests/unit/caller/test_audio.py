"""The caller's WAV input (rates, channels, errors), its 20 ms frames, and the recording."""

import wave

import numpy as np
import pytest

from sipbridge.caller import DEFAULT_SAY
from sipbridge.caller.analysis import segments
from sipbridge.caller.audio import WavError, frames, read_wav, resample, write_wav


def sine(rate, ms, hz=400, amp=8000):
    t = np.arange(rate * ms // 1000) / rate
    return np.round(amp * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def write(path, pcm, rate, channels=1, width=2):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def test_8k_mono_is_read_as_is(tmp_path):
    """An 8 kHz mono file comes back sample for sample."""
    pcm = sine(8000, 200)
    assert np.array_equal(read_wav(write(tmp_path / "a.wav", pcm, 8000), 8000), pcm)


@pytest.mark.parametrize("src", [16000, 24000])
def test_other_rates_are_resampled_in_length_level_and_time(tmp_path, src):
    """16 and 24 kHz files become 8 kHz of the same duration, level and timing (no filter delay)."""
    pcm = np.concatenate([np.zeros(src // 10, np.int16), sine(src, 500), np.zeros(src // 10, np.int16)])
    out = read_wav(write(tmp_path / "a.wav", pcm, src), 8000)
    assert len(out) == 8000 * 700 // 1000
    ref = np.concatenate([np.zeros(800, np.int16), sine(8000, 500), np.zeros(800, np.int16)])
    assert abs(np.std(out) - np.std(ref)) / np.std(ref) < 0.02
    assert segments(out, 8000) == segments(ref, 8000)


def test_stereo_channels_are_averaged(tmp_path):
    """A stereo file is mixed to mono by averaging its channels."""
    left, right = sine(8000, 100), np.zeros(800, np.int16)
    inter = np.stack([left, right], axis=1).reshape(-1)
    out = read_wav(write(tmp_path / "s.wav", inter, 8000, channels=2), 8000)
    assert np.array_equal(out, np.round(left / 2).astype(np.int16))


def test_unsupported_files_are_clear_errors(tmp_path):
    """A non-WAV, an 8-bit WAV and a 44.1 kHz WAV each raise WavError naming the file and problem."""
    (tmp_path / "x.wav").write_text("hello")
    with pytest.raises(WavError, match="x.wav: cannot read WAV"):
        read_wav(tmp_path / "x.wav", 8000)
    with pytest.raises(WavError, match="8-bit samples"):
        read_wav(write(tmp_path / "b.wav", np.zeros(100, np.uint8), 8000, width=1), 8000)
    with pytest.raises(WavError, match="44100 Hz"):
        read_wav(write(tmp_path / "c.wav", np.zeros(100, np.int16), 44100), 8000)
    with pytest.raises(WavError, match="cannot read"):
        read_wav(tmp_path / "missing.wav", 8000)


def test_resample_identity_and_empty():
    """Same rate or no samples: nothing is changed."""
    pcm = sine(8000, 20)
    assert np.array_equal(resample(pcm, 8000, 8000), pcm)
    assert len(resample(np.zeros(0, np.int16), 16000, 8000)) == 0


def test_frames_are_20ms_and_the_last_is_padded():
    """330 samples at 8 kHz make 3 frames of 320 bytes, the last padded with silence."""
    pcm = np.arange(1, 331, dtype=np.int16)
    out = frames(pcm, 8000)
    assert [len(f) for f in out] == [320, 320, 320]
    assert np.array_equal(np.frombuffer(b"".join(out), "<i2")[:330], pcm)
    assert not any(np.frombuffer(out[2], "<i2")[10:])


def test_recording_round_trips(tmp_path):
    """write_wav writes a 16-bit mono WAV that read_wav gives back unchanged."""
    pcm = sine(8000, 300)
    write_wav(tmp_path / "r.wav", pcm, 8000)
    with wave.open(str(tmp_path / "r.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
    assert np.array_equal(read_wav(tmp_path / "r.wav", 8000), pcm)


def test_shipped_hello_wav_is_two_sentences_with_a_pause():
    """The default --say file is small 8 kHz speech: two utterances, over a second apart."""
    assert DEFAULT_SAY.stat().st_size < 150_000
    with wave.open(str(DEFAULT_SAY)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
    said = segments(read_wav(DEFAULT_SAY, 8000), 8000)
    assert len(said) == 2
    assert said[1].start_ms - said[0].end_ms > 1000
    assert all(s.duration_ms > 800 for s in said)
