"""One call's session: caller audio in, turn decisions, the realtime model, agent audio out.

Threads meet here, each with its own entry points:

* media clock thread: :meth:`on_caller_frame` (20 ms of caller audio, 16 kHz) and
  :meth:`next_frame` (20 ms of agent audio). Turn decisions are made right here, so a barge-in
  pauses or clears the playout buffer before the next frame is requested; the network side of a
  decision (commit, cancel, truncate) is queued to the event loop.
* event loop thread: :meth:`start`, :meth:`close` and the upstream event handler.
* pjsua worker thread: :meth:`on_dtmf`.

Every cancel, whatever its source (local VAD, the provider's confirmed barge-in, DTMF, an API
call), goes through :meth:`interrupt`: clear the buffer (bumping its generation, so late deltas
of the cancelled response are refused), then tell the provider to stop and what was heard of the
item: exactly the audio handed to RTP. The model is reached only through the provider-neutral
:class:`~sipbridge.realtime.upstream.Upstream` (``self.client``, an adapter chosen by
``realtime.provider``); no provider's wire events appear here.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from dataclasses import fields, replace

import numpy as np
import structlog

from .app.toolrun import AppTools
from .bargein import Action, BargeInPolicy, Decision
from .bargein_voice import VoiceBargeInPolicy
from .media.echo import EchoCanceller, EchoSettings
from .media.gate import SpeechGate
from .media.playout import Cleared, PlayoutBuffer
from .realtime import upstream as up
from .realtime.append_batch import AppendBatcher
from .realtime.audio_format import by_name as audio_format
from .realtime.format_choice import resolve as resolve_format
from .realtime.link import UpstreamLink
from .realtime.prompt import PROMPT_ITEM, load_prompt
from .realtime.providers import make_upstream
from .realtime.retry import backoff_ms
from .realtime.tools import (END_CALL, TRANSFER_CALL, Hangup, call_reason, called_off_output,
                             transfer_failed_output, unknown_output, busy_output)
from .realtime.transcode import Downlink, Uplink
from .sip.callerid import Parties, fill
from .turn.events import SpeechOnset, SpeechRejected, SpeechStarted, SpeechStopped
from .turn.engine import TurnEngine
from .turn.settings import TurnSettings, resolve

log = structlog.get_logger("sipbridge.session")

# Line echo is at least 6 dB down (G.168's assumption for hybrids); with the canceller's
# conservative 3 dB and 4 s search, a caller interrupting in the first seconds of an answer on
# an echo-free line was held back 150 ms (bench/barge_in.py). After 1 s of agent speech with no
# echo found, the line is taken as echo-free (the search goes on).
LINE_ECHO = EchoSettings(min_erl_db=6.0, acquire_give_up_ms=1000)
# A caller frame the canceller attenuated more than this (6 dB) is not the line as it is: the
# voice trigger neither learns the line's background from it nor takes it for digital silence
_MASKED_GAIN = 0.5


def frame_dbfs(frame: np.ndarray) -> float:
    """RMS level of an int16 frame in dBFS (-inf for digital silence)."""
    f = frame.astype(np.float32)
    power = float(np.dot(f, f)) / max(len(frame), 1)
    return 10 * math.log10(power / (32768.0 * 32768.0)) if power > 0 else -math.inf


class CallSession:
    """Glue between one call's media and its realtime model session."""

    def __init__(self, *, call_id: str, config, url: str, api_key: str | None,
                 loop: asyncio.AbstractEventLoop, vad_model, on_end: Callable[[str], None],
                 vad_batch=None, on_transfer: Callable[[str], None] | None = None,
                 parties: Parties | None = None, metadata: dict | None = None,
                 route: str | None = None, uid: str | None = None):
        self.call_id = call_id
        self.metadata = dict(metadata or {})  # the route's and the webhook's, for the app's tools
        self.route = route                    # the routes: entry that matched (None: defaults)
        self.log = log.bind(call_id=call_id)
        self.loop = loop
        self.on_end = on_end
        self.on_transfer = on_transfer   # the worker's REFER; the result comes to transfer_result
        self.settings = config.turn_detection
        # the call's PCM rate on the media clock (sip.media_rate): caller frames, turn engine,
        # echo canceller and playout all run at it; 20 ms frames are rate // 50 samples
        self.rate = rate = config.sip.media_rate
        self.playout = PlayoutBuffer(rate)
        rc = config.realtime
        # realtime.audio_format: pcm16 (24 kHz) or G.711 (8 kHz) both ways; caller audio is
        # converted per append batch, model audio per item (see realtime/transcode.py); auto is
        # G.711 at an 8 kHz port, so neither direction is resampled (realtime/format_choice.py)
        self.audio_format = audio_format(resolve_format(rc, rate))
        self._up = Uplink(self.audio_format, rate)
        self._down: dict[str, Downlink] = {}
        # barge_in.vad_hop_ms 16: a second Silero stream half a chunk behind, for the pause only
        probe = vad_model.new_stream(rate) if vad_model and config.barge_in.vad_hop_ms == 16 else None
        self.engine = (TurnEngine(vad_model.new_stream(rate), self.settings, probe=probe)
                       if vad_model else None)
        self.vad_batch = vad_batch  # a worker's TickBatch: one Silero run per tick for its calls
        # without send_silence only speech goes upstream; that needs the on-box detector, so the
        # gate is used only while the type is silero (a call may switch, see update_turn_detection)
        self.gate = SpeechGate(rate) if not rc.send_silence and self.engine is not None else None
        # caller audio goes upstream in realtime.append_ms batches; flushed before every event
        # that must follow it (commit, clear, cancel). The lock keeps batches in sample order
        # when a flush comes from another thread (DTMF, an API interrupt).
        self._batch = AppendBatcher.for_ms(rc.append_ms, rate)
        # with a worker's TickBatch, every call's batch also ends on the same shared tick, so the
        # loop wakes once for all of a worker's appends instead of once per call (see _send_up)
        self._append_frames = max(1, -(-rc.append_ms // 20))
        self._batch_lock = threading.Lock()
        self._samples_in = 0
        bc = config.barge_in
        # barge_in.trigger: voice (the default) pauses for a voice standing out of the line's
        # background (bargein_voice); level pauses on loudness over the line's floor
        voice = {"foreground_margin_db": bc.foreground_margin_db,
                 "confirm_ms": self.settings.min_speech_ms} if bc.trigger == "voice" else {}
        self.barge = (VoiceBargeInPolicy if voice else BargeInPolicy)(
            enabled=bc.enabled, dtmf=bc.dtmf, resume_window_ms=bc.resume_window_ms,
            floor_dbfs=self.settings.silence_floor_dbfs, rate=rate, **voice)
        self.echo = (EchoCanceller(LINE_ECHO, sample_rate=rate, frame_samples=rate // 50)
                     if bc.echo_guard else None)
        self._barge_lock = threading.Lock()
        self._pause: Decision | None = None        # the pause in force, for the barge-in log
        self._held = 0                             # a pause held for the provider's clear (its token)
        self._kept: Decision | None = None         # ... which it talked through: this turn pauses no more
        self._held_turn_over = False               # the turn that confirmed the held pause has ended
        self._cancel_reason: dict[str, str] = {}   # response -> interrupted | client_cancelled
        # {caller} and {called} in the instructions and the greeting name this call's parties
        self.parties = parties or Parties()
        self.session_config = up.SessionConfig(
            model=rc.model, instructions=fill(rc.instructions, self.parties), voice=rc.voice,
            audio_format=self.audio_format.name, api=rc.api,
            turn_detection=self._server_turn_detection(),
            tools=(((END_CALL,) if rc.end_call_tool else ())
                   + ((TRANSFER_CALL,) if rc.transfer_to and on_transfer else ())
                   + tuple(rc.tools)))  # the app's own functions (sipbridge/app/toolrun.py)
        self.transfer_to = rc.transfer_to
        self._transfer: Hangup | None = None       # the transfer under way (REFER sent)
        self.greeting = fill(rc.greeting, self.parties)
        self._greeted = False
        self.hangup: Hangup | None = None          # the agent asked to end or transfer the call
        # the native port's C-side pause/clear (media/native/pump.py PortFlags), set when the
        # call's media attaches; None with the pjsua2 port, whose next_frame is the send itself
        self.media_flags = None
        # the call's model session: the adapter of realtime.provider (realtime/providers/)
        self._new_client = lambda: self._bound(
            make_upstream(rc, url, api_key, self.session_config, self._on_event), uid or call_id)
        self.client = self._new_client()
        self.uid = uid or call_id   # the bridge's call id (BridgeCall.uid)
        # the app's functions: each call POSTed to realtime.tools_url off the media path
        self.app_tools = AppTools(
            url=rc.tools_url, timeout_ms=config.app.tool_timeout_ms,
            secret_env=config.app.webhook_secret_env, uid=self.uid, sip_call_id=call_id,
            upstream=lambda: self.client, log=self.log, loop=loop,
            context=lambda: {"caller": self.parties.caller, "called": self.parties.called,
                             "metadata": getattr(self, "metadata", None) or {}})
        # a dropped upstream is reconnected (see realtime/link.py); the caller stays on the line
        self.link = UpstreamLink(
            make_client=self._new_client, attempts=rc.reconnect_attempts,
            backoff=backoff_ms(rc.reconnect_backoff_min_ms, rc.reconnect_backoff_max_ms, jitter=0.25),
            log=self.log, on_lost=self._upstream_lost, on_restored=self._upstream_restored,
            on_end=lambda reason: self.on_end(reason))
        self._prompt = load_prompt(rc.reconnect_prompt, rate) if rc.reconnect_prompt else None
        self._reader: asyncio.Task | None = None
        self.closed = False
        self.response_id: str | None = None       # response in progress upstream
        self._response_gen: dict[str, int] = {}   # response -> playout generation it plays in
        self._cancelled: set[str] = set()
        self.barge_ins = 0
        self.pauses = 0                            # pauses of the agent (each a held breath)
        self.held_ms = 0                           # agent audio time spent paused, then resumed

    # -- life cycle (event loop) --------------------------------------------------------------
    async def start(self) -> None:
        """Connect upstream (raises ``UpstreamError`` so the INVITE can be refused with 503)."""
        # this task and the client's reader/writer tasks it spawns log with the call's id
        structlog.contextvars.bind_contextvars(call_id=self.call_id)
        started = self.loop.time()
        await self.client.connect()
        self._reader = asyncio.ensure_future(self._read())
        self.log.info("upstream_connected", url=self.client.url, turn_detection=self.settings.type,
                      connect_ms=round((self.loop.time() - started) * 1000, 1),
                      audio_format=self.audio_format.name)

    def greet(self) -> None:
        """The call is answered (any thread): with ``realtime.greeting`` the agent speaks first."""
        if self.greeting is not None:
            self._to_loop(self._greet)

    def _greet(self) -> None:
        if self.closed or self._greeted:
            return
        self._greeted = True
        self.client.create_response(instructions=self.greeting)
        self.log.info("greeting_requested")

    async def _read(self) -> None:
        await self.link.supervise(self.client)

    def _upstream_lost(self) -> None:
        """The model's socket dropped (loop thread): silence the agent through the one cancel
        path, then play the reconnect prompt if one is configured. Caller audio sent until the
        new session is up goes to the dead client and is dropped (counted there), never replayed.
        A goodbye or transfer announcement in progress is acted on at once: the hang-up or the
        REFER needs no model, and a new session would not know the call was ending."""
        if self.closed:
            return
        with self._barge_lock:
            hangup, self.hangup = self.hangup, None
        self.interrupt("client_cancelled", source="upstream_lost")
        if hangup is not None and hangup.claim():  # the agent had decided: no model needed for it
            self.log.info("upstream_lost_before_goodbye", action=hangup.action)
            self._hang_up(hangup)
        if self._prompt is not None:
            self.playout.push(self._prompt, PROMPT_ITEM, self.playout.generation)
            self.playout.end_item(PROMPT_ITEM)

    def _upstream_restored(self, client: up.Upstream) -> None:
        """A new session is configured (loop thread): forget the old one's responses and send
        from now on to ``client``; re-send ``session.update`` if the settings changed meanwhile."""
        with self._batch_lock:
            self._batch.flush()  # audio held from the outage is dropped, not sent late
        old_config, self.client = client.session, client
        self.response_id = None
        self._response_gen.clear()
        self._cancelled.clear()
        self._cancel_reason.clear()
        self.app_tools.reset()
        self._down.clear()
        if old_config is not self.session_config:
            client.update_session(self.session_config)

    async def close(self) -> None:
        """Close the upstream session; media callbacks become no-ops."""
        if self.closed:
            return
        self.closed = True
        if self.vad_batch is not None and self.engine is not None:
            self.vad_batch.leave(self.engine)
        await self.app_tools.close()
        await self.link.close()
        await self.client.close()
        if self._reader is not None:
            self._reader.cancel()
        self.log.info("session_closed", frames_out=self.playout.frames_out,
                      underruns=self.playout.underruns, barge_ins=self.barge_ins,
                      pauses=self.pauses, held_ms=self.held_ms,
                      upstream_outages=self.link.outages, upstream_reconnects=self.link.reconnects)

    # -- media clock thread -------------------------------------------------------------------
    def on_caller_frame(self, pcm: bytes) -> None:
        """20 ms of caller audio (PCM16 at ``self.rate``): upstream, and into the turn engine."""
        if self.closed:
            return
        if self.vad_batch is not None and self.engine is not None:
            self.vad_batch.catch_up(self.engine)  # a stalled round of the last tick goes first
        near = np.frombuffer(pcm, dtype=np.int16)
        echo_only = masked = False
        if self.echo is not None:
            cleaned = self.echo.near(near)
            if cleaned is not near:
                near, pcm = cleaned, cleaned.tobytes()
            echo_only = self.echo.likely_echo_only
            masked = echo_only or self.echo.gain < _MASKED_GAIN
        self._samples_in += len(near)
        gated = self._gated  # once per frame: a concurrent update must not send it twice or never
        if not gated:
            self._send_up(pcm)
        self._barge(self.barge.on_frame, self._samples_in, frame_dbfs(near), echo_only,
                    self.playout.playing, near, masked=masked)
        end = self._samples_in
        if self.engine is None:
            self._after_turn([], gated, pcm, end)
        elif self.vad_batch is not None:  # scored with the worker's other calls, this tick
            self.vad_batch.push(self.engine, near,
                                lambda events: self._after_turn(events, gated, pcm, end))
        else:
            self._after_turn(self.engine.feed(near), gated, pcm, end)

    def _after_turn(self, events: list, gated: bool, pcm: bytes, end: int) -> None:
        """The rest of a caller frame, once its chunks are scored: turn events, then the gate."""
        if self.closed:
            return
        if self.engine is not None:
            for event in events:
                self._on_turn(event)
            self.barge.on_prob(self.engine.last_prob, self.engine.barge_prob)
            self._barge(self.barge.on_scored, end, self.playout.playing)   # with its own chunk's score
            if self.settings.type == "silero":
                self._caller_done(end)
        if gated:
            for payload in self.gate.offer(end, pcm):
                self._send_up(payload)

    def next_frame(self) -> bytes:
        """The next 20 ms of agent audio (silence when there is none); also the echo reference."""
        if self.vad_batch is not None:
            self.vad_batch.flush()  # a new tick: last tick's turn decisions first
        frame = self.playout.pull()
        if self.echo is not None:
            self.echo.far(np.frombuffer(frame, dtype=np.int16))
        hangup = self.hangup
        if hangup is not None and hangup.tick(self.playout.playing):
            self._to_loop(self._hang_up, hangup)
        return frame

    @property
    def _gated(self) -> bool:
        return self.gate is not None and self.settings.type == "silero"

    def _on_turn(self, event) -> None:
        if self._gated:
            self._gate_turn(event)
        if isinstance(event, SpeechStarted):
            self.log.info("speech_started", audio_start_ms=event.audio_start_ms)
        self._barge(self.barge.on_turn, event, self.playout.playing, event=event)
        if isinstance(event, SpeechStopped):
            # eou_ms: the caller's last speech sample -> this decision (silence_threshold_ms + a chunk)
            self.log.info("speech_stopped", audio_end_ms=event.audio_end_ms,
                          eou_ms=self._ms(event.at_sample - event.audio_end_sample))
            if self.settings.type == "silero" and not self.barge.turn_was_foreground:
                # only a background (a TV's distant voices) held Silero's turn: drop it upstream
                self.log.info("turn_ignored", why="background", audio_end_ms=event.audio_end_ms)
                self.flush_audio()
                self._to_loop(self.client.clear_input)
            elif self.settings.type == "silero":
                self.flush_audio()
                self._to_loop(self._commit_turn)

    def _caller_done(self, end: int) -> None:
        """End Silero's turn where the caller's voice ended, if a TV holds it open
        (:meth:`~sipbridge.bargein_voice.VoiceBargeInPolicy.caller_done`): the turn is
        committed as if Silero had ended it, and the TV's talk goes on as a new turn."""
        silence = self.settings.silence_threshold_ms * self.rate // 1000
        last = self.barge.caller_done(end, silence)
        if last is None:
            return
        self.engine.reset_turn()
        self.log.info("turn_ended_over_background", audio_end_ms=self._ms(last))
        self._on_turn(SpeechStopped(audio_end_ms=self._ms(last), audio_end_sample=last, at_sample=end))

    def _gate_turn(self, event) -> None:
        if isinstance(event, SpeechOnset):
            for payload in self.gate.start(event.audio_start_sample):
                self._send_up(payload)
        elif isinstance(event, SpeechRejected):
            self.gate.stop(cleared=True)
            self.flush_audio()
            self._to_loop(self.client.clear_input)  # drop the cough upstream
        elif isinstance(event, SpeechStopped):
            self.gate.stop()

    def _barge(self, decide, *args, event=None, **kwargs) -> None:
        """Ask the barge-in policy (``decide(*args)``) and apply its answer to the agent's audio.

        Decision and pause/resume happen under one lock with :meth:`interrupt`, so a pause can
        never land after a clear and leave the next answer paused.
        """
        with self._barge_lock:
            if isinstance(event, SpeechStopped):
                self._held_turn_over = True   # a hold expiring after this keeps no turn
            if self._kept is not None and (isinstance(event, SpeechStopped) or not self.playout.playing):
                self._kept = None   # the caller's turn, or the agent's audio, is over
            decision = decide(*args, **kwargs)
            if decision is None:
                return
            if self._held > 0 or (self._kept is not None and decision.action is not Action.RESUME):
                # held for the provider's clear (its wait runs from the first confirmation), or the
                # provider chose to talk over this turn: no new pause, resume or cancel in it
                self.barge.reset()
                return
            if decision.action is Action.PAUSE:
                self.playout.pause()
                if self.echo is not None:   # the caller over a silent agent is no echo to search
                    self.echo.hold_search()
                if self.media_flags is not None:
                    self.media_flags.pause()
                self._pause = decision
                self.pauses += 1
                evidence = self.barge.evidence()
                if self.echo is not None:   # and what the echo canceller made of the frame
                    e = self.echo
                    evidence.update(echo=e.mode, echo_delay_ms=e.delay_ms,
                                    echo_gain=round(e.gain, 2), double_talk=e.double_talk,
                                    echo_moves=e.echo_moves, delay_changes=e.delay_changes,
                                    echo_slips=e.echo_slips)
            if decision.action is Action.RESUME:
                self.playout.resume()
                if self.media_flags is not None:
                    self.media_flags.resume()
                pause, self._pause = self._pause, None
        if decision.action is Action.PAUSE:
            self.log.info("barge_in_paused", source=decision.source, **evidence)
            return
        if decision.action is Action.RESUME:
            paused_ms = self._ms(decision.at_sample - pause.at_sample) if pause else None
            self.held_ms += paused_ms or 0
            self.log.info("barge_in_resumed", why=decision.source, paused_ms=paused_ms)
            return
        if self.client.capabilities.provider_clears:  # the provider decides: hold for its clear
            self._hold_for_clear(decision)
            return
        onset = None
        if isinstance(event, SpeechStarted):  # the first speech chunk, without the padding
            onset = event.audio_start_sample + min(self.settings.prefix_padding_ms * self.rate // 1000,
                                                   event.at_sample)
        self.interrupt("interrupted", source=decision.source, onset_sample=onset)

    def _hold_for_clear(self, decision: Decision) -> None:
        """A confirmed barge-in with a provider that clears itself (a Media Streams bot): keep
        the line paused for its clear (:class:`~.realtime.upstream.PlayoutClear`, the one cancel
        path); if none comes within ``clear_wait_ms`` the bot kept talking: resume."""
        with self._barge_lock:
            self.barge.reset()
            self.playout.pause()
            if self.media_flags is not None:
                self.media_flags.pause()
            self._pause = self._pause or decision
            self._held = token = abs(self._held) + 1
            self._held_turn_over = False
        wait = self.client.clear_wait_ms
        self.log.info("barge_in_held", source=decision.source, wait_ms=wait)
        self._to_loop(lambda: self.loop.call_later(wait / 1000, self._hold_expired, token))

    def _hold_expired(self, token: int) -> None:
        with self._barge_lock:
            if self.closed or self._held != token:
                return
            self._held = -token
            # the rest of the caller's turn pauses no more; a turn that already ended (a short
            # sentence, a long clear wait) leaves the next one free to pause the agent
            self._kept = (self._pause if self._pause and self._pause.source != "dtmf"
                          and not self._held_turn_over else None)
            self.playout.resume()
            if self.media_flags is not None:
                self.media_flags.resume()
            pause, self._pause = self._pause, None
        paused_ms = self._ms(self._samples_in - pause.at_sample) if pause else None
        self.held_ms += paused_ms or 0
        self.log.info("barge_in_resumed", why="provider_kept_talking", paused_ms=paused_ms)

    def _bound(self, client: up.Upstream, uid: str) -> up.Upstream:
        """A new adapter, told its call when it asks (``bind``: ids, numbers, what was played)."""
        bind = getattr(client, "bind", None)
        if bind is not None:
            bind(up.CallContext(call_id=self.call_id, uid=uid, caller=self.parties.caller,
                                called=self.parties.called, played_ms=self.playout.played_ms,
                                frames_out=lambda: self.playout.frames_out))
        return client

    def _ms(self, samples: int) -> int:
        return samples * 1000 // self.rate

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
        self.barge.set_floor(new.silence_floor_dbfs)
        if self.gate is not None and old.type == "silero" and new.type != "silero":
            self.gate.stop()  # everything streams now; a switch back starts closed
        if (old.type == "server_vad") != (new.type == "server_vad") or new.type == "server_vad":
            self.session_config = replace(self.session_config,
                                          turn_detection=self._server_turn_detection())
            self._to_loop(self.client.update_session, self.session_config)
        self.log.info("turn_detection_updated", **{k: getattr(new, k) for k in (
            "type", "threshold", "min_speech_ms", "silence_threshold_ms", "prefix_padding_ms",
            "silence_floor_dbfs")})
        return new

    def interrupt(self, reason: str = "client_cancelled", source: str = "api",
                  onset_sample: int | None = None) -> None:
        """The one cancel path, for every source: silence now, then cancel and truncate upstream.

        ``reason`` is ``interrupted`` (the caller: speech, DTMF, the provider's VAD) or
        ``client_cancelled`` (programmatic), as the Realtime providers report it.
        """
        with self._barge_lock:
            pause, self._pause = self._pause, None
            self.barge.reset()
            # the native port holds a pulled frame ahead of the wire: it is dropped, not heard
            unsent = self.media_flags.unsent() if self.media_flags is not None else 0
            cleared = self.playout.clear(unsent)
            if self.media_flags is not None:
                self.media_flags.clear()
            if self.echo is not None:
                self.echo.hold_search()
            hangup, self.hangup = self.hangup, None  # speech over the goodbye: the call goes on
            self._held = -abs(self._held) - 1        # a held pause is over
            self._kept = None
        if hangup is not None and hangup.claim():  # not if the clock just acted on it
            self._to_loop(self._call_off_hangup, hangup, source)
        timing = {}
        if pause is not None:
            timing["paused_by"] = pause.source
            if onset_sample is not None:
                timing["onset_to_pause_ms"] = self._ms(pause.at_sample - onset_sample)
        if onset_sample is not None:
            timing["onset_to_cancel_ms"] = self._ms(self._samples_in - onset_sample)
        if self.echo is not None:
            timing["echo_mode"] = self.echo.mode
            timing["echo_delay_ms"] = self.echo.delay_ms
        self.flush_audio()  # the model hears the caller's interruption before the cancel
        # the response playing now: by the time the loop runs the cancel, a response.created
        # that confirmed a server_vad pause may have made a newer one current
        self._to_loop(self._cancel_upstream, cleared, reason, source, timing, self.response_id)

    def on_dtmf(self, digit: str) -> None:
        """RFC 4733 digit from the caller (pjsua worker thread)."""
        self.log.info("dtmf", digit=digit)
        self._barge(self.barge.on_dtmf, self._samples_in, self.playout.playing)
        if getattr(self.client, "send_dtmf", None) is not None:  # the provider hears digits too
            self.flush_audio()
            self._to_loop(lambda: None if self.closed else self.client.send_dtmf(digit))
        if self.settings.type != "none":
            return
        if digit == self.settings.commit_digit:
            self.flush_audio()
            self._to_loop(self._commit_turn)
        elif digit == self.settings.clear_digit:
            self.flush_audio()
            self._to_loop(self.client.clear_input)

    # -- the call control API (any thread; see sipbridge/app/control.py) ----------------------
    def say(self, instructions: str) -> None:
        """A response now, with per-response ``instructions`` ("tell the caller their order
        shipped"); the session's own instructions stay as they are."""
        self._to_loop(self._say, fill(instructions, self.parties))

    def _say(self, instructions: str) -> None:
        if self.closed:
            return
        self.client.create_response(instructions=instructions)
        self.log.info("say_requested", chars=len(instructions))

    def commit_turn(self) -> None:
        """End the caller's turn by hand (as DTMF ``commit_digit`` does): commit + response."""
        self.flush_audio()
        self._to_loop(self._commit_turn)

    def clear_turn(self) -> None:
        """Discard the caller's audio not yet committed (as DTMF ``clear_digit`` does)."""
        self.flush_audio()
        self._to_loop(lambda: None if self.closed else self.client.clear_input())

    def update_model(self, instructions: str | None = None, voice: str | None = None,
                     tools: tuple | None = None) -> None:
        """Change the model's instructions, voice or app tools mid-call (``session.update``).

        ``tools`` replace the app's functions; the built-in ``end_call`` / ``transfer_call``
        stay when they were offered. ``None`` leaves that part unchanged.
        """
        changes: dict = {}
        if instructions is not None:
            changes["instructions"] = fill(instructions, self.parties)
        if voice is not None:
            changes["voice"] = voice
        if tools is not None:
            builtin = tuple(t for t in self.session_config.tools
                            if t.name in (END_CALL.name, TRANSFER_CALL.name))
            changes["tools"] = builtin + tuple(t for t in tools if t.name not in
                                               {b.name for b in builtin})
        if not changes:
            return
        self.session_config = replace(self.session_config, **changes)
        self._to_loop(lambda: None if self.closed else
                      self.client.update_session(self.session_config))
        self.log.info("session_updated", fields=sorted(changes))

    def _send_up(self, pcm: bytes) -> None:
        """Caller audio (16 kHz) towards ``input_audio_buffer.append``, batched; each batch is
        converted to the model's format in one go (a fifth of the per-call cost at 100 ms).
        With a worker's TickBatch a batch also ends on every ``append_ms``-th shared tick, so all
        of the worker's calls hand theirs to the loop on one tick (one wake-up of the loop for
        them all: its CPU per call -20 %, bench/tick_profile.py); a call's first batch is shorter."""
        with self._batch_lock:
            batch = self._batch.add(pcm)
            if (batch is None and self.vad_batch is not None and self.engine is not None
                    and self.vad_batch.ticks % self._append_frames == 0):
                batch = self._batch.flush()   # the worker's shared batch boundary
            if batch is not None:
                self._to_loop(self.client.send_audio, self._up.process(batch))

    def flush_audio(self) -> None:
        """Queue the caller audio held for the next batch now (any thread)."""
        with self._batch_lock:
            batch = self._batch.flush()
            if batch is not None:
                self._to_loop(self.client.send_audio, self._up.process(batch))

    def _to_loop(self, fn, *args) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed during shutdown
            pass

    # -- event loop ---------------------------------------------------------------------------
    def _commit_turn(self) -> None:
        if self.closed:
            return
        self.client.commit_input()
        self.client.create_response()
        self.app_tools.committed(requested=True)

    def _cancel_upstream(self, cleared: Cleared, reason: str, source: str, timing: dict,
                         response: str | None = None) -> None:
        if self.closed:
            return
        self.app_tools.interrupted()  # a tool running: the caller has the turn (app/toolturn.py)
        if response not in self._response_gen:  # done meanwhile (or the provider cancelled it)
            response = None
        if response is not None:
            self._cancelled.add(response)
            self._cancel_reason[response] = reason
        self.client.cancel(response)  # the provider stops generating (None: none is known)
        audio_end_ms = None
        if cleared.item_id is not None and cleared.item_id != PROMPT_ITEM:  # the prompt is ours
            # what the caller heard of the item; the adapter corrects the provider's history
            # where its protocol allows (OpenAI: truncate there, or delete an unheard item)
            audio_end_ms = min(cleared.played_ms, cleared.received_ms)
            self.client.truncate(cleared.item_id, audio_end_ms)
        if response is not None or cleared.item_id is not None:
            self.barge_ins += 1
            self.log.info("barge_in", source=source, reason=reason, response_id=response,
                          item_id=cleared.item_id, audio_end_ms=audio_end_ms,
                          dropped_ms=cleared.dropped_ms, **timing)

    def _hang_up(self, hangup: Hangup) -> None:
        """The goodbye (or the transfer announcement) has been heard: act on it."""
        if self.closed:
            return
        if self.hangup is hangup:
            self.hangup = None
        fields = dict(reason=hangup.reason, response_id=hangup.response_id,
                      timed_out=not hangup.done or None)
        if hangup.action == END_CALL.name:
            self.log.info("agent_ended_call", **fields)
            self.on_end("agent_ended_call")
            return
        self.log.info("agent_transfers_call", target=self.transfer_to, **fields)
        self._transfer = hangup
        self.on_transfer(self.transfer_to)

    def transfer_result(self, status: int, reason: str) -> None:
        """The transfer failed (any thread; a success ends the call instead): tell the model,
        which answers the caller, who stays on the line with the agent."""
        self._to_loop(self._transfer_failed, status, reason)

    def _transfer_failed(self, status: int, reason: str) -> None:
        transfer, self._transfer = self._transfer, None
        if self.closed or transfer is None:
            return
        self.log.warning("transfer_failed", status=status, why=reason, target=self.transfer_to)
        self.client.function_output(transfer.call_id, transfer_failed_output(status, reason))
        self.client.create_response()

    def _call_off_hangup(self, hangup: Hangup, source: str) -> None:
        if self.closed:
            return
        self.client.function_output(hangup.call_id, called_off_output(hangup.action))
        self.log.info("end_call_called_off", source=source, response_id=hangup.response_id,
                      action=hangup.action)

    def _on_function_call(self, event) -> None:
        self.log.info("function_call", function=event.name, fn_call_id=event.call_id,
                      response_id=event.response_id)
        offered = {tool.name for tool in self.session_config.tools}
        if event.name in offered and event.name not in (END_CALL.name, TRANSFER_CALL.name):
            self.app_tools.call(event)   # the app's function: POSTed, the answer comes back
        elif event.name not in offered:  # say so, and let the model go on talking to the caller
            self.log.warning("unknown_function_call", function=event.name)
            self.client.function_output(event.call_id, unknown_output(event.name))
            self.client.create_response()
        elif self.hangup is not None or self._transfer is not None:
            self.client.function_output(event.call_id, busy_output())
        else:
            self.hangup = Hangup(event.response_id, event.call_id, call_reason(event.arguments),
                                 action=event.name)

    def _on_event(self, event) -> None:
        if isinstance(event, up.AudioDelta):
            self._on_audio(event)
        elif isinstance(event, up.ResponseCreated):
            if self.barge.server_at is not None:  # the provider answers the turn it paused us for
                self._barge(self.barge.on_server_confirm, self._samples_in, self.playout.playing)
            self.response_id = event.response_id
            self._response_gen[event.response_id] = self.playout.generation
            self.log.info("response.created", response_id=event.response_id)
            self.app_tools.response_created()
        elif isinstance(event, up.AudioDone):
            self.playout.end_item(event.item_id)
            self._down.pop(event.item_id, None)
        elif isinstance(event, up.FunctionCall):
            self._on_function_call(event)
        elif isinstance(event, up.ResponseDone):
            if (event.status == "cancelled" and event.response_id not in self._cancel_reason
                    and self.settings.type == "server_vad" and event.response_id == self.response_id):
                # the provider cancelled the answer itself (its barge-in): it is stale
                self._barge(self.barge.on_server_confirm, self._samples_in, self.playout.playing)
            if self.hangup is not None:
                self.hangup.response_done(event.response_id)
            if self.response_id == event.response_id:
                self.response_id = None
            self._response_gen.pop(event.response_id, None)
            self._cancelled.discard(event.response_id)
            ours = self._cancel_reason.pop(event.response_id, None)
            status = "cancelled" if ours else event.status
            self.log.info("response.done", response_id=event.response_id, status=status,
                          status_details={"type": status, "reason": ours or event.reason},
                          upstream_status=event.status)
            self.app_tools.response_done()  # an app tool's answer may be waiting for it
        elif isinstance(event, up.InputCommitted):
            if self.settings.type == "server_vad":  # the provider ended the caller's turn
                self.app_tools.committed(requested=False)
        elif isinstance(event, up.SpeechStarted):
            self.log.info("speech_started", source="server", audio_start_ms=event.audio_start_ms)
            if self.settings.type == "server_vad":  # a pause: it also fires on noise (bargein.py)
                self._barge(self.barge.on_server_speech, self._samples_in, self.playout.playing)
        elif isinstance(event, up.SpeechStopped):
            self.log.info("speech_stopped", source="server", audio_end_ms=event.audio_end_ms)
            if self.settings.type == "server_vad":  # its answer should follow: the window restarts
                self._barge(self.barge.on_server_speech_stopped, self._samples_in)
        elif isinstance(event, up.ErrorEvent):
            self.log.warning("upstream_error", type=event.kind, code=event.code, message=event.message)
            self.app_tools.refused(event.code)
            if self.client.fatal(event):  # the provider's session is gone: drop it, reconnect
                self.link.drop(f"server error {event.kind or 'error'}/{event.code}: {event.message}")
        elif isinstance(event, up.PlayoutClear):  # the provider drops the agent's audio itself
            self.interrupt("interrupted", source="provider_clear")
        elif isinstance(event, up.TurnDiscarded):  # the provider's detector dropped a noise start
            self.log.info("turn_discarded", source="server", item_id=event.item_id)
            if self.settings.type == "server_vad":  # the answer resumes where it paused
                self._barge(self.barge.on_server_discard, self._samples_in)
        elif isinstance(event, up.Malformed):
            self.log.warning("upstream_malformed_event", reason=event.reason)
        elif isinstance(event, up.Transcript):  # into the call's record (sipbridge/app/records.py)
            self.log.info("transcript", role=event.role, item_id=event.item_id, text=event.text)

    def _on_audio(self, event) -> None:
        if event.response_id in self._cancelled:
            return
        gen = self._response_gen.setdefault(event.response_id, self.playout.generation)
        down = self._down.get(event.item_id)
        if down is None:
            down = self._down[event.item_id] = Downlink(self.audio_format, self.rate)
        self.playout.push(down.process(event.pcm), event.item_id, gen)

    def _server_turn_detection(self) -> dict | None:
        s = self.settings
        if s.type != "server_vad":
            return None
        # the provider's detector ends the turn and answers it (the bridge commits nothing in
        # this mode); the adapter says what its protocol needs about cancelling (OpenAI: never on
        # its own, the bridge's pause-first barge-in owns the cancel; realtime/providers/openai.py)
        return {"type": "server_vad", "threshold": s.threshold,
                "prefix_padding_ms": s.prefix_padding_ms,
                "silence_duration_ms": s.silence_threshold_ms}
