"""A strict local Smallest AI Hydra server on loopback, for the Hydra adapter's tests and bench.

It follows the documented protocol (see sipbridge/realtime/providers/hydra.py for the sources)
and refuses what the real server would refuse or silently mishandle, recording each refusal in
:attr:`HydraServer.violations` (tests assert it stays empty):

* the upgrade needs ``model=hydra`` and ``Authorization: Bearer <key>`` (the docs' ``api_key=``
  query is accepted too); else HTTP 401 / 400, as the real server answers;
* ``session.created`` first; exactly one ``session.configure`` before anything else, with only
  the documented keys (the real server ignores unknown ones: here they are refused) and a
  documented voice; ``session.configured`` echoes it;
* ``input_audio_buffer.append`` of base64 pcm16, 10-40 ms at 16 kHz (``invalid_audio`` else);
  frames with any key beyond ``type``/``event_id``/``audio`` refused; ``session.update`` with
  anything but ``tools`` is ``invalid_frame``; a client event Hydra does not have (``commit``,
  ``truncate``, ``clear``) is ``invalid_frame``; ``response.create`` while a response is in
  flight is refused;
* turn detection is its own: an energy VAD on 20 ms frames (over ``vad_dbfs``) emits
  ``speech_started`` at the first loud frame (noise too); once the turn has been loud for
  ``confirm_ms`` while a response is in flight, that response is cancelled (``response.done``
  cancelled / ``interrupted``); after ``hangover_ms`` of quiet a turn loud for less than
  ``confirm_ms`` ends as an ``incomplete`` user item (nothing else happens), a longer one is
  ``speech_stopped``, a completed user item, and a response: ``reply`` (pcm16 48 kHz) streamed in
  100 ms deltas, ``lead_s`` ahead of real time, then paced at ``pace`` x real time;
* ``response.cancel`` cancels the response in flight (``client_cancelled``), a no-op otherwise.

Every client frame is kept with ``_recv_t`` and every server frame with ``_sent_t``
(time.monotonic, CLOCK_MONOTONIC like the RTP peer's clock). The server runs in its own thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import threading
import time

import numpy as np
from aiohttp import WSMsgType, web

from sipbridge.realtime.providers.hydra_wire import VOICES
from tests.support.ports import free_tcp_port

CONFIGURE_KEYS = {"instructions", "voice", "tools", "generate_initial_response"}
FRAME = 320   # 20 ms at 16 kHz


class HydraServer:
    """See the module docstring. Use as a context manager; ``url`` is the s2s endpoint."""

    def __init__(self, reply: np.ndarray, *, key: str = "hydra-test-key", vad_dbfs: float = -35.0,
                 confirm_ms: int = 300, hangover_ms: int = 500, lead_s: float = 1.0, pace: float = 1.0):
        self.reply, self.key = reply.astype("<i2"), key
        self.vad_dbfs, self.confirm_ms, self.hangover_ms = vad_dbfs, confirm_ms, hangover_ms
        self.lead_s, self.pace = lead_s, pace
        self.port = free_tcp_port()
        self.url = f"ws://127.0.0.1:{self.port}/waves/v1/s2s"
        self.received: list[dict] = []
        self.sent: list[dict] = []
        self.violations: list[str] = []
        self.refused_upgrades: list[int] = []
        self.audio_bytes = 0
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="hydra-server")
        self._runner: web.AppRunner | None = None

    # -- life cycle (test thread) ---------------------------------------------------------------
    def __enter__(self) -> "HydraServer":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/waves/v1/s2s", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def of(self, etype: str, sent: bool = True) -> list[dict]:
        """Frames of ``etype`` the server sent (or, ``sent=False``, received)."""
        return [e for e in (self.sent if sent else self.received) if e.get("type") == etype]

    # -- one session ----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("model") != "hydra":
            self.refused_upgrades.append(400)
            return web.Response(status=400, text="model must be hydra")
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.key}" and request.query.get("api_key") != self.key:
            self.refused_upgrades.append(401)
            return web.Response(status=401, text="invalid api key")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        await _Session(self, ws).serve()
        return ws

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"


class _Session:
    def __init__(self, server: HydraServer, ws: web.WebSocketResponse):
        self.s, self.ws = server, ws
        self.configured = False
        self.samples = 0                   # 16 kHz samples received
        self.pending = np.zeros(0, np.int16)
        self.turn: str | None = None       # user item in progress
        self.loud_ms = self.quiet_ms = 0
        self.response: str | None = None   # in flight
        self.stream: asyncio.Task | None = None
        self.item: str | None = None       # the response's audio item
        self.tools: list = []

    async def emit(self, frame: dict) -> None:
        frame = {"event_id": self.s.next_id("sv"), **frame}
        self.s.sent.append({**frame, "_sent_t": time.monotonic()})
        await self.ws.send_str(json.dumps(frame))

    async def refuse(self, why: str, code: str = "invalid_frame", client_event: dict | None = None) -> None:
        self.s.violations.append(why)
        await self.emit({"type": "error", "error": {"type": "invalid_request_error", "code": code,
                                                    "message": why, "param": None,
                                                    "event_id": (client_event or {}).get("event_id")}})

    async def serve(self) -> None:
        await self.emit({"type": "session.created", "session_id": self.s.next_id("sess")})
        async for msg in self.ws:
            if msg.type != WSMsgType.TEXT:
                await self.refuse("binary frames are not used")
                continue
            try:
                event = json.loads(msg.data)
            except ValueError:
                await self.refuse("not JSON")
                continue
            if not isinstance(event, dict):
                await self.refuse("not an object")
                continue
            self.s.received.append({**event, "_recv_t": time.monotonic()})
            await self.dispatch(event)
        if self.stream is not None:
            self.stream.cancel()

    async def dispatch(self, ev: dict) -> None:
        etype = ev.get("type")
        if not self.configured:
            if etype != "session.configure":
                return await self.refuse(f"{etype} before session.configure", client_event=ev)
            return await self.configure(ev)
        handler = {"input_audio_buffer.append": self.append, "response.create": self.create,
                   "response.cancel": self.cancel, "session.update": self.update,
                   "conversation.item.create": self.item_create,
                   "session.configure": self.reconfigure}.get(etype)
        if handler is None:
            return await self.refuse(f"unknown client event {etype!r}", client_event=ev)
        await handler(ev)

    def extra_keys(self, ev: dict, allowed: set) -> set:
        return set(ev) - allowed - {"type", "event_id"}

    async def configure(self, ev: dict) -> None:
        session = ev.get("session")
        if self.extra_keys(ev, {"session"}) or not isinstance(session, dict):
            return await self.refuse("session.configure: bad shape", client_event=ev)
        unknown = set(session) - CONFIGURE_KEYS
        if unknown:  # the real server ignores these silently: a typo ships the default persona
            return await self.refuse(f"session.configure: unknown keys {sorted(unknown)}", client_event=ev)
        if "voice" in session and session["voice"] not in VOICES:
            return await self.refuse(f"unknown voice {session['voice']!r}", client_event=ev)
        self.tools = session.get("tools") or []
        self.configured = True
        await self.emit({"type": "session.configured", "session": {
            "instructions": session.get("instructions"), "voice": session.get("voice", "wren"),
            "tools": self.tools, "generate_initial_response": bool(session.get("generate_initial_response"))}})

    async def reconfigure(self, ev: dict) -> None:
        self.s.violations.append("a second session.configure (ignored by the real server)")

    async def update(self, ev: dict) -> None:
        session = ev.get("session")
        if self.extra_keys(ev, {"session"}) or not isinstance(session, dict) or set(session) - {"tools"}:
            return await self.refuse("session.update applies tools only", client_event=ev)
        if session.get("tools") != self.tools:
            self.tools = session.get("tools") or []
            await self.emit({"type": "session.updated", "session": {"tools": self.tools}})

    async def item_create(self, ev: dict) -> None:
        item = ev.get("item")
        if (self.extra_keys(ev, {"item"}) or not isinstance(item, dict)
                or item.get("type") != "function_call_output"
                or set(item) != {"type", "call_id", "output"}):
            await self.refuse("conversation.item.create: only a function_call_output", client_event=ev)

    async def create(self, ev: dict) -> None:
        if self.extra_keys(ev, set()):
            return await self.refuse("response.create takes no fields", client_event=ev)
        if self.response is not None:
            return await self.refuse("response.create while a response is in flight", client_event=ev)
        await self.start_response()

    async def cancel(self, ev: dict) -> None:
        if self.extra_keys(ev, set()):
            return await self.refuse("response.cancel takes no fields", client_event=ev)
        if self.response is not None:   # a no-op when nothing is in flight
            await self.end_response("cancelled", "client_cancelled")

    # -- audio and the server's turn detection --------------------------------------------------
    async def append(self, ev: dict) -> None:
        if self.extra_keys(ev, {"audio"}) or not isinstance(ev.get("audio"), str):
            return await self.refuse("input_audio_buffer.append: audio only", client_event=ev)
        try:
            pcm = base64.b64decode(ev["audio"], validate=True)
        except (binascii.Error, ValueError):
            return await self.refuse("audio is not base64", "invalid_audio", ev)
        if len(pcm) % 2 or not 320 <= len(pcm) <= 1280:
            return await self.refuse(f"audio frame of {len(pcm)} bytes (10-40 ms of pcm16 16 kHz)",
                                     "invalid_audio", ev)
        self.s.audio_bytes += len(pcm)
        self.pending = np.concatenate([self.pending, np.frombuffer(pcm, "<i2").astype(np.int16)])
        while len(self.pending) >= FRAME:
            frame, self.pending = self.pending[:FRAME], self.pending[FRAME:]
            self.samples += FRAME
            await self.vad(frame)

    async def vad(self, frame: np.ndarray) -> None:
        f = frame.astype(float)
        level = 10 * np.log10(max(float(np.mean(f * f)), 1e-9) / 32768.0 ** 2)
        loud = level > self.s.vad_dbfs
        now_ms = self.samples // 16
        if self.turn is None:
            if loud:
                self.turn, self.loud_ms, self.quiet_ms = self.s.next_id("item_user"), 20, 0
                await self.emit({"type": "input_audio_buffer.speech_started",
                                 "audio_start_ms": now_ms - 20, "item_id": self.turn})
                await self.emit({"type": "conversation.item.added", "item": {
                    "id": self.turn, "type": "message", "role": "user", "status": "in_progress"}})
            return
        if loud:
            self.loud_ms, self.quiet_ms = self.loud_ms + 20, 0
            if self.loud_ms >= self.s.confirm_ms and self.response is not None:
                await self.end_response("cancelled", "interrupted")   # barge-in, automatic
            return
        self.quiet_ms += 20
        if self.quiet_ms < self.s.hangover_ms:
            return
        item, self.turn = self.turn, None
        if self.loud_ms < self.s.confirm_ms:   # noise: the turn detector rejects it
            await self.emit({"type": "conversation.item.done", "item": {
                "id": item, "type": "message", "role": "user", "status": "incomplete"}})
            return
        await self.emit({"type": "input_audio_buffer.speech_stopped",
                         "audio_end_ms": now_ms - self.quiet_ms, "item_id": item})
        await self.emit({"type": "conversation.item.done", "item": {
            "id": item, "type": "message", "role": "user", "status": "completed"}})
        if self.response is None:
            await self.start_response()

    # -- responses ------------------------------------------------------------------------------
    async def start_response(self) -> None:
        rid, item = self.s.next_id("resp"), self.s.next_id("item_asst")
        self.response, self.item = rid, item
        await self.emit({"type": "response.created", "response": {"id": rid, "status": "in_progress"}})
        await self.emit({"type": "conversation.item.added", "item": {
            "id": item, "type": "message", "role": "assistant", "status": "in_progress"}})
        self.stream = asyncio.ensure_future(self.play(rid, item))

    async def play(self, rid: str, item: str) -> None:
        start, step = time.monotonic(), 4800      # 100 ms at 48 kHz
        for off in range(0, len(self.s.reply), step):
            due = start + max(0.0, off / 48000 - self.s.lead_s) / self.s.pace
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if self.response != rid:
                return
            chunk = self.s.reply[off:off + step].tobytes()
            await self.emit({"type": "response.output_audio.delta", "response_id": rid, "item_id": item,
                             "delta": base64.b64encode(chunk).decode()})
        if self.response == rid:
            self.stream = None
            await self.end_response("completed", None)

    async def end_response(self, status: str, reason: str | None) -> None:
        rid, self.response = self.response, None
        if self.stream is not None and status != "completed":
            self.stream.cancel()
            self.stream = None
        await self.emit({"type": "response.output_audio.done", "response_id": rid, "item_id": self.item})
        await self.emit({"type": "response.done", "response": {
            "id": rid, "status": status,
            "status_details": None if reason is None else {"type": status, "reason": reason}}})
