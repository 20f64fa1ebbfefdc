"""SIP over TLS and SRTP settings: validated at start-up, before pjsua2 is touched.

pjsip loads a TLS transport's certificate and key lazily, at the first handshake, so a wrong
path or a key that does not match its certificate would otherwise surface only as failed calls.
:func:`check` proves them with the standard library's ``ssl`` (the same OpenSSL that pjsip
links) and raises :class:`~sipbridge.errors.ConfigError` naming the key.

SRTP keys travel in the SDP (SDES, ``a=crypto``), so they are only as secret as the signalling.
pjsua's ``srtpSecureSignaling`` says how secure the signalling of a call must be before it will
use SRTP at all: 0 any transport, 1 the hop it arrived on is TLS, 2 a ``sips:`` Request-URI.
A call below that level is refused with **406** by pjsua, even with ``srtp: optional``: with
the default (1) every SRTP-enabled bridge needs TLS, which :func:`check` enforces.
"""

from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from ..config import SipConfig

SRTP_MODES = ("off", "optional", "mandatory")


def enabled(sip: "SipConfig") -> bool:
    """TLS is on when a certificate is configured."""
    return sip.tls_cert is not None


def _readable(key: str, path: str) -> None:
    if not os.path.isfile(path):
        raise ConfigError(key, f"no such file: {path}")
    if not os.access(path, os.R_OK):
        raise ConfigError(key, f"cannot read {path}: permission denied")


def check(sip: "SipConfig") -> None:
    """Validate the TLS files and the SRTP/TLS combination; raise ConfigError naming the key."""
    if sip.tls_cert is None:
        for key in ("tls_key", "tls_ca"):
            if getattr(sip, key) is not None:
                raise ConfigError(f"sip.{key}", "set without sip.tls_cert (TLS is off)")
        if sip.tls_verify_client:
            raise ConfigError("sip.tls_verify_client", "set without sip.tls_cert (TLS is off)")
    else:
        if sip.tls_key is None:
            raise ConfigError("sip.tls_key", "required with sip.tls_cert")
        _readable("sip.tls_cert", sip.tls_cert)
        _readable("sip.tls_key", sip.tls_key)
        try:  # parses every certificate in the file; fails when there is none
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=sip.tls_cert)
        except ssl.SSLError:
            raise ConfigError("sip.tls_cert", f"{sip.tls_cert} holds no PEM certificate") \
                from None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            # a password callback keeps OpenSSL from prompting on the terminal for an
            # encrypted key; pjsip is given no password either, so such a key is refused
            ctx.load_cert_chain(sip.tls_cert, sip.tls_key, password=lambda: b"")
        except ssl.SSLError as exc:
            raise ConfigError("sip.tls_key", f"{sip.tls_key} is not an unencrypted private key "
                              f"matching {sip.tls_cert} ({exc.reason or exc})") from None
        if sip.tls_ca is not None:
            _readable("sip.tls_ca", sip.tls_ca)
            try:
                ctx.load_verify_locations(cafile=sip.tls_ca)
            except ssl.SSLError as exc:
                raise ConfigError("sip.tls_ca", f"{sip.tls_ca} holds no PEM CA certificate "
                                  f"({exc.reason or exc})") from None
        elif sip.tls_verify_client:
            raise ConfigError("sip.tls_verify_client", "needs sip.tls_ca to verify clients against")
    if sip.srtp != "off" and sip.srtp_secure_signaling >= 1 and sip.tls_cert is None:
        raise ConfigError("sip.srtp", f"{sip.srtp} with srtp_secure_signaling "
                          f"{sip.srtp_secure_signaling} needs TLS (sip.tls_cert): pjsua refuses "
                          "SRTP calls over plain SIP (406); set srtp_secure_signaling 0 to "
                          "allow it")


def srtp_suite(call_dump: str) -> str | None:
    """The active SRTP crypto suite named in pjsua's call dump, or None (plain RTP).

    pjsua has no API for a call's SRTP state; its dump (``Call.dump(True, "")``) has, per
    stream, ``SRTP status: Active Crypto-suite: AES_CM_128_HMAC_SHA1_80`` (or ``Not active``).
    """
    for line in call_dump.splitlines():
        head, sep, rest = line.strip().partition("SRTP status:")
        if not sep:
            continue
        words = rest.split()
        if words[:1] == ["Active"] and "Crypto-suite:" in words:
            at = words.index("Crypto-suite:") + 1
            return words[at] if at < len(words) else "unknown"
    return None
