"""realtime.audio_format ``auto``: G.711 to the model on a narrowband line, as the provider allows
(sipbridge/realtime/format_choice.py), accepted wherever the key is set, and a 1:1 G.711 path that
resamples nothing."""

from __future__ import annotations

import numpy as np
import pytest

from sipbridge import config
from sipbridge.errors import ConfigError
from sipbridge.realtime.audio_format import G711_ALAW, G711_ULAW, PCM16
from sipbridge.realtime.format_choice import choose, resolve
from sipbridge.realtime.providers import RULES
from sipbridge.realtime.transcode import Downlink, Uplink

PROVIDERS = {  # the settings each provider needs to load, beside the format
    "openai": ({}, {}),
    "azure": ({"azure_resource": "contoso", "azure_deployment": "rt"}, {"AZURE_OPENAI_API_KEY": "k"}),
    "gemini": ({}, {"GEMINI_API_KEY": "k"}),
    "hydra": ({"turn_detection": None}, {"SMALLEST_API_KEY": "k"}),
    "media_stream": ({"url": "ws://127.0.0.1/bot"}, {}),
}


def loaded(provider: str, rate: int, **realtime):
    extra, environ = PROVIDERS[provider]
    extra = dict(extra)
    turn = {"type": "server_vad"} if extra.pop("turn_detection", 0) is None else {}
    return config.build({"sip": {"media_rate": rate}, "turn_detection": turn,
                         "realtime": {"provider": provider, **extra, **realtime}},
                        environ=environ, machine=None)


@pytest.mark.parametrize("rate, want", [(8000, "g711_ulaw"), (16000, "pcm16")])
def test_auto_is_ulaw_on_a_narrowband_port_and_pcm16_on_a_wideband_one(rate, want):
    """auto with a provider that speaks every format: µ-law at 8 kHz, pcm16 at 16 kHz."""
    assert choose("auto", media_rate=rate) == want


@pytest.mark.parametrize("forced", ["pcm16", "g711_ulaw"])
@pytest.mark.parametrize("rate", [8000, 16000])
def test_a_provider_that_speaks_one_format_gets_it_at_any_rate(forced, rate):
    """auto yields the provider's only format whatever the port's rate."""
    assert choose("auto", media_rate=rate, forced=forced) == forced


@pytest.mark.parametrize("name", ["pcm16", "g711_ulaw", "g711_alaw"])
@pytest.mark.parametrize("rate", [8000, 16000])
def test_an_explicit_format_is_kept_as_given(name, rate):
    """An explicit format is never replaced, at either rate (pcm16 at 8 kHz stays pcm16)."""
    assert choose(name, media_rate=rate) == name


@pytest.mark.parametrize("provider, at8k, at16k", [
    ("openai", "g711_ulaw", "pcm16"), ("azure", "g711_ulaw", "pcm16"), ("hydra", "g711_ulaw", "pcm16"),
    ("gemini", "pcm16", "pcm16"), ("media_stream", "g711_ulaw", "g711_ulaw"),
])
def test_the_default_config_resolves_per_provider_and_rate(provider, at8k, at16k):
    """The loaded default (auto) resolves by the provider table: Gemini pcm16 only, a Media Streams
    bot µ-law only, the OpenAI-protocol ones and Hydra (whose adapter takes any) G.711 at 8 kHz."""
    assert provider in RULES
    for rate, want in ((8000, at8k), (16000, at16k)):
        rc = loaded(provider, rate).realtime
        assert rc.audio_format == "auto"
        assert resolve(rc, rate) == want


def test_auto_is_the_default_and_explicit_values_still_load():
    """The default is auto; pcm16, g711_ulaw and g711_alaw load and resolve to themselves."""
    assert config.RealtimeConfig().audio_format == "auto" == config.build({}).realtime.audio_format
    for name in ("pcm16", "g711_ulaw", "g711_alaw"):
        rc = config.build({"realtime": {"audio_format": name}}).realtime
        assert resolve(rc, 8000) == resolve(rc, 16000) == name


def test_auto_passes_the_per_call_coercer_and_a_bad_value_names_auto_among_the_choices():
    """Routes, webhook replies and API calls set the key through coerce_key: auto is accepted
    there, and a bad value is a ConfigError that lists auto with the formats."""
    assert config.coerce_key("realtime", "audio_format", "auto") == "auto"
    with pytest.raises(ConfigError) as err:
        config.coerce_key("realtime", "audio_format", "opus")
    assert err.value.key == "realtime.audio_format" and "auto" in str(err.value)


