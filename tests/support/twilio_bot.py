"""A strict Twilio-Media-Streams bot (aiohttp WebSocket on 127.0.0.1, its own thread and loop).

It checks what it receives the way a bot written against Twilio's documented messages would:
``connected`` first (exactly ``event``/``protocol``/``version``), then ``start`` with sequence
``"1"`` and exactly Twilio's fields, then ``media`` / ``dtmf`` / ``mark`` / ``stop`` with
``sequenceNumber`` counting up by one, the stream's ``streamSid``, media chunks counting up from
``"1"`` with ``timestamp`` = 20 ms a chunk and 160-byte µ-law payloads, nothing after ``stop``.
Every departure is recorded in :attr:`violations` (tests assert it stays empty).

What it says is scripted: ``on_start`` (a list of ``("media", ulaw)``, ``("mark", name)``,
``("clear",)`` steps sent at once after ``start``), ``echo`` (send back the caller's loud audio
once the caller has been quiet for 400 ms), ``on_dtmf`` (steps after a digit, ``delay_s``
later); the test can also :meth:`send` steps itself. Times are ``time.perf_counter()``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time

import numpy as np
from aiohttp import WSMsgType, web
from sipcodecs import ulaw_decode_array, ulaw_encode_array

from .ports import free_tcp_port

START_KEYS = {"accountSid", "streamSid", "callSid", "tracks", "customParameters", "mediaFormat"}
FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}


def ulaw(pcm: np.ndarray) -> bytes:
    return ulaw_encode_array(np.asarray(pcm, dtype=np.int16)).tobytes()


def pcm(data: bytes) -> np.ndarray:
    return ulaw_decode_array(np.frombuffer(data, dtype=np.uint8))


class TwilioBot:
    def __init__(self, on_start=(), echo: bool = False, on_dtmf=(), dtmf_delay_s: float = 0.0):
        self.on_start = list(on_start)
        self.echo = echo
        self.on_dtmf = list(on_dtmf)
        self.dtmf_delay_s = dtmf_delay_s
        self.port = free_tcp_port()
        self.url = f"ws://127.0.0.1:{self.port}/bot"
        self.messages: list[tuple[float, dict]] = []   # (arrival, message) in order
        self.sent: list[tuple[float, dict]] = []       # (time, message) the bot sent
        self.violations: list[str] = []
        self.headers: dict[str, str] = {}
        self.closed_at: float | None = None
        self.loop = asyncio.new_event_loop()
        self._ws: web.WebSocketResponse | None = None
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self.loop.run_forever, name="twilio-bot", daemon=True)
        self._thread.start()
        self._runner = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/bot", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=0.2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner

    # -- what arrived ---------------------------------------------------------------------------
    def events(self, name: str) -> list[dict]:
        return [m for _, m in list(self.messages) if m.get("event") == name]

    def times(self, name: str) -> list[float]:
        return [t for t, m in list(self.messages) if m.get("event") == name]

    def caller_audio(self) -> np.ndarray:
        """The caller's audio as the bot got it (decoded µ-law, 8 kHz)."""
        data = b"".join(base64.b64decode(m["media"]["payload"]) for m in self.events("media"))
        return pcm(data)

    def wait(self, name: str, count: int = 1, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.events(name)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the bot got {len(self.events(name))} {name} messages, wanted "
                                     f"{count}; violations: {self.violations}")
            time.sleep(0.01)
        return self.events(name)

    def wait_connected(self, timeout: float = 10.0) -> None:
        assert self._connected.wait(timeout), "the bridge never opened the bot's WebSocket"

    # -- what it says -------------------------------------------------------------------------
    def send(self, *steps) -> float:
        """Send steps now (from the test thread); returns the time just before the first went."""
        return asyncio.run_coroutine_threadsafe(self._say(list(steps)), self.loop).result(10)

    async def _say(self, steps) -> float:
        at = time.perf_counter()
        ws, sid = self._ws, self._sid
        for step in steps:
            if step[0] == "media":
                for off in range(0, len(step[1]), 160):  # Twilio bots send small chunks
                    await self._out(ws, {"event": "media", "streamSid": sid,
                                         "media": {"payload": base64.b64encode(step[1][off:off + 160]).decode()}})
            elif step[0] == "mark":
                await self._out(ws, {"event": "mark", "streamSid": sid, "mark": {"name": step[1]}})
            elif step[0] == "clear":
                await self._out(ws, {"event": "clear", "streamSid": sid})
        return at

    async def _out(self, ws, message: dict) -> None:
        self.sent.append((time.perf_counter(), message))
        await ws.send_str(json.dumps(message))

    # -- the stream ---------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        self.headers = dict(request.headers)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws, self._sid, self._connected_flag = ws, None, True
        self._connected.set()
        heard, quiet = bytearray(), 0
        async for msg in ws:
            now = time.perf_counter()
            if msg.type != WSMsgType.TEXT:
                self.violations.append(f"non-text frame {msg.type}")
                continue
            m = json.loads(msg.data)
            self.messages.append((now, m))
            self._check(m)
            if m.get("event") == "start":
                self._sid = m["streamSid"]
                if self.on_start:
                    await self._say(self.on_start)
            elif m.get("event") == "dtmf" and self.on_dtmf:
                asyncio.get_running_loop().call_later(
                    self.dtmf_delay_s, lambda: asyncio.ensure_future(self._say(self.on_dtmf)))
            elif m.get("event") == "media" and self.echo:
                chunk = base64.b64decode(m["media"]["payload"])
                loud = float(np.sqrt(np.mean(pcm(chunk).astype(np.float64) ** 2))) > 300
                if loud:
                    heard += chunk
                    quiet = 0
                elif heard:
                    quiet += 1
                    if quiet >= 20:   # 400 ms of quiet after speech: say it back
                        said, heard = bytes(heard), bytearray()
                        await self._say([("media", said), ("mark", "echo-done")])
        self.closed_at = time.perf_counter()
        return ws

    def _check(self, m: dict) -> None:
        n = len(self.messages)
        event = m.get("event")
        if n == 1:
            if m != {"event": "connected", "protocol": "Call", "version": "1.0.0"}:
                self.violations.append(f"first message is not Twilio's connected: {m}")
            return
        if self.events("stop")[:-1] or (self.events("stop") and event != "stop"):
            self.violations.append(f"{event} after stop")
        if m.get("sequenceNumber") != str(n - 1):
            self.violations.append(f"{event}: sequenceNumber {m.get('sequenceNumber')!r}, expected {n - 1}")
        if n == 2:
            if event != "start" or set(m) != {"event", "sequenceNumber", "streamSid", "start"} \
                    or set(m["start"]) != START_KEYS or m["start"]["mediaFormat"] != FORMAT \
                    or m["start"]["streamSid"] != m["streamSid"] or m["start"]["tracks"] != ["inbound"] \
                    or not all(isinstance(v, str) for v in m["start"]["customParameters"].values()):
                self.violations.append(f"second message is not a Twilio start: {m}")
            return
        start = self.events("start")[0]
        if m.get("streamSid") != start["streamSid"]:
            self.violations.append(f"{event}: streamSid {m.get('streamSid')!r}")
        shapes = {"media": {"track", "chunk", "timestamp", "payload"}, "dtmf": {"track", "digit"},
                  "mark": {"name"}, "stop": {"accountSid", "callSid"}}
        if event not in shapes or set(m) != {"event", "sequenceNumber", "streamSid", event} \
                or set(m[event]) != shapes[event]:
            self.violations.append(f"not a Twilio message: {m}")
            return
        body = m[event]
        if event == "media":
            chunk = len(self.events("media"))
            if body["track"] != "inbound" or body["chunk"] != str(chunk) \
                    or body["timestamp"] != str((chunk - 1) * 20) \
                    or len(base64.b64decode(body["payload"])) != 160:
                self.violations.append(f"media chunk {chunk} malformed: {dict(body, payload='...')}")
        elif event == "dtmf" and (body["track"] != "inbound_track" or body["digit"] not in "0123456789*#"):
            self.violations.append(f"dtmf malformed: {body}")
        elif event == "stop" and body != {"accountSid": start["start"]["accountSid"],
                                          "callSid": start["start"]["callSid"]}:
            self.violations.append(f"stop names another call: {body}")

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def __enter__(self) -> "TwilioBot":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
