"""Smallest AI Hydra's wire protocol, pure: the client frames, and server frames read into neutral events.

Hydra's speech-to-speech WebSocket looks like OpenAI Realtime (``input_audio_buffer.append``,
``response.output_audio.delta``, ``response.done``) but is not the same protocol: its handshake is
``session.created`` -> ``session.configure`` -> ``session.configured``, its turn detection is always
the server's, its audio rates are fixed (16 kHz in, 48 kHz out), it has no transcripts and no
truncation, and a discarded noise turn ends as a user ``conversation.item.done`` with status
``incomplete``. What the docs say, and where, is in :mod:`sipbridge.realtime.providers.hydra`.

:class:`Reader` turns one server frame into one event of :mod:`sipbridge.realtime.events` (never
raises: ``Malformed`` with a reason, ``Unknown`` for frames the bridge has no use for). It keeps
the little state the mapping needs: the response in progress (deltas without a ``response_id``
belong to it; the deltas of an older response, after a newer ``response.created``, are dropped
as the docs ask) and made-up item ids where the server gives none. No I/O, no clock.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from typing import Any

from sipbridge.realtime.events import (AudioDelta, AudioDone, ErrorEvent, FunctionCall, InputCommitted,
                                       Malformed, ResponseCreated, ResponseDone, ServerEvent,
                                       SpeechStarted, SpeechStopped, TurnDiscarded, Unknown)
from sipbridge.realtime.sessionconfig import SessionConfig, Tool

URL = "wss://api.smallest.ai/waves/v1/s2s"
MODEL = "hydra"
KEY_ENV = "SMALLEST_API_KEY"
INPUT_RATE = 16000             # pcm16 LE mono, base64 in input_audio_buffer.append.audio
OUTPUT_RATE = 48000            # pcm16 LE mono, base64 in response.output_audio.delta.delta
CHUNK_SAMPLES = 640            # 40 ms at 16 kHz: the docs' largest recommended append
MIN_CHUNK_SAMPLES = 320        # 20 ms: the smallest recommended (the server refuses < 10 ms)
VOICES = ("wren", "sloane", "marlowe", "reed", "knox", "tate")

_ids = itertools.count(1)


def _event_id() -> str:
    return f"sb_{next(_ids)}"


def configure(session: SessionConfig) -> dict[str, Any]:
    """The one ``session.configure``: persona, voice, tools (only keys the docs list)."""
    body: dict[str, Any] = {}
    if session.instructions is not None:
        body["instructions"] = session.instructions
    if session.voice is not None:
        body["voice"] = session.voice
    body["tools"] = tools(session.tools)
    return {"type": "session.configure", "event_id": _event_id(), "session": body}


def tools(declared: tuple[Tool, ...]) -> list[dict[str, Any]]:
    return [t.wire() for t in declared]


def tools_update(declared: tuple[Tool, ...]) -> dict[str, Any]:
    """``session.update``: the only field Hydra applies mid-session is ``tools``."""
    return {"type": "session.update", "event_id": _event_id(), "session": {"tools": tools(declared)}}


def append(pcm16: bytes) -> dict[str, Any]:
    """20-40 ms of caller audio, pcm16 LE at 16 kHz."""
    return {"type": "input_audio_buffer.append", "event_id": _event_id(),
            "audio": base64.b64encode(pcm16).decode("ascii")}


def response_create() -> dict[str, Any]:
    return {"type": "response.create", "event_id": _event_id()}


def response_cancel() -> dict[str, Any]:
    """Stop the response in flight (a no-op on the server when none is)."""
    return {"type": "response.cancel", "event_id": _event_id()}


def function_output(call_id: str, output: str) -> dict[str, Any]:
    return {"type": "conversation.item.create", "event_id": _event_id(),
            "item": {"type": "function_call_output", "call_id": call_id, "output": output}}


class _Bad(Exception):
    pass


def _get(obj: Any, key: str, kind: type, optional: bool = False) -> Any:
    if not isinstance(obj, dict):
        raise _Bad(f"expected an object holding {key!r}")
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Bad(f"field {key!r} must be {kind.__name__}")
    return value


class Reader:
    """Server frames -> neutral events, one at a time (see the module docstring)."""

    def __init__(self) -> None:
        self.response: str | None = None      # the response in progress (the latest created)
        self.finished: set[str] = set()       # responses done or superseded: their audio is stale
        self.stale_deltas = 0
        self.items: dict[str, str] = {}       # response -> its audio item (for a bare audio.done)

    def handshake(self, data: str | bytes) -> dict[str, Any] | ErrorEvent | Malformed:
        """A frame during the handshake: the raw object, or the error/malformation it is."""
        obj = self._load(data)
        if isinstance(obj, Malformed):
            return obj
        if obj.get("type") == "error":
            return self._error(obj)
        return obj

    def read(self, data: str | bytes) -> ServerEvent | None:
        """One frame after the handshake; ``None`` for a stale delta of a superseded response."""
        obj = self._load(data)
        if isinstance(obj, Malformed):
            return obj
        etype = obj["type"]
        try:
            return self._map(etype, obj)
        except _Bad as exc:
            return Malformed(f"{etype}: {exc}")
        except (binascii.Error, ValueError) as exc:
            return Malformed(f"{etype}: {exc}")

    def _load(self, data: str | bytes) -> dict[str, Any] | Malformed:
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return Malformed(f"not JSON: {type(exc).__name__}")
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            return Malformed("not an object with a string 'type'")
        return obj

    def _map(self, etype: str, obj: dict[str, Any]) -> ServerEvent | None:
        if etype == "response.output_audio.delta":
            rid = _get(obj, "response_id", str, optional=True) or self.response
            if rid is None or rid in self.finished:
                self.stale_deltas += 1
                return None
            pcm = base64.b64decode(_get(obj, "delta", str), validate=True)
            if len(pcm) % 2:
                raise _Bad(f"delta is not whole pcm16 samples ({len(pcm)} bytes)")
            item = _get(obj, "item_id", str, optional=True) or f"{rid}/audio"
            self.items[rid] = item
            return AudioDelta(rid, item, 0, pcm)
        if etype == "response.output_audio.done":
            rid = _get(obj, "response_id", str, optional=True) or self.response or "?"
            item = _get(obj, "item_id", str, optional=True) or self.items.get(rid, f"{rid}/audio")
            return AudioDone(rid, item)
        if etype == "response.created":
            rid = _get(_get(obj, "response", dict), "id", str)
            if self.response is not None:
                self.finished.add(self.response)  # "drop the previous response's audio"
            self.response = rid
            return ResponseCreated(rid)
        if etype == "response.done":
            resp = _get(obj, "response", dict)
            rid = _get(resp, "id", str)
            details = _get(resp, "status_details", dict, optional=True) or {}
            self.finished.add(rid)
            self.items.pop(rid, None)
            if self.response == rid:
                self.response = None
            return ResponseDone(rid, _get(resp, "status", str), _get(details, "reason", str, optional=True))
        if etype == "input_audio_buffer.speech_started":
            return SpeechStarted(_get(obj, "item_id", str), _get(obj, "audio_start_ms", int))
        if etype == "input_audio_buffer.speech_stopped":
            return SpeechStopped(_get(obj, "item_id", str), _get(obj, "audio_end_ms", int))
        if etype == "conversation.item.done":
            item = _get(obj, "item", dict)
            if item.get("role") != "user":
                return Unknown(etype, obj)
            status = _get(item, "status", str)
            if status == "incomplete":
                return TurnDiscarded(_get(item, "id", str))
            return InputCommitted(_get(item, "id", str))
        if etype == "response.function_call_arguments.done":
            rid = _get(obj, "response_id", str, optional=True) or self.response or "?"
            call_id = _get(obj, "call_id", str)
            return FunctionCall(rid, _get(obj, "item_id", str, optional=True) or call_id, call_id,
                                _get(obj, "name", str), _get(obj, "arguments", str, optional=True) or "")
        if etype == "error":
            return self._error(obj)
        return Unknown(etype, obj)

    @staticmethod
    def _error(obj: dict[str, Any]) -> ErrorEvent | Malformed:
        err = obj.get("error")
        if not isinstance(err, dict) or not isinstance(err.get("message"), str):
            return Malformed("error: no error.message")
        def text(key: str) -> str | None:
            return err.get(key) if isinstance(err.get(key), str) else None
        return ErrorEvent(code=text("code"), message=err["message"], event_id=text("event_id"),
                          kind=text("type"))
