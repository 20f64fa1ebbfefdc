"""Asyncio shell around :mod:`sipbridge.realtime.protocol`: one WebSocket to a model.

Life cycle: ``await connect()`` (upgrade, ``session.update``, wait for
``session.updated``), then ``await run()`` in a task (reads until the socket
closes, handing each parsed event to ``on_event``), ``send()``/``send_audio()``
from anywhere on the loop, ``await close()`` at hang-up.

Thread safety: every method is for the asyncio loop thread only. Code on other
threads (a PJSIP media callback) must hop with
``loop.call_soon_threadsafe(client.send_audio, pcm)``.

``send`` never blocks: it serialises the event and queues it; a writer task
drains the queue in order. Events queued before ``connect()`` finishes are sent
after ``session.updated``, so the session is configured before audio flows.
The server's rules are kept here (:mod:`sipbridge.realtime.rules`): a ``response.create``
while a response is active waits for its ``response.done``, and a ``session.update`` after
the model's first audio goes without ``voice``.
The queue is unbounded (24 kHz pcm16 is 48 kB/s, G.711 8 kB/s); ``pending`` shows its depth.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from http import HTTPStatus
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State

from sipbridge.realtime.events import (AudioDelta, ErrorEvent, Malformed, ResponseCreated, ResponseDone,
                                       ServerEvent, SessionUpdated)
from sipbridge.realtime.parser import parse_server_event
from sipbridge.realtime.protocol import SessionConfig, input_audio_append, session_update
from sipbridge.realtime.rules import ResponseGate, VoiceLock
from sipbridge.realtime.upstream import CloseInfo, UpstreamError  # noqa: F401 - re-exported

MAX_MESSAGE_BYTES = 16 * 2**20
_HINTS = {
    401: "API key missing or invalid",
    403: "API key has no access to this model or project",
    404: "wrong URL or unknown model",
    429: "rate limited or out of quota",
}


def with_model(url: str, model: str) -> str:
    """``url`` with ``model=<model>`` in its query, replacing any model already there."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "model"]
    query.append(("model", model))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refusal(url: str, status: int, body: bytes | None) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    hint = f" ({_HINTS[status]})" if status in _HINTS else ""
    text = f"upstream {url} refused the WebSocket upgrade: HTTP {status} {phrase}{hint}"
    snippet = (body or b"")[:200].decode("utf-8", "replace").strip()
    return f"{text}: {snippet}" if snippet else text


