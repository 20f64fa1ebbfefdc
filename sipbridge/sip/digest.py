"""Digest authentication of inbound INVITEs (RFC 2617 / RFC 7616 MD5, ``qop=auth``), sans I/O.

pjsua2 authenticates only as a client, so the UAS side lives here: :meth:`DigestAuth.challenge`
builds the ``WWW-Authenticate`` value of a 401, :meth:`DigestAuth.check` judges the
``Authorization`` headers of the retried INVITE. Time is passed in (seconds, any monotonic
origin); nothing here reads a clock, a socket or the environment.

Nonces are stateless: ``<issued>.<serial>.<hmac>`` where the HMAC-SHA256 (process secret) covers
the issue time and serial, so a nonce we never issued, or one from before a restart, fails the
signature check, and one older than ``ttl_s`` is *stale* (re-challenged with ``stale=true``).
Replays are refused by remembering each accepted ``(nonce, nc, cnonce)`` until its nonce expires
(at most ``max_seen`` of them: bounded memory).

The digest itself (``qop=auth``; RFC 2069 compatibility when the client sends no ``qop``)::

    HA1 = MD5(username ":" realm ":" password)
    HA2 = MD5(method ":" digest-uri)
    response = MD5(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)      # or MD5(HA1 ":" nonce ":" HA2)

``digest-uri`` is the client's ``uri`` parameter: a proxy in front (Kamailio's dispatcher) may
rewrite the Request-URI after the caller hashed it, so the two are not required to be equal.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass

ALGORITHM = "MD5"


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - the protocol's hash


def digest_response(*, username: str, realm: str, password: str, method: str, uri: str,
                    nonce: str, qop: str | None = None, nc: str | None = None,
                    cnonce: str | None = None) -> str:
    """The ``response`` value a client with ``password`` computes (RFC 2617 3.2.2.1)."""
    ha1 = md5_hex(f"{username}:{realm}:{password}")
    ha2 = md5_hex(f"{method}:{uri}")
    if qop:
        return md5_hex(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return md5_hex(f"{ha1}:{nonce}:{ha2}")


def parse_params(value: str) -> dict[str, str] | None:
    """``Digest k=v, k="quoted, \\"v\\""`` -> ``{k: v}`` (keys lower-cased); None if not Digest."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            chars = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            i += 1  # closing quote (or end of text)
            val = "".join(chars)
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            val = rest[i:end].strip()
            i = end
        if key:
            params[key] = val
    return params


@dataclass(frozen=True)
class AuthResult:
    """The verdict on one INVITE: ``ok``, else challenge again (401) or refuse (403)."""

    ok: bool
    reason: str
    challenge: bool = False   # answer 401 with a fresh nonce (else 403)
    stale: bool = False       # the 401 says stale=true: same credentials, new nonce


class DigestAuth:
    """Issues nonces and verifies ``Authorization`` headers for one username and password."""

    def __init__(self, username: str, password: str, realm: str, secret: bytes,
                 ttl_s: float = 300.0, max_seen: int = 4096):
        if not username or not password or not realm or not secret:
            raise ValueError("username, password, realm and secret must be non-empty")
        self.username = username
        self._password = password
        self.realm = realm
        self._secret = secret
        self.ttl_s = ttl_s
        self.max_seen = max_seen
        self._serial = 0
        self._seen: OrderedDict[tuple[str, str, str], float] = OrderedDict()

    def __repr__(self) -> str:  # never show the password
        return f"DigestAuth(username={self.username!r}, realm={self.realm!r}, ttl_s={self.ttl_s})"

    # -- nonces -------------------------------------------------------------------------------
    def _mac(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self, now: float) -> str:
        self._serial += 1
        body = f"{int(now * 1000):x}.{self._serial:x}"
        return f"{body}.{self._mac(body)}"

    def nonce_age(self, nonce: str, now: float) -> float | None:
        """Seconds since we issued ``nonce``; None if we did not issue it (bad signature)."""
        body, _, mac = nonce.rpartition(".")
        if not body or not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            issued_ms = int(body.split(".", 1)[0], 16)
        except ValueError:
            return None
        return now - issued_ms / 1000

    def challenge(self, now: float, stale: bool = False) -> str:
        """The ``WWW-Authenticate`` value for a 401 (a fresh nonce)."""
        value = (f'Digest realm="{self.realm}", nonce="{self.new_nonce(now)}", '
                 f'algorithm={ALGORITHM}, qop="auth"')
        return value + (", stale=true" if stale else "")

    # -- verification -------------------------------------------------------------------------
    def check(self, method: str, authorizations: list[str], now: float) -> AuthResult:
        """Judge the request's ``Authorization`` header values (several are allowed)."""
        mine = [p for p in (parse_params(v) for v in authorizations)
                if p is not None and p.get("realm") == self.realm]
        if not mine:
            return AuthResult(False, "no credentials for our realm", challenge=True)
        p = mine[0]
        for key in ("username", "nonce", "uri", "response"):
            if not p.get(key):
                return AuthResult(False, f"credentials without {key}")
        if p.get("algorithm", ALGORITHM).upper() != ALGORITHM:
            return AuthResult(False, f"unsupported algorithm {p['algorithm']!r}", challenge=True)
        qop = p.get("qop")
        if qop is not None and (qop.lower() != "auth" or not p.get("nc") or not p.get("cnonce")):
            return AuthResult(False, "qop other than auth, or without nc/cnonce")
        age = self.nonce_age(p["nonce"], now)
        if age is None or age < -1.0:
            return AuthResult(False, "nonce not issued by us", challenge=True)
        if age > self.ttl_s:
            return AuthResult(False, "nonce expired", challenge=True, stale=True)
        if p["username"] != self.username:
            return AuthResult(False, "unknown username")
        expected = digest_response(username=self.username, realm=self.realm,
                                   password=self._password, method=method, uri=p["uri"],
                                   nonce=p["nonce"], qop=qop, nc=p.get("nc"),
                                   cnonce=p.get("cnonce"))
        if not hmac.compare_digest(expected, p["response"].lower()):
            return AuthResult(False, "wrong response (password)")
        key = (p["nonce"], p.get("nc", ""), p.get("cnonce", ""))
        self._forget_expired(now)
        if key in self._seen:
            return AuthResult(False, "replayed credentials", challenge=True)
        self._seen[key] = now + self.ttl_s - age
        while len(self._seen) > self.max_seen:
            self._seen.popitem(last=False)
        return AuthResult(True, "ok")

    def _forget_expired(self, now: float) -> None:
        while self._seen:
            key, expires = next(iter(self._seen.items()))
            if expires > now:
                break
            del self._seen[key]

    @property
    def remembered(self) -> int:
        """Accepted credentials kept for replay detection (never above ``max_seen``)."""
        return len(self._seen)
