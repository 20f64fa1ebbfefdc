"""Read what the policy needs from a raw SIP request (pjsip's ``rdata.wholeMsg``), never raising.

pjsip has already parsed the message that reaches ``onIncomingCall``, but pjsua2 exposes only its
text, so the few fields the INVITE policy looks at (the Request-URI, the method, the
``Authorization`` headers) are read again here. Every function takes text and returns plain
values; anything it cannot read comes back empty (``""``, ``[]``), never as an exception.
"""

from __future__ import annotations

from urllib.parse import unquote


def head(message: str) -> list[str]:
    """The request line and header lines (continuation lines unfolded), up to the blank line."""
    text = message.replace("\r\n", "\n").replace("\r", "\n")
    block = text.split("\n\n", 1)[0]
    lines: list[str] = []
    for line in block.split("\n"):
        if line[:1] in (" ", "\t") and lines:   # RFC 3261 7.3.1 line folding
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


def request_line(message: str) -> tuple[str, str]:
    """``(method, request_uri)`` of a request; ``("", "")`` if the first line is not one."""
    lines = head(message)
    parts = lines[0].split() if lines else []
    if len(parts) != 3 or not parts[2].upper().startswith("SIP/"):
        return "", ""
    return parts[0], parts[1]


def header_values(message: str, name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive), in order; repeated headers are kept apart."""
    want = name.lower()
    out = []
    for line in head(message)[1:]:
        hname, sep, value = line.partition(":")
        if sep and hname.strip().lower() == want:
            out.append(value.strip())
    return out


def uri_user(uri: str) -> str:
    """The user part of a ``sip:``/``sips:`` URI (``tel:`` number), without parameters or password.

    ``sip:+15551234567;phone-context=x@host`` -> ``+15551234567``; ``sip:host`` -> ``""``;
    ``<sip:bot@host>`` -> ``bot``. Escapes (``%2B``) are decoded.
    """
    uri = uri.strip().strip("<>")
    scheme, sep, rest = uri.partition(":")
    if not sep:
        return ""
    scheme = scheme.lower()
    if scheme == "tel":
        return unquote(rest.split(";", 1)[0])
    if scheme not in ("sip", "sips") or "@" not in rest:
        return ""
    userinfo = rest.rsplit("@", 1)[0]
    return unquote(userinfo.split(";", 1)[0].split(":", 1)[0])
