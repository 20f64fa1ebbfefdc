"""realtime.provider gemini: its URL, key variable, model default and the settings it refuses."""

from __future__ import annotations

import pytest

from sipbridge import config
from sipbridge.errors import ConfigError
from sipbridge.realtime.providers import make_upstream
from sipbridge.realtime.providers.gemini import DEFAULT_MODEL, GEMINI_URL, GeminiUpstream
from sipbridge.realtime.upstream import SessionConfig, Upstream

KEY = {"GEMINI_API_KEY": "gm-secret"}


def build(realtime: dict, environ: dict | None = None):
    return config.build({"realtime": {"provider": "gemini", **realtime}}, environ=environ or {})


def test_google_endpoint_and_key_from_gemini_api_key():
    """No realtime.url: Google's BidiGenerateContent endpoint, the key from $GEMINI_API_KEY (it goes in ?key= at connect, not in the logged URL)."""
    cfg = build({}, KEY)
    assert cfg.upstream(KEY) == (GEMINI_URL, "gm-secret")
    assert GEMINI_URL.startswith("wss://generativelanguage.googleapis.com/ws/") and "key=" not in GEMINI_URL


def test_realtime_url_and_api_key_env_replace_the_defaults():
    """realtime.url replaces the endpoint; realtime.api_key_env names another variable."""
    env = {"MY_KEY": "k2"}
    cfg = build({"url": "ws://127.0.0.1:9/ws/x", "api_key_env": "MY_KEY"}, env)
    assert cfg.upstream(env) == ("ws://127.0.0.1:9/ws/x", "k2")


def test_the_adapter_is_registered_and_openais_default_model_means_geminis():
    """make_upstream builds a GeminiUpstream (an Upstream without truncate); realtime.model gpt-realtime means the Gemini default model."""
    cfg = build({}, KEY)
    up = make_upstream(cfg.realtime, GEMINI_URL, "k", SessionConfig(model="x"), lambda e: None)
    assert isinstance(up, GeminiUpstream) and isinstance(up, Upstream)
    assert up._model == DEFAULT_MODEL
    assert up.capabilities.truncate is False and up.capabilities.server_cancels_on_speech is True
    up2 = make_upstream(build({"model": "gemini-live-2"}, KEY).realtime, GEMINI_URL, "k",
                        SessionConfig(model="x"), lambda e: None)
    assert up2._model == "gemini-live-2"


@pytest.mark.parametrize("realtime, environ, key, words", [
    ({}, {}, "realtime.api_key_env", "GEMINI_API_KEY"),
    ({"audio_format": "g711_ulaw"}, KEY, "realtime.audio_format", "pcm16"),
    ({"url": "wss://h/ws/x?key=abc"}, KEY, "realtime.url", "without the key"),
    ({"url": "https://h/ws/x"}, KEY, "realtime.url", "ws://"),
    ({"azure_deployment": "d"}, KEY, "realtime.azure_deployment", "provider azure"),
])
def test_impossible_gemini_settings_name_the_key(realtime, environ, key, words):
    """Each impossible gemini setting is a ConfigError naming its key, with the reason."""
    with pytest.raises(ConfigError) as err:
        build(realtime, environ)
    assert err.value.key == key and words in err.value.reason
