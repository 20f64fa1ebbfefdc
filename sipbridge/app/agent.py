"""A call's agent: the per-call settings a route or a webhook reply sets, applied to the defaults.

A route (``routes:``) and the incoming-call webhook's reply use the same keys::

    instructions | instructions_file, voice, greeting, tools, tools_url, audio_format,
    transfer_to, end_call_tool, turn_detection (a mapping of turn keys, or a profile name),
    metadata (a mapping handed to the app's tools and events)

:func:`parse_agent` validates them into an :class:`Agent` (raising :class:`ConfigError` with the
caller's ``prefix``, e.g. ``routes[2].voice`` or ``reply.voice``); :func:`apply` lays an agent
over a :class:`~sipbridge.config.Config` and gives the call's own ``Config``, the same typed object
the YAML defaults produce. Both go through the config module's own validators (``_coerce`` and
:func:`~sipbridge.config.check_agent` for the realtime keys, :func:`~sipbridge.turn.settings.resolve`
for turn detection), so a key has one set of error messages wherever it is written. Pure: no I/O
except reading ``instructions_file``, which only a route (at load) may name.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError

# realtime.<key> a route or webhook reply may set (instructions_file is read into instructions)
REALTIME_KEYS = ("instructions", "voice", "greeting", "tools", "tools_url", "audio_format",
                 "transfer_to", "end_call_tool")
AGENT_KEYS = REALTIME_KEYS + ("instructions_file", "turn_detection", "metadata")
MAX_METADATA_BYTES = 16 * 1024
MAX_INSTRUCTIONS_CHARS = 100_000

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Agent:
    """Validated per-call changes: ``realtime`` fields, ``turn`` changes, the call's ``metadata``."""
    realtime: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    turn: Mapping[str, Any] | None = None    # TurnSettings field -> value (a profile expanded)
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def empty(self) -> bool:
        return not self.realtime and self.turn is None and not self.metadata


def _rename(exc: ConfigError, old: str, new: str) -> ConfigError:
    key = new + exc.key[len(old):] if exc.key.startswith(old) else new
    return ConfigError(key, exc.reason)


def _realtime_value(key: str, value: Any, prefix: str) -> Any:
    """``value`` validated as ``realtime.<key>`` would be, the error named ``<prefix>.<key>``."""
    from .. import config as cfgmod

    fields = {f.name: f for f in dataclasses.fields(cfgmod.RealtimeConfig)}
    if key not in fields:
        raise ConfigError(f"{prefix}.{key}", "is not supported by this build (no realtime."
                          f"{key} setting)")
    try:
        return cfgmod.coerce_key("realtime", key, value)
    except ConfigError as exc:
        raise _rename(exc, f"realtime.{key}", f"{prefix}.{key}") from None


def _turn_changes(value: Any, key: str) -> dict[str, Any]:
    """A profile name or a mapping of turn keys -> the TurnSettings fields it sets (validated)."""
    from ..turn.settings import PROFILES, resolve

    if isinstance(value, str):
        value = {"profile": value}
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"must be a profile name or a mapping of turn keys, got {value!r}")
    resolve(value, key)  # alone first: unknown keys, types, ranges, profile names
    changes: dict[str, Any] = {}
    if value.get("profile") is not None:
        changes.update(PROFILES[value["profile"]])
    for name, v in value.items():
        if name == "profile":
            continue
        if name in ("commit_digit", "clear_digit") and isinstance(v, int) and not isinstance(v, bool):
            v = str(v)
        changes[name] = v
    return changes


def _metadata(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(key, f"must be a mapping with string keys, got {value!r}")
    try:
        size = len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(key, f"must hold only JSON values: {exc}") from None
    if size > MAX_METADATA_BYTES:
        raise ConfigError(key, f"must be at most {MAX_METADATA_BYTES} bytes as JSON, got {size}")
    return MappingProxyType(json.loads(json.dumps(value)))  # a private, plain-JSON copy


def _read_instructions(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, f"must be a file path, got {value!r}")
    try:
        text = Path(value).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(key, f"no such file: {value}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(key, f"cannot read {value}: {exc}") from None
    if not text.strip():
        raise ConfigError(key, f"{value} is empty")
    return text


def parse_agent(raw: Mapping[str, Any], prefix: str, *, files: bool = True) -> Agent:
    """The agent keys of ``raw`` (other keys are the caller's business) validated into an Agent.

    ``files``: whether ``instructions_file`` may be used (a route: yes; a webhook reply: no, the
    app must not make the bridge read its files)."""
    realtime: dict[str, Any] = {}
    if "instructions_file" in raw:
        key = f"{prefix}.instructions_file"
        if not files:
            raise ConfigError(key, "is not allowed here (send the text as instructions)")
        if "instructions" in raw:
            raise ConfigError(key, "give instructions or instructions_file, not both")
        realtime["instructions"] = _read_instructions(raw["instructions_file"], key)
    for key in REALTIME_KEYS:
        if key in raw:
            realtime[key] = _realtime_value(key, raw[key], prefix)
    text = realtime.get("instructions")
    if isinstance(text, str) and len(text) > MAX_INSTRUCTIONS_CHARS:
        raise ConfigError(f"{prefix}.instructions",
                          f"must be at most {MAX_INSTRUCTIONS_CHARS} characters, got {len(text)}")
    turn = None
    if raw.get("turn_detection") is not None:
        turn = MappingProxyType(_turn_changes(raw["turn_detection"], f"{prefix}.turn_detection"))
    metadata = _metadata(raw["metadata"], f"{prefix}.metadata") if raw.get("metadata") is not None \
        else _EMPTY
    return Agent(MappingProxyType(realtime), turn, metadata)


def apply(config, agent: Agent, prefix: str = "agent"):
    """``config`` with ``agent``'s settings laid over it (a new Config); checked like the YAML's
    realtime section, errors named ``<prefix>.<key>``."""
    from .. import config as cfgmod

    if agent.empty:
        return config
    changes: dict[str, Any] = {}
    if agent.realtime:
        rc = dataclasses.replace(config.realtime, **agent.realtime)
        try:
            cfgmod.check_agent(rc)
        except ConfigError as exc:
            raise _rename(exc, "realtime", prefix) from None
        changes["realtime"] = rc
    if agent.turn is not None:
        try:
            changes["turn_detection"] = config.turn_detection.with_changes(**agent.turn)
        except ConfigError as exc:
            raise _rename(exc, "turn_detection", f"{prefix}.turn_detection") from None
    return dataclasses.replace(config, **changes) if changes else config


def merge_metadata(*agents: Agent | None) -> dict[str, Any]:
    """The call's metadata: each agent's keys over the previous one's (route, then webhook)."""
    out: dict[str, Any] = {}
    for agent in agents:
        if agent is not None:
            out.update(agent.metadata)
    return out
