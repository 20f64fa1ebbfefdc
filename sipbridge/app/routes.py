"""The ``routes:`` list: which agent answers which number, matched in order (pure).

::

    routes:
      - name: sales
        match: {number: "+1555*", trunk: carrier}   # number: exact, prefix* or glob; trunk optional
        instructions_file: prompts/sales.txt
        voice: marin
        turn_detection: patient
        metadata: {team: sales}
      - name: blocked
        match: {number: "+1900*"}
        reject: 403
        reason: Forbidden

``match.number`` is compared with the called number (the Request-URI's user, else To's, as
:func:`sipbridge.sip.callerid.parties` reads it): without ``*``, ``?`` or ``[`` it must be equal;
otherwise it is a shell-style glob (``+1555*`` is a prefix, ``+1555???0000``, ``+49[0-9]*``).
``match.trunk`` names a trunk of ``trunks:`` (calls arriving on its registration only); no
``match`` (or an empty one) matches every call. The first route that matches sets the call's
agent (see :mod:`sipbridge.app.agent` for the keys) or refuses it with ``reject: <400-699>`` and
an optional ``reason``. A call no route matches gets the top-level defaults.

Every entry is validated when the config loads, including the agent it resolves to (an
``instructions_file`` is read then), with errors naming ``routes[<i>].<key>``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .agent import AGENT_KEYS, Agent, apply, merge_metadata, parse_agent

ROUTE_KEYS = ("name", "match", "reject", "reason") + AGENT_KEYS
MATCH_KEYS = ("number", "trunk")
GLOB = "*?["
_NUMBER = re.compile(r"[^\s@;:<>]{1,64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_REASON = re.compile(r"[\x20-\x7e]{1,128}")   # a SIP reason phrase: printable ASCII, one line


@dataclass(frozen=True)
class Route:
    """One entry of ``routes:``: what it matches, and the agent it sets or the refusal."""
    name: str
    number: str | None = None      # exact number or glob; None: any
    trunk: str | None = None       # trunk name; None: any (the bridge's own address included)
    agent: Agent = field(default_factory=Agent)
    reject: int | None = None      # SIP status the call is refused with
    reason: str | None = None      # its reason phrase (None: the status' usual one)

    def matches(self, called: str, trunk: str | None) -> bool:
        if self.trunk is not None and trunk != self.trunk:
            return False
        if self.number is None:
            return True
        if any(c in self.number for c in GLOB):
            return fnmatch.fnmatchcase(called, self.number)
        return called == self.number


def match(routes: Sequence[Route], called: str, trunk: str | None) -> Route | None:
    """The first route matching a call to ``called`` (arriving on ``trunk``), or None."""
    for route in routes:
        if route.matches(called, trunk):
            return route
    return None


def reason_phrase(value: Any, key: str) -> str:
    """A reason phrase for a SIP status line (no line breaks or control characters)."""
    if not isinstance(value, str) or not _REASON.fullmatch(value):
        raise ConfigError(key, f"must be printable ASCII text of 1-128 characters, got {value!r}")
    return value


def reject_status(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 699:
        raise ConfigError(key, f"must be a SIP status between 400 and 699, got {value!r}")
    return value


def _match(raw: Any, key: str, trunks: set[str]) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"must be a mapping with number and/or trunk, got {raw!r}")
    for name in raw:
        if name not in MATCH_KEYS:
            raise ConfigError(f"{key}.{name}", f"unknown key (known: {', '.join(MATCH_KEYS)})")
    number, trunk = raw.get("number"), raw.get("trunk")
    if number is not None and (not isinstance(number, str) or not _NUMBER.fullmatch(number)):
        hint = " (quote it: YAML reads bare digits as an integer)" if isinstance(number, int) else ""
        raise ConfigError(f"{key}.number", f"must be a number, user or glob of 1-64 characters with "
                          f"no spaces, @, ;, :, < or >, got {number!r}{hint}")
    if trunk is not None and (not isinstance(trunk, str) or trunk not in trunks):
        known = ", ".join(sorted(trunks)) or "none configured"
        raise ConfigError(f"{key}.trunk", f"must name a trunk of trunks: ({known}), got {trunk!r}")
    return number, trunk


def parse_route(raw: Any, key: str, config) -> Route:
    """One entry, validated (``key`` is ``routes[<i>]``); its agent is applied to ``config`` once
    so that a combination the YAML would refuse is refused here too."""
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"must be a mapping, got {type(raw).__name__}")
    for name in raw:
        if name not in ROUTE_KEYS:
            raise ConfigError(f"{key}.{name}", f"unknown key (known: {', '.join(ROUTE_KEYS)})")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{key}.name", "is required: letters, digits, _ . - (at most 64), "
                          f"got {name!r}")
    number, trunk = _match(raw.get("match"), f"{key}.match", {t.name for t in config.trunks})
    if raw.get("reject") is not None:
        status = reject_status(raw["reject"], f"{key}.reject")
        extra = [k for k in raw if k in AGENT_KEYS]
        if extra:
            raise ConfigError(f"{key}.{extra[0]}", "a route that rejects sets no agent")
        reason = reason_phrase(raw["reason"], f"{key}.reason") if raw.get("reason") is not None \
            else None
        return Route(name, number, trunk, Agent(), status, reason)
    if raw.get("reason") is not None:
        raise ConfigError(f"{key}.reason", "only a route with reject: has a reason")
    agent = parse_agent(raw, key)
    apply(config, agent, key)
    return Route(name, number, trunk, agent)


def parse_routes(raw: Any, config) -> tuple[Route, ...]:
    """The ``routes:`` list (None or [] -> no routes); names must be unique."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("routes", f"must be a list of routes, got {type(raw).__name__}")
    routes: list[Route] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        route = parse_route(entry, f"routes[{i}]", config)
        if route.name in seen:
            raise ConfigError(f"routes[{i}].name", f"duplicate route name {route.name!r}")
        seen.add(route.name)
        routes.append(route)
    return tuple(routes)


def for_call(config, route: Route | None, overrides: Agent | None = None,
             prefix: str = "reply") -> tuple[Any, dict[str, Any]]:
    """The call's own Config and metadata: the defaults, then the route's agent, then the
    webhook's ``overrides`` (their errors named ``<prefix>.<key>``: the reply is refused)."""
    agent = route.agent if route is not None else None
    call_config = apply(config, agent, route.name) if agent is not None else config
    if overrides is not None:
        call_config = apply(call_config, overrides, prefix)
    return call_config, merge_metadata(agent, overrides)
