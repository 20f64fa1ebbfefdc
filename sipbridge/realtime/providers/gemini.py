"""The Google Gemini Live adapter (``BidiGenerateContent`` over a WebSocket).

What the protocol is, as found (Nov 2026) in Google's "Get started with Gemini Live API using
WebSockets" (ai.google.dev/gemini-api/docs/live-api/get-started-websocket), the
``BidiGenerateContentClientMessage``/``ServerMessage``/``ServerContent`` reference (generated
client libraries of ``google.ai.generativelanguage.v1beta``) and the google-genai SDK's
``AutomaticActivityDetection``/``LiveSendRealtimeInputParameters``/``SessionResumptionUpdate``
types:

* URL ``wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.
  GenerativeService.BidiGenerateContent?key=<API key>``: the key is a query parameter (added
  here; ``self.url``, which is logged, never carries it).
* The first client message is ``{"setup": {...}}`` (model ``models/<name>``, ``generationConfig``,
  ``systemInstruction``, ``tools`` as ``functionDeclarations``, ``realtimeInputConfig``,
  ``inputAudioTranscription``/``outputAudioTranscription``, ``sessionResumption``); the server
  answers ``{"setupComplete": {}}`` and nothing else may be sent before it.
* Client messages after it: ``realtimeInput`` (``audio`` ``{data, mimeType:
  "audio/pcm;rate=16000"}``, ``activityStart``, ``activityEnd``), ``clientContent`` (``turns``,
  ``turnComplete``; it interrupts any current generation), ``toolResponse``
  (``functionResponses``: ``id``, ``name``, ``response`` object).
* Server messages: ``serverContent`` (``modelTurn.parts[].inlineData`` PCM16 24 kHz,
  ``interrupted``, ``generationComplete``, ``turnComplete``, ``inputTranscription``,
  ``outputTranscription``), ``toolCall`` (``functionCalls``: ``id``, ``name``, ``args``),
  ``toolCallCancellation``, ``goAway`` (``timeLeft``, a Duration such as ``"10s"``),
  ``sessionResumptionUpdate`` (``newHandle``, ``resumable``), ``usageMetadata``.
* With ``automaticActivityDetection.disabled`` the client marks turns with ``activityStart`` /
  ``activityEnd``; with the default ``activityHandling`` (START_OF_ACTIVITY_INTERRUPTS) an
  activity start cuts the model's answer off and the server says ``interrupted``.

How the neutral commands map (the bridge's own turns, ``turn_detection`` None): caller audio is
held on the box until the turn ends (an activity cannot be opened while the model answers without
cutting the answer off, and the bridge learns where a turn began only when it ends):
``commit_input`` sends ``activityStart``, the held audio (at most :data:`HOLD_MS`), then
``activityEnd`` (Gemini answers by itself; the ``create_response`` after it is a no-op). A
barge-in's ``cancel`` during an answer sends ``activityStart`` at once (Gemini's stop signal)
with the last :data:`BARGE_HOLD_MS` of held audio, and from then on the caller's audio streams
live into that activity until the commit. ``clear_input`` drops the held audio (audio already
in an open activity cannot be taken back). With the server's turns (server_vad) audio streams
as it comes, Gemini ends turns and answers them, and its ``interrupted`` becomes a
``SpeechStarted`` then a ``cancelled`` ``ResponseDone``, which drive the session's one cancel
path; ``cancel`` is a no-op (Gemini has already stopped). ``create_response`` with nothing to
answer (the greeting, the API's say) is a ``clientContent`` user turn with the instructions.
``truncate`` is a no-op: Gemini has no way to say what the caller heard. ``update_session``
and a ``goAway`` resume the session on a new connection with the latest resumption handle
(``setup.sessionResumption.handle``), between model turns when possible; the session never
sees it. A connection that drops while a handle is held is resumed the same way once before it
counts as lost. Caller audio arrives from the session at 24 kHz (``audio_format`` pcm16) and is
resampled to 16 kHz here; the model's 24 kHz is what the session plays.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import structlog
from sipcodecs import StreamResampler
from websockets.asyncio.client import ClientConnection

from sipbridge.realtime.providers import gemini_wire as wire
from sipbridge.realtime.upstream import (Capabilities, CloseInfo, ErrorEvent, ResponseCreated, ResponseDone,
                                         ServerEvent, SessionConfig, UpstreamError)
from sipbridge.realtime.wsconn import SocketSession

GEMINI_URL = ("wss://generativelanguage.googleapis.com/ws/"
              "google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent")
DEFAULT_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
HOLD_MS = 15000        # caller audio held for one turn at most (older is dropped, counted)
BARGE_HOLD_MS = 1000   # of it, sent after a barge-in's activityStart (the interruption's start)
ANSWER_WAIT_S = 5.0    # a turn handed over counts as being answered this long without a reply
CAPABILITIES = Capabilities(local_turns=True, server_turns=True, truncate=False,
                            server_cancels_on_speech=True, audio_formats=("pcm16",))


class GeminiUpstream(SocketSession):
    """One Gemini Live session behind the neutral interface (see the module docstring)."""

    capabilities = CAPABILITIES
    name = "GeminiUpstream"
    writer_name = "gemini-writer"
    setup_reply = "setupComplete"
    setup_stage = "setup"

    def __init__(self, url: str, model: str, api_key: str | None, session: SessionConfig,
                 on_event: Callable[[ServerEvent], None], connect_timeout: float = 3.0):
        super().__init__(url, api_key, connect_timeout,
                         structlog.get_logger().bind(component="realtime.gemini", url=url))
        self._model = model
        self._session = session
        self._on_event = on_event
        self._local = session.turn_detection is None
        self._mapper = wire.ServerMapper(server_turns=not self._local)
        self._to16 = StreamResampler(session.format.rate, wire.INPUT_RATE)
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self._activity = False          # an activityStart is open
        self._answer_due = 0.0          # loop time until which a handed-over turn counts as busy
        self._answer_pending = False    # the next create_response() is answered already
        self._handle: str | None = None
        self._resume: asyncio.Task[bool] | None = None
        self._going_away = False
        self._resume_wanted: str | None = None   # a resume waits for the model turn to end
        self.events_in = self.held_dropped = 0
        self.resumes = 0

    # -- life cycle (wsconn.SocketSession) ---------------------------------------------------
    @property
    def session(self) -> SessionConfig:
        return self._session

    def _target(self) -> str:
        return f"{self.url}{'&' if urlsplit(self.url).query else '?'}{urlencode({'key': self._api_key or ''})}"

    def _headers(self) -> list[tuple[str, str]]:
        return []   # the key goes in the query (_target), never in self.url

    async def _handshake(self, ws: ClientConnection, handle: str | None = None) -> None:
        """``setup`` (resuming ``handle`` if given), then wait for ``setupComplete``."""
        await ws.send(json.dumps(wire.setup(self._session, self._model, handle)))
        self.events_out += 1
        while True:
            mapped = self._mapper.feed(await ws.recv())
            self.events_in += 1
            if mapped.setup_complete:
                return
            self._log.warning("realtime.before_setup_complete", events=[type(e).__name__ for e in mapped.events])

    def _on_open(self) -> None:
        self._log.info("realtime.connected", model=self._model)

    def _ended(self, code: int | None, reason: str) -> None:
        self._log.info("realtime.closed", code=code, reason=reason, events_in=self.events_in,
                       events_out=self.events_out, resumes=self.resumes)

    def _write_failed(self) -> bool:
        self.dropped += 1   # the resume (or the drop) deals with the connection
        return True

    def _tasks(self) -> tuple[asyncio.Task | None, ...]:
        return (self._writer, self._resume)

    async def run(self) -> CloseInfo:
        """Read until the connection ends; a ``goAway`` or a drop with a resumption handle moves
        to a new connection instead (see the module docstring)."""
        while True:
            ws = self._ws
            if ws is None:
                raise UpstreamError("run() before connect()")
            code, reason = await self._read(ws)
            if self._state == "closed":
                return CloseInfo(code, reason)
            if self._resume is not None:
                await asyncio.gather(self._resume, return_exceptions=True)
            if self._ws is not ws:
                continue   # resumed on a new connection: read that one
            if (self._going_away or code not in (1000, 1001)) and self._handle and await self._resume_now("drop"):
                continue
            self._ended(code, reason)
            if code in (1000, 1001) and not self._going_away:
                return CloseInfo(code, reason)
            raise self._dropped(code, reason)

    # -- resumption ------------------------------------------------------------------------
    def _want_resume(self, why: str) -> None:
        """Resume now if no model turn is in progress, else when it ends (``_ingest``)."""
        if self._state != "open" or self._resume is not None:
            return
        if self._mapper.response_id is None:
            self._resume_wanted = None
            self._resume = asyncio.ensure_future(self._resume_now(why))
        else:
            self._resume_wanted = why

    async def _resume_now(self, why: str) -> bool:
        if self._state != "open" or not self._handle:
            self._log.warning("realtime.resume_impossible", why=why, handle=bool(self._handle))
            return False
        try:
            new = await self._open(self._handle)
        except UpstreamError as exc:
            self._log.warning("realtime.resume_failed", why=why, reason=str(exc))
            return False
        finally:
            self._resume = None
        if self._state == "closed":
            await new.close()
            return False
        old, self._ws = self._ws, new
        self._going_away = False
        self.resumes += 1
        if self._activity:   # the caller's turn goes on in the new connection
            self._queue.put_nowait(json.dumps(wire.activity_start()))
        self._log.info("realtime.resumed", why=why, resumes=self.resumes)
        if old is not None:
            await old.close()
        return True

    # -- the wire ------------------------------------------------------------------------
    def _ingest(self, message: str | bytes) -> None:
        self.events_in += 1
        mapped = self._mapper.feed(message)
        if mapped.handle:
            self._handle = mapped.handle
        for event in mapped.events:
            if isinstance(event, ResponseCreated):
                self._answer_due = 0.0
            try:
                self._on_event(event)
            except Exception:
                self._log.exception("realtime.on_event_failed", event_type=type(event).__name__)
        if mapped.go_away_ms is not None:
            self._log.info("realtime.go_away", time_left_ms=mapped.go_away_ms)
            self._going_away = True
            loop = asyncio.get_running_loop()
            self._want_resume("go_away")
            loop.call_later(max(mapped.go_away_ms / 1000 - 0.5, 0), self._go_away_deadline)
        elif self._resume_wanted and any(isinstance(e, ResponseDone) for e in mapped.events):
            self._want_resume(self._resume_wanted)

    def _go_away_deadline(self) -> None:
        if self._going_away and self._resume is None and self._state == "open":
            self._resume = asyncio.ensure_future(self._resume_now("go_away_deadline"))

    # -- local turns -----------------------------------------------------------------------
    def _busy(self) -> bool:
        return self._mapper.response_id is not None or asyncio.get_running_loop().time() < self._answer_due

    def _hold(self, pcm: bytes) -> None:
        self._held.append(pcm)
        self._held_bytes += len(pcm)
        limit = HOLD_MS * wire.INPUT_RATE * 2 // 1000
        while self._held_bytes > limit:
            self.held_dropped += len(old := self._held.popleft())
            self._held_bytes -= len(old)

    def _open_activity(self, keep_ms: int | None = None) -> None:
        """``activityStart`` and the held audio (its last ``keep_ms``, or all of it)."""
        self._send(wire.activity_start())
        self._activity = True
        held, self._held, self._held_bytes = b"".join(self._held), deque(), 0
        if keep_ms is not None:
            held = held[-keep_ms * wire.INPUT_RATE * 2 // 1000:]
        if held:
            self._send(wire.audio(held))

    # -- the neutral commands ----------------------------------------------------------------
    def send_audio(self, audio: bytes) -> None:
        pcm = self._to16.process(audio)
        if not pcm:
            return
        if not self._local or self._activity:
            self._send(wire.audio(pcm))
        else:
            self._hold(pcm)

    def commit_input(self) -> None:
        if not self._local:
            return
        if not self._activity:
            self._open_activity()
        self._send(wire.activity_end())
        self._activity = False
        self._answer_pending = True
        self._answer_due = asyncio.get_running_loop().time() + ANSWER_WAIT_S

    def clear_input(self) -> None:
        self._held, self._held_bytes = deque(), 0

    def create_response(self, instructions: str | None = None) -> None:
        if self._answer_pending and instructions is None:
            self._answer_pending = False   # Gemini answers a finished turn or a tool response itself
            return
        self._answer_pending = False
        self._send(wire.user_text(instructions or "Please go on."))
        self._answer_due = asyncio.get_running_loop().time() + ANSWER_WAIT_S

    def cancel(self, response_id: str | None) -> None:
        # server turns: Gemini stopped at its own activity start; local: activityStart is the stop
        if self._local and not self._activity and self._busy():
            self._answer_due = 0.0
            self._open_activity(BARGE_HOLD_MS)

    def truncate(self, item_id: str, heard_ms: int) -> None:
        """No-op: Gemini cannot be told what the caller heard (``capabilities.truncate``)."""

    def update_session(self, config: SessionConfig) -> None:
        if config == self._session:
            return
        self._session = config
        if (config.turn_detection is None) != self._local:
            self._local = config.turn_detection is None
            self._mapper.server_turns = not self._local
            if not self._local:   # Gemini's turns from the next connection: no activity to carry
                self._activity = False
                self._held, self._held_bytes = deque(), 0
        self._want_resume("update_session")

    def function_output(self, call_id: str, output: str) -> None:
        name = self._mapper.tool_names.pop(call_id, None)
        if name is None:
            self._log.warning("realtime.unknown_call_id", call_id=call_id)
            return
        self._send(wire.tool_response(call_id, name, output))
        self._answer_pending = True

    def fatal(self, error: ErrorEvent) -> bool:
        return True   # Gemini reports errors by closing the socket; nothing here is recoverable


def gemini_url(rc: Any) -> str:
    """``realtime.url`` or Google's endpoint (the key is added as ``?key=`` when connecting)."""
    return rc.url or GEMINI_URL


def model_of(rc: Any) -> str:
    """``realtime.model``; OpenAI's default name means :data:`DEFAULT_MODEL`."""
    return DEFAULT_MODEL if rc.model == "gpt-realtime" else rc.model


def factory(rc: Any, url: str, api_key: str | None, session: SessionConfig,
            on_event: Callable[[ServerEvent], None]) -> GeminiUpstream:
    """The registry's entry for ``gemini``."""
    return GeminiUpstream(url, model_of(rc), api_key, session, on_event,
                          connect_timeout=rc.connect_timeout_ms / 1000)
