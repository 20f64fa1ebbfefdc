"""One call of an app tool, sans I/O: the signed request, the reply, the output the model gets.

When the model calls one of the app's functions (``realtime.tools``) the bridge POSTs JSON to
``realtime.tools_url``::

    {"call_id": "c_...",            # the bridge's call id (API paths, events, records)
     "sip_call_id": "...",          # the SIP Call-ID
     "name": "order_status",        # the function
     "arguments": {"order": "42"},  # the model's arguments, parsed
     "function_call_id": "call_...",# the model's id of this call (parallel calls differ)
     "caller": "+4930...", "called": "100",
     "metadata": {...}}             # the call's metadata (route / webhook reply), {} if none

with the Standard Webhooks headers (:mod:`sipbridge.app.signing`). The reply, a 2xx with a JSON
body (any JSON value) of at most :data:`MAX_REPLY_BYTES`, is the function's output: it goes back
to the model as it is (re-serialised compactly). Anything else becomes an :class:`Outcome` with an
error output the model can apologise with, ``{"error": <kind>, "message": ...}``: arguments that
are not a JSON object (the app is not called), a timeout, a connection error, a non-2xx status,
a body that is not JSON or is too big.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import signing

MAX_REPLY_BYTES = 64 * 1024

# outcome kinds (the log's ``outcome`` field); every one but OK gives the model an error output
OK = "ok"
BAD_ARGUMENTS = "bad_arguments"
TIMEOUT = "tool_timeout"
UNREACHABLE = "tool_unreachable"
HTTP_ERROR = "tool_http_error"
BAD_REPLY = "tool_bad_reply"
UNAVAILABLE = "tool_unavailable"

_ADVICE = "Apologise to the caller and offer to try again or to help another way."


@dataclass(frozen=True)
class Outcome:
    """What a tool call came to: ``output`` is the ``function_call_output`` text for the model."""

    kind: str
    output: str
    status: int | None = None      # the app's HTTP status, when it answered
    detail: str | None = None      # why it failed, for the log (never the app's body)

    @property
    def ok(self) -> bool:
        return self.kind == OK


def failure(kind: str, message: str, status: int | None = None, detail: str | None = None) -> Outcome:
    body: dict[str, Any] = {"error": kind, "message": f"{message}. {_ADVICE}"}
    if status is not None:
        body["status"] = status
    return Outcome(kind, json.dumps(body), status, detail or message)


def parse_arguments(text: str) -> dict[str, Any] | Outcome:
    """The model's ``arguments`` (a JSON text; empty means none) as a dict, or the failure."""
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return failure(BAD_ARGUMENTS, "Your arguments were not valid JSON, the function was not "
                       "called; call it again with a JSON object", detail=f"not JSON: {exc}"[:200])
    if not isinstance(value, dict):
        return failure(BAD_ARGUMENTS, "Your arguments must be a JSON object, the function was not "
                       "called", detail=f"arguments are a {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Request:
    """The body and headers of one POST to ``tools_url``."""

    body: bytes
    headers: dict[str, str]
    msg_id: str


def build_request(*, uid: str, sip_call_id: str, name: str, arguments: dict[str, Any],
                  function_call_id: str, metadata: Any, key: bytes | None, msg_id: str,
                  timestamp: int, caller: str | None = None, called: str | None = None) -> Request:
    """The signed request (``key`` None: unsigned; ``timestamp`` in epoch seconds)."""
    payload = {"call_id": uid, "sip_call_id": sip_call_id, "name": name, "arguments": arguments,
               "function_call_id": function_call_id, "caller": caller, "called": called,
               "metadata": dict(metadata or {})}
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Request(body, signing.headers(key, msg_id, timestamp, body), msg_id)


def read_reply(status: int, body: bytes) -> Outcome:
    """The app's answer: a 2xx JSON body is the output, anything else an error output."""
    if not 200 <= status < 300:
        return failure(HTTP_ERROR, f"The function failed (the application answered {status})",
                       status=status, detail=f"HTTP {status}")
    if len(body) > MAX_REPLY_BYTES:
        return too_large(status)
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return failure(BAD_REPLY, "The function's answer could not be read", status=status,
                       detail="reply is not JSON")
    return Outcome(OK, json.dumps(value, separators=(",", ":"), ensure_ascii=False), status)


def too_large(status: int | None = None) -> Outcome:
    return failure(BAD_REPLY, "The function's answer was too long to use", status=status,
                   detail=f"reply over {MAX_REPLY_BYTES} bytes")


def timed_out(timeout_ms: int) -> Outcome:
    return failure(TIMEOUT, f"The function did not answer within {timeout_ms / 1000:g} s",
                   detail=f"no reply within {timeout_ms} ms")


def unreachable(why: str) -> Outcome:
    return failure(UNREACHABLE, "The function could not be reached", detail=why[:200])


def unavailable(why: str) -> Outcome:
    return failure(UNAVAILABLE, "The function is not available right now", detail=why[:200])


def latency_ms(started: float, now: float) -> int:
    """Whole milliseconds between two monotonic readings (seconds)."""
    return max(0, round((now - started) * 1000))
