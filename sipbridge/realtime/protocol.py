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
``turn_detection``, ``voice``. Beta accepts only the modality sets ``["text"]``
and ``["audio", "text"]`` (``["audio"]`` alone is refused), so the beta shape
asks for ``["audio", "text"]``; GA instead allows exactly one output modality.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from sipbridge.errors import ConfigError
from sipbridge.realtime.events import (  # noqa: F401 - re-exported
    AudioDelta,
    AudioDone,
    ErrorEvent,
    InputCommitted,
    ItemTruncated,
    Malformed,
    OutputItemAdded,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    Unknown,
)
from sipbridge.realtime.parser import KNOWN_TYPES, parse_server_event  # noqa: F401 - re-exported

__all__ = [
    "Api", "SessionConfig", "new_event_id", "session_update", "input_audio_append", "input_audio_commit",
    "input_audio_clear", "response_create", "response_cancel", "item_truncate", "item_delete",
    "parse_server_event", "KNOWN_TYPES", "ServerEvent", "SessionCreated", "SessionUpdated", "AudioDelta",
    "AudioDone", "OutputItemAdded", "ResponseCreated", "ResponseDone", "SpeechStarted", "SpeechStopped",
    "InputCommitted", "ItemTruncated", "ErrorEvent", "Unknown", "Malformed",
]

Api = Literal["ga", "beta"]


@dataclass(frozen=True)
class SessionConfig:
    """What we ask of the model session.

    ``input_rate``/``output_rate`` are pcm16 little-endian mono sample rates (the
    API documents "Only a 24kHz sample rate is supported"; beta cannot express
    any other rate, so beta insists on 24000). ``turn_detection=None`` sends an
    explicit ``null``: "To clear a field like turn_detection, pass null" -- the
    server default is server VAD, so omitting it would let the model take turns
    on its own. Otherwise pass a server VAD dict, e.g. ``{"type": "server_vad",
    "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}``.
    ``model`` is informative here: the model is chosen by the URL's ``?model=``.
    """

    model: str
    instructions: str | None = None
    voice: str | None = None
    input_rate: int = 24000
    output_rate: int = 24000
    api: Api = "ga"
    turn_detection: dict[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.api not in ("ga", "beta"):
            raise ConfigError("realtime.api", f"must be 'ga' or 'beta', got {self.api!r}")
        for key in ("input_rate", "output_rate"):
            rate = getattr(self, key)
            if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
                raise ConfigError(f"realtime.{key}", f"must be a positive int, got {rate!r}")
            if self.api == "beta" and rate != 24000:
                raise ConfigError(f"realtime.{key}", "the beta API only speaks pcm16 at 24000 Hz")
        td = self.turn_detection
        if td is not None and not (isinstance(td, dict) and isinstance(td.get("type"), str)):
            raise ConfigError("realtime.turn_detection", "must be null or a dict with a 'type'")


def new_event_id() -> str:
    """A fresh client event id, ``evt_`` + 20 hex digits (unique per process run)."""
    return "evt_" + uuid.uuid4().hex[:20]


def _event(etype: str, **fields: Any) -> dict[str, Any]:
    return {"type": etype, "event_id": new_event_id(), **fields}


def _ga_session(cfg: SessionConfig) -> dict[str, Any]:
    output: dict[str, Any] = {"format": {"type": "audio/pcm", "rate": cfg.output_rate}}
    if cfg.voice is not None:
        output["voice"] = cfg.voice
    session: dict[str, Any] = {
        "type": "realtime",
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": cfg.input_rate},
                "turn_detection": _copy(cfg.turn_detection),
            },
            "output": output,
        },
    }
    if cfg.instructions is not None:
        session["instructions"] = cfg.instructions
    return session


def _beta_session(cfg: SessionConfig) -> dict[str, Any]:
    session: dict[str, Any] = {
        "modalities": ["audio", "text"],
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm16",
        "turn_detection": _copy(cfg.turn_detection),
    }
    if cfg.voice is not None:
        session["voice"] = cfg.voice
    if cfg.instructions is not None:
        session["instructions"] = cfg.instructions
    return session


def _copy(td: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if td is None else dict(td)


def session_update(cfg: SessionConfig) -> dict[str, Any]:
    """``session.update`` in the dialect of ``cfg.api``. "Only the fields that are
    present in the session.update are updated"; the server answers with
    ``session.updated``."""
    return _event("session.update", session=_ga_session(cfg) if cfg.api == "ga" else _beta_session(cfg))


def input_audio_append(pcm16: bytes) -> dict[str, Any]:
    """``input_audio_buffer.append``: "Send this event to append audio bytes to the
    input audio buffer", base64 in ``audio``. Raises ``ValueError`` on an odd
    byte count (not whole 16-bit samples): that is a bug in the caller."""
    if len(pcm16) % 2:
        raise ValueError(f"pcm16 must hold whole samples, got {len(pcm16)} bytes")
    return _event("input_audio_buffer.append", audio=base64.b64encode(pcm16).decode("ascii"))


def input_audio_commit() -> dict[str, Any]:
    """``input_audio_buffer.commit``: turn the buffer into a user item ("This event
    will produce an error if the input audio buffer is empty"; it does not
    create a response)."""
    return _event("input_audio_buffer.commit")


def input_audio_clear() -> dict[str, Any]:
    """``input_audio_buffer.clear``: drop the uncommitted input audio."""
    return _event("input_audio_buffer.clear")


def response_create() -> dict[str, Any]:
    """``response.create``: ask the model to answer now (needed when turn
    detection is off)."""
    return _event("response.create")


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
