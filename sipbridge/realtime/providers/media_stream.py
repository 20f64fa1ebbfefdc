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
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from sipbridge.realtime.providers.twilio_wire import (BotClear, BotMark, BotMedia, BotRefused, BotTurns,
                                                      Marks, Outbound, parse_bot, sid)
from sipbridge.realtime.upstream import (CallContext, Capabilities, CloseInfo, ErrorEvent, Malformed,
                                         PlayoutClear, ServerEvent, SessionConfig, UpstreamError)

CAPABILITIES = Capabilities(local_turns=False, server_turns=True, truncate=False,
                            server_cancels_on_speech=True, audio_formats=("g711_ulaw",),
                            response_instructions=False, provider_clears=True)
TURN_GAP_MS = 500      # the bot silent this long: its made-up response is complete
POLL_S = 0.02          # marks are checked against the playout this often while any is held
MAX_MESSAGE_BYTES = 4 * 2**20


class MediaStreamUpstream:
    """One Media Stream toward one bot (see the module docstring)."""

    capabilities = CAPABILITIES

    def __init__(self, url: str, api_key: str | None, session: SessionConfig,
                 on_event: Callable[[ServerEvent], None], *, connect_timeout: float = 3.0,
                 clear_wait_ms: int = 1500, clock: Callable[[], float] | None = None):
        self.url = url
        self.clear_wait_ms = clear_wait_ms
        self._api_key = api_key
        self._session = session
        self._on_event = on_event
        self._timeout = connect_timeout
        self._clock = clock
        self._context: CallContext | None = None
        self._out: Outbound | None = None
        self._turns: BotTurns | None = None
        self.marks = Marks()
        self._ws: ClientConnection | None = None
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._writer: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._state = "new"   # new -> open -> closed (or failed)
        self._log = structlog.get_logger().bind(component="realtime.media_stream", url=url)
        self.sent = 0
        self.received = 0
        self.refused = 0
        self.dropped = 0

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

    # -- life cycle --------------------------------------------------------------------------
    async def connect(self) -> None:
        if self._state != "new":
            raise UpstreamError(f"connect() on a media stream in state {self._state!r}")
        if self._session.audio_format != "g711_ulaw":   # the config check says so first
            self._state = "failed"
            raise UpstreamError("provider media_stream speaks audio/x-mulaw: realtime.audio_format "
                                f"must be g711_ulaw, got {self._session.audio_format}")
        out = self._outbound()
        headers = [("Authorization", f"Bearer {self._api_key}")] if self._api_key else []
        try:
            async with asyncio.timeout(self._timeout):
                ws = await ws_connect(self.url, additional_headers=headers, open_timeout=None,
                                      close_timeout=2.0, max_size=MAX_MESSAGE_BYTES, compression=None,
                                      proxy=None)
                await ws.send(json.dumps(out.connected()))
                await ws.send(json.dumps(self._start))
        except TimeoutError:
            self._state = "failed"
            raise UpstreamError(f"could not open the bot's WebSocket {self.url} within {self._timeout:g} s") from None
        except InvalidStatus as exc:
            self._state = "failed"
            status = exc.response.status_code
            raise UpstreamError(f"bot {self.url} refused the WebSocket upgrade: HTTP {status}",
                                status=status) from None
        except (OSError, InvalidURI, InvalidHandshake, ConnectionClosed) as exc:
            self._state = "failed"
            raise UpstreamError(f"cannot connect to the bot {self.url}: {exc}") from None
        if self._state == "closed":
            await ws.close()
            raise UpstreamError("media stream closed while connecting")
        self.sent += 2
        self._ws, self._state = ws, "open"
        self._writer = asyncio.get_running_loop().create_task(self._write(ws), name="media-stream-writer")
        self._log.info("media_stream.started", stream_sid=out.stream_sid, call_sid=out.call_sid)

    async def run(self) -> CloseInfo:
        ws = self._ws
        if ws is None:
            raise UpstreamError("run() before connect()")
        try:
            async for message in ws:
                self.received += 1
                self._ingest(message)
                await asyncio.sleep(0)   # a clear's cancel path runs before the next message
        except ConnectionClosed:
            pass
        self._stop_timer()
        code = None if ws.close_code is None else int(ws.close_code)
        reason = ws.close_reason or ""
        self._log.info("media_stream.closed", code=code, reason=reason, received=self.received,
                       sent=self.sent, refused=self.refused)
        if self._state == "closed" or code in (1000, 1001):
            return CloseInfo(code, reason)
        raise UpstreamError(f"bot {self.url} dropped the stream (code {code}) {reason}".rstrip(),
                            close_code=code)

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

    async def _write(self, ws: ClientConnection) -> None:
        while True:
            text = await self._queue.get()
            if text is None:
                return
            try:
                await ws.send(text)
            except ConnectionClosed:
                self.dropped += 1 + self._queue.qsize()
                return
            self.sent += 1

    def _send(self, message: dict[str, Any]) -> None:
        if self._state in ("failed", "closed") or (self._writer is not None and self._writer.done()):
            self.dropped += 1
            return
        self._queue.put_nowait(json.dumps(message))

    # -- from the bot --------------------------------------------------------------------------
    def _now_ms(self) -> float:
        clock = self._clock or asyncio.get_running_loop().time
        return clock() * 1000

    def _ingest(self, text: str | bytes) -> None:
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
