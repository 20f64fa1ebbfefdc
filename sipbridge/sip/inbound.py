"""The INVITE policy between the source filter and the capacity check, sans I/O.

The worker refuses, in this order: draining (503), a source outside ``sip.allow_from`` (403),
then :meth:`InboundPolicy.check`, then a full process (486). ``check`` applies, in order:

1. **rate limit** (``sip.invite_rate_per_s`` / ``sip.invite_burst``): a token bucket per source
   IP; an INVITE without a token gets 503 with ``Retry-After`` (seconds until the next token).
   It comes before everything costly, so a flood is turned away at the cost of one 503 each.
2. **framing**: a body (received or declared) over :data:`MAX_BODY_BYTES` gets 413; a
   ``Content-Length`` that does not match the body gets 400, or 513 when the message fills
   pjsip's UDP receive buffer (:data:`PJSIP_UDP_RX_BYTES`: the rest was cut off). pjsip itself
   ignores ``Content-Length`` on UDP and parses whatever arrived, even a truncated SDP.
3. **digest auth** (``sip.auth_user``): no or stale credentials get 401 with a fresh
   ``WWW-Authenticate`` challenge; wrong ones get 403 (see :mod:`sipbridge.sip.digest`).
4. **numbers** (``sip.numbers``): a Request-URI user part not in the list gets 404.

``check`` reads only its arguments (time included) and returns ``None`` (go on) or a
:class:`Refusal`; it never raises on any input text.
"""

from __future__ import annotations

from dataclasses import dataclass

from .acl import split_host_port
from .digest import DigestAuth
from .ratelimit import TokenBuckets
from .sipmsg import header_values, request_line, uri_user

MAX_BODY_BYTES = 16 * 1024   # an audio SDP is under 2 KB; with ICE and video under 8 KB
PJSIP_UDP_RX_BYTES = 4000    # measured: pjsip keeps the first 4000 bytes of a datagram


@dataclass(frozen=True)
class Refusal:
    """The final response for a refused INVITE, why (for the log), and what to count."""

    code: int
    reason: str
    why: str
    headers: tuple[tuple[str, str], ...] = ()
    counter: str | None = None


def _body(message: str) -> str | None:
    for sep in ("\r\n\r\n", "\n\n"):
        head, found, body = message.partition(sep)
        if found:
            return body
    return None


class InboundPolicy:
    """Rate limit, framing, digest auth and accepted numbers for INVITEs (see module docstring)."""

    def __init__(self, sip, password: str | None = None, secret: bytes = b""):
        rate = sip.invite_rate_per_s
        self.limiter = TokenBuckets(rate, sip.invite_burst) if rate else None
        self.auth = None
        if sip.auth_user:
            self.auth = DigestAuth(sip.auth_user, password or "", sip.auth_realm, secret,
                                   ttl_s=sip.auth_nonce_ttl_s)
        self.numbers = frozenset(sip.numbers)

    def check(self, source: str, message: str, now: float) -> Refusal | None:
        """Judge one INVITE from ``source`` (``ip:port``) whose full text is ``message``."""
        if self.limiter is not None:
            host, _ = split_host_port(source)
            take = self.limiter.take(host, now)
            if not take.allowed:
                return Refusal(503, "Service Unavailable", "INVITE rate limit for this source",
                               (("Retry-After", str(take.retry_after)),), "rate_limited")
        refusal = self._framing(message)
        if refusal is not None:
            return refusal
        method, uri = request_line(message)
        if self.auth is not None:
            result = self.auth.check(method or "INVITE", header_values(message, "authorization"),
                                     now)
            if not result.ok:
                if result.challenge:
                    return Refusal(401, "Unauthorized", f"digest auth: {result.reason}",
                                   (("WWW-Authenticate", self.auth.challenge(now, result.stale)),))
                return Refusal(403, "Forbidden", f"digest auth: {result.reason}")
        if self.numbers:
            user = uri_user(uri)
            if user not in self.numbers:
                return Refusal(404, "Not Found", f"number {user!r} not in sip.numbers")
        return None

    @staticmethod
    def _framing(message: str) -> Refusal | None:
        body = _body(message)
        size = len(body.encode("utf-8", "surrogateescape")) if body else 0
        if size > MAX_BODY_BYTES:
            return Refusal(413, "Request Entity Too Large",
                           f"body of {size} bytes (limit {MAX_BODY_BYTES})")
        lengths = header_values(message, "content-length") + header_values(message, "l")
        for text in lengths[:1]:
            declared = int(text) if text.isdigit() else -1
            if declared > MAX_BODY_BYTES:
                return Refusal(413, "Request Entity Too Large",
                               f"Content-Length {declared} (limit {MAX_BODY_BYTES})")
            if declared != size:
                if len(message.encode("utf-8", "surrogateescape")) >= PJSIP_UDP_RX_BYTES:
                    return Refusal(513, "Message Too Large",
                                   f"cut at {PJSIP_UDP_RX_BYTES} bytes: Content-Length {declared}, "
                                   f"{size} bytes of body arrived")
                return Refusal(400, "Bad Request",
                               f"Content-Length {text!r} but the body has {size} bytes")
        return None
