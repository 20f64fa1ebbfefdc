"""realtime.provider: OpenAI and Azure OpenAI URLs, key variables and auth; planned providers refused."""

from __future__ import annotations


import pytest

from sipbridge import config
from sipbridge.embedded import EmbeddedModel
from sipbridge.errors import ConfigError
from sipbridge.realtime import protocol as p
from sipbridge.realtime.client import RealtimeClient, UpstreamError
from sipbridge.realtime.providers import azure_url, client_options

from .helpers import arun

AZ = {"provider": "azure", "azure_resource": "contoso-eu", "azure_deployment": "rt-prod"}
KEY = {"AZURE_OPENAI_API_KEY": "az-secret"}


def build(realtime: dict, environ: dict | None = None):
    return config.build({"realtime": realtime}, environ=environ or {})


def test_azure_ga_url_is_built_from_resource_and_deployment():
    """Azure GA: wss://<resource>.openai.azure.com/openai/v1/realtime?model=<deployment>, key from AZURE_OPENAI_API_KEY."""
    cfg = build(AZ, KEY)
    assert cfg.upstream(KEY) == ("wss://contoso-eu.openai.azure.com/openai/v1/realtime?model=rt-prod", "az-secret")
    assert client_options(cfg.realtime) == {"auth": "api-key", "model_query": False}


def test_azure_preview_url_carries_api_version_and_deployment():
    """A preview azure_api_version gives /openai/realtime?api-version=..&deployment=.. (the beta dialect)."""
    cfg = build({**AZ, "azure_api_version": "2025-04-01-preview", "api": "beta"}, KEY)
    assert azure_url(cfg.realtime) == ("wss://contoso-eu.openai.azure.com/openai/realtime"
                                       "?api-version=2025-04-01-preview&deployment=rt-prod")


def test_realtime_url_replaces_the_azure_host_only():
    """With realtime.url the base host changes; path and query are still built; bearer auth is an option."""
    env = {"MY_TOKEN": "entra"}
    cfg = build({**AZ, "azure_resource": None, "url": "ws://127.0.0.1:9000", "api_key_env": "MY_TOKEN",
                 "azure_auth": "bearer"}, env)
    assert cfg.upstream(env) == ("ws://127.0.0.1:9000/openai/v1/realtime?model=rt-prod", "entra")
    assert client_options(cfg.realtime)["auth"] == "bearer"


def test_openai_stays_as_it_was():
    """provider openai (the default): OpenAI's URL with OPENAI_API_KEY, else the embedded model."""
    assert build({}).upstream({"OPENAI_API_KEY": "sk"}) == ("wss://api.openai.com/v1/realtime", "sk")
    assert build({}).upstream({}) == ("embedded", None)
    assert client_options(build({}).realtime) == {"auth": "bearer", "model_query": True}


