"""The Smallest AI Hydra adapter: ``realtime.provider: hydra``.

What Smallest AI documents (docs.smallest.ai, "Speech to Speech (Hydra)": "WebSocket connection",
"Managing sessions", "Audio I/O", "Turn detection & barge-in", "Tool calling", "Errors &
reconnection", and the API reference page "Hydra (Realtime / WebSocket)"; read December 2026):

* endpoint ``wss://api.smallest.ai/waves/v1/s2s?model=hydra``; the key may go in ``&api_key=``
  or, per the API reference, as ``Authorization: Bearer <key>``. We send the header (a key in
  the URL would land in logs); a bad key is HTTP 401 at the upgrade. JSON text frames only.
* handshake: the server's first frame is ``session.created``; the client sends exactly one
  ``session.configure`` (``instructions``, ``voice``, ``tools``, ``generate_initial_response``;
  unknown keys silently ignored there) and waits for ``session.configured`` (audio sent before it
  is silently dropped). Mid-session ``session.update`` applies ``tools`` only (unknown keys:
  ``invalid_frame``), answered by ``session.updated`` only when something changed.
* audio: in, pcm16 LE mono 16 kHz, base64 in ``input_audio_buffer.append.audio``, 20-40 ms
  chunks (too small: ``invalid_audio``); out, pcm16 LE mono 48 kHz in
  ``response.output_audio.delta``. Voices: wren, sloane, marlowe, reed, knox, tate.
* turns are always the server's; the client streams continuously and sends nothing between
  turns. Per turn: ``input_audio_buffer.speech_started`` {audio_start_ms, item_id},
  ``conversation.item.added`` (user), ``speech_stopped``, ``conversation.item.done`` (user,
  completed), ``response.created``, audio deltas, ``response.output_audio.done``,
  ``response.done``. Barge-in: ``speech_started`` and the server cancels the response itself
  (``response.done`` status ``cancelled``, reason ``interrupted``); the client drops the old
  response's scheduled audio at the next ``response.created``. ``speech_started`` also fires on
  background noise; a turn the detector then rejects ends as a user ``conversation.item.done``
  with status ``incomplete``. ``response.cancel`` answers ``response.done`` cancelled /
  ``client_cancelled`` and is a no-op when nothing is in flight. No transcripts, no truncate.
* tools: ``response.function_call_arguments.done`` {call_id, name, arguments}; the result goes
  back as a ``conversation.item.create`` of a ``function_call_output`` plus ``response.create``.
* errors: ``{"type": "error", "error": {"type", "code", "message", "event_id"}}``; the session
  stays usable unless a close follows (1013 after ``server_full``; 1000 after ~30 s idle).

Assumed where the docs are silent: a delta's ``response_id``/``item_id`` (used when present; else
the response in progress and a made-up item id), the exact shape of ``conversation.item.done``
(``item.id``, ``item.role``, ``item.status``), and that ``response.create`` takes no per-response
instructions (the greeting's text is dropped: put the opening line in the instructions). How far
into a response the server cancels on noise is its own affair: we never relied on it.

How the bridge uses it: turn detection must be ``server_vad`` (the server's; its threshold and
timings are not settable). The bridge's pause-first barge-in pauses on Hydra's ``speech_started``
and clears on its own cancel, a new ``response.created`` or the local detector's confirmation;
an ``incomplete`` user item resumes the answer (:mod:`sipbridge.bargein`). ``cancel`` sends
``response.cancel`` (harmless when Hydra already cancelled); ``truncate`` does nothing (there is
no truncate: Hydra believes the whole answer was heard). The session's audio format is kept; this
adapter resamples it to 16 kHz for Hydra and Hydra's 48 kHz back to it, and sends 20-40 ms appends.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import structlog
from sipcodecs import StreamResampler
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from sipbridge.realtime.providers import hydra_wire as wire
from sipbridge.realtime.rules import ResponseGate
from sipbridge.realtime.upstream import (AudioDelta, Capabilities, ErrorEvent, ResponseCreated, ResponseDone,
                                         ServerEvent, SessionConfig, UpstreamError)
from sipbridge.realtime.wsconn import SocketSession

CAPABILITIES = Capabilities(local_turns=False, server_turns=True, truncate=False,
                            server_cancels_on_speech=True,
                            audio_formats=("pcm16", "g711_ulaw", "g711_alaw"),
                            response_instructions=False)


def hydra_url(base: str | None) -> str:
    """``base`` (default :data:`~hydra_wire.URL`) with ``model=hydra`` in its query, no key."""
    parts = urlsplit(base or wire.URL)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("model", "api_key")]
    return urlunsplit(parts._replace(query=urlencode(query + [("model", wire.MODEL)])))


class HydraUpstream(SocketSession):
    """One Hydra session behind the neutral interface (see the module docstring)."""

    capabilities = CAPABILITIES
    name = "HydraUpstream"
    writer_name = "hydra-writer"
    peer = "Hydra"

    def __init__(self, url: str, api_key: str | None, session: SessionConfig,
                 on_event: Callable[[ServerEvent], None], connect_timeout: float = 3.0):
        url = hydra_url(url)
        super().__init__(url, api_key, connect_timeout,
                         structlog.get_logger().bind(component="realtime.hydra", url=url))
        self._session = session
        self._fmt = session.format
        self._on_event = on_event
        self._reader = wire.Reader()
        self._up = StreamResampler(self._fmt.rate, wire.INPUT_RATE)
        self._carry = np.zeros(0, dtype=np.int16)        # < 20 ms of 16 kHz audio, sent next time
        self._down: dict[str, StreamResampler] = {}      # item -> 48 kHz -> the session's rate
        self._tools = session.tools
        self.responses = ResponseGate()

    @property
    def session(self) -> SessionConfig:
        return self._session

    # -- the socket (wsconn.SocketSession) in Hydra's words --------------------------------------
    async def _handshake(self, ws: ClientConnection) -> None:
        first = self._reader.handshake(await ws.recv())
        if not isinstance(first, dict) or first.get("type") != "session.created":
            raise UpstreamError(f"Hydra's first frame was not session.created: {first!r}"[:300])
        await ws.send(json.dumps(wire.configure(self._session)))
        while True:
            frame = self._reader.handshake(await ws.recv())
            if isinstance(frame, dict) and frame.get("type") == "session.configured":
                return
            if isinstance(frame, ErrorEvent):
                raise UpstreamError(f"Hydra refused session.configure: {frame.code}: {frame.message}")

    def _timed_out(self, opened: bool) -> UpstreamError:
        return UpstreamError(f"no session.configured from Hydra {self.url} within {self._timeout:g} s")

    def _refused(self, status: int, body: bytes | None) -> UpstreamError:
        hint = " (API key missing or invalid)" if status == 401 else ""
        return UpstreamError(f"Hydra {self.url} refused the WebSocket upgrade: HTTP {status}{hint}", status=status)

    def _closed_in_setup(self, code: int | None, reason: str, exc: ConnectionClosed) -> UpstreamError:
        return UpstreamError(f"Hydra {self.url} closed during the handshake (code {code})", close_code=code)

    def _ended(self, code: int | None, reason: str) -> None:
        self._log.info("realtime.closed", code=code, reason=reason, stale_deltas=self._reader.stale_deltas)

    # -- frames -------------------------------------------------------------------------------
    def _ingest(self, message: str | bytes) -> None:
        event = self._reader.read(message)
        if event is None:
            return
        if isinstance(event, AudioDelta):
            event = self._to_session_rate(event)
        elif isinstance(event, ResponseCreated):
            self._down.clear()   # the previous response's audio is stale now (its deltas are dropped)
            self.responses.created(event.response_id)
        elif isinstance(event, ResponseDone):
            self._release(self.responses.done(event.response_id))
        elif isinstance(event, ErrorEvent):
            self._log.warning("realtime.server_error", type=event.kind, code=event.code, message=event.message)
            self._release(self.responses.refused(event.event_id, event.code))
        try:
            self._on_event(event)
        except Exception:
            self._log.exception("realtime.on_event_failed", event_type=type(event).__name__)

    def _release(self, frame: dict[str, Any] | None) -> None:
        if frame is not None:
            self._send(frame)

    def _to_session_rate(self, event: AudioDelta) -> AudioDelta:
        down = self._down.get(event.item_id)
        if down is None:
            down = self._down[event.item_id] = StreamResampler(wire.OUTPUT_RATE, self._fmt.rate)
        samples = down.process_array(np.frombuffer(event.pcm, dtype="<i2").astype(np.int16))
        return AudioDelta(event.response_id, event.item_id, 0, self._fmt.encode(samples))

    # -- the neutral commands -----------------------------------------------------------------
    def send_audio(self, audio: bytes) -> None:
        samples = self._up.process_array(self._fmt.decode(audio))
        pending = np.concatenate([self._carry, samples]) if len(self._carry) else samples
        start = 0
        while len(pending) - start >= wire.MIN_CHUNK_SAMPLES:
            end = min(start + wire.CHUNK_SAMPLES, len(pending))
            self._send(wire.append(pending[start:end].astype("<i2", copy=False).tobytes()))
            start = end
        self._carry = pending[start:].copy()

    def commit_input(self) -> None:
        """Hydra ends turns itself: nothing to send."""

    def clear_input(self) -> None:
        """Hydra has no input buffer to clear: nothing to send."""

    def create_response(self, instructions: str | None = None) -> None:
        if instructions is not None:
            self._log.info("realtime.instructions_dropped", why="Hydra's response.create takes none")
        frame = wire.response_create()
        if self.responses.offer(frame):
            self._send(frame)

    def cancel(self, response_id: str | None) -> None:
        if response_id is not None:
            self._send(wire.response_cancel())

    def truncate(self, item_id: str, heard_ms: int) -> None:
        """No truncate in Hydra's protocol: it believes the whole answer was heard."""

    def update_session(self, config: SessionConfig) -> None:
        if config.tools != self._tools:
            self._tools = config.tools
            self._send(wire.tools_update(config.tools))
        if (config.instructions, config.voice) != (self._session.instructions, self._session.voice):
            self._log.warning("realtime.update_ignored", fields=["instructions", "voice"],
                              why="Hydra fixes persona and voice at the handshake")
        self._session = config

    def function_output(self, call_id: str, output: str) -> None:
        self._send(wire.function_output(call_id, output))

    def fatal(self, error: ErrorEvent) -> bool:
        """Hydra's errors leave the session usable; a close that follows is what drops it."""
        return False


def factory(rc: Any, url: str, api_key: str | None, session: SessionConfig,
            on_event: Callable[[ServerEvent], None]) -> HydraUpstream:
    """The registry's entry for ``hydra``."""
    return HydraUpstream(url, api_key, session, on_event, connect_timeout=rc.connect_timeout_ms / 1000)