@pytest.mark.parametrize("provider, bad", [("gemini", "g711_ulaw"), ("media_stream", "pcm16")])
def test_a_forced_provider_still_refuses_an_explicit_other_format(provider, bad):
    """auto loads with every provider; an explicit format the provider cannot speak is refused."""
    loaded(provider, 8000)
    with pytest.raises(ConfigError) as err:
        loaded(provider, 8000, audio_format=bad)
    assert err.value.key == "realtime.audio_format"


@pytest.mark.parametrize("fmt", [G711_ULAW, G711_ALAW])
def test_g711_at_an_8k_port_is_the_codec_alone_both_ways(fmt):
    """At 8 kHz the G.711 up- and downlinks hold no resampler: each caller sample is one byte, each
    model byte one port sample, so N ms are 8N bytes both ways and chunking changes nothing."""
    rng = np.random.default_rng(7)
    caller = (rng.standard_normal(8000) * 4000).astype("<i2")
    up, down = Uplink(fmt, 8000), Downlink(fmt, 8000)
    assert up._resampler is None and down._resampler is None
    sent = b"".join(up.process(caller[i:i + 160].tobytes()) for i in range(0, 8000, 160))
    assert sent == fmt.encode(caller) and len(sent) == 1000 * 8 and fmt.ms(len(sent)) == 1000
    played = b"".join(down.process(sent[i:i + 333]) for i in range(0, len(sent), 333))
    assert played == fmt.decode(sent).astype("<i2").tobytes() and len(played) // 2 == len(sent)


def test_pcm16_and_wideband_g711_still_resample():
    """pcm16 at 8 kHz (3:1) and G.711 at a 16 kHz port (2:1) keep their resamplers."""
    assert Uplink(PCM16, 8000)._resampler is not None and Downlink(PCM16, 8000)._resampler is not None
    assert Uplink(G711_ULAW, 16000)._resampler is not None
    assert len(Uplink(PCM16, 8000).process(bytes(320))) == 160 * 3 * 2


def test_a_route_may_go_back_to_auto_over_an_explicit_default():
    """A route's audio_format auto replaces a top-level pcm16 for its calls, and resolves per rate."""
    from sipbridge.app.routes import for_call
    cfg = config.build({"realtime": {"audio_format": "pcm16"},
                        "routes": [{"name": "pstn", "match": {"number": "1"}, "audio_format": "auto"}]},
                       environ={})
    rc = for_call(cfg, cfg.routes[0])[0].realtime
    assert rc.audio_format == "auto" and resolve(rc, 8000) == "g711_ulaw"
    assert resolve(cfg.realtime, 8000) == "pcm16"


def test_hydra_takes_the_ulaw_auto_picks_on_a_narrowband_line():
    """Hydra's adapter with the µ-law session auto gives it at 8 kHz: 1.6 s of µ-law caller audio
    reaches the strict server as 1.6 s of 16 kHz pcm16, and its 2 s 48 kHz answer comes back as 2 s
    of 8 kHz µ-law (8 bytes a ms)."""
    import asyncio

    from sipbridge.realtime.events import AudioDelta, ResponseDone
    from sipbridge.realtime.sessionconfig import SessionConfig
    from tests.support.hydra_server import HydraServer
    from tests.unit.realtime.test_hydra_adapter import reply, session, until

    def ulaw_tone(ms: int, dbfs: float) -> bytes:
        n = 8 * ms
        amp = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)
        return G711_ULAW.encode((amp * np.sin(2 * np.pi * 440 * np.arange(n) / 8000)).astype(np.int16))

    async def body():
        with HydraServer(reply(), lead_s=5.0) as server:
            up, events, reader = await session(server, config=SessionConfig(
                model="hydra", turn_detection={"type": "server_vad"}, audio_format="g711_ulaw"))
            for ms, dbfs in [(200, -80), (600, -20), (800, -80)]:
                for _ in range(ms // 100):
                    up.send_audio(ulaw_tone(100, dbfs))
                    await asyncio.sleep(0.1)
            await until(lambda: any(isinstance(e, ResponseDone) for e in events))
            await up.close()
            await reader
            assert server.violations == []
            assert server.audio_bytes == 1600 * 2 * 16
            answer = b"".join(e.pcm for e in events if isinstance(e, AudioDelta))
            assert abs(len(answer) - 2 * 8000) <= 16 and G711_ULAW.ms(len(answer)) in range(1998, 2003)
            assert np.abs(G711_ULAW.decode(answer)).max() > 4000   # the answer, not silence
    asyncio.run(body())