@pytest.mark.parametrize("realtime, environ, key, words", [
    ({"provider": "gemini"}, {}, "realtime.api_key_env", "GEMINI_API_KEY"),
    ({"provider": "hydra"}, {}, "realtime.api_key_env", "SMALLEST_API_KEY"),
    ({"provider": "hydra", "voice": "alloy"}, {"SMALLEST_API_KEY": "k"}, "realtime.voice", "wren"),
    ({"provider": "hydra", "url": "wss://h/s2s?api_key=k"}, {"SMALLEST_API_KEY": "k"}, "realtime.url", "without the key"),
    ({"provider": "media_stream"}, {}, "realtime.url", "ws[s]://"),
    ({"provider": "media_stream", "url": "embedded"}, {}, "realtime.url", "the bot's"),
    ({"provider": "media_stream", "url": "ws://127.0.0.1/bot", "audio_format": "pcm16"}, {},
     "realtime.audio_format", "g711_ulaw"),
    ({"provider": "media_stream", "url": "ws://127.0.0.1/bot", "audio_format": "g711_ulaw",
      "send_silence": False}, {}, "realtime.send_silence", "every 20 ms"),
    ({"provider": "media_stream", "url": "ws://127.0.0.1/bot", "audio_format": "g711_ulaw",
      "media_stream_resume_ms": 50}, {}, "realtime.media_stream_resume_ms", "100"),
    ({"provider": "bedrock"}, {}, "realtime.provider", "openai, azure"),
    ({"api": "beta"}, {}, "realtime.api", "beta_api_shape_disabled"),
    ({"azure_deployment": "x"}, {}, "realtime.azure_deployment", "provider azure"),
    ({**AZ, "azure_deployment": None}, KEY, "realtime.azure_deployment", "deployment"),
    ({**AZ, "azure_resource": None}, KEY, "realtime.azure_resource", "resource"),
    ({**AZ, "azure_resource": "https://contoso.openai.azure.com"}, KEY, "realtime.azure_resource", "not a URL"),
    ({**AZ, "url": "wss://proxy.example/openai/v1/realtime?model=x"}, KEY, "realtime.url", "base"),
    ({**AZ, "azure_api_version": "latest"}, KEY, "realtime.azure_api_version", "2025-04-01-preview"),
    ({**AZ, "api": "beta"}, KEY, "realtime.api", "GA endpoint"),
    ({**AZ, "azure_auth": "cert"}, KEY, "realtime.azure_auth", "api_key, bearer"),
    (AZ, {}, "realtime.api_key_env", "AZURE_OPENAI_API_KEY"),
])
def test_bad_provider_settings_name_the_key(realtime, environ, key, words):
    """Each impossible provider setting is a ConfigError naming its key, with the reason."""
    with pytest.raises(ConfigError) as err:
        build(realtime, environ)
    assert err.value.key == key and words in err.value.reason


def _connect(url: str, key: str | None, **opts):
    async def body():
        model = EmbeddedModel(api_key="az-secret", azure_deployment="rt-prod")
        base = await model.start()
        client = RealtimeClient(url.format(base=base), "gpt-realtime", key, p.SessionConfig(model="m"),
                                lambda e: None, **opts)
        try:
            await client.connect()
            return client.url, model.connections
        finally:
            await client.close()
            await model.stop()
    return arun(body())


def test_the_client_opens_an_azure_deployment_with_the_api_key_header():
    """RealtimeClient with the Azure options reaches the strict Azure-style server: exact URL, api-key header."""
    url, accepted = _connect("{base}/openai/v1/realtime?model=rt-prod", "az-secret", auth="api-key",
                             model_query=False)
    assert accepted == 1 and url.endswith("/openai/v1/realtime?model=rt-prod")
    assert _connect("{base}/openai/v1/realtime?model=rt-prod", "az-secret", auth="bearer",
                    model_query=False)[1] == 1


@pytest.mark.parametrize("url, key, opts, status", [
    ("{base}/openai/v1/realtime?model=rt-prod", "wrong", {"auth": "api-key", "model_query": False}, 401),
    ("{base}/openai/v1/realtime?model=rt-prod", None, {"auth": "api-key", "model_query": False}, 401),
    ("{base}/openai/v1/realtime?model=rt-prod", "az-secret", {}, 404),   # OpenAI style adds ?model=gpt-realtime
    ("{base}/v1/realtime", "az-secret", {"auth": "api-key"}, 404),
])
def test_the_azure_style_server_refuses_wrong_urls_and_keys(url, key, opts, status):
    """A wrong key is 401 and a URL not of the deployment (extra or other query, other path) 404."""
    with pytest.raises(UpstreamError) as err:
        _connect(url, key, **opts)
    assert err.value.status == status


def test_the_headers_follow_the_provider():
    """Azure: the key in api-key (or a bearer token), no OpenAI-Beta header even in beta; OpenAI: Bearer."""
    beta = p.SessionConfig(model="m", api="beta")
    def headers(**opts):
        return RealtimeClient("ws://127.0.0.1:9/x", "m", "k", beta, lambda e: None, **opts)._headers()
    assert headers(auth="api-key", model_query=False) == [("api-key", "k")]
    assert headers(auth="bearer", model_query=False) == [("Authorization", "Bearer k")]
    assert headers() == [("Authorization", "Bearer k"), ("OpenAI-Beta", "realtime=v1")]
