"""One call's session: caller audio in, turn decisions, the realtime model, agent audio out.

Threads meet here, each with its own entry points:

* media clock thread: :meth:`on_caller_frame` (20 ms of caller audio, 16 kHz) and
  :meth:`next_frame` (20 ms of agent audio). Turn decisions are made right here, so a barge-in
  pauses or clears the playout buffer before the next frame is requested; the network side of a
  decision (commit, cancel, truncate) is queued to the event loop.
* event loop thread: :meth:`start`, :meth:`close` and the upstream event handler.
* pjsua worker thread: :meth:`on_dtmf`.

Every cancel, whatever its source (local VAD, the provider's ``speech_started``, DTMF, an API
call), goes through :meth:`interrupt`: clear the buffer (bumping its generation, so late deltas
of the cancelled response are refused), then ``response.cancel`` and a truncate of the item at
exactly the audio handed to RTP (or a delete when none was).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import fields, replace

import numpy as np
import structlog
from sipcodecs import StreamResampler

from .media.gate import SpeechGate
from .media.playout import Cleared, PlayoutBuffer
from .realtime import protocol as rt
from .realtime.client import RealtimeClient
from .turn.events import SpeechOnset, SpeechRejected, SpeechStarted, SpeechStopped
from .turn.engine import TurnEngine
from .turn.settings import TurnSettings, resolve

log = structlog.get_logger("sipbridge.session")

PORT_RATE = 16000
MODEL_RATE = 24000


class CallSession:
    """Glue between one call's media and its realtime model session."""

    def __init__(self, *, call_id: str, config, url: str, api_key: str | None,
                 loop: asyncio.AbstractEventLoop, vad_model, on_end: Callable[[str], None]):
        self.call_id = call_id
        self.log = log.bind(call_id=call_id)
        self.loop = loop
        self.on_end = on_end
        self.settings = config.turn_detection
        self.playout = PlayoutBuffer(PORT_RATE)
        self._up = StreamResampler(PORT_RATE, MODEL_RATE)
        self._down: dict[str, StreamResampler] = {}
        self.engine = TurnEngine(vad_model.new_stream(), self.settings) if vad_model else None
        rc = config.realtime
        # without send_silence only speech goes upstream; that needs the on-box detector, so the
        # gate is used only while the type is silero (a call may switch, see update_turn_detection)
        self.gate = SpeechGate(PORT_RATE) if not rc.send_silence and self.engine is not None else None
        self._samples_in = 0
        self.session_config = rt.SessionConfig(
            model=rc.model, instructions=rc.instructions, voice=rc.voice,
            input_rate=MODEL_RATE, output_rate=MODEL_RATE, api=rc.api,
            turn_detection=self._server_turn_detection())
        self.client = RealtimeClient(url, rc.model, api_key, self.session_config, self._on_event,
                                     connect_timeout=rc.connect_timeout_ms / 1000)
        self._reader: asyncio.Task | None = None
        self.closed = False
        self.response_id: str | None = None       # response in progress upstream
        self._response_gen: dict[str, int] = {}   # response -> playout generation it plays in
        self._cancelled: set[str] = set()
        self._paused_by_onset = False
        self.barge_ins = 0

    # -- life cycle (event loop) --------------------------------------------------------------
    async def start(self) -> None:
        """Connect upstream (raises ``UpstreamError`` so the INVITE can be refused with 503)."""
        # this task and the client's reader/writer tasks it spawns log with the call's id
        structlog.contextvars.bind_contextvars(call_id=self.call_id)
        await self.client.connect()
        self._reader = asyncio.ensure_future(self._read())
        self.log.info("upstream_connected", url=self.client.url, turn_detection=self.settings.type)

    async def _read(self) -> None:
        reason = "closed by the model server"
        try:
            await self.client.run()
        except Exception as exc:  # noqa: BLE001 - every failure ends the call, loudly
            reason = f"{type(exc).__name__}: {exc}"
        if not self.closed:
            self.log.warning("upstream_lost", reason=reason)
            self.on_end(f"upstream lost: {reason}")

    async def close(self) -> None:
        """Close the upstream session; media callbacks become no-ops."""
        if self.closed:
            return
        self.closed = True
        await self.client.close()
        if self._reader is not None:
            self._reader.cancel()
        self.log.info("session_closed", frames_out=self.playout.frames_out,
                      underruns=self.playout.underruns, barge_ins=self.barge_ins)

    # -- media clock thread -------------------------------------------------------------------
    def on_caller_frame(self, pcm: bytes) -> None:
        """20 ms of caller audio (16 kHz PCM16): upstream, and into the turn engine."""
        if self.closed:
            return
        up = self._up.process(pcm)
        self._samples_in += len(pcm) // 2
        gated = self._gated  # once per frame: a concurrent update must not send it twice or never
        if not gated:
            self._to_loop(self.client.send_audio, up)
        if self.engine is not None:
            for event in self.engine.feed(np.frombuffer(pcm, dtype=np.int16)):
                self._on_turn(event)
        if gated:
            for payload in self.gate.offer(self._samples_in, up):
                self._to_loop(self.client.send_audio, payload)

    def next_frame(self) -> bytes:
        """The next 20 ms of agent audio (silence when there is none)."""
        return self.playout.pull()

    @property
    def _gated(self) -> bool:
        return self.gate is not None and self.settings.type == "silero"

    def _on_turn(self, event) -> None:
        agent_talking = self.playout.playing
        if self._gated:
            self._gate_turn(event)
        if isinstance(event, SpeechOnset):
            if agent_talking and not self.playout.paused:
                self.playout.pause()
                self._paused_by_onset = True
        elif isinstance(event, SpeechRejected):
            if self._paused_by_onset:
                self.playout.resume()
                self._paused_by_onset = False
        elif isinstance(event, SpeechStarted):
            self.log.info("speech_started", audio_start_ms=event.audio_start_ms)
            if agent_talking or self._paused_by_onset:
                self.interrupt("interrupted", source="local_vad")
        elif isinstance(event, SpeechStopped):
            self.log.info("speech_stopped", audio_end_ms=event.audio_end_ms)
            if self.settings.type == "silero":
                self._to_loop(self._commit_turn)

    def _gate_turn(self, event) -> None:
        if isinstance(event, SpeechOnset):
            for payload in self.gate.start(event.audio_start_sample):
                self._to_loop(self.client.send_audio, payload)
        elif isinstance(event, SpeechRejected):
            self.gate.stop()
            self._to_loop(self.client.send, rt.input_audio_clear())  # drop the cough upstream
        elif isinstance(event, SpeechStopped):
            self.gate.stop()

    # -- any thread ---------------------------------------------------------------------------
    def update_turn_detection(self, changes: dict) -> TurnSettings:
        """Replace this call's turn settings while it runs; effective from the next chunk.

        ``changes`` holds ``turn_detection`` keys (a ``profile`` re-bases on that profile).
        A bad value raises ``ConfigError`` and changes nothing. Switching to or from
        ``server_vad`` re-sends ``session.update`` so the provider's VAD follows.
        """
        if "profile" in changes:
            new = resolve(dict(changes))
        else:
            base = {f.name: getattr(self.settings, f.name) for f in fields(self.settings)}
            if "threshold" in changes and "release_threshold" not in changes:
                base["release_threshold"] = None  # re-derived from the new threshold
            new = resolve({**base, **changes})
        if new.type == "silero" and self.engine is None:
            from .errors import ConfigError
            raise ConfigError("turn_detection.type", "silero needs the VAD model, not loaded")
        old, self.settings = self.settings, new
        if self.engine is not None:
            self.engine.update(new)
        if self.gate is not None and old.type == "silero" and new.type != "silero":
            self.gate.stop()  # everything streams now; a switch back starts closed
        if (old.type == "server_vad") != (new.type == "server_vad") or new.type == "server_vad":
            self.session_config = replace(self.session_config,
                                          turn_detection=self._server_turn_detection())
            self._to_loop(self.client.send, rt.session_update(self.session_config))
        self.log.info("turn_detection_updated", **{k: getattr(new, k) for k in (
            "type", "threshold", "min_speech_ms", "silence_threshold_ms", "prefix_padding_ms",
            "silence_floor_dbfs")})
        return new

    def interrupt(self, reason: str = "client_cancelled", source: str = "api") -> None:
        """The one cancel path: silence now, then cancel and truncate upstream."""
        self._paused_by_onset = False
        cleared = self.playout.clear()
        self._to_loop(self._cancel_upstream, cleared, reason, source)

    def on_dtmf(self, digit: str) -> None:
        """RFC 4733 digit from the caller (pjsua worker thread)."""
        self.log.info("dtmf", digit=digit)
        if self.settings.type != "none":
            return
        if digit == self.settings.commit_digit:
            self._to_loop(self._commit_turn)
        elif digit == self.settings.clear_digit:
            self._to_loop(self.client.send, rt.input_audio_clear())

    def _to_loop(self, fn, *args) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed during shutdown
            pass

    # -- event loop ---------------------------------------------------------------------------
    def _commit_turn(self) -> None:
        if self.closed:
            return
        self.client.send(rt.input_audio_commit())
        self.client.send(rt.response_create())

    def _cancel_upstream(self, cleared: Cleared, reason: str, source: str) -> None:
        if self.closed:
            return
        response = self.response_id
        if response is not None:
            self._cancelled.add(response)
            self.client.send(rt.response_cancel(response))
        audio_end_ms = None
        if cleared.item_id is not None:
            audio_end_ms = min(cleared.played_ms, cleared.received_ms)
            if audio_end_ms > 0:
                self.client.send(rt.item_truncate(cleared.item_id, audio_end_ms))
            else:
                self.client.send(rt.item_delete(cleared.item_id))
        if response is not None or cleared.item_id is not None:
            self.barge_ins += 1
            self.log.info("barge_in", source=source, reason=reason, response_id=response,
                          item_id=cleared.item_id, audio_end_ms=audio_end_ms,
                          dropped_ms=cleared.dropped_ms)

    def _on_event(self, event) -> None:
        if isinstance(event, rt.AudioDelta):
            self._on_audio(event)
        elif isinstance(event, rt.ResponseCreated):
            self.response_id = event.response_id
            self._response_gen[event.response_id] = self.playout.generation
            self.log.info("response.created", response_id=event.response_id)
        elif isinstance(event, rt.AudioDone):
            self.playout.end_item(event.item_id)
            self._down.pop(event.item_id, None)
        elif isinstance(event, rt.ResponseDone):
            if self.response_id == event.response_id:
                self.response_id = None
            self._response_gen.pop(event.response_id, None)
            self._cancelled.discard(event.response_id)
            self.log.info("response.done", response_id=event.response_id, status=event.status,
                          reason=event.reason)
        elif isinstance(event, rt.SpeechStarted):
            self.log.info("speech_started", source="server", audio_start_ms=event.audio_start_ms)
            if self.settings.type == "server_vad" and self.playout.playing:
                self.interrupt("interrupted", source="server_vad")
        elif isinstance(event, rt.SpeechStopped):
            self.log.info("speech_stopped", source="server", audio_end_ms=event.audio_end_ms)
        elif isinstance(event, rt.ErrorEvent):
            self.log.warning("upstream_error", code=event.code, message=event.message)
        elif isinstance(event, rt.Malformed):
            self.log.warning("upstream_malformed_event", reason=event.reason)

    def _on_audio(self, event) -> None:
        if event.response_id in self._cancelled:
            return
        gen = self._response_gen.setdefault(event.response_id, self.playout.generation)
        resampler = self._down.get(event.item_id)
        if resampler is None:
            resampler = self._down[event.item_id] = StreamResampler(MODEL_RATE, PORT_RATE)
        self.playout.push(resampler.process(event.pcm), event.item_id, gen)

    def _server_turn_detection(self) -> dict | None:
        s = self.settings
        if s.type != "server_vad":
            return None
        return {"type": "server_vad", "threshold": s.threshold,
                "prefix_padding_ms": s.prefix_padding_ms,
                "silence_duration_ms": s.silence_threshold_ms}
