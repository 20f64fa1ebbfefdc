"""An outbound call request (``POST /v1/calls``), validated into what the worker dials.

Body (JSON object)::

    to              a number (letters, digits, ``+*#._-``), dialled through ``trunk`` as
                    ``sip:<number>@<the trunk's registrar host[:port]>``; or a ``sip:``/``sips:``
                    URI, dialled as given (through ``trunk`` when named, for its credentials and
                    proxy; else from the bridge's own account)
    trunk           a ``trunks[].name``; required with a number
    from            the caller id: a user part / number (the From header's user), optional
    from_name       the From header's display name, optional (printable, no quotes)
    ring_timeout_s  give up (CANCEL) after this long without an answer: 1-300, default 30
    headers         extra INVITE headers {name: value}: ``X-*`` or one of :data:`ALLOWED_HEADERS`
    + the agent keys of a route (instructions, voice, greeting, tools, tools_url, turn_detection,
      audio_format, transfer_to, end_call_tool, metadata), checked by :mod:`sipbridge.app.agent`

Every refusal is an :class:`OutboundError` naming the field (``to``, ``headers.X-Foo``, ...).
Pure: the trunks and the default config are passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .agent import AGENT_KEYS, Agent, apply, parse_agent
from .validate import BadRequest

RING_TIMEOUT_DEFAULT_S = 30.0
RING_TIMEOUT_RANGE_S = (1.0, 300.0)
MAX_HEADERS = 16
MAX_HEADER_VALUE = 512
MAX_URI = 256
# headers an app may set besides X-*: caller id, alerting and call information a carrier reads
ALLOWED_HEADERS = ("P-Asserted-Identity", "P-Preferred-Identity", "Privacy", "Diversion",
                   "Alert-Info", "Call-Info", "Subject", "Priority", "Organization",
                   "User-to-User")
_ALLOWED = {h.lower(): h for h in ALLOWED_HEADERS}
OWN_KEYS = ("to", "trunk", "from", "from_name", "ring_timeout_s", "headers")
KEYS = OWN_KEYS + tuple(k for k in AGENT_KEYS if k != "instructions_file")

USER = re.compile(r"[0-9A-Za-z+*#._-]{1,64}")
TOKEN = re.compile(r"[A-Za-z0-9!%'*+.^_`|~-]{1,64}")     # RFC 3261 token (header names)
# a sip:/sips: URI without whitespace, quotes, angle brackets or controls: user@host[:port][;params]
SIP_URI = re.compile(r"sips?:(?:[^@\s<>\"\\]+@)?[A-Za-z0-9.\-\[\]:]+(?:;[^\s<>\"\\]*)?",
                     re.IGNORECASE)
DISPLAY = re.compile(r"[^\"\\\x00-\x1f\x7f<>]{1,64}")


class OutboundError(BadRequest):
    """A refused request (HTTP 400): ``field`` names the offending key, ``reason`` says why."""


class Refused(Exception):
    """The worker did not place the call: ``status`` (503: no free slot, draining; 400: pjsua
    refused the target) and ``reason`` for the API, ``field`` when the request is at fault."""

    def __init__(self, status: int, reason: str, field: str | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field


@dataclass(frozen=True)
class OutboundRequest:
    uri: str                          # the INVITE's Request-URI
    to: str                           # as given
    trunk: str | None
    from_user: str | None
    from_name: str | None
    ring_timeout_s: float = RING_TIMEOUT_DEFAULT_S
    headers: tuple[tuple[str, str], ...] = ()
    agent: Agent = field(default_factory=Agent)
    config: Any = None                # the call's Config: the defaults with the agent laid over

    @property
    def called(self) -> str:
        """The dialled user ({called} in the instructions): the number, or the URI's user."""
        if not self.to.lower().startswith(("sip:", "sips:")):
            return self.to
        rest = self.to.split(":", 1)[1]
        return rest.split("@", 1)[0] if "@" in rest else "unknown"

    def from_uri(self, host: str) -> str | None:
        """The From header (``"Name" <sip:user@host>``) for the caller id; None: the account's."""
        if self.from_user is None:
            return None
        uri = f"<sip:{self.from_user}@{host}>"
        return f'"{self.from_name}" {uri}' if self.from_name else uri


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OutboundError(key, f"must be a non-empty string, got {value!r}")
    return value.strip()


