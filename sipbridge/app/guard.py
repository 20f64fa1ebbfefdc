"""Who may use the HTTP interface, and how often: pure checks, no sockets, time passed in.

* :func:`parse_listen` reads ``api.listen`` (``host:port``, ``[v6]:port``) into its parts.
* :func:`api_token` reads the bearer token from ``api.token_env``; it is required (a
  :class:`~sipbridge.errors.ConfigError` naming ``api.token_env``) when the address is not a
  loopback one, since anyone who reaches the port could otherwise hang up every call.
* :func:`token_ok` compares an ``Authorization`` header with the token in constant time.
* :class:`RateGate` gives each client (its IP address) ``rate`` requests per second with a
  burst of one second's worth, reusing the SIP side's token buckets (bounded memory).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

from ..errors import ConfigError
from ..sip.ratelimit import Take, TokenBuckets

OPEN_PATHS = frozenset({"/healthz", "/readyz"})   # probes: never need the token


def parse_listen(text: str, key: str = "api.listen") -> tuple[str, int]:
    """``"127.0.0.1:8080"`` -> ``("127.0.0.1", 8080)``; ``"[::1]:80"`` -> ``("::1", 80)``."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(key, f"must be host:port (port 1-65535), got {text!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False   # a name or a wildcard (0.0.0.0 is not loopback)


def api_token(listen: str | None, token_env: str, environ: Mapping[str, str]) -> str | None:
    """The bearer token (None: no token, allowed on loopback only); raises ``ConfigError``."""
    if listen is None:
        return None
    host, _port = parse_listen(listen)
    token = environ.get(token_env) or None
    if token is None and not is_loopback(host):
        raise ConfigError("api.token_env", f"api.listen {listen} is not a loopback address: set "
                          f"${token_env} to the bearer token clients must send")
    return token


def token_ok(header: str | None, token: str | None) -> bool:
    """Does ``Authorization: <header>`` carry ``Bearer <token>``? (Always, with no token set.)"""
    if token is None:
        return True
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class RateGate:
    """``rate`` requests per second per client, a burst of ``rate``; over it: retry after N s."""

    def __init__(self, rate: int, max_clients: int = 4096):
        self.buckets = TokenBuckets(rate, max(1, rate), max_keys=max_clients)

    def take(self, client: str, now: float) -> Take:
        return self.buckets.take(client, now)

    @property
    def refused(self) -> int:
        return self.buckets.refused
