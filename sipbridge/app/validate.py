"""Request bodies of the call control API: parsed and checked here, once, with no socket.

Every check either returns plain values or raises :class:`BadRequest` naming the offending
field (``to``, ``tools[1].name``, ``turn_detection.silence_threshold_ms``, or ``body`` when the
body itself is not a JSON object); the server answers it with 400 and that name. Unknown keys
are refused too, so a typo (``instruction``) is an error rather than a silent no-op.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..realtime.protocol import Tool

MAX_TEXT = 16_000          # characters of instructions
MAX_DIGITS = 32
DTMF_DIGITS = frozenset("0123456789*#ABCDabcd")


class BadRequest(Exception):
    """A request body that cannot be used: ``field`` is where, ``reason`` why."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; an empty body is ``{}``."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("body", f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("body", f"must be a JSON object, got {type(value).__name__}")
    return value


def _only(body: dict, allowed: tuple[str, ...]) -> None:
    for key in body:
        if key not in allowed:
            known = ", ".join(allowed) if allowed else "none"
            raise BadRequest(str(key), f"unknown field (known: {known})")


def _text(body: dict, key: str, *, required: bool, limit: int = MAX_TEXT) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise BadRequest(key, "is required")
        return None
    if not isinstance(value, str):
        raise BadRequest(key, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise BadRequest(key, "must not be empty")
    if len(value) > limit:
        raise BadRequest(key, f"must be at most {limit} characters, got {len(value)}")
    return value


def empty(body: dict) -> None:
    """``hangup``, ``interrupt``, ``commit``, ``clear``: no fields (an empty body or ``{}``)."""
    _only(body, ())


def transfer(body: dict) -> str:
    """``{"to": "sip:..."}`` -> the target URI."""
    _only(body, ("to",))
    to = _text(body, "to", required=True, limit=512)
    if not to.startswith(("sip:", "sips:")) or len(to.split(":", 1)[1]) == 0 \
            or any(c.isspace() or ord(c) < 32 for c in to) or "<" in to or ">" in to:
        raise BadRequest("to", f"must be a sip: or sips: URI, got {to!r}")
    return to


def say(body: dict) -> str:
    """``{"instructions": "..."}`` -> what the agent is to say now (per-response instructions)."""
    _only(body, ("instructions",))
    return _text(body, "instructions", required=True)


def dtmf(body: dict) -> str:
    """``{"digits": "12#"}`` -> the digits (0-9, *, #, A-D; upper-cased)."""
    _only(body, ("digits",))
    digits = _text(body, "digits", required=True, limit=MAX_DIGITS)
    bad = [c for c in digits if c not in DTMF_DIGITS]
    if bad:
        raise BadRequest("digits", f"only 0-9, *, #, A-D are DTMF digits, got {bad[0]!r}")
    return digits.upper()


@dataclass(frozen=True)
class SessionChange:
    """A mid-call change: ``None`` leaves that part as it is."""

    instructions: str | None = None
    voice: str | None = None
    tools: tuple[Tool, ...] | None = None
    turn_detection: dict[str, Any] | None = None


def session(body: dict) -> SessionChange:
    """``{"instructions"?, "voice"?, "tools"?, "turn_detection"?}``, at least one of them.

    ``turn_detection`` keys are checked by the turn settings' own validator when applied (the
    same one the YAML goes through); here only its shape is.
    """
    allowed = ("instructions", "voice", "tools", "turn_detection")
    _only(body, allowed)
    if not any(body.get(k) is not None for k in allowed):
        raise BadRequest("body", f"nothing to change: give one of {', '.join(allowed)}")
    td = body.get("turn_detection")
    if td is not None and not isinstance(td, dict):
        raise BadRequest("turn_detection", f"must be an object, got {type(td).__name__}")
    return SessionChange(instructions=_text(body, "instructions", required=False),
                         voice=_text(body, "voice", required=False, limit=64),
                         tools=tools(body["tools"]) if body.get("tools") is not None else None,
                         turn_detection=dict(td) if td is not None else None)


def tools(value: Any, key: str = "tools") -> tuple[Tool, ...]:
    """A list of ``{"name", "description"?, "parameters"?}`` functions for the model, checked by
    the same validator as ``realtime.tools`` in the YAML (:mod:`sipbridge.app.tooldecl`)."""
    from ..errors import ConfigError
    from .tooldecl import parse_tools
    if not isinstance(value, list):
        raise BadRequest(key, f"must be a list, got {type(value).__name__}")
    try:
        return parse_tools(value, key)
    except ConfigError as exc:
        raise BadRequest(exc.key, exc.reason) from None
