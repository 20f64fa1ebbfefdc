"""Typed server events of the OpenAI Realtime protocol (GA and beta share these).

Each class is the parsed form of one or more wire ``type`` names; the parser in
:mod:`sipbridge.realtime.parser` maps both name sets onto the same class:

======================  ==========================================================
class                   wire types
======================  ==========================================================
SessionCreated          ``session.created``
SessionUpdated          ``session.updated``
AudioDelta              ``response.output_audio.delta`` (GA), ``response.audio.delta`` (beta)
AudioDone               ``response.output_audio.done`` (GA), ``response.audio.done`` (beta)
OutputItemAdded         ``response.output_item.added``
ResponseCreated         ``response.created``
ResponseDone            ``response.done``
FunctionCall            ``response.output_item.done`` whose item is a ``function_call``
OutputItemDone          ``response.output_item.done`` of any other item (a message)
SpeechStarted           ``input_audio_buffer.speech_started``
SpeechStopped           ``input_audio_buffer.speech_stopped``
InputCommitted          ``input_audio_buffer.committed``
ItemTruncated           ``conversation.item.truncated``
Transcript              ``conversation.item.input_audio_transcription.completed`` (caller),
                        ``response.output_audio_transcript.done`` (GA) /
                        ``response.audio_transcript.done`` (beta) (agent)
ErrorEvent              ``error``
TurnDiscarded           (none in OpenAI's protocol: Hydra's ``conversation.item.done`` of a
                        user item with status ``incomplete``, a noise start it dropped)
PlayoutClear            (none in OpenAI's protocol: a Twilio Media Streams bot's ``clear``)
Unknown                 any other well-formed event
Malformed               anything the parser could not read
======================  ==========================================================

Events holding a ``dict`` (``session``, ``raw``) compare by value but are not
hashable; nothing here needs hashing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True)
class SessionCreated:
    """``session.created``: "Returned when a Session is created. Emitted
    automatically when a new connection is established as the first server
    event." ``session`` is the server's full, effective configuration."""

    session: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionUpdated:
    """``session.updated``: the answer to ``session.update``, "showing the full,
    effective configuration"."""

    session: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AudioDelta:
    """``response.output_audio.delta``: "Returned when the model-generated audio
    is updated." ``pcm`` is the base64-decoded ``delta`` in the session's output
    format: pcm16 LE at its output rate, or G.711 codes (one byte a sample, 8 kHz)."""

    response_id: str
    item_id: str
    content_index: int
    pcm: bytes


@dataclass(frozen=True)
class AudioDone:
    """``response.output_audio.done``: the model finished generating audio for
    this item ("also emitted when a Response is interrupted, incomplete, or
    cancelled")."""

    response_id: str
    item_id: str


@dataclass(frozen=True)
class OutputItemAdded:
    """``response.output_item.added``: a new item was created during response
    generation. ``role`` is ``"assistant"`` for speech; ``None`` for items with
    no role (function calls)."""

    response_id: str
    item_id: str
    role: str | None


@dataclass(frozen=True)
class ResponseCreated:
    """``response.created``: a new response started, status ``in_progress``."""

    response_id: str


@dataclass(frozen=True)
class ResponseDone:
    """``response.done``: "Always emitted, no matter the final state." ``status``
    is ``completed``, ``cancelled``, ``failed`` or ``incomplete``; ``reason`` is
    ``status_details.reason`` (``turn_detected``, ``client_cancelled``,
    ``max_output_tokens``, ``content_filter``) or ``None``."""

    response_id: str
    status: str
    reason: str | None


@dataclass(frozen=True)
class FunctionCall:
    """``response.output_item.done`` carrying a finished ``function_call`` item: the model
    calls tool ``name`` with ``arguments`` (a JSON text, as the model wrote it). The answer
    goes back as a ``function_call_output`` item with the same ``call_id``."""

    response_id: str
    item_id: str
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class OutputItemDone:
    """``response.output_item.done`` of an item that is not a function call; ``kind`` is the
    item's ``type`` (``message``), or ``None`` when it has none."""

    response_id: str
    item_id: str
    kind: str | None


@dataclass(frozen=True)
class SpeechStarted:
    """``input_audio_buffer.speech_started`` (server VAD only). ``audio_start_ms``
    counts from the start of all audio written this session."""

    item_id: str
    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    """``input_audio_buffer.speech_stopped`` (server VAD only)."""

    item_id: str
    audio_end_ms: int


@dataclass(frozen=True)
class InputCommitted:
    """``input_audio_buffer.committed``: the buffer became user item ``item_id``."""

    item_id: str


@dataclass(frozen=True)
class ItemTruncated:
    """``conversation.item.truncated``: the server cut assistant item ``item_id``
    at ``audio_end_ms`` (and dropped the unheard transcript)."""

    item_id: str
    audio_end_ms: int


@dataclass(frozen=True)
class Transcript:
    """The text of one finished item: ``role`` is ``caller`` (the input transcription the
    session asked for, ``conversation.item.input_audio_transcription.completed``) or ``agent``
    (the transcript of an audio response, ``response.output_audio_transcript.done``)."""

    role: str
    item_id: str
    text: str


@dataclass(frozen=True)
class ErrorEvent:
    """``error``: "Most errors are recoverable and the session will stay open."
    ``event_id`` is ``error.event_id``, the id of the *client* event that caused
    it (``None`` when the server does not say)."""

    code: str | None
    message: str
    event_id: str | None
    kind: str | None = None   # ``error.type``: invalid_request_error, server_error, ...


@dataclass(frozen=True)
class TurnDiscarded:
    """The provider's own turn detector dropped the caller turn it had started (``item_id``): its
    ``speech_started`` was noise, nothing was committed, and no response follows from it."""

    item_id: str


@dataclass(frozen=True)
class PlayoutClear:
    """(none in OpenAI's protocol: a Twilio Media Streams bot's ``clear``) The provider asks
    for every sample of agent audio still queued for the caller to be dropped now; the session
    runs its one cancel path (the line is silent on the next packet)."""


@dataclass(frozen=True)
class Unknown:
    """A well-formed event of a type this module does not model (transcripts,
    ``conversation.item.*``, ``rate_limits.updated``, ...)."""

    type: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Malformed:
    """Input the parser could not read; ``reason`` says why, for the log."""

    reason: str


ServerEvent = Union[
    SessionCreated,
    SessionUpdated,
    AudioDelta,
    AudioDone,
    OutputItemAdded,
    ResponseCreated,
    ResponseDone,
    FunctionCall,
    OutputItemDone,
    SpeechStarted,
    SpeechStopped,
    InputCommitted,
    ItemTruncated,
    Transcript,
    ErrorEvent,
    TurnDiscarded,
    PlayoutClear,
    Unknown,
    Malformed,
]
