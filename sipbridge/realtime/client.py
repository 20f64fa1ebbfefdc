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
The socket itself (dial, deadline, writer, reader, close) is
:class:`~sipbridge.realtime.wsconn.SocketSession`'s; this module adds the OpenAI handshake, the
server's rules and the parsing of its events.
"""

from __future__ import annotations

import json
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog
from websockets.asyncio.client import ClientConnection

from sipbridge.realtime.events import (AudioDelta, ErrorEvent, Malformed, ResponseCreated, ResponseDone,
                                       ServerEvent, SessionUpdated)
from sipbridge.realtime.parser import parse_server_event
from sipbridge.realtime.protocol import SessionConfig, input_audio_append, session_update
from sipbridge.realtime.rules import ResponseGate, VoiceLock
from sipbridge.realtime.upstream import CloseInfo, UpstreamError  # noqa: F401 - re-exported
from sipbridge.realtime.wsconn import SocketSession


def with_model(url: str, model: str) -> str:
    """``url`` with ``model=<model>`` in its query, replacing any model already there."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "model"]
    query.append(("model", model))
    return urlunsplit(parts._replace(query=urlencode(query)))


class RealtimeClient(SocketSession):
    """One Realtime session over a WebSocket. See the module docstring."""

    name = "RealtimeClient"
    writer_name = "realtime-writer"

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
        url = with_model(url, model or session.model) if model_query else url
        super().__init__(url, api_key, connect_timeout,
                         structlog.get_logger().bind(component="realtime.client", url=url, api=session.api))
        self._auth = auth
        self._openai = model_query
        self._session = session
        self._sample_bytes = session.format.sample_bytes  # of both directions' audio
        self._on_event = on_event
        self.responses = ResponseGate()           # one response at a time
        self.voice = VoiceLock(session.voice)     # no voice in session.update after audio
        self.events_in = 0
        self.malformed = 0

    @property
    def session(self) -> SessionConfig:
        """The session configuration ``connect()`` sends."""
        return self._session

    def _headers(self) -> list[tuple[str, str]]:
        headers = []
        if self._api_key and self._auth == "api-key":
            headers.append(("api-key", self._api_key))
        elif self._api_key:
            headers.append(("Authorization", f"Bearer {self._api_key}"))
        if self._session.api == "beta" and self._openai:  # OpenAI's header; Azure goes by api-version
            headers.append(("OpenAI-Beta", "realtime=v1"))
        return headers

    def _on_open(self) -> None:
        self._log.info("realtime.connected", events_in=self.events_in)

    async def _handshake(self, ws: ClientConnection) -> None:
        update = session_update(self._session)
        await ws.send(json.dumps(update))
        self.events_out += 1
        while True:
            event = self._ingest(await ws.recv())
            if isinstance(event, SessionUpdated):
                return
            if isinstance(event, ErrorEvent):   # SocketSession drops the socket
                raise UpstreamError(f"upstream rejected session.update: {event.code}: {event.message}")

    def send(self, event: dict[str, Any]) -> None:
        """Queue one client event (a builder's dict). Never blocks. Before and
        during ``connect()`` events wait in the queue; after ``close()``, a
        failed connect or a dropped socket they are counted in ``dropped``."""
        if self._refuse():
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

    def _write_failed(self) -> bool:
        super()._write_failed()
        self._log.info("realtime.writer_stopped", dropped=self.dropped)
        return False

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

    def _ended(self, code: int | None, reason: str) -> None:
        self._log.info("realtime.closed", code=code, reason=reason, events_in=self.events_in,
                       events_out=self.events_out, malformed=self.malformed)