def _target(body: Mapping, trunks: Mapping[str, Any], sips: bool) -> tuple[str, str | None]:
    """(Request-URI, trunk name) from ``to`` and ``trunk``."""
    if "to" not in body:
        raise OutboundError("to", "required: a number (with trunk) or a sip: URI")
    to = _string("to", body["to"])
    trunk = body.get("trunk")
    if trunk is not None:
        trunk = _string("trunk", trunk)
        if trunk not in trunks:
            known = ", ".join(sorted(trunks)) or "none configured"
            raise OutboundError("trunk", f"unknown trunk {trunk!r} (known: {known})")
    if to.lower().startswith(("sip:", "sips:")):
        if len(to) > MAX_URI or not SIP_URI.fullmatch(to):
            raise OutboundError("to", f"not a valid sip: URI (user@host[:port][;params]), got {to!r}")
        if to.lower().startswith("sips:") and not sips:
            raise OutboundError("to", "sips: needs the TLS transport (sip.tls_cert is not set)")
        return to, trunk
    if not USER.fullmatch(to):
        raise OutboundError("to", "must be a number or user (digits, letters, +*#._-, at most 64) "
                                  f"or a sip: URI, got {to!r}")
    if trunk is None:
        raise OutboundError("trunk", "required when to is a number (the trunk to dial it through)")
    return f"sip:{to}@{trunks[trunk].registrar_hostport}", trunk


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise OutboundError("headers", f"must be an object of header name -> value, got {value!r}")
    if len(value) > MAX_HEADERS:
        raise OutboundError("headers", f"at most {MAX_HEADERS} headers, got {len(value)}")
    out = []
    for name, text in value.items():
        key = f"headers.{name}"
        if not isinstance(name, str) or not TOKEN.fullmatch(name):
            raise OutboundError(key, "not a valid header name")
        if not name.lower().startswith("x-") and name.lower() not in _ALLOWED:
            raise OutboundError(key, f"only X- headers and {', '.join(ALLOWED_HEADERS)} may be set")
        if not isinstance(text, str):
            raise OutboundError(key, f"must be a string, got {text!r}")
        if any(c in text for c in "\r\n\x00"):
            raise OutboundError(key, "must not contain CR, LF or NUL")
        if len(text) > MAX_HEADER_VALUE:
            raise OutboundError(key, f"at most {MAX_HEADER_VALUE} characters, got {len(text)}")
        out.append((_ALLOWED.get(name.lower(), name), text.strip()))
    return tuple(out)


def _ring_timeout(value: Any) -> float:
    lo, hi = RING_TIMEOUT_RANGE_S
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise OutboundError("ring_timeout_s", f"must be a number of seconds {lo:g}-{hi:g}, "
                                              f"got {value!r}")
    return float(value)


def parse_request(body: Any, config) -> OutboundRequest:
    """Validate a ``POST /v1/calls`` body against ``config`` (its trunks, its TLS transport,
    its realtime defaults). Raises :class:`OutboundError` naming the field."""
    trunks = {t.name: t for t in config.trunks}
    sips = config.sip.tls_cert is not None
    if not isinstance(body, Mapping):
        raise OutboundError("body", f"must be a JSON object, got {type(body).__name__}")
    for key in body:
        if key not in KEYS:
            raise OutboundError(str(key), f"unknown field (known: {', '.join(KEYS)})")
    uri, trunk = _target(body, trunks, sips)
    from_user = from_name = None
    if body.get("from") is not None:
        from_user = _string("from", body["from"])
        if not USER.fullmatch(from_user):
            raise OutboundError("from", "must be a number or user (digits, letters, +*#._-, at "
                                        f"most 64), got {from_user!r}")
    if body.get("from_name") is not None:
        from_name = _string("from_name", body["from_name"])
        if not DISPLAY.fullmatch(from_name):
            raise OutboundError("from_name", "at most 64 printable characters without quotes, "
                                             f"backslashes or angle brackets, got {from_name!r}")
        if from_user is None:
            raise OutboundError("from_name", "needs from (the number shown with the name)")
    ring = _ring_timeout(body["ring_timeout_s"]) if body.get("ring_timeout_s") is not None \
        else RING_TIMEOUT_DEFAULT_S
    headers = _headers(body["headers"]) if body.get("headers") is not None else ()
    try:
        agent = parse_agent(body, "", files=False)
        call_config = apply(config, agent, "")
    except ConfigError as exc:
        raise OutboundError(exc.key.lstrip(".") or "body", exc.reason) from None
    return OutboundRequest(uri=uri, to=body["to"].strip(), trunk=trunk, from_user=from_user,
                           from_name=from_name, ring_timeout_s=ring, headers=headers, agent=agent,
                           config=call_config)