class RealtimeClient:
    """One Realtime session over a WebSocket. See the module docstring."""

    def __init__(
        self,
        url: str,
        model: str,
        api_key: str | None,
        session: SessionConfig,
        on_event: Callable[[ServerEvent], None],
        connect_timeout: float = 3.0,
        auth: str = "bearer",
        model_query: bool = True,
    ):
        # the provider's way (sipbridge/realtime/providers.py): OpenAI takes the model as
        # ?model= and the key as a bearer token; Azure's URL is complete and its key goes in
        # the api-key header (or an Entra token as a bearer token)
        self.url = with_model(url, model or session.model) if model_query else url
        self._auth = auth
        self._openai = model_query
        self._api_key = api_key
        self._session = session
        self._sample_bytes = session.format.sample_bytes  # of both directions' audio
        self._on_event = on_event
        self._connect_timeout = connect_timeout
        self._ws: ClientConnection | None = None
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._state = "new"  # new -> connecting -> open -> closed, or connecting -> failed
        self._log = structlog.get_logger().bind(component="realtime.client", url=self.url, api=session.api)
        self.responses = ResponseGate()           # one response at a time
        self.voice = VoiceLock(session.voice)     # no voice in session.update after audio
        self.events_in = 0
        self.events_out = 0
        self.malformed = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Events queued but not yet written to the socket."""
        return self._queue.qsize()

    @property
    def session(self) -> SessionConfig:
        """The session configuration ``connect()`` sends."""
        return self._session

    @property
    def connected(self) -> bool:
        return self._state == "open" and self._ws is not None and self._ws.state is State.OPEN

    def _headers(self) -> list[tuple[str, str]]:
        headers = []
        if self._api_key and self._auth == "api-key":
            headers.append(("api-key", self._api_key))
        elif self._api_key:
            headers.append(("Authorization", f"Bearer {self._api_key}"))
        if self._session.api == "beta" and self._openai:  # OpenAI's header; Azure goes by api-version
            headers.append(("OpenAI-Beta", "realtime=v1"))
        return headers

    async def connect(self) -> None:
        """Open the socket and configure the session, all within ``connect_timeout``.

        Waits for ``session.updated`` (the server sends ``session.created`` first,
        then answers our ``session.update``); both are passed to ``on_event``.
        Raises :class:`UpstreamError` on HTTP refusal (401 says the key is
        missing or wrong), unreachable host, ``error`` reply, close, or timeout.
        """
        if self._state != "new":
            raise UpstreamError(f"connect() on a RealtimeClient in state {self._state!r}; make a new one")
        self._state = "connecting"
        try:
            ws = await self._open()
        except BaseException:
            if self._state == "connecting":
                self._state = "failed"
            self.dropped += self._queue.qsize()
            raise
        if self._state == "closed":  # close() was called while we were connecting
            await ws.close()
            raise UpstreamError("RealtimeClient closed while connecting")
        self._ws, self._state = ws, "open"
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(ws), name="realtime-writer")
        self._log.info("realtime.connected", events_in=self.events_in)

    async def _open(self) -> ClientConnection:
        """Upgrade + handshake under one deadline; every failure becomes UpstreamError."""
        ws: ClientConnection | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                ws = await ws_connect(
                    self.url,
                    additional_headers=self._headers(),
                    open_timeout=None,
                    close_timeout=2.0,
                    max_size=MAX_MESSAGE_BYTES,
                    proxy=None if _is_loopback(self.url) else True,
                    # no permessage-deflate: zlib on every append and delta cost more CPU than
                    # the bridge's whole send path (py-spy, bench/README.md), to save ~25 % of
                    # the bytes of base64 audio
                    compression=None,
                )
                await self._handshake(ws)
                return ws
        except TimeoutError:
            _abort(ws)
            stage = "no session.updated" if ws is not None else "could not open the WebSocket"
            raise UpstreamError(f"{stage} from upstream {self.url} within {self._connect_timeout:g} s") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise UpstreamError(_refusal(self.url, status, exc.response.body), status=status) from None
        except (OSError, InvalidURI, InvalidHandshake) as exc:
            _abort(ws)
            raise UpstreamError(f"cannot connect to upstream {self.url}: {exc}") from None
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            reason = exc.rcvd.reason if exc.rcvd else ""
            raise UpstreamError(
                f"upstream {self.url} closed during session setup (code {code}) {reason}".rstrip(), close_code=code
            ) from None
        except BaseException:
            _abort(ws)
            raise

    async def _handshake(self, ws: ClientConnection) -> None:
        update = session_update(self._session)
        await ws.send(json.dumps(update))
        self.events_out += 1
        while True:
            event = self._ingest(await ws.recv())
            if isinstance(event, SessionUpdated):
                return
            if isinstance(event, ErrorEvent):
                _abort(ws)
                raise UpstreamError(f"upstream rejected session.update: {event.code}: {event.message}")

    def send(self, event: dict[str, Any]) -> None:
        """Queue one client event (a builder's dict). Never blocks. Before and
        during ``connect()`` events wait in the queue; after ``close()``, a
        failed connect or a dropped socket they are counted in ``dropped``."""
        if self._state in ("failed", "closed") or (self._writer is not None and self._writer.done()):
            self.dropped += 1
            return
        etype = event.get("type")
        if etype == "response.create" and not self.responses.offer(event):
            self._log.info("realtime.response_create_held", active=self.responses.active,
                           waiting=len(self.responses.waiting))
            return
        if etype == "session.update":
            event, refused = self.voice.filter(event)
            if refused is not None:
                self._log.warning("realtime.voice_fixed", asked=refused, voice=self.voice.voice,
                                  why="the voice cannot change after the model's first audio")
        self._queue.put_nowait(json.dumps(event))

    def _release(self, event: dict[str, Any] | None) -> None:
        """A held ``response.create`` whose turn has come: queued now, ahead of what the event
        handler sends in reply to the same server event."""
        if event is not None and self._state not in ("failed", "closed"):
            self._queue.put_nowait(json.dumps(event))

    def send_audio(self, audio: bytes) -> None:
        """Queue ``input_audio_buffer.append`` of ``audio`` in the session's input format
        (pcm16 LE at ``session.input_rate``, or G.711 at 8 kHz)."""
        self.send(input_audio_append(audio, self._sample_bytes))

    async def _write_loop(self, ws: ClientConnection) -> None:
        while True:
            text = await self._queue.get()
            try:
                await ws.send(text)
            except ConnectionClosed:
                self.dropped += 1 + self._queue.qsize()
                self._log.info("realtime.writer_stopped", dropped=self.dropped)
                return
            self.events_out += 1

    def _ingest(self, message: str | bytes) -> ServerEvent:
        event = parse_server_event(message, self._sample_bytes)
        self.events_in += 1
        if isinstance(event, Malformed):
            self.malformed += 1
            self._log.warning("realtime.malformed", reason=event.reason)
        elif isinstance(event, ErrorEvent):
            self._log.warning("realtime.server_error", type=event.kind, code=event.code, message=event.message,
                              event_id=event.event_id)
            self._release(self.responses.refused(event.event_id, event.code))
        elif isinstance(event, AudioDelta):
            self.voice.heard_audio()
        elif isinstance(event, ResponseCreated):
            self.responses.created(event.response_id)
        elif isinstance(event, ResponseDone):
            self._release(self.responses.done(event.response_id))
        try:
            self._on_event(event)
        except Exception:
            self._log.exception("realtime.on_event_failed", event_type=type(event).__name__)
        return event

    async def run(self) -> CloseInfo:
        """Read and dispatch until the socket closes. Returns :class:`CloseInfo`
        on a clean close (1000/1001 or our ``close()``); raises
        :class:`UpstreamError` with ``close_code`` on any other ending."""
        ws = self._ws
        if ws is None:
            raise UpstreamError("run() before connect()")
        try:
            async for message in ws:
                self._ingest(message)
        except ConnectionClosed:
            pass
        code = None if ws.close_code is None else int(ws.close_code)
        reason = ws.close_reason or ""
        self._log.info("realtime.closed", code=code, reason=reason, events_in=self.events_in,
                       events_out=self.events_out, malformed=self.malformed)
        if self._state == "closed" or code in (1000, 1001):
            return CloseInfo(code, reason)
        raise UpstreamError(f"upstream {self.url} dropped the connection (code {code}) {reason}".rstrip(),
                            close_code=code)

    async def close(self) -> None:
        """Stop the writer and close the socket (bounded by a 2 s close timeout).
        Idempotent; queued events are dropped."""
        if self._state == "closed":
            return
        self._state = "closed"
        self.dropped += self._queue.qsize()
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()


def _abort(ws: ClientConnection | None) -> None:
    """Drop a half-open connection on an error path without waiting."""
    if ws is not None and ws.transport is not None:
        ws.transport.abort()
