"""Which model provider a call talks to, how to reach it, and the registry of adapters.

``realtime.provider`` picks the service. :data:`ADAPTERS` maps each available name to the factory
of its :class:`~sipbridge.realtime.upstream.Upstream` adapter, and :func:`make_upstream` builds
one for a call; a new provider is one module in this package, one line there and its config
rules in :data:`RULES` (a :class:`Rules` row: the URL, the audio format, the key, and any checks
of its own). Both available ones speak the OpenAI Realtime protocol (the adapter
:mod:`sipbridge.realtime.providers.openai`) and differ only in where and how the socket is opened:

* ``openai``: ``wss://api.openai.com/v1/realtime?model=<realtime.model>`` (``realtime.url``
  replaces the URL; the client adds ``?model=``), ``Authorization: Bearer <key>``, the key in
  ``$OPENAI_API_KEY`` unless ``realtime.api_key_env`` names another variable. No key and no URL:
  the embedded model answers. OpenAI retired the beta interface (its server answers
  ``beta_api_shape_disabled``), so ``api: beta`` is refused for OpenAI's own endpoint.
* ``azure``: Azure OpenAI. GA (``realtime.azure_api_version`` null, the default):
  ``wss://<azure_resource>.openai.azure.com/openai/v1/realtime?model=<azure_deployment>``, GA
  event shape. Preview (an ``azure_api_version`` such as ``2025-04-01-preview``):
  ``.../openai/realtime?api-version=<v>&deployment=<azure_deployment>``, where Azure still
  speaks the beta shape (set ``api: beta``). Auth is the ``api-key: <key>`` header
  (``azure_auth: api_key``) or ``Authorization: Bearer <token>`` for a Microsoft Entra token
  (``azure_auth: bearer``); the key or token is read from ``$AZURE_OPENAI_API_KEY`` unless
  ``realtime.api_key_env`` names another variable. ``realtime.url`` (``wss://host[:port]``)
  replaces ``wss://<azure_resource>.openai.azure.com`` (a proxy, a private endpoint, a test
  server); the path and the query are still built here, never hand-written.

* ``gemini``: Google Gemini Live (:mod:`sipbridge.realtime.providers.gemini`, its own protocol):
  ``wss://generativelanguage.googleapis.com/ws/...BidiGenerateContent`` (``realtime.url``
  replaces it), the key from ``$GEMINI_API_KEY`` (or ``realtime.api_key_env``) sent as
  ``?key=``; ``realtime.model`` left at ``gpt-realtime`` means Gemini's default live model.
  Audio is pcm16 only.

* ``media_stream``: any bot that speaks Twilio Media Streams
  (:mod:`sipbridge.realtime.providers.media_stream`): sipbridge plays Twilio's part toward
  ``realtime.url`` (required, ``ws[s]://``); ``audio_format: g711_ulaw`` (audio/x-mulaw 8 kHz);
  ``$MEDIA_STREAM_TOKEN`` (or ``realtime.api_key_env``), when set, goes as a bearer token.

* ``hydra``: Smallest AI Hydra (:mod:`sipbridge.realtime.providers.hydra`, its own protocol):
  ``wss://api.smallest.ai/waves/v1/s2s?model=hydra`` (``realtime.url`` replaces the base; the
  ``model`` query is added), ``Authorization: Bearer <key>``, the key from ``$SMALLEST_API_KEY``
  (or ``realtime.api_key_env``). Turns are always Hydra's: ``turn_detection.type: server_vad``.

The providers once planned (``hydra``, ``gemini``, ``media_stream``: :data:`PLANNED`) are all
available now; a name in :data:`PLANNED` that is not in :data:`ADAPTERS` is refused as planned.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from sipbridge.errors import ConfigError
from sipbridge.realtime.upstream import ServerEvent, SessionConfig, Upstream, UpstreamFactory


def _openai(rc: Any, url: str, api_key: str | None, session: SessionConfig,
            on_event: Callable[[ServerEvent], None]) -> Upstream:
    from sipbridge.realtime.providers import openai  # the adapter imports the socket library
    return openai.factory(rc, url, api_key, session, on_event, **client_options(rc))


def _gemini(rc: Any, url: str, api_key: str | None, session: SessionConfig,
            on_event: Callable[[ServerEvent], None]) -> Upstream:
    from sipbridge.realtime.providers import gemini
    return gemini.factory(rc, url, api_key, session, on_event)


def _media_stream(rc: Any, url: str, api_key: str | None, session: SessionConfig,
                  on_event: Callable[[ServerEvent], None]) -> Upstream:
    from sipbridge.realtime.providers import media_stream
    return media_stream.factory(rc, url, api_key, session, on_event)


def _hydra(rc: Any, url: str, api_key: str | None, session: SessionConfig,
           on_event: Callable[[ServerEvent], None]) -> Upstream:
    from sipbridge.realtime.providers import hydra
    return hydra.factory(rc, url, api_key, session, on_event)


# realtime.provider -> the factory of its adapter: factory(rc, url, api_key, session, on_event)
ADAPTERS: dict[str, UpstreamFactory] = {
    "openai": _openai,
    "azure": _openai,   # the same protocol; its URL and auth header come from client_options
    "media_stream": _media_stream,  # any Twilio Media Streams bot: providers/media_stream.py
    "gemini": _gemini,  # Google Gemini Live (BidiGenerateContent): providers/gemini.py
    "hydra": _hydra,    # Smallest AI Hydra (server turns, self-cancelling): providers/hydra.py
}
OPENAI_URL = "wss://api.openai.com/v1/realtime"
AVAILABLE = tuple(ADAPTERS)
PLANNED = ("hydra", "gemini", "media_stream")
KEY_ENV = {"openai": "OPENAI_API_KEY", "azure": "AZURE_OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}
KEY_ENV["media_stream"] = "MEDIA_STREAM_TOKEN"   # optional: sent as a bearer token to the bot
KEY_ENV["hydra"] = "SMALLEST_API_KEY"
AZURE_AUTH = ("api_key", "bearer")
_RESOURCE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(?:-preview)?$")


def key_env(rc: Any) -> str:
    """The variable holding the provider's key: ``realtime.api_key_env``, else the provider's."""
    return rc.api_key_env or KEY_ENV.get(rc.provider, "OPENAI_API_KEY")


@dataclass(frozen=True)
class Rules:
    """What one provider's configuration must be (a row of :data:`RULES`; ``None``: no check).

    ``url``: what ``realtime.url`` is, said in the error (``ws[s]://`` with a host); required or
    optional (it replaces the provider's default), and with ``key_param`` never carrying the key
    in that query parameter. ``audio_format``: the one format it speaks, and why. ``key``: what
    the key in ``$<key_env>`` is, said when it is missing. ``own``: further checks, run after the
    audio format and before the key. The ``azure_*`` fields are refused unless ``azure``."""

    url: str | None = None
    url_required: bool = False
    key_param: str | None = None
    audio_format: tuple[str, str] | None = None
    key: str | None = None
    own: Callable[[Any], None] | None = None
    azure: bool = False


def check(rc: Any, environ: Mapping[str, str] | None = None) -> None:
    """Refuse a provider configuration that cannot work, naming the key (``ConfigError``), by
    the provider's row of :data:`RULES` (none for a provider not listed)."""
    if rc.provider not in ADAPTERS:
        if rc.provider in PLANNED:
            raise ConfigError("realtime.provider", f"{rc.provider!r} is planned but not yet available "
                              f"(available: {', '.join(ADAPTERS)})")
        raise ConfigError("realtime.provider", f"must be one of {', '.join(ADAPTERS)} "
                          f"({', '.join(p for p in PLANNED if p not in ADAPTERS)} are planned), "
                          f"got {rc.provider!r}")
    rules = RULES.get(rc.provider)
    if rules is not None:
        _apply(rules, rc, os.environ if environ is None else environ)


def _apply(rules: Rules, rc: Any, environ: Mapping[str, str]) -> None:
    name = rc.provider
    azure = [k for k in ("azure_resource", "azure_deployment", "azure_api_version") if getattr(rc, k)]
    if azure and not rules.azure:
        raise ConfigError(f"realtime.{azure[0]}", f"is for provider azure (realtime.provider is {name})")
    if rules.url is not None and (rc.url is not None or rules.url_required):
        parts = urlsplit(rc.url or "")
        keyed = rules.key_param is not None and f"{rules.key_param}=" in parts.query
        if parts.scheme not in ("ws", "wss") or not parts.hostname or keyed:
            raise ConfigError("realtime.url", f"provider {name} needs {rules.url}, got {rc.url!r}"
                              if rules.url_required else
                              f"with provider {name} it is {rules.url}, without the key (that comes "
                              f"from ${key_env(rc)}), got {rc.url!r}")
    if rules.audio_format is not None and rc.audio_format not in (rules.audio_format[0], "auto"):
        fmt, why = rules.audio_format
        raise ConfigError("realtime.audio_format", f"{why}: use {fmt}, got {rc.audio_format!r}")
    if rules.own is not None:
        rules.own(rc)
    if rules.key is not None and not environ.get(key_env(rc)):
        raise ConfigError("realtime.api_key_env", f"${key_env(rc)} is empty or unset: provider {name} "
                          f"needs {rules.key}")


def _check_openai(rc: Any) -> None:
    if rc.api == "beta" and rc.url is None:
        raise ConfigError("realtime.api", "OpenAI retired the beta interface (it answers "
                          "beta_api_shape_disabled): use ga; beta is kept for Azure's preview API "
                          "versions and servers given by realtime.url that still speak it")


def _check_azure(rc: Any) -> None:
    if rc.url is None and not rc.azure_resource:
        raise ConfigError("realtime.azure_resource", "provider azure needs the resource name "
                          "(<name>.openai.azure.com) or realtime.url")
    if rc.url is not None:
        parts = urlsplit(rc.url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname or parts.path not in ("", "/") \
                or parts.query:
            raise ConfigError("realtime.url", "with provider azure it is the base ws[s]://host[:port] "
                              f"only (path and query are built), got {rc.url!r}")
    if rc.azure_resource is not None and not _RESOURCE.match(rc.azure_resource):
        raise ConfigError("realtime.azure_resource", f"must be the resource's name (lowercase letters, "
                          f"digits, '-'), not a URL, got {rc.azure_resource!r}")
    if not rc.azure_deployment or not _NAME.match(rc.azure_deployment):
        raise ConfigError("realtime.azure_deployment", "provider azure needs the deployment name of the "
                          f"realtime model (letters, digits, . _ -), got {rc.azure_deployment!r}")
    if rc.azure_api_version is not None and not _VERSION.match(rc.azure_api_version):
        raise ConfigError("realtime.azure_api_version", "must be null (GA) or a date like "
                          f"2025-04-01-preview, got {rc.azure_api_version!r}")
    if rc.azure_api_version is None and rc.api == "beta":
        raise ConfigError("realtime.api", "Azure's GA endpoint (azure_api_version null) speaks ga; "
                          "beta is for a preview azure_api_version")
    if rc.azure_auth not in AZURE_AUTH:
        raise ConfigError("realtime.azure_auth", f"must be one of {', '.join(AZURE_AUTH)}, got "
                          f"{rc.azure_auth!r}")


def _check_media_stream(rc: Any) -> None:
    if not rc.send_silence:
        raise ConfigError("realtime.send_silence", "a Media Streams bot expects the caller's audio "
                          "without gaps (Twilio sends every 20 ms): use true")


def _check_hydra(rc: Any) -> None:
    from sipbridge.realtime.providers.hydra_wire import VOICES
    if rc.voice is not None and rc.voice not in VOICES:
        raise ConfigError("realtime.voice", f"Hydra's voices are {', '.join(VOICES)} (an unknown one "
                          f"silently falls back to its default), got {rc.voice!r}")


def check_turns(provider: str, turn_type: str) -> None:
    """Refuse a turn detection the provider cannot do (Hydra's turns are always its own)."""
    if provider == "hydra" and turn_type != "server_vad":
        raise ConfigError("turn_detection.type", "provider hydra always detects turns itself (the "
                          f"client sends nothing between turns): use server_vad, got {turn_type!r}")


def azure_url(rc: Any) -> str:
    """The WebSocket URL of an Azure OpenAI realtime deployment (see the module docstring)."""
    base = (rc.url or f"wss://{rc.azure_resource}.openai.azure.com").rstrip("/")
    if rc.azure_api_version is None:
        return f"{base}/openai/v1/realtime?" + urlencode({"model": rc.azure_deployment})
    return f"{base}/openai/realtime?" + urlencode({"api-version": rc.azure_api_version,
                                                   "deployment": rc.azure_deployment})


def client_options(rc: Any) -> dict[str, Any]:
    """Keyword arguments of :class:`~sipbridge.realtime.client.RealtimeClient` for the provider:
    which auth header carries the key, and whether ``?model=`` is added to the URL."""
    if rc.provider == "azure":
        return {"auth": "bearer" if rc.azure_auth == "bearer" else "api-key", "model_query": False}
    return {"auth": "bearer", "model_query": True}


# realtime.provider -> its configuration rules, checked when the config is loaded
RULES: dict[str, Rules] = {
    "openai": Rules(own=_check_openai),
    "azure": Rules(own=_check_azure, azure=True,
                   key="its key (or, with azure_auth: bearer, an Entra token)"),
    "media_stream": Rules(url="the bot's ws[s]:// URL (where Twilio's <Stream url> would point)",
                          url_required=True,
                          audio_format=("g711_ulaw", "a Media Streams bot speaks audio/x-mulaw 8 kHz"),
                          own=_check_media_stream),
    "gemini": Rules(url="the ws[s]:// URL of the BidiGenerateContent endpoint", key_param="key",
                    audio_format=("pcm16", "Gemini Live speaks PCM only (16 kHz in, 24 kHz out)"),
                    key="its API key"),
    "hydra": Rules(url="the ws[s]:// URL of the s2s endpoint", key_param="api_key", own=_check_hydra,
                   key="its API key"),
}


def make_upstream(rc: Any, url: str, api_key: str | None, session: SessionConfig,
                  on_event: Callable[[ServerEvent], None]) -> Upstream:
    """A new, unconnected adapter of ``rc.provider`` for one call (and one per reconnect)."""
    try:
        factory = ADAPTERS[rc.provider]
    except KeyError:
        raise ConfigError("realtime.provider", f"must be one of {', '.join(ADAPTERS)}, "
                          f"got {rc.provider!r}") from None
    return factory(rc, url, api_key, session, on_event)
