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
from .trunk_config import TrunkConfig, parse_trunks
from .sip.tls import check as check_tls

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
    tls_port: int = 5061
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    tls_verify_client: bool = False
    srtp: str = "off"
    srtp_secure_signaling: int = 1
    drain_timeout_s: int = 30
    rtp_timeout_s: int = 30          # end a call whose caller sent no RTP this long; 0: never
    media_priority: str = "rr"       # pjmedia's clock/media threads: rr | nice | none
    media_rate: int = 8000           # PCM rate inside the bridge (VAD, echo canceller): 8000 | 16000
    media_port: str = "native"       # per-call audio port: native (C, media/native) | python (pjsua2)
    pump_ticks: int = 2              # native port: the pump runs its Python once every N media ticks
    numbers: tuple[str, ...] = ()    # Request-URI users accepted (others 404); empty: any
    invite_rate_per_s: int | None = 10   # INVITEs per second per source IP (null: no limit)
    invite_burst: int = 20           # INVITEs a source may send at once before the rate applies
    auth_user: str | None = None     # digest-authenticate INVITEs with this username (null: off)
    auth_password_env: str = "SIPBRIDGE_AUTH_PASSWORD"   # variable holding its password
    auth_realm: str = "sipbridge"
    auth_nonce_ttl_s: int = 300


@dataclass(frozen=True)
class RealtimeConfig:
    provider: str = "openai"         # openai | azure | gemini (adapters: sipbridge/realtime/providers/)
    url: str | None = None
    model: str = "gpt-realtime"
    api_key_env: str | None = None   # null: OPENAI_API_KEY / AZURE_OPENAI_API_KEY / GEMINI_API_KEY
    azure_resource: str | None = None      # <name>.openai.azure.com
    azure_deployment: str | None = None    # the realtime model's deployment name
    azure_api_version: str | None = None   # null: GA /openai/v1/realtime; a preview version
    azure_auth: str = "api_key"            # api_key (api-key header) | bearer (Entra token)
    api: str = "ga"
    voice: str | None = None
    instructions: str | None = None
    connect_timeout_ms: int = 3000
    send_silence: bool = True
    append_ms: int = 100
    reconnect_attempts: int = 5
    reconnect_backoff_min_ms: int = 250
    reconnect_backoff_max_ms: int = 4000
    reconnect_prompt: str | None = None
    audio_format: str = "auto"       # auto | pcm16 (24 kHz) | g711_ulaw | g711_alaw (8 kHz), both ways
    greeting: str | None = None      # instructions for the agent's first words, said on answer
    end_call_tool: bool = False      # offer the model an end_call function (it hangs up)
    transfer_to: str | None = None   # sip: URI the model may transfer the caller to (REFER)
    tools: tuple = ()                # the app's functions (realtime.protocol.Tool; app/tooldecl.py)
    tools_url: str | None = None     # where they are POSTed (http/https); needed with tools
    media_stream_resume_ms: int = 1500   # media_stream: a local barge-in waits this for the bot's clear


@dataclass(frozen=True)
class BargeInConfig:
    enabled: bool = True
    dtmf: bool = True
    resume_window_ms: int = 800
    echo_guard: bool = True
    trigger: str = "voice"           # voice (a voice over the background, bargein_voice) | level
    foreground_margin_db: int = 9    # trigger voice: a voice must stand this far over the background
    vad_hop_ms: int = 32             # Silero scores the caller for the pause every 32 ms (the turn
                                     # stream) or 16 (a second stream, turn/engine.py's probe)


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "auto"
    pjsip_level: int = 1


@dataclass(frozen=True)
class CellConfig:
    """Several worker processes behind one SIP address (see :mod:`sipbridge.cell`)."""
    workers: int | str = "auto"   # worker processes; auto: sized to the machine (cell/plan.py)
    front: str = "auto"           # none | kamailio | auto (kamailio when workers > 1 and installed)
    worker_port_base: int | None = None
    probe_interval_s: int = 5
    failover_timeout_ms: int = 2000
    restart_backoff_ms: int = 500
    restart_limit: int = 5
    restart_window_s: int = 60


