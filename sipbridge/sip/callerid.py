"""Who is calling whom, read from the INVITE, for the model's instructions.

``realtime.instructions`` and ``realtime.greeting`` may name the call's parties: ``{caller}``
(the calling number: the user part of ``P-Asserted-Identity``, which trunks set to the
verified number, else of ``From``) and ``{called}`` (the user part of the Request-URI: the
number dialled, else of ``To``). Only those two tokens are replaced; any other brace is text.

Both come from the caller's side of the wire, so they are put in front of the model only when
they look like a number or a user name (:data:`SAFE`: digits, letters and ``+*#._-``, at most
64 characters); anything else (a display name, an injected sentence) becomes ``unknown``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .sipmsg import header_values, request_line, uri_user

SAFE = re.compile(r"[0-9A-Za-z+*#._-]{1,64}")
UNKNOWN = "unknown"
TOKENS = ("{caller}", "{called}")


@dataclass(frozen=True)
class Parties:
    caller: str = UNKNOWN
    called: str = UNKNOWN


QUOTED = re.compile(r'\s*"(?:[^"\\]|\\.)*"')


def name_addr_uri(value: str) -> str:
    """The URI of a ``name-addr`` / ``addr-spec`` header value (``"A" <sip:a@h>;tag=1`` -> ``sip:a@h``);
    a quoted display name may hold ``<`` and ``>``."""
    quoted = QUOTED.match(value)
    if quoted:
        value = value[quoted.end():]
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


def _safe(user: str) -> str:
    return user if SAFE.fullmatch(user) else UNKNOWN


def _first_user(message: str, *names: str) -> str:
    for name in names:
        for value in header_values(message, name):
            user = uri_user(name_addr_uri(value))
            if user:
                return user
    return ""


def parties(message: str) -> Parties:
    """The caller and the called user of an INVITE's text; ``unknown`` where unreadable or unsafe."""
    caller = _first_user(message, "P-Asserted-Identity", "From", "f")
    called = uri_user(request_line(message)[1]) or _first_user(message, "To", "t")
    return Parties(_safe(caller), _safe(called))


def fill(text: str | None, who: Parties) -> str | None:
    """``text`` with ``{caller}`` and ``{called}`` replaced (None stays None)."""
    if text is None:
        return None
    return text.replace("{caller}", who.caller).replace("{called}", who.called)
