"""Standard Webhooks signatures (https://www.standardwebhooks.com), pure.

Every request the bridge sends to the application (incoming-call webhook, tool calls, events)
carries three headers so that any Standard Webhooks verifier library accepts it:

* ``webhook-id``: a unique message id (the same on every retry of one message),
* ``webhook-timestamp``: integer seconds since the epoch,
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` of ``"{id}.{timestamp}.{body}"``.

The secret is the spec's form: ``whsec_`` followed by base64 of the key bytes (the prefix is
optional); a secret that is not valid base64 is refused when the config is loaded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret; ValueError if it is not base64."""
    text = secret[len(PREFIX):] if secret.startswith(PREFIX) else secret
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 (optionally prefixed whsec_)") from None
    if len(key) < 16:
        raise ValueError("must decode to at least 16 bytes")
    return key


def new_secret() -> str:
    """A fresh random secret in the spec's form (for docs and tests)."""
    return PREFIX + base64.b64encode(os.urandom(32)).decode()


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` over ``id.timestamp.body``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(key: bytes | None, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three webhook headers (no signature when no key is configured)."""
    out = {"webhook-id": msg_id, "webhook-timestamp": str(int(timestamp)),
           "content-type": "application/json"}
    if key is not None:
        out["webhook-signature"] = signature(key, msg_id, int(timestamp), body)
    return out
