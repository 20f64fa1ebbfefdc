"""realtime.reconnect_* keys and the reconnect prompt: defaults, validation at start-up, loading."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from sipbridge import config
from sipbridge.errors import ConfigError
from sipbridge.realtime.prompt import load_prompt
from tests.support import audio


def build(**realtime):
    return config.build({"realtime": realtime}, environ={})


def test_defaults():
    """Without the keys: 5 attempts, 250..4000 ms, no prompt."""
    rc = build().realtime
    assert (rc.reconnect_attempts, rc.reconnect_backoff_min_ms, rc.reconnect_backoff_max_ms,
            rc.reconnect_prompt) == (5, 250, 4000, None)


def test_environment_overrides_the_attempts():
    """SIPBRIDGE_REALTIME__RECONNECT_ATTEMPTS sets the key like any other."""
    cfg = config.build({}, environ={"SIPBRIDGE_REALTIME__RECONNECT_ATTEMPTS": "0"})
    assert cfg.realtime.reconnect_attempts == 0


@pytest.mark.parametrize("values,key", [
    ({"reconnect_attempts": -1}, "realtime.reconnect_attempts"),
    ({"reconnect_attempts": "5"}, "realtime.reconnect_attempts"),
    ({"reconnect_backoff_min_ms": 0}, "realtime.reconnect_backoff_min_ms"),
    ({"reconnect_backoff_min_ms": 500, "reconnect_backoff_max_ms": 400}, "realtime.reconnect_backoff_max_ms"),
    ({"reconnect_prompt": ""}, "realtime.reconnect_prompt"),
])
def test_bad_values_name_the_key(values, key):
    """Out-of-range or mistyped reconnect values raise ConfigError naming the dotted key."""
    with pytest.raises(ConfigError) as err:
        build(**values)
    assert err.value.key == key


def _wav(path, pcm: np.ndarray, rate: int, channels: int = 1, width: int = 2):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes() if width == 2 else pcm.astype(np.uint8).tobytes())
    return str(path)


@pytest.mark.parametrize("make,why", [
    (lambda d: str(d / "missing.wav"), "no such file"),
    (lambda d: (d / "junk.wav").write_bytes(b"RIFFjunk") and str(d / "junk.wav"), "not a readable WAV"),
    (lambda d: _wav(d / "st.wav", np.zeros(3200, np.int16), 16000, channels=2), "mono"),
    (lambda d: _wav(d / "44k.wav", np.zeros(4410, np.int16), 44100), "8000 or 16000"),
    (lambda d: _wav(d / "u8.wav", np.zeros(800, np.int16), 8000, width=1), "16-bit"),
    (lambda d: _wav(d / "empty.wav", np.zeros(0, np.int16), 8000), "must last"),
])
def test_bad_prompt_file_fails_at_start_up(tmp_path, make, why):
    """A missing, unreadable, stereo, wrong-rate, 8-bit or empty prompt is a ConfigError naming the key."""
    path = make(tmp_path)
    with pytest.raises(ConfigError) as err:
        build(reconnect_prompt=path)
    assert err.value.key == "realtime.reconnect_prompt"
    assert why in err.value.reason


def test_16k_prompt_is_used_as_is(tmp_path):
    """A 16 kHz prompt comes back sample for sample."""
    pcm = audio.sine(440, 500, -12.0, rate=16000)
    path = _wav(tmp_path / "p16.wav", pcm, 16000)
    assert build(reconnect_prompt=path).realtime.reconnect_prompt == path
    assert load_prompt(path) == pcm.astype("<i2").tobytes()


def test_8k_prompt_is_upsampled_to_16k_in_time(tmp_path):
    """An 8 kHz prompt becomes twice the samples at 16 kHz: the same waveform, no delay added."""
    def tones(rate):
        return audio.sine(400, 600, -15.0, rate=rate) + audio.sine(1130, 600, -15.0, rate=rate)
    pcm8 = tones(8000)
    out = np.frombuffer(load_prompt(_wav(tmp_path / "p8.wav", pcm8, 8000)), dtype="<i2").astype(float)
    assert len(out) == 2 * len(pcm8)
    ref = tones(16000).astype(float)
    mid = slice(800, len(out) - 800)  # away from the edges the filter cannot see past
    assert np.corrcoef(ref[mid], out[mid])[0, 1] > 0.99, "upsampled prompt is delayed or distorted"
    assert abs(audio.dbfs(out[mid]) - audio.dbfs(ref[mid])) < 0.5


def test_prompts_come_at_an_8k_playout_rate(tmp_path):
    """With ``sip.media_rate: 8000`` an 8 kHz prompt is used as is and a 16 kHz one is halved in
    samples: the same waveform, no delay added."""
    def tones(rate):
        return audio.sine(400, 600, -15.0, rate=rate) + audio.sine(1130, 600, -15.0, rate=rate)
    pcm8 = tones(8000)
    assert load_prompt(_wav(tmp_path / "p8.wav", pcm8, 8000), 8000) == pcm8.astype("<i2").tobytes()
    out = np.frombuffer(load_prompt(_wav(tmp_path / "p16.wav", tones(16000), 16000), 8000), dtype="<i2")
    assert len(out) == len(pcm8)
    mid = slice(400, len(out) - 400)
    assert np.corrcoef(pcm8[mid].astype(float), out[mid].astype(float))[0, 1] > 0.99
    assert abs(audio.dbfs(out[mid]) - audio.dbfs(pcm8[mid])) < 0.5