@dataclass(frozen=True)
class AppConfig:
    """The application's webhooks (see :mod:`sipbridge.app`)."""
    webhook_url: str | None = None         # incoming-call webhook (http:// or https://); null: off
    webhook_secret_env: str = "SIPBRIDGE_WEBHOOK_SECRET"   # variable holding the signing secret
    webhook_timeout_ms: int = 1500         # the INVITE waits at most this for the reply
    on_webhook_failure: str = "default_agent"   # default_agent | reject (503)
    tool_timeout_ms: int = 5000            # an app tool (realtime.tools_url) answering later fails
    events_url: str | None = None          # signed call events are POSTed here; null: off
    events_queue: int = 1000               # events held for a slow receiver before dropping


@dataclass(frozen=True)
class ApiConfig:
    """The HTTP interface: call control, records, metrics, health."""
    listen: str | None = "127.0.0.1:8080"   # host:port; null: no HTTP interface
    token_env: str = "SIPBRIDGE_API_TOKEN"  # bearer token variable (required off loopback)
    rate_per_s: int = 50                    # requests per second per client before 429
    max_body_kb: int = 64                   # larger request bodies get 413


@dataclass(frozen=True)
class RecordsConfig:
    """Call records in SQLite."""
    path: str | None = "sipbridge-records.db"   # SQLite file (WAL); null: no records
    keep_days: int = 30                     # records older than this are deleted; 0: keep all


