"""Configuration: a YAML file, then ``SIPBRIDGE_<SECTION>__<KEY>`` environment overrides.

Every key is validated here, once, at start-up: a bad value raises :class:`ConfigError` naming
the dotted key and the reason (the CLI prints it and exits 2). The sections are typed frozen
dataclasses; ``turn_detection`` is resolved by :mod:`sipbridge.turn.settings` (profiles + keys).

Environment overrides take the YAML syntax for their value, so lists work too::

    SIPBRIDGE_SIP__PORT=5070  SIPBRIDGE_SIP__ALLOW_FROM='[10.0.0.0/8]'
    SIPBRIDGE_TURN_DETECTION__PROFILE=patient
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .sip.acl import parse_networks

ENV_PREFIX = "SIPBRIDGE_"
EMBEDDED = "embedded"
OPENAI_URL = "wss://api.openai.com/v1/realtime"


@dataclass(frozen=True)
class SipConfig:
    host: str = "127.0.0.1"
    port: int = 5060
    public_host: str | None = None
    allow_from: tuple[str, ...] = ("127.0.0.1/32",)
    rtp_port: int = 40000
    rtp_port_range: int = 1000
    max_calls: int | None = None
    user_agent: str = "sipbridge"


@dataclass(frozen=True)
class RealtimeConfig:
    url: str | None = None
    model: str = "gpt-realtime"
    api_key_env: str = "OPENAI_API_KEY"
    api: str = "ga"
    voice: str | None = None
    instructions: str | None = None
    connect_timeout_ms: int = 3000
    send_silence: bool = True


@dataclass(frozen=True)
class BargeInConfig:
    enabled: bool = True
    dtmf: bool = True
    resume_window_ms: int = 800
    echo_guard: bool = True


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "auto"
    pjsip_level: int = 1


@dataclass(frozen=True)
class Config:
    sip: SipConfig = field(default_factory=SipConfig)
    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)
    turn_detection: Any = None  # sipbridge.turn.settings.TurnSettings
    barge_in: BargeInConfig = field(default_factory=BargeInConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def upstream(self, environ: Mapping[str, str] | None = None) -> tuple[str, str | None]:
        """Resolve ``(url, api_key)``: ``url`` is ``"embedded"`` for the on-box model.

        No ``realtime.url`` means OpenAI when the key's variable is set, else the embedded model.
        """
        env = os.environ if environ is None else environ
        key = env.get(self.realtime.api_key_env) or None
        url = self.realtime.url
        if url is None:
            return (OPENAI_URL, key) if key else (EMBEDDED, None)
        return url, key


_SECTIONS = {"sip": SipConfig, "realtime": RealtimeConfig, "barge_in": BargeInConfig,
             "log": LogConfig}
_CHOICES = {
    "realtime.api": ("ga", "beta"),
    "log.level": ("debug", "info", "warning", "error"),
    "log.format": ("auto", "json", "console"),
}
_RANGES = {
    "sip.port": (1, 65535), "sip.rtp_port": (1024, 65534), "sip.rtp_port_range": (2, 60000),
    "sip.max_calls": (1, 1000), "realtime.connect_timeout_ms": (100, 60000),
    "log.pjsip_level": (0, 6), "barge_in.resume_window_ms": (100, 10000),
}


def _coerce(key: str, value: Any, annotation: str) -> Any:
    optional = "None" in annotation
    if value is None:
        if optional:
            return None
        raise ConfigError(key, "must not be null")
    if annotation.startswith("tuple"):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, f"must be a list of strings, got {value!r}")
        return tuple(value)
    if annotation.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, got {value!r}")
        return value
    if annotation.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be an integer, got {value!r}")
        lo, hi = _RANGES.get(key, (None, None))
        if lo is not None and not lo <= value <= hi:
            raise ConfigError(key, f"must be between {lo} and {hi}, got {value}")
        return value
    if annotation.startswith("str"):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(key, f"must be a non-empty string, got {value!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ConfigError(key, f"must be one of {', '.join(_CHOICES[key])}, got {value!r}")
        return value
    raise AssertionError(annotation)  # pragma: no cover - every field type is handled above


def _section(name: str, cls: type, raw: Any) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(name, f"must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise ConfigError(f"{name}.{key}", f"unknown key (known: {', '.join(fields)})")
    values = {k: _coerce(f"{name}.{k}", v, str(fields[k].type)) for k, v in raw.items()}
    return cls(**values)


def _check(cfg: Config) -> None:
    parse_networks(cfg.sip.allow_from)
    url = cfg.realtime.url
    if url is not None and url != EMBEDDED and not url.startswith(("ws://", "wss://")):
        raise ConfigError("realtime.url", f"must be ws://, wss:// or 'embedded', got {url!r}")


def env_overrides(environ: Mapping[str, str]) -> dict:
    """Turn ``SIPBRIDGE_SECTION__KEY=value`` variables into a nested mapping."""
    out: dict = {}
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        try:
            value = yaml.safe_load(text) if text != "" else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{section}.{key}", f"bad value in ${name}: {exc}") from None
        out.setdefault(section, {})[key] = value
    return out


def build(raw: Mapping | None, environ: Mapping[str, str] | None = None) -> Config:
    """Validate a raw mapping (from YAML) plus environment overrides into a :class:`Config`."""
    from .turn.settings import resolve as resolve_turn

    raw = dict(raw or {})
    for section, values in env_overrides(os.environ if environ is None else environ).items():
        base = raw.get(section)
        raw[section] = {**(base if isinstance(base, Mapping) else {}), **values}
    known = set(_SECTIONS) | {"turn_detection"}
    for key in raw:
        if key not in known:
            raise ConfigError(str(key), f"unknown section (known: {', '.join(sorted(known))})")
    turn_raw = raw.get("turn_detection") or {}
    if not isinstance(turn_raw, Mapping):
        raise ConfigError("turn_detection", "must be a mapping")
    cfg = Config(
        sip=_section("sip", SipConfig, raw.get("sip")),
        realtime=_section("realtime", RealtimeConfig, raw.get("realtime")),
        turn_detection=resolve_turn(dict(turn_raw), "turn_detection"),
        barge_in=_section("barge_in", BargeInConfig, raw.get("barge_in")),
        log=_section("log", LogConfig, raw.get("log")),
    )
    _check(cfg)
    return cfg


def load(path: str | os.PathLike | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML file at ``path`` (None: defaults plus environment)."""
    raw: Any = {}
    if path is not None:
        p = Path(path)
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except OSError as exc:
            raise ConfigError("config", f"cannot read {p}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError("config", f"{p} is not valid YAML: {exc}") from None
        if not isinstance(raw, Mapping):
            raise ConfigError("config", f"{p} must hold a mapping at the top level")
    return build(raw, environ)
