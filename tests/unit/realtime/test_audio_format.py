"""realtime.audio_format on the wire: the formats, the port <-> model conversion, session.update
in both dialects, appends and deltas of one-byte samples."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from sipcodecs import StreamResampler, alaw_decode, ulaw_decode, ulaw_encode

from sipbridge.errors import ConfigError
from sipbridge.realtime import protocol as p
from sipbridge.realtime.audio_format import FORMATS, G711_ALAW, G711_ULAW, PCM16, by_ga_type, by_name
from sipbridge.realtime.transcode import Downlink, Uplink


def tone(hz: float, ms: int, rate: int, dbfs: float = -12.0) -> np.ndarray:
    t = np.arange(rate * ms // 1000) / rate
    return np.round(10 ** (dbfs / 20) * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def level_at(samples: np.ndarray, rate: int, hz: float) -> float:
    """Amplitude of the ``hz`` component (a single DFT bin over whole periods)."""
    x = samples.astype(np.float64)
    t = np.arange(len(x)) / rate
    return float(2 * abs(np.dot(x, np.exp(-2j * np.pi * hz * t))) / len(x))


# -- the formats --------------------------------------------------------------------------------

def test_each_format_names_its_rate_sample_size_and_both_spellings():
    """pcm16 is 24 kHz / 2 bytes / audio/pcm; G.711 is 8 kHz / 1 byte / audio/pcmu, audio/pcma."""
    assert (PCM16.rate, PCM16.sample_bytes, PCM16.bytes_per_ms, PCM16.ga()) == (
        24000, 2, 48, {"type": "audio/pcm", "rate": 24000})
    assert (G711_ULAW.rate, G711_ULAW.sample_bytes, G711_ULAW.bytes_per_ms, G711_ULAW.ga()) == (
        8000, 1, 8, {"type": "audio/pcmu"})
    assert G711_ALAW.ga() == {"type": "audio/pcma"} and G711_ALAW.ga(16000) == {"type": "audio/pcma"}
    for name, fmt in FORMATS.items():
        assert by_name(name) is fmt and by_ga_type(fmt.ga_type) is fmt
    assert by_ga_type("audio/opus") is None and by_ga_type(None) is None
    with pytest.raises(ValueError, match="g722"):
        by_name("g722")


def test_ms_counts_samples_at_the_formats_rate_not_bytes():
    """800 bytes are 100 ms of G.711 but 16.7 ms of pcm16; floors to whole ms."""
    assert G711_ULAW.ms(800) == 100 and G711_ULAW.ms(807) == 100 and G711_ULAW.ms(808) == 101
    assert PCM16.ms(4800) == 100 and PCM16.ms(800) == 16
    assert G711_ALAW.samples(801) == 801 and PCM16.samples(801) == 400


def test_g711_encode_and_decode_are_the_sipcodecs_laws():
    """encode/decode are the G.711 tables (bit-identical to sipcodecs' byte functions)."""
    x = tone(700, 40, 8000)
    assert G711_ULAW.encode(x) == ulaw_encode(x.astype("<i2").tobytes())
    codes = bytes(range(256))
    assert G711_ULAW.decode(codes).astype("<i2").tobytes() == ulaw_decode(codes)
    assert G711_ALAW.decode(codes).astype("<i2").tobytes() == alaw_decode(codes)
    assert PCM16.encode(x) == x.astype("<i2").tobytes()
    assert np.array_equal(PCM16.decode(PCM16.encode(x)), x)


# -- port (16 kHz) <-> model ---------------------------------------------------------------------

def test_pcm16_uplink_and_downlink_are_the_former_24k_resamplers():
    """The default format sends and plays exactly what the 16<->24 kHz resamplers did before."""
    caller = tone(440, 200, 16000).astype("<i2").tobytes()
    assert Uplink(PCM16).process(caller) == StreamResampler(16000, 24000).process(caller)
    model = tone(440, 200, 24000).astype("<i2").tobytes()
    assert Downlink(PCM16).process(model) == StreamResampler(24000, 16000).process(model)


@pytest.mark.parametrize("fmt", [G711_ULAW, G711_ALAW], ids=lambda f: f.name)
def test_g711_uplink_sends_one_byte_per_8khz_sample_and_keeps_the_voice_band(fmt):
    """100 ms of 16 kHz caller audio becomes 800 G.711 bytes; a 1 kHz tone comes out at 8 kHz at
    its level; a 5 kHz tone (above 8 kHz's Nyquist) is filtered out, not aliased to 3 kHz."""
    up = Uplink(fmt)
    wire = up.process(tone(1000, 100, 16000).astype("<i2").tobytes())
    assert len(wire) == 800
    body = fmt.decode(up.process(tone(1000, 400, 16000).astype("<i2").tobytes()))
    want = 10 ** (-12 / 20) * 32767
    assert abs(level_at(body, 8000, 1000) - want) / want < 0.03
    alias = fmt.decode(Uplink(fmt).process(tone(5000, 400, 16000).astype("<i2").tobytes()))
    assert level_at(alias[80:], 8000, 3000) < want * 10 ** (-40 / 20)


def test_g711_uplink_is_chunking_invariant():
    """Twenty 20 ms frames one by one give the same bytes as one 400 ms batch (stateful filter)."""
    pcm = tone(900, 400, 16000).astype("<i2").tobytes()
    whole = Uplink(G711_ULAW).process(pcm)
    up = Uplink(G711_ULAW)
    assert b"".join(up.process(pcm[i:i + 640]) for i in range(0, len(pcm), 640)) == whole


@pytest.mark.parametrize("fmt", [G711_ULAW, G711_ALAW], ids=lambda f: f.name)
def test_g711_downlink_plays_exactly_two_port_samples_per_model_byte(fmt):
    """Deltas of any size, odd ones too, come out as 2 samples at 16 kHz per G.711 byte, in
    total and after every delta (so played/received ms are the model's own audio ms)."""
    wire = fmt.encode(tone(1000, 500, 8000))
    down, total = Downlink(fmt), 0
    out = []
    for size in (1, 333, 467, 800, 1399):
        chunk, wire = wire[:size], wire[size:]
        pcm = down.process(chunk)
        total += size
        assert len(pcm) == 2 * 2 * size
        out.append(pcm)
    heard = np.frombuffer(b"".join(out), dtype="<i2")
    assert len(heard) == 2 * total == 2 * 3000
    want = 10 ** (-12 / 20) * 32767
    assert abs(level_at(heard[320:], 16000, 1000) - want) / want < 0.03


# -- session.update, both dialects ----------------------------------------------------------------

@pytest.mark.parametrize("name,ga_type", [("g711_ulaw", "audio/pcmu"), ("g711_alaw", "audio/pcma")])
def test_ga_session_update_spells_g711_as_a_format_object_without_rate(name, ga_type):
    """GA: session.audio.input.format and .output.format are {"type": "audio/pcmu"|"audio/pcma"}."""
    cfg = p.SessionConfig(model="m", audio_format=name, voice="marin")
    assert (cfg.input_rate, cfg.output_rate, cfg.format.rate) == (8000, 8000, 8000)
    s = p.session_update(cfg)["session"]
    assert s["audio"]["input"]["format"] == {"type": ga_type}
    assert s["audio"]["output"]["format"] == {"type": ga_type}
    assert s["audio"]["output"]["voice"] == "marin" and "input_audio_format" not in s
    json.dumps(s)


@pytest.mark.parametrize("name", ["pcm16", "g711_ulaw", "g711_alaw"])
def test_beta_session_update_spells_the_format_as_a_string(name):
    """beta: input_audio_format and output_audio_format carry the format's name."""
    s = p.session_update(p.SessionConfig(model="m", api="beta", audio_format=name))["session"]
    assert s["input_audio_format"] == s["output_audio_format"] == name
    assert "audio" not in s


def test_default_session_config_is_still_pcm16_at_24k():
    """Without audio_format the session is pcm16 at 24 kHz in both dialects, as before."""
    cfg = p.SessionConfig(model="m")
    assert (cfg.audio_format, cfg.input_rate, cfg.output_rate) == ("pcm16", 24000, 24000)
    assert p.session_update(cfg)["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}


@pytest.mark.parametrize("kwargs,key", [
    ({"audio_format": "opus"}, "realtime.audio_format"),
    ({"audio_format": "g711_ulaw", "input_rate": 24000}, "realtime.input_rate"),
    ({"audio_format": "g711_alaw", "output_rate": 16000}, "realtime.output_rate"),
    ({"audio_format": "g711_ulaw", "api": "beta", "input_rate": 16000}, "realtime.input_rate"),
])
def test_session_config_refuses_unknown_formats_and_rates_g711_cannot_have(kwargs, key):
    """An unknown format, or a G.711 rate other than 8000, is a ConfigError naming the key."""
    with pytest.raises(ConfigError) as err:
        p.SessionConfig(model="m", **kwargs)
    assert err.value.key == key


# -- appends and deltas of one-byte samples --------------------------------------------------------

def test_append_of_g711_takes_any_byte_count():
    """With 1-byte samples an odd-length append is whole samples; pcm16 still refuses it."""
    ev = p.input_audio_append(b"\x7f\xff\x00", sample_bytes=1)
    assert base64.b64decode(ev["audio"]) == b"\x7f\xff\x00"
    with pytest.raises(ValueError):
        p.input_audio_append(b"\x7f\xff\x00")


def test_an_odd_length_delta_is_whole_samples_of_g711_but_malformed_pcm16():
    """The parser checks delta sizes against the session's sample size."""
    msg = json.dumps({"type": "response.output_audio.delta", "response_id": "r", "item_id": "i",
                      "content_index": 0, "delta": base64.b64encode(b"\xff\x7f\x00").decode()})
    ev = p.parse_server_event(msg, sample_bytes=1)
    assert isinstance(ev, p.AudioDelta) and ev.pcm == b"\xff\x7f\x00"
    bad = p.parse_server_event(msg)
    assert isinstance(bad, p.Malformed) and "whole pcm16 samples" in bad.reason
