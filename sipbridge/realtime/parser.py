"""Parse one server frame of the OpenAI Realtime protocol into a typed event.

:func:`parse_server_event` never raises: text that is not JSON, a top-level
value that is not an object, a missing or mistyped field, or a ``delta`` that is
not base64 or not whole samples of the session's output format (``sample_bytes``:
2 for pcm16, 1 for G.711) all come back as
:class:`~sipbridge.realtime.events.Malformed` with a reason. Well-formed events
of types we do not model come back as ``Unknown``.

GA and beta differ in a few names (beta ``response.audio.delta`` became GA
``response.output_audio.delta``, likewise ``.done``); both are accepted.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Callable

from sipbridge.realtime.events import (
    AudioDelta,
    AudioDone,
    ErrorEvent,
    FunctionCall,
    InputCommitted,
    ItemTruncated,
    Malformed,
    OutputItemAdded,
    OutputItemDone,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    Transcript,
    Unknown,
)


class _Bad(Exception):
    """Internal: a field is missing or has the wrong type."""


def _field(obj: dict[str, Any], key: str, kind: type, *, optional: bool = False) -> Any:
    """``obj[key]`` checked against ``kind``; ``None``/absent allowed when ``optional``.

    ``bool`` is rejected where an ``int`` is expected (JSON ``true`` is not a number).
    """
    if key not in obj or obj[key] is None:
        if optional:
            return None
        raise _Bad(f"missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Bad(f"field {key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Bad(f"delta is not base64: {exc}") from None


def _session(ev: dict[str, Any]) -> dict[str, Any]:
    return _field(ev, "session", dict)


def _audio_delta(ev: dict[str, Any]) -> ServerEvent:
    pcm = _b64(_field(ev, "delta", str))
    return AudioDelta(
        response_id=_field(ev, "response_id", str),
        item_id=_field(ev, "item_id", str),
        content_index=_field(ev, "content_index", int, optional=True) or 0,
        pcm=pcm,
    )


def _audio_done(ev: dict[str, Any]) -> ServerEvent:
    return AudioDone(response_id=_field(ev, "response_id", str), item_id=_field(ev, "item_id", str))


def _item_added(ev: dict[str, Any]) -> ServerEvent:
    item = _field(ev, "item", dict)
    return OutputItemAdded(
        response_id=_field(ev, "response_id", str),
        item_id=_field(item, "id", str),
        role=_field(item, "role", str, optional=True),
    )


def _item_done(ev: dict[str, Any]) -> ServerEvent:
    """A finished function call, or :class:`OutputItemDone` for any other finished item."""
    item = _field(ev, "item", dict)
    if item.get("type") != "function_call":
        return OutputItemDone(response_id=_field(ev, "response_id", str), item_id=_field(item, "id", str),
                              kind=_field(item, "type", str, optional=True))
    return FunctionCall(
        response_id=_field(ev, "response_id", str),
        item_id=_field(item, "id", str),
        call_id=_field(item, "call_id", str),
        name=_field(item, "name", str),
        arguments=_field(item, "arguments", str, optional=True) or "",
    )


def _response_created(ev: dict[str, Any]) -> ServerEvent:
    return ResponseCreated(response_id=_field(_field(ev, "response", dict), "id", str))


def _response_done(ev: dict[str, Any]) -> ServerEvent:
    resp = _field(ev, "response", dict)
    details = _field(resp, "status_details", dict, optional=True) or {}
    return ResponseDone(
        response_id=_field(resp, "id", str),
        status=_field(resp, "status", str),
        reason=_field(details, "reason", str, optional=True),
    )


def _error(ev: dict[str, Any]) -> ServerEvent:
    err = _field(ev, "error", dict)
    return ErrorEvent(
        code=_field(err, "code", str, optional=True),
        message=_field(err, "message", str),
        event_id=_field(err, "event_id", str, optional=True),
        kind=_field(err, "type", str, optional=True),
    )


def _transcript(role: str) -> Callable[[dict[str, Any]], ServerEvent]:
    def parse(ev: dict[str, Any]) -> ServerEvent:
        return Transcript(role=role, item_id=_field(ev, "item_id", str),
                          text=_field(ev, "transcript", str))
    return parse


_PARSERS: dict[str, Callable[[dict[str, Any]], ServerEvent]] = {
    "session.created": lambda ev: SessionCreated(session=_session(ev)),
    "session.updated": lambda ev: SessionUpdated(session=_session(ev)),
    "response.output_audio.delta": _audio_delta,
    "response.audio.delta": _audio_delta,
    "response.output_audio.done": _audio_done,
    "response.audio.done": _audio_done,
    "response.output_item.added": _item_added,
    "response.output_item.done": _item_done,
    "response.created": _response_created,
    "response.done": _response_done,
    "input_audio_buffer.speech_started": lambda ev: SpeechStarted(
        item_id=_field(ev, "item_id", str), audio_start_ms=_field(ev, "audio_start_ms", int)
    ),
    "input_audio_buffer.speech_stopped": lambda ev: SpeechStopped(
        item_id=_field(ev, "item_id", str), audio_end_ms=_field(ev, "audio_end_ms", int)
    ),
    "input_audio_buffer.committed": lambda ev: InputCommitted(item_id=_field(ev, "item_id", str)),
    "conversation.item.truncated": lambda ev: ItemTruncated(
        item_id=_field(ev, "item_id", str), audio_end_ms=_field(ev, "audio_end_ms", int)
    ),
    "conversation.item.input_audio_transcription.completed": _transcript("caller"),
    "response.output_audio_transcript.done": _transcript("agent"),
    "response.audio_transcript.done": _transcript("agent"),
    "error": _error,
}

KNOWN_TYPES: frozenset[str] = frozenset(_PARSERS)


def parse_server_event(data: str | bytes, sample_bytes: int = 2) -> ServerEvent:
    """Parse one WebSocket message from the model server. Never raises.

    ``bytes`` are decoded as UTF-8 (a binary frame from a server that should
    send text). ``sample_bytes`` is the size of one sample of the session's
    output audio (2: pcm16, 1: G.711); a delta of a partial sample is
    malformed. Returns a typed event, ``Unknown`` for other well-formed
    types, or ``Malformed(reason)``.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
        if not isinstance(text, str):
            return Malformed(f"expected str or bytes, got {type(data).__name__}")
        obj = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return Malformed(f"not JSON: {type(exc).__name__}: {str(exc)[:120]}")
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
        return Malformed(f"unreadable: {type(exc).__name__}")
    if not isinstance(obj, dict):
        return Malformed(f"top-level JSON must be an object, got {type(obj).__name__}")
    etype = obj.get("type")
    if not isinstance(etype, str):
        return Malformed("missing or non-string 'type'")
    parser = _PARSERS.get(etype)
    if parser is None:
        return Unknown(type=etype, raw=obj)
    try:
        event = parser(obj)
        if isinstance(event, AudioDelta) and len(event.pcm) % sample_bytes:
            what = "pcm16" if sample_bytes == 2 else f"{sample_bytes}-byte"
            raise _Bad(f"delta is not whole {what} samples ({len(event.pcm)} bytes)")
        return event
    except _Bad as exc:
        return Malformed(f"{etype}: {exc}")
    except Exception as exc:  # noqa: BLE001 - defensive; a parser bug must not kill the reader
        return Malformed(f"{etype}: {type(exc).__name__}: {exc}")