@dataclass(frozen=True)
class Config:
    sip: SipConfig = field(default_factory=SipConfig)
    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)
    turn_detection: Any = None  # sipbridge.turn.settings.TurnSettings
    barge_in: BargeInConfig = field(default_factory=BargeInConfig)
    log: LogConfig = field(default_factory=LogConfig)
    cell: CellConfig = field(default_factory=CellConfig)
    app: AppConfig = field(default_factory=AppConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    records: RecordsConfig = field(default_factory=RecordsConfig)
    trunks: tuple[TrunkConfig, ...] = ()   # SIP trunks to register with (sipbridge.trunk_config)
    routes: tuple = ()   # sipbridge.app.routes.Route: per-number agents, matched in order

    def upstream(self, environ: Mapping[str, str] | None = None) -> tuple[str, str | None]:
        """Resolve ``(url, api_key)``: ``url`` is ``"embedded"`` for the on-box model.

        No ``realtime.url`` means OpenAI when the key's variable is set, else the embedded model;
        provider azure: the deployment's URL (:func:`sipbridge.realtime.providers.azure_url`).
        """
        from .realtime.providers import azure_url, key_env
        env = os.environ if environ is None else environ
        key = env.get(key_env(self.realtime)) or None
        if self.realtime.provider == "azure":
            return azure_url(self.realtime), key
        if self.realtime.provider == "gemini":   # the key goes in the URL's query when connecting
            from .realtime.providers.gemini import gemini_url
            return gemini_url(self.realtime), key
        if self.realtime.provider == "hydra":    # the adapter adds ?model=hydra; the key is a header
            from .realtime.providers.hydra_wire import URL as HYDRA_URL
            return self.realtime.url or HYDRA_URL, key
        url = self.realtime.url
        if url is None:
            return (OPENAI_URL, key) if key else (EMBEDDED, None)
        return url, key

    def auth_password(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The inbound digest password (from ``sip.auth_password_env``); None when auth is off."""
        if not self.sip.auth_user:
            return None
        env = os.environ if environ is None else environ
        return env.get(self.sip.auth_password_env) or None


_SECTIONS = {"sip": SipConfig, "realtime": RealtimeConfig, "barge_in": BargeInConfig,
             "log": LogConfig, "cell": CellConfig, "app": AppConfig, "api": ApiConfig,
             "records": RecordsConfig}
_CHOICES = {
    "realtime.api": ("ga", "beta"),
    "realtime.audio_format": ("auto", "pcm16", "g711_ulaw", "g711_alaw"),   # realtime/format_choice.py
    "sip.srtp": ("off", "optional", "mandatory"),
    "sip.media_priority": ("rr", "nice", "none"),
    "sip.media_rate": (8000, 16000),
    "sip.media_port": ("native", "python"),
    "log.level": ("debug", "info", "warning", "error"),
    "log.format": ("auto", "json", "console"),
    "cell.front": ("auto", "none", "kamailio"),
    "app.on_webhook_failure": ("default_agent", "reject"),
    "barge_in.trigger": ("level", "voice"),
    "barge_in.vad_hop_ms": (16, 32),
}
_RANGES = {
    "sip.port": (1, 65535), "sip.rtp_port": (1024, 65534), "sip.rtp_port_range": (2, 60000),
    "sip.max_calls": (1, 1000), "realtime.connect_timeout_ms": (100, 60000),
    "sip.tls_port": (1, 65535), "sip.srtp_secure_signaling": (0, 2),
    "sip.drain_timeout_s": (0, 86400),
    "sip.rtp_timeout_s": (0, 3600),
    "sip.pump_ticks": (1, 3),   # media/native/pump.py: ring depth N (the C rings hold more)
    "sip.invite_rate_per_s": (1, 100000), "sip.invite_burst": (1, 100000),
    "sip.auth_nonce_ttl_s": (5, 86400),
    "log.pjsip_level": (0, 6), "barge_in.resume_window_ms": (100, 10000),
    "barge_in.foreground_margin_db": (0, 60),
    "realtime.append_ms": (20, 1000), "realtime.media_stream_resume_ms": (100, 10000),
    "realtime.reconnect_attempts": (0, 100), "realtime.reconnect_backoff_min_ms": (10, 60000),
    "realtime.reconnect_backoff_max_ms": (10, 600000),
    "cell.workers": (1, 64), "cell.worker_port_base": (1, 65535), "cell.probe_interval_s": (1, 300),
    "cell.failover_timeout_ms": (200, 60000), "cell.restart_backoff_ms": (0, 60000),
    "cell.restart_limit": (1, 1000), "cell.restart_window_s": (1, 86400),
    "app.webhook_timeout_ms": (50, 30000), "app.tool_timeout_ms": (100, 120000),
    "app.events_queue": (1, 1000000), "api.rate_per_s": (1, 100000),
    "api.max_body_kb": (1, 65536), "records.keep_days": (0, 36500),
}


def _coerce(key: str, value: Any, annotation: str) -> Any:
    if key in ("realtime.tools", "realtime.tools_url", "app.events_url"):  # mappings, URLs: own checks
        from .app.tooldecl import check_url, parse_tools
        return parse_tools(value, key) if key.endswith(".tools") else check_url(value, key)
    optional = "None" in annotation
    if key == "cell.workers" and isinstance(value, str):   # an integer or auto
        if value != "auto":
            raise ConfigError(key, f"must be an integer or auto, got {value!r}")
        return value
    if value is False and key == "sip.srtp":
        value = "off"  # YAML 1.1 reads a bare `off` as false
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
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ConfigError(key, f"must be one of {', '.join(map(str, _CHOICES[key]))}, got {value}")
        return value
    if annotation.startswith("str"):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(key, f"must be a non-empty string, got {value!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ConfigError(key, f"must be one of {', '.join(map(str, _CHOICES[key]))}, got {value!r}")
        return value
    raise AssertionError(annotation)  # pragma: no cover - every field type is handled above


def coerce_key(section: str, key: str, value: Any) -> Any:
    """``value`` validated as ``<section>.<key>`` of the YAML (routes and webhook replies reuse it)."""
    fields = {f.name: f for f in dataclasses.fields(_SECTIONS[section])}
    return _coerce(f"{section}.{key}", value, str(fields[key].type))


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
    check_tls(cfg.sip)
    url = cfg.realtime.url
    if url is not None and url != EMBEDDED and not url.startswith(("ws://", "wss://")):
        raise ConfigError("realtime.url", f"must be ws://, wss:// or 'embedded', got {url!r}")
    rc = cfg.realtime
    if rc.reconnect_backoff_max_ms < rc.reconnect_backoff_min_ms:
        raise ConfigError("realtime.reconnect_backoff_max_ms", f"must be >= reconnect_backoff_min_ms "
                          f"({rc.reconnect_backoff_min_ms}), got {rc.reconnect_backoff_max_ms}")
    check_agent(rc)
    if rc.reconnect_prompt is not None:
        from .realtime.prompt import load_prompt
        load_prompt(rc.reconnect_prompt)  # a bad file fails at start-up, not during an outage
    from .cell.plan import check_cell
    check_cell(cfg)


def check_agent(rc: RealtimeConfig) -> None:
    """The realtime keys a route or a webhook reply may also set, checked beyond their type."""
    if rc.transfer_to is not None and not (rc.transfer_to.startswith(("sip:", "sips:"))
                                           and len(rc.transfer_to) > 5 and " " not in rc.transfer_to):
        raise ConfigError("realtime.transfer_to", f"must be a sip: or sips: URI, got {rc.transfer_to!r}")
    from .app.tooldecl import check_pair
    check_pair(rc.tools, rc.tools_url)


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


def build(raw: Mapping | None, environ: Mapping[str, str] | None = None,
          machine=None) -> Config:
    """Validate a raw mapping (from YAML) plus environment overrides into a :class:`Config`.

    ``cell.workers``/``cell.front`` ``auto`` are settled for ``machine``
    (:class:`sipbridge.cell.plan.Machine`; None: this machine, probed only when one is auto)."""
    from .turn.settings import resolve as resolve_turn

    raw = dict(raw or {})
    for section, values in env_overrides(os.environ if environ is None else environ).items():
        if section == "trunks":
            raise ConfigError("trunks", f"cannot be set from the environment (${ENV_PREFIX}TRUNKS__*): "
                              "list trunks in the file, passwords via password_env")
        if section == "routes":
            raise ConfigError("routes", f"cannot be set from the environment (${ENV_PREFIX}ROUTES__*): "
                              "list routes in the file")
        base = raw.get(section)
        raw[section] = {**(base if isinstance(base, Mapping) else {}), **values}
    known = set(_SECTIONS) | {"turn_detection", "trunks", "routes"}
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
        cell=_section("cell", CellConfig, raw.get("cell")),
        app=_section("app", AppConfig, raw.get("app")),
        api=_section("api", ApiConfig, raw.get("api")),
        records=_section("records", RecordsConfig, raw.get("records")),
        trunks=parse_trunks(raw.get("trunks"), os.environ if environ is None else environ),
    )
    cfg = _resolve_cell(cfg, machine)
    _check(cfg)
    from .realtime.providers import check as check_provider  # URL shape, auth, the key's variable
    check_provider(cfg.realtime, os.environ if environ is None else environ)
    from .realtime.providers import check_turns  # hydra: the server's turns only
    check_turns(cfg.realtime.provider, cfg.turn_detection.type)
    _check_inbound(cfg, os.environ if environ is None else environ)
    from .app.guard import api_token  # api.listen's form; its token when not on loopback
    api_token(cfg.api.listen, cfg.api.token_env, os.environ if environ is None else environ)
    from .app.routes import parse_routes
    from .app.webhook import check_webhook
    check_webhook(cfg, os.environ if environ is None else environ)
    cfg = dataclasses.replace(cfg, routes=parse_routes(raw.get("routes"), cfg))
    from .app.tooldecl import check_tools  # a tools_url needs the signing secret
    check_tools(cfg, os.environ if environ is None else environ)
    return cfg


def _resolve_cell(cfg: Config, machine) -> Config:
    """``cfg`` with ``cell.workers``/``cell.front`` ``auto`` settled (cell/plan.resolve_cell)."""
    if "auto" not in (cfg.cell.workers, cfg.cell.front):
        return cfg
    from .cell.plan import resolve_cell
    if machine is None:
        from .cell.machine import probe
        machine = probe()
    workers, front = resolve_cell(cfg.cell.workers, cfg.cell.front, machine,
                                  media_rate=cfg.sip.media_rate, max_calls=cfg.sip.max_calls,
                                  tls=cfg.sip.tls_cert is not None)
    return dataclasses.replace(cfg, cell=dataclasses.replace(cfg.cell, workers=workers,
                                                             front=front))


def _check_inbound(cfg: Config, environ: Mapping[str, str]) -> None:
    """INVITE policy keys: numbers are non-empty; auth has its password (never in the file)."""
    for i, number in enumerate(cfg.sip.numbers):
        if not number.strip() or any(c in number for c in "@;: <>"):
            raise ConfigError(f"sip.numbers[{i}]", f"must be a bare user or number, got {number!r}")
    if cfg.sip.auth_user and not cfg.auth_password(environ):
        raise ConfigError("sip.auth_password_env", f"sip.auth_user is set but ${cfg.sip.auth_password_env} "
                          "is empty or unset (the password is read from that variable only)")


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
