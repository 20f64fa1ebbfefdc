"""The incoming-call webhook, pure: what is POSTed, how the reply is read, what a failure means.

With ``app.webhook_url`` set, every INVITE that passed the inbound policy is POSTed (signed with
Standard Webhooks headers, see :mod:`sipbridge.app.signing`) while the caller hears ringing::

    {"type": "call.incoming", "call_id": "c_...", "sip_call_id": "...", "from": "<sip:...>",
     "to": "<sip:...>", "caller": "+15550001111", "called": "+15552223333", "trunk": null,
     "source": "192.0.2.1:5060", "route": "sales", "timestamp": 1765000000,
     "headers": {"p-asserted-identity": ["<sip:+15550001111@carrier>"], "x-campaign": ["7"]}}

``headers`` holds the headers a carrier sets (P-Asserted-Identity, Diversion, any ``X-``), names
lower-cased, every value kept in order. The reply (2xx, a JSON object) is one of::

    {"action": "accept", ...the keys of a route's agent (instructions, voice, tools, metadata...)}
    {"action": "reject", "status": 486, "reason": "Busy Here"}

A timeout, a connection error, a non-2xx status or a reply that is not exactly that is a
:class:`WebhookFailure` with a short ``reason`` (``timeout`` | ``connection`` | ``status`` |
``malformed``); the call then follows ``app.on_webhook_failure`` (:func:`on_failure`).
The HTTP client is :mod:`sipbridge.app.webhook_client`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..sip.sipmsg import head
from .agent import AGENT_KEYS, Agent, parse_agent
from .routes import reason_phrase, reject_status
from .signing import secret_key

NAMED_HEADERS = ("p-asserted-identity", "diversion")
MAX_HEADERS = 32          # carrier headers forwarded at most (the rest are dropped)
MAX_VALUE = 1024          # characters of one header value forwarded at most
MAX_REPLY_BYTES = 256 * 1024
FAILURE_REASONS = ("timeout", "connection", "status", "malformed")
REPLY_PREFIX = "reply"


class WebhookFailure(Exception):
    """The webhook gave no usable answer: ``reason`` is one of :data:`FAILURE_REASONS`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Decision:
    """What the call does: ``accept`` (with the reply's ``agent`` overrides) or ``reject``."""
    action: str                      # accept | reject
    agent: Agent | None = None       # the reply's overrides (None: none, e.g. after a failure)
    status: int | None = None        # reject: the SIP status
    reason: str | None = None        # reject: the reason phrase
    failure: str | None = None       # set when this is the on_webhook_failure fallback


def check_webhook(cfg, environ: Mapping[str, str]) -> None:
    """With ``app.webhook_url`` set: an http(s) URL and a valid secret in its variable."""
    url = cfg.app.webhook_url
    if url is None:
        return
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) < 1:
        raise ConfigError("app.webhook_url", f"must be an http:// or https:// URL, got {url!r}")
    signing_key(cfg.app, environ)


def signing_key(app, environ: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key from ``app.webhook_secret_env``; ConfigError naming that key if unusable."""
    env = os.environ if environ is None else environ
    secret = env.get(app.webhook_secret_env) or ""
    if not secret:
        raise ConfigError("app.webhook_secret_env", f"app.webhook_url is set but "
                          f"${app.webhook_secret_env} is empty or unset (requests must be signed)")
    try:
        return secret_key(secret)
    except ValueError as exc:
        raise ConfigError("app.webhook_secret_env", f"${app.webhook_secret_env} {exc}") from None


def carrier_headers(message: str) -> dict[str, list[str]]:
    """P-Asserted-Identity, Diversion and every ``X-`` header of a SIP message's text, never raising."""
    out: dict[str, list[str]] = {}
    count = 0
    try:
        lines = head(message)[1:]
    except Exception:  # noqa: BLE001 - not text at all
        return out
    for line in lines:
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not name or any(c.isspace() or not c.isprintable() for c in name):
            continue
        if name not in NAMED_HEADERS and not name.startswith("x-"):
            continue
        if count >= MAX_HEADERS:
            break
        value = "".join(c for c in value.strip() if c.isprintable())[:MAX_VALUE]
        out.setdefault(name, []).append(value)
        count += 1
    return out


def payload(*, call_id: str, sip_call_id: str, from_uri: str, to_uri: str, caller: str,
            called: str, trunk: str | None, source: str, route: str | None,
            headers: Mapping[str, list[str]], timestamp: int) -> dict[str, Any]:
    """The JSON object POSTed for one incoming call."""
    return {"type": "call.incoming", "call_id": call_id, "sip_call_id": sip_call_id,
            "from": from_uri, "to": to_uri, "caller": caller, "called": called, "trunk": trunk,
            "source": source, "route": route, "timestamp": int(timestamp),
            "headers": {k: list(v) for k, v in headers.items()}}


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def parse_reply(status: int, body: bytes) -> Decision:
    """The app's answer; :class:`WebhookFailure` (``status`` or ``malformed``) if unusable."""
    if not 200 <= status < 300:
        raise WebhookFailure("status", f"HTTP {status}")
    if len(body) > MAX_REPLY_BYTES:
        raise WebhookFailure("malformed", f"reply larger than {MAX_REPLY_BYTES} bytes")
    try:
        reply = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookFailure("malformed", f"not JSON: {str(exc)[:100]}") from None
    if not isinstance(reply, dict):
        raise WebhookFailure("malformed", f"not a JSON object but {type(reply).__name__}")
    action = reply.get("action")
    try:
        if action == "reject":
            for key in reply:
                if key not in ("action", "status", "reason"):
                    raise ConfigError(f"{REPLY_PREFIX}.{key}", "unknown key in a reject "
                                      "(known: action, status, reason)")
            status_code = reject_status(reply.get("status"), f"{REPLY_PREFIX}.status")
            reason = reply.get("reason")
            reason = None if reason is None else reason_phrase(reason, f"{REPLY_PREFIX}.reason")
            return Decision("reject", status=status_code, reason=reason)
        if action == "accept":
            for key in reply:
                if key != "action" and key not in AGENT_KEYS:
                    raise ConfigError(f"{REPLY_PREFIX}.{key}", f"unknown key (known: action, "
                                      f"{', '.join(AGENT_KEYS)})")
            agent = parse_agent({k: v for k, v in reply.items() if k != "action"}, REPLY_PREFIX,
                                files=False)
            return Decision("accept", agent=agent)
    except ConfigError as exc:
        raise WebhookFailure("malformed", str(exc)) from None
    raise WebhookFailure("malformed", f"{REPLY_PREFIX}.action must be accept or reject, "
                         f"got {str(action)[:40]!r}")


def on_failure(policy: str, reason: str) -> Decision:
    """``app.on_webhook_failure``: the defaults (``default_agent``) or 503 (``reject``)."""
    if policy == "reject":
        return Decision("reject", status=503, reason="Service Unavailable", failure=reason)
    return Decision("accept", failure=reason)
