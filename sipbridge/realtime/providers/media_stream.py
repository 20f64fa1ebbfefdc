"""``realtime.provider: media_stream``: any bot that speaks Twilio Media Streams, behind SIP.

sipbridge plays Twilio's part of a bidirectional (``<Connect><Stream>``) Media Stream toward the
bot's WebSocket at ``realtime.url`` (the messages, their fields and where they are documented:
:mod:`sipbridge.realtime.providers.twilio_wire`). On connect it sends ``connected`` and
``start`` (made-up but stable ``CA``/``MZ``/``AC`` ids; ``customParameters`` ``caller``,
``called``, ``call_id`` (SIP Call-ID) and ``uid``; ``audio/x-mulaw`` 8 kHz mono), then the
caller's audio as 20 ms ``media`` messages with sequence numbers, chunks and timestamps, each
caller digit as ``dtmf``, and ``stop`` before closing at hang-up. ``realtime.audio_format`` must
be ``g711_ulaw``: the session's caller audio and the bot's audio are then the wire's bytes.

From the bot: ``media`` -> :class:`AudioDelta` of a made-up response (a new one after each
``clear`` or after :data:`TURN_GAP_MS` without audio; :class:`~.twilio_wire.BotTurns`);
``mark`` -> held, and sent back once the playout has handed the audio before it to RTP and two
more frames have gone out (polled every 20 ms through the call's ``played_ms`` and
``frames_out``, :class:`~sipbridge.realtime.upstream.CallContext`; :class:`~.twilio_wire.Marks`),
or at once when that audio is dropped (a ``clear``, or any cancel of the session's); ``clear`` ->
the response ends (cancelled) and :class:`PlayoutClear` makes the session run its one cancel
path, so the next packet is silent. Messages that are not the bot's are refused, counted
(``refused``) and logged; the call goes on.

The bot takes its own turns and decides its own interruptions: ``commit_input``,
``clear_input``, ``create_response``, ``update_session`` and ``function_output`` have no Media
Streams message and do nothing; ``truncate`` cannot be said. ``capabilities.provider_clears``:
the session's local barge-in only pauses the line and waits ``clear_wait_ms``
(``realtime.media_stream_resume_ms``) for the bot's ``clear``; if the bot keeps talking
instead, the agent resumes where it paused.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

import structlog
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from sipbridge.realtime.providers.twilio_wire import (BotClear, BotMark, BotMedia, BotRefused, BotTurns,
                                                      Marks, Outbound, parse_bot, sid)
from sipbridge.realtime.upstream import (CallContext, Capabilities, ErrorEvent, Malformed, PlayoutClear,
                                         ServerEvent, SessionConfig, UpstreamError)
from sipbridge.realtime.wsconn import SocketSession

CAPABILITIES = Capabilities(local_turns=False, server_turns=True, truncate=False,
                            server_cancels_on_speech=True, audio_formats=("g711_ulaw",),
                            response_instructions=False, provider_clears=True)
TURN_GAP_MS = 500      # the bot silent this long: its made-up response is complete
POLL_S = 0.02          # marks are checked against the playout this often while any is held
MAX_MESSAGE_BYTES = 4 * 2**20


class MediaStreamUpstream(SocketSession):
    """One Media Stream toward one bot (see the module docstring)."""

    capabilities = CAPABILITIES
    name = "media stream"
    writer_name = "media-stream-writer"
    max_message_bytes = MAX_MESSAGE_BYTES
    use_proxy = False
    yield_between_messages = True   # a clear's cancel path runs before the next message

    def __init__(self, url: str, api_key: str | None, session: SessionConfig,
                 on_event: Callable[[ServerEvent], None], *, connect_timeout: float = 3.0,
                 clear_wait_ms: int = 1500, clock: Callable[[], float] | None = None):
        super().__init__(url, api_key, connect_timeout,
                         structlog.get_logger().bind(component="realtime.media_stream", url=url))
        self.clear_wait_ms = clear_wait_ms
        self._session = session
        self._on_event = on_event
        self._clock = clock
        self._context: CallContext | None = None
        self._out: Outbound | None = None
        self._turns: BotTurns | None = None
        self.marks = Marks()
        self._timer: asyncio.TimerHandle | None = None
        self.received = 0
        self.refused = 0

    @property
    def sent(self) -> int:
        """Messages written to the bot (``connected`` and ``start`` included)."""
        return self.events_out

    @property
    def session(self) -> SessionConfig:
        return self._session

    def bind(self, context: CallContext) -> None:
        """The call this stream carries (its ids and numbers go into ``start``)."""
        self._context = context

    def _outbound(self) -> Outbound:
        if self._out is None:
            ctx = self._context or CallContext(call_id="", uid=str(id(self)), caller="", called="",
                                               played_ms=lambda item: 0, frames_out=lambda: 0)
            seed = f"{ctx.uid}/{id(self)}"   # a reconnect is a new stream of the same call
            self._out = Outbound(stream_sid=sid("MZ", seed), call_sid=sid("CA", ctx.uid),
                                 account_sid=sid("AC", "sipbridge"),
                                 parameters={"caller": ctx.caller, "called": ctx.called,
                                             "call_id": ctx.call_id, "uid": ctx.uid})
            self._turns = BotTurns(self._out.stream_sid[-8:], TURN_GAP_MS)
            self._start = self._out.start()   # sequence 1, whatever is queued before connect()
        return self._out

    # -- life cycle (wsconn.SocketSession) in the bot's words ---------------------------------
    async def connect(self) -> None:
        if self._state == "new" and self._session.audio_format != "g711_ulaw":   # the config check says so first
            self._state = "failed"
            raise UpstreamError("provider media_stream speaks audio/x-mulaw: realtime.audio_format "
                                f"must be g711_ulaw, got {self._session.audio_format}")
        await super().connect()

    async def _handshake(self, ws: ClientConnection) -> None:
        out = self._outbound()
        await ws.send(json.dumps(out.connected()))
        await ws.send(json.dumps(self._start))
        self.events_out += 2

    def _on_open(self) -> None:
        out = self._outbound()
        self._log.info("media_stream.started", stream_sid=out.stream_sid, call_sid=out.call_sid)

    def _timed_out(self, opened: bool) -> UpstreamError:
        return UpstreamError(f"could not open the bot's WebSocket {self.url} within {self._timeout:g} s")

    def _refused(self, status: int, body: bytes | None) -> UpstreamError:
        return UpstreamError(f"bot {self.url} refused the WebSocket upgrade: HTTP {status}", status=status)

    def _unreachable(self, exc: Exception) -> UpstreamError:
        return UpstreamError(f"cannot connect to the bot {self.url}: {exc}")

    def _closed_in_setup(self, code: int | None, reason: str, exc: ConnectionClosed) -> UpstreamError:
        return self._unreachable(exc)

    def _ended(self, code: int | None, reason: str) -> None:
        self._stop_timer()
        self._log.info("media_stream.closed", code=code, reason=reason, received=self.received,
                       sent=self.sent, refused=self.refused)

    def _dropped(self, code: int | None, reason: str) -> UpstreamError:
        return UpstreamError(f"bot {self.url} dropped the stream (code {code}) {reason}".rstrip(), close_code=code)

    async def close(self) -> None:
        """Send ``stop`` (after what is queued), then close the socket."""
        if self._state == "closed":
            return
        was_open, self._state = self._state == "open", "closed"
        self._stop_timer()
        if not was_open or self._ws is None:
            return
        self._queue.put_nowait(json.dumps(self._outbound().stop()))
        self._queue.put_nowait(None)
        if self._writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), 2.0)
            except (TimeoutError, asyncio.CancelledError):
                self._writer.cancel()
        await self._ws.close()

    # -- from the bot --------------------------------------------------------------------------
    def _now_ms(self) -> float:
        clock = self._clock or asyncio.get_running_loop().time
        return clock() * 1000

    def _ingest(self, text: str | bytes) -> None:
        self.received += 1
        out, turns = self._outbound(), self._turns
        msg = parse_bot(text, out.stream_sid)
        if isinstance(msg, BotMedia):
            self._emit(turns.audio(msg.ulaw, self._now_ms()))
            self._arm()
        elif isinstance(msg, BotMark):
            for name in self.marks.add(msg.name, turns.position()):
                self._send(out.mark(name))
            self._arm()
        elif isinstance(msg, BotClear):
            self._emit(turns.clear())
            self._emit([PlayoutClear()])
            self._echo(self.marks.flush())
        elif isinstance(msg, BotRefused):
            self.refused += 1
            self._log.warning("media_stream.refused", reason=msg.reason)
            self._emit([Malformed(f"media_stream: {msg.reason}")])

    def _emit(self, events: list[ServerEvent]) -> None:
        for event in events:
            try:
                self._on_event(event)
            except Exception:
                self._log.exception("media_stream.on_event_failed", event_type=type(event).__name__)

    def _echo(self, names: list[str]) -> None:
        out = self._outbound()
        for name in names:
            self._send(out.mark(name))

    def _arm(self) -> None:
        if self._timer is None and self._state == "open":
            self._timer = asyncio.get_running_loop().call_later(POLL_S, self._poll)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _poll(self) -> None:
        """Every 20 ms while the bot is talking or a mark is held: end a response the bot went
        quiet on, and send back the marks whose audio has been played."""
        self._timer = None
        if self._state != "open":
            return
        self._emit(self._turns.tick(self._now_ms()))
        if self._context is not None:
            self._echo(self.marks.due(self._context.played_ms, self._context.frames_out()))
        if len(self.marks) or self._turns.response_id is not None:
            self._arm()

    # -- commands from the session ---------------------------------------------------------------
    def send_audio(self, audio: bytes) -> None:
        for message in self._outbound().media(audio):
            self._send(message)

    def send_dtmf(self, digit: str) -> None:
        self._send(self._outbound().dtmf(digit))

    def cancel(self, response_id: str | None) -> None:
        """Nothing to tell the bot (Twilio has no such message); the playout was dropped, so the
        marks held in it are sent back, as Twilio does when audio is cleared."""
        self._echo(self.marks.flush())

    def truncate(self, item_id: str, heard_ms: int) -> None:
        pass   # the bot keeps its own record of what was said

    def commit_input(self) -> None:
        pass   # the bot takes its own turns

    def clear_input(self) -> None:
        pass

    def create_response(self, instructions: str | None = None) -> None:
        pass

    def update_session(self, config: SessionConfig) -> None:
        self._session = config

    def function_output(self, call_id: str, output: str) -> None:
        pass

    def fatal(self, error: ErrorEvent) -> bool:
        return False   # a refused message is counted; the stream goes on


def factory(rc: Any, url: str, api_key: str | None, session: SessionConfig,
            on_event: Callable[[ServerEvent], None]) -> MediaStreamUpstream:
    """The registry's entry for ``media_stream``."""
    return MediaStreamUpstream(url, api_key, session, on_event,
                               connect_timeout=rc.connect_timeout_ms / 1000,
                               clear_wait_ms=rc.media_stream_resume_ms)
