"""OpenAI Realtime protocol, sans I/O: session config, client event builders, parser.

Every builder returns a JSON-ready ``dict`` with a fresh ``event_id`` ("Optional
client-generated ID used to identify this event"; the server echoes it in
``error.event_id`` when that event fails). Nothing here touches a socket or a
clock. Server events are parsed by :func:`parse_server_event`, re-exported here
together with the event classes.

Two dialects exist. GA (``api="ga"``) nests audio settings::

    {"type": "session.update", "session": {"type": "realtime",
     "output_modalities": ["audio"], "audio": {"input": {"format": {"type":
     "audio/pcm", "rate": 24000}, "turn_detection": null}, "output": {...}}}}

beta (``api="beta"``, header ``OpenAI-Beta: realtime=v1``) is flat:
``modalities``, ``input_audio_format: "pcm16"``, ``output_audio_format``,
``turn_detection``, ``voice``. ``SessionConfig.audio_format`` picks pcm16 or G.711
(GA ``{"type": "audio/pcmu"}``/``{"type": "audio/pcma"}``, beta ``"g711_ulaw"``/
``"g711_alaw"``; see :mod:`sipbridge.realtime.audio_format`), both directions alike.
Beta accepts only the modality sets ``["text"]`` and ``["audio", "text"]``
(``["audio"]`` alone is refused), so the beta shape asks for ``["audio", "text"]``;
GA instead allows exactly one output modality.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from sipbridge.realtime.audio_format import NAMES as AUDIO_FORMATS  # noqa: F401 - re-exported
from sipbridge.realtime.events import (  # noqa: F401 - re-exported
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
from sipbridge.realtime.parser import KNOWN_TYPES, parse_server_event  # noqa: F401 - re-exported
from sipbridge.realtime.sessionconfig import Api, SessionConfig, Tool  # noqa: F401 - re-exported

__all__ = [
    "Api", "AUDIO_FORMATS", "SessionConfig", "new_event_id", "session_update", "input_audio_append",
    "input_audio_commit", "input_audio_clear", "response_create", "response_cancel", "item_truncate", "item_delete",
    "function_output", "Tool", "FunctionCall", "OutputItemDone",
    "parse_server_event", "KNOWN_TYPES", "ServerEvent", "SessionCreated", "SessionUpdated", "AudioDelta",
    "AudioDone", "OutputItemAdded", "ResponseCreated", "ResponseDone", "SpeechStarted", "SpeechStopped",
    "InputCommitted", "ItemTruncated", "Transcript", "ErrorEvent", "Unknown", "Malformed",
]

def new_event_id() -> str:
    """A fresh client event id, ``evt_`` + 20 hex digits (unique per process run)."""
    return "evt_" + uuid.uuid4().hex[:20]


def _event(etype: str, **fields: Any) -> dict[str, Any]:
    return {"type": etype, "event_id": new_event_id(), **fields}


def _ga_session(cfg: SessionConfig) -> dict[str, Any]:
    fmt = cfg.format
    output: dict[str, Any] = {"format": fmt.ga(cfg.output_rate)}
    if cfg.voice is not None:
        output["voice"] = cfg.voice
    session: dict[str, Any] = {
        "type": "realtime",
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": fmt.ga(cfg.input_rate),
                "turn_detection": _copy(cfg.turn_detection),
            },
            "output": output,
        },
    }
    if cfg.instructions is not None:
        session["instructions"] = cfg.instructions
    _add_tools(session, cfg)
    return session


def _add_tools(session: dict[str, Any], cfg: SessionConfig) -> None:
    if cfg.tools:
        session["tools"] = [tool.wire() for tool in cfg.tools]
        session["tool_choice"] = "auto"


def _beta_session(cfg: SessionConfig) -> dict[str, Any]:
    session: dict[str, Any] = {
        "modalities": ["audio", "text"],
        "input_audio_format": cfg.audio_format,
        "output_audio_format": cfg.audio_format,
        "turn_detection": _copy(cfg.turn_detection),
    }
    if cfg.voice is not None:
        session["voice"] = cfg.voice
    if cfg.instructions is not None:
        session["instructions"] = cfg.instructions
    _add_tools(session, cfg)
    return session


def _copy(td: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if td is None else dict(td)


def session_update(cfg: SessionConfig) -> dict[str, Any]:
    """``session.update`` in the dialect of ``cfg.api``. "Only the fields that are
    present in the session.update are updated"; the server answers with
    ``session.updated``."""
    return _event("session.update", session=_ga_session(cfg) if cfg.api == "ga" else _beta_session(cfg))


def input_audio_append(audio: bytes, sample_bytes: int = 2) -> dict[str, Any]:
    """``input_audio_buffer.append``: "Send this event to append audio bytes to the
    input audio buffer", base64 in ``audio`` (in the session's input format:
    ``sample_bytes`` is 2 for pcm16, 1 for G.711). Raises ``ValueError`` on a byte
    count that is not whole samples: that is a bug in the caller."""
    if len(audio) % sample_bytes:
        raise ValueError(f"audio must hold whole {sample_bytes}-byte samples, got {len(audio)} bytes")
    return _event("input_audio_buffer.append", audio=base64.b64encode(audio).decode("ascii"))


def input_audio_commit() -> dict[str, Any]:
    """``input_audio_buffer.commit``: turn the buffer into a user item ("This event
    will produce an error if the input audio buffer is empty"; it does not
    create a response)."""
    return _event("input_audio_buffer.commit")


def input_audio_clear() -> dict[str, Any]:
    """``input_audio_buffer.clear``: drop the uncommitted input audio."""
    return _event("input_audio_buffer.clear")


def response_create(instructions: str | None = None) -> dict[str, Any]:
    """``response.create``: ask the model to answer now (needed when turn
    detection is off). ``instructions`` apply to this response only (the
    greeting: the model speaks first, before the caller has said anything)."""
    if instructions is None:
        return _event("response.create")
    return _event("response.create", response={"instructions": instructions})


def response_cancel(response_id: str | None = None) -> dict[str, Any]:
    """``response.cancel``: "If there is no response to cancel, the server will
    respond with an error"; without ``response_id`` it cancels the in-progress
    response of the default conversation."""
    if response_id is None:
        return _event("response.cancel")
    return _event("response.cancel", response_id=response_id)


def item_truncate(item_id: str, audio_end_ms: int, content_index: int = 0) -> dict[str, Any]:
    """``conversation.item.truncate``: tell the server how much of an assistant
    item the caller actually heard. "If the audio_end_ms is greater than the
    actual audio duration, the server will respond with an error." Raises
    ``ValueError`` on a negative or non-int ``audio_end_ms`` (caller bug)."""
    if isinstance(audio_end_ms, bool) or not isinstance(audio_end_ms, int) or audio_end_ms < 0:
        raise ValueError(f"audio_end_ms must be an int >= 0, got {audio_end_ms!r}")
    return _event(
        "conversation.item.truncate",
        item_id=item_id,
        content_index=content_index,
        audio_end_ms=audio_end_ms,
    )


def item_delete(item_id: str) -> dict[str, Any]:
    """``conversation.item.delete``: remove an item from the conversation history."""
    return _event("conversation.item.delete", item_id=item_id)


def function_output(call_id: str, output: str) -> dict[str, Any]:
    """``conversation.item.create`` of a ``function_call_output``: the answer to the model's
    call ``call_id`` (free text, JSON by convention). It does not start a response."""
    return _event("conversation.item.create",
                  item={"type": "function_call_output", "call_id": call_id, "output": output})
