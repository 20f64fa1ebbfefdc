"""The app's own functions as the YAML (``realtime.tools``), a route or a webhook reply declares them.

A declaration is a mapping ``{name, description, parameters}``, the shape the Realtime API's
``session.tools`` entries have (an optional ``type: function`` is accepted and dropped)::

    tools:
      - name: order_status
        description: Look up an order by its number.
        parameters: {type: object, properties: {order: {type: string}}, required: [order]}

:func:`parse_tools` validates a list of them into :class:`~sipbridge.realtime.protocol.Tool`
values (a tuple: the config is frozen), raising :class:`ConfigError` named after the offending
entry, e.g. ``realtime.tools[1].name``. :func:`check_url` validates ``realtime.tools_url``;
:func:`check_tools` wants the signing secret whenever a ``tools_url`` is configured. Pure: the
environment is passed in (``os.environ`` when it is not).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..realtime.protocol import Tool
from .signing import secret_key

NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
BUILT_IN = ("end_call", "transfer_call")   # the bridge's own functions (realtime/tools.py)
MAX_TOOLS = 128
MAX_DESCRIPTION = 4096
MAX_PARAMETERS_BYTES = 16 * 1024
KEYS = ("type", "name", "description", "parameters")


def parse_tool(raw: Any, key: str) -> Tool:
    """One declaration (``key`` names it in errors, e.g. ``realtime.tools[0]``)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"must be a mapping with name, description and parameters, got {raw!r}")
    for k in raw:
        if k not in KEYS:
            raise ConfigError(f"{key}.{k}", f"unknown key (known: {', '.join(KEYS)})")
    if raw.get("type", "function") != "function":
        raise ConfigError(f"{key}.type", f"must be function, got {raw.get('type')!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(f"{key}.name", f"must be 1-64 letters, digits, _ or -, got {name!r}")
    if name in BUILT_IN:
        raise ConfigError(f"{key}.name", f"{name} is the bridge's own function; pick another name")
    description = raw.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise ConfigError(f"{key}.description", f"must be text of at most {MAX_DESCRIPTION} characters")
    return Tool(name=name, description=description,
                parameters=_parameters(raw.get("parameters"), f"{key}.parameters"))


def _parameters(raw: Any, key: str) -> dict[str, Any]:
    """A JSON-schema object (``type: object``); absent means no arguments."""
    if raw is None:
        return {"type": "object", "properties": {}}
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"must be a JSON schema mapping with type object, got {raw!r}")
    if raw.get("type") != "object":
        raise ConfigError(f"{key}.type", f"must be object (arguments are named), got {raw.get('type')!r}")
    if "properties" in raw and not isinstance(raw["properties"], Mapping):
        raise ConfigError(f"{key}.properties", "must be a mapping of argument name to schema")
    try:
        text = json.dumps(raw, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(key, f"must hold only JSON values: {exc}") from None
    if len(text) > MAX_PARAMETERS_BYTES:
        raise ConfigError(key, f"must be at most {MAX_PARAMETERS_BYTES} bytes as JSON, got {len(text)}")
    return json.loads(text)  # a private plain-JSON copy (YAML mappings, tuples -> dict, list)


def parse_tools(raw: Any, key: str = "realtime.tools") -> tuple[Tool, ...]:
    """A list of declarations (None or [] for none); names must be unique."""
    if raw is None:
        return ()
    if isinstance(raw, tuple) and all(isinstance(t, Tool) for t in raw):
        return raw  # already parsed (a Config laid over another)
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(key, f"must be a list of function declarations, got {type(raw).__name__}")
    if len(raw) > MAX_TOOLS:
        raise ConfigError(key, f"must declare at most {MAX_TOOLS} functions, got {len(raw)}")
    tools: list[Tool] = []
    for i, entry in enumerate(raw):
        tool = parse_tool(entry, f"{key}[{i}]")
        if any(t.name == tool.name for t in tools):
            raise ConfigError(f"{key}[{i}].name", f"{tool.name} is declared twice")
        tools.append(tool)
    return tuple(tools)


def check_url(raw: Any, key: str = "realtime.tools_url") -> str | None:
    """``tools_url``: an http:// or https:// URL with a host, or None."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ConfigError(key, f"must be an http:// or https:// URL, got {raw!r}")
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ConfigError(key, f"is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in raw):
        raise ConfigError(key, f"must be an http:// or https:// URL, got {raw!r}")
    return raw


def check_pair(tools: tuple[Tool, ...], url: str | None, key: str = "realtime.tools_url") -> None:
    """Declared functions need somewhere to call them."""
    if tools and url is None:
        raise ConfigError(key, f"must be set when tools are declared ({', '.join(t.name for t in tools)})")


def signing_key(secret_env: str, environ: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key from ``$secret_env``; ValueError if unset or not a secret (tool requests are
    always signed, like the webhook's and the events)."""
    secret = (os.environ if environ is None else environ).get(secret_env)
    if not secret:
        raise ValueError("is empty or unset (tool requests must be signed)")
    return secret_key(secret)


def check_tools(cfg, environ: Mapping[str, str]) -> None:
    """At load: a ``tools_url`` (top level or a route's) needs a usable secret in
    ``app.webhook_secret_env``; ConfigError naming that key otherwise."""
    urls = [cfg.realtime.tools_url] + [route.agent.realtime.get("tools_url")
                                       for route in cfg.routes if route.agent is not None]
    if not any(urls):
        return
    try:
        signing_key(cfg.app.webhook_secret_env, environ)
    except ValueError as exc:
        raise ConfigError("app.webhook_secret_env", f"realtime.tools_url is set but "
                          f"${cfg.app.webhook_secret_env} {exc}") from None
