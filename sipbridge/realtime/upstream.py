"""The one interface between a call's session and its model provider: :class:`Upstream`.

:class:`~sipbridge.session.CallSession` talks to the model only through these methods and only
hears these events; no provider's event names or wire shapes reach it. Each provider is an
adapter in :mod:`sipbridge.realtime.providers` (OpenAI Realtime, and Azure with the same
adapter); a new one is one module there, one line in its registry and one config choice.

Life cycle (all on the event loop thread; other threads hop with ``call_soon_threadsafe``):
``await connect()`` (open, configure the session, and return once the provider accepted it,
or raise :class:`~sipbridge.realtime.client.UpstreamError`), then ``await run()`` in a task
(reads until the connection ends: a :class:`~sipbridge.realtime.client.CloseInfo` for a
deliberate end, ``UpstreamError`` for a drop, which the session's
:class:`~sipbridge.realtime.link.UpstreamLink` reconnects with a fresh adapter), ``await
close()`` at hang-up. Every command below is fire-and-forget: it never blocks, may be called
before ``connect()`` finishes (it waits and goes out after the configuration) and is dropped and
counted after ``close()``. Commands a provider has no use for are no-ops there (a protocol with
no input buffer ignores ``commit_input``).

Events out (``on_event``, given to the factory, on the loop thread; the classes of
:mod:`sipbridge.realtime.events`): :class:`AudioDelta` (``response_id``, ``item_id``, ``pcm`` in
``session.audio_format`` at its output rate), :class:`AudioDone` (that item's audio is complete),
:class:`ResponseCreated`, :class:`ResponseDone` (``status`` completed / cancelled / failed /
incomplete, ``reason``), :class:`SpeechStarted` / :class:`SpeechStopped` (the provider's turn
detector; ``audio_start_ms``/``audio_end_ms`` count the audio sent), :class:`InputCommitted`
(the provider ended the caller's turn), :class:`TurnDiscarded` (it dropped a turn it had
started: noise), :class:`FunctionCall` (``call_id``, ``name``, ``arguments`` as JSON text),
:class:`Transcript` (``role`` caller / agent), :class:`ErrorEvent` (``kind``, ``code``,
``message``; :meth:`Upstream.fatal` says whether the session must be reconnected),
:class:`Malformed`. Anything else (``SessionCreated``, ``Unknown``, ...) may be passed on and is
ignored. A provider without response ids makes up stable ones (one per model turn), so the
session can refuse the late audio of a cancelled one. :class:`PlayoutClear`: the provider asks
for the agent's queued audio to be dropped now (the session runs its one cancel path).

Optional methods (the session looks for them; an adapter without them is unchanged):
``bind(context)`` receives the :class:`CallContext` right after the factory, and
``send_dtmf(digit)`` receives the caller's RFC 4733 digits (after the audio before them).

Barge-in, what an adapter must do. The session owns the decision and the local half: on the
caller's speech (its own detector, DTMF, the API, or the provider's ``SpeechStarted`` with
server turns) it pauses or clears its playout, so the line is silent on the next 20 ms packet
whatever the provider does, and it bumps the playout generation so audio of the cancelled
response still in flight is dropped. Then, on the loop, it calls ``cancel(response_id)`` (tell
the provider to stop generating; with ``None`` when no response is known, or a no-op if it is
already done) and ``truncate(item_id, heard_ms)`` with exactly the milliseconds of that item
handed to RTP (0: none was heard). The adapter corrects the provider's record of what the caller
heard where its protocol allows (OpenAI: ``conversation.item.truncate``, or delete the item when
nothing was heard); where it cannot (``capabilities.truncate`` false: Gemini Live), it does
nothing and the provider believes the whole answer was heard. An adapter whose provider cancels
on its own at its ``speech_started`` says so (``server_cancels_on_speech``); it still reports
the ``ResponseDone`` it gets, and the session's cancel, arriving second, must be harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sipbridge.errors import SipBridgeError
from sipbridge.realtime.events import (AudioDelta, AudioDone, ErrorEvent, FunctionCall, InputCommitted,
                                       Malformed, ResponseCreated, ResponseDone, ServerEvent,
                                       PlayoutClear, SpeechStarted, SpeechStopped, Transcript,
                                       TurnDiscarded)
from sipbridge.realtime.sessionconfig import SessionConfig, Tool

__all__ = [
    "CallContext", "Capabilities", "CloseInfo", "Upstream", "UpstreamError", "UpstreamFactory", "SessionConfig", "Tool",
    "ServerEvent", "AudioDelta", "AudioDone", "ErrorEvent", "FunctionCall", "InputCommitted", "Malformed", "PlayoutClear", "ResponseCreated",
    "ResponseDone", "SpeechStarted", "SpeechStopped", "Transcript", "TurnDiscarded",
]


class UpstreamError(SipBridgeError):
    """The model server refused, failed or dropped us. ``status`` is the HTTP
    status of a refused upgrade; ``close_code`` the WebSocket close code."""

    def __init__(self, message: str, *, status: int | None = None, close_code: int | None = None):
        super().__init__(message)
        self.status = status
        self.close_code = close_code


@dataclass(frozen=True)
class CloseInfo:
    """How a connection ended cleanly (close code 1000/1001, or our own close)."""

    code: int | None
    reason: str


@dataclass(frozen=True)
class Capabilities:
    """What a provider's protocol can do, for the session's choices and the README's table.

    ``local_turns``: the bridge may end turns itself (``commit_input`` + ``create_response``);
    ``server_turns``: the provider has its own turn detection (``turn_detection`` server_vad);
    ``truncate``: what the caller heard of an answer can be corrected; ``server_cancels_on_speech``:
    with server turns the provider cancels its response at its own ``speech_started``;
    ``audio_formats``: the ``SessionConfig.audio_format`` values it speaks;
    ``response_instructions``: ``create_response`` honours per-response instructions;
    ``provider_clears``: the provider decides whether the caller interrupted and clears the
    playout itself (a Twilio Media Streams bot's ``clear``, as :class:`PlayoutClear`): a local
    barge-in only pauses the line, holds the pause ``clear_wait_ms`` (an attribute of such an
    adapter) for the provider's clear, and resumes the agent if none comes.
    """

    local_turns: bool
    server_turns: bool
    truncate: bool
    server_cancels_on_speech: bool
    audio_formats: tuple[str, ...]
    response_instructions: bool = True
    provider_clears: bool = False


@dataclass(frozen=True)
class CallContext:
    """What an adapter that asks for it (optional ``bind(context)``) may know of its call:
    ``call_id`` (SIP Call-ID), ``uid`` (the bridge's call id), the ``caller`` and ``called``
    numbers, and ``played_ms(item_id)``: how much of an agent item the playout has handed to RTP
    so far, and ``frames_out()``: 20 ms frames the playout has sent (both safe from the loop
    thread; a Twilio-style mark is due only once its audio is played)."""

    call_id: str
    uid: str
    caller: str
    called: str
    played_ms: Callable[[str], int]
    frames_out: Callable[[], int]


@runtime_checkable
class Upstream(Protocol):
    """One model session of one call (see the module docstring)."""

    capabilities: Capabilities
    url: str                    # where it connects, for the logs (no secrets)

    @property
    def session(self) -> SessionConfig:
        """The configuration ``connect()`` sends (the session re-sends a newer one after a reconnect)."""
        ...

    async def connect(self) -> None:
        """Open and configure the session; raise ``UpstreamError`` on any failure."""
        ...

    async def run(self) -> CloseInfo:
        """Read and dispatch events until the connection ends (see the module docstring)."""
        ...

    async def close(self) -> None:
        """Hang up the session; idempotent; queued commands are dropped."""
        ...

    def send_audio(self, audio: bytes) -> None:
        """Caller audio, in ``session.audio_format`` at its input rate (whole samples)."""
        ...

    def commit_input(self) -> None:
        """The caller's turn ended (the bridge's own turn detection): make it a user turn."""
        ...

    def clear_input(self) -> None:
        """Drop the caller audio not yet committed (a cough, a background voice)."""
        ...

    def create_response(self, instructions: str | None = None) -> None:
        """Ask the model to answer now; ``instructions`` apply to this response only. An
        adapter whose provider allows one response at a time holds it until the active one is done."""
        ...

    def cancel(self, response_id: str | None) -> None:
        """Stop generating ``response_id`` (the session has already silenced the line)."""
        ...

    def truncate(self, item_id: str, heard_ms: int) -> None:
        """The caller heard ``heard_ms`` of the agent's item ``item_id`` (0: nothing): correct
        the provider's history where its protocol allows, else do nothing."""
        ...

    def update_session(self, config: SessionConfig) -> None:
        """Apply a changed configuration mid-call (instructions, voice, tools, turn detection)."""
        ...

    def function_output(self, call_id: str, output: str) -> None:
        """The answer to the model's :class:`FunctionCall` ``call_id`` (text, JSON by
        convention); it does not start a response by itself."""
        ...

    def fatal(self, error: ErrorEvent) -> bool:
        """True when ``error`` means the provider's session is unusable (the session then drops
        and reconnects it); False for a refused request the session survives."""
        ...


UpstreamFactory = Callable[..., Upstream]
"""``factory(rc, url, api_key, session, on_event) -> Upstream``: ``rc`` is the ``realtime``
config section, ``url``/``api_key`` the worker's resolved endpoint and key, ``session`` the
:class:`SessionConfig`, ``on_event`` the session's handler."""
