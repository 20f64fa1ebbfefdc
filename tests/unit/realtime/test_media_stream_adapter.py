"""The media_stream adapter against a real WebSocket server on 127.0.0.1 (aiohttp), no call."""

import asyncio
import itertools
import base64
import json

from aiohttp import web

from sipbridge.realtime.events import AudioDelta, Malformed, PlayoutClear, ResponseCreated, ResponseDone
from sipbridge.realtime.providers.media_stream import MediaStreamUpstream
from sipbridge.realtime.upstream import CallContext, CloseInfo, SessionConfig, Upstream, UpstreamError
from tests.support.ports import free_tcp_port

SESSION = SessionConfig(model="bot", audio_format="g711_ulaw")


class Bot:
    """A WebSocket server that records what it gets and runs ``script(ws, start)`` after start."""

    def __init__(self, script=None):
        self.got: list[dict] = []
        self.headers: dict = {}
        self.script = script
        self.port = free_tcp_port()
        self.url = f"ws://127.0.0.1:{self.port}/bot"

    async def __aenter__(self):
        app = web.Application()
        app.router.add_get("/bot", self._handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()

    async def _handle(self, request):
        self.headers = dict(request.headers)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            m = json.loads(msg.data)
            self.got.append(m)
            if m["event"] == "start" and self.script:
                await self.script(ws, m["streamSid"])
        return ws

    def events(self, name):
        return [m for m in self.got if m["event"] == name]


def _adapter(bot, events, played=None, api_key=None):
    up = MediaStreamUpstream(bot.url, api_key, SESSION, events.append, clear_wait_ms=700)
    up.bind(CallContext(call_id="sip-1@h", uid="u-1", caller="+15550100", called="200",
                        played_ms=lambda item: (played or {}).get(item, 0),
                        frames_out=itertools.count().__next__))   # a frame out per poll
    return up


async def _until(probe, timeout=3.0):
    for _ in range(int(timeout / 0.01)):
        if probe():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_it_is_an_upstream_whose_provider_clears():
    """The adapter implements the interface; its capabilities say the bot clears and nothing is truncated."""
    up = MediaStreamUpstream("ws://127.0.0.1:9/", None, SESSION, lambda e: None)
    assert isinstance(up, Upstream)
    assert up.capabilities.provider_clears and not up.capabilities.truncate
    assert up.capabilities.audio_formats == ("g711_ulaw",) and up.clear_wait_ms == 1500


def test_start_names_the_call_and_audio_digits_and_stop_follow_in_order():
    """connected, start (the call's numbers and ids as custom parameters), media in 20 ms chunks,
    dtmf, then stop at close; the turn commands send nothing; no key, no Authorization header."""
    async def main():
        events = []
        async with Bot() as bot:
            up = _adapter(bot, events)
            up.send_audio(b"\x7f" * 200)         # queued before connect: sent after start
            await up.connect()
            runner = asyncio.ensure_future(up.run())
            up.commit_input(); up.create_response("hi"); up.clear_input(); up.truncate("i", 5)
            up.function_output("c", "{}")
            up.send_audio(b"\x7f" * 120)
            up.send_dtmf("#")
            await _until(lambda: len(bot.got) >= 5)
            await up.close()
            assert await runner == CloseInfo(1000, "")
            await _until(lambda: bot.events("stop"))
        return bot

    bot = asyncio.run(main())
    assert [m["event"] for m in bot.got] == ["connected", "start", "media", "media", "dtmf", "stop"]
    start = bot.got[1]["start"]
    assert start["customParameters"] == {"caller": "+15550100", "called": "200", "call_id": "sip-1@h",
                                         "uid": "u-1"}
    assert [m["media"]["chunk"] for m in bot.events("media")] == ["1", "2"]
    assert [m["sequenceNumber"] for m in bot.got[1:]] == ["1", "2", "3", "4", "5"]
    assert bot.got[-1]["stop"]["callSid"] == start["callSid"]
    assert "Authorization" not in bot.headers


def test_the_bots_audio_marks_and_clear_become_neutral_events():
    """Media opens a made-up response; a mark waits for its audio to be played; a clear ends the
    response cancelled, asks for the playout to be cleared and sends the held mark back; a bad
    message is refused as Malformed and the stream goes on."""
    played = {}

    async def script(ws, sid):
        await ws.send_str(json.dumps({"event": "media", "streamSid": sid,
                                      "media": {"payload": base64.b64encode(b"\x01" * 160).decode()}}))
        await ws.send_str(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "m1"}}))
        await ws.send_str("{nope")
        await ws.send_str(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "m2"}}))

    async def main():
        events = []
        async with Bot(script) as bot:
            up = _adapter(bot, events, played)
            await up.connect()
            runner = asyncio.ensure_future(up.run())
            await _until(lambda: len(up.marks) == 2)
            await asyncio.sleep(0.1)
            assert bot.events("mark") == []              # nothing played yet
            item = next(e.item_id for e in events if isinstance(e, AudioDelta))
            played[item] = 20
            await _until(lambda: len(bot.events("mark")) == 2)   # both sit at the end of the audio
            await up._ws.ping()
            assert up.refused == 1
            await up.close()
            await runner
        return events, bot

    events, bot = asyncio.run(main())
    kinds = [type(e) for e in events]
    assert kinds[:2] == [ResponseCreated, AudioDelta] and Malformed in kinds
    assert [m["mark"]["name"] for m in bot.events("mark")] == ["m1", "m2"]


def test_a_clear_ends_the_response_clears_the_playout_and_returns_held_marks():
    """clear: AudioDone + ResponseDone(cancelled, interrupted), then PlayoutClear, then the held
    mark goes back at once; the next media is a new response."""
    async def script(ws, sid):
        media = {"event": "media", "streamSid": sid, "media": {"payload": base64.b64encode(b"\x01" * 160).decode()}}
        await ws.send_str(json.dumps(media))
        await ws.send_str(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "held"}}))
        await ws.send_str(json.dumps({"event": "clear", "streamSid": sid}))
        await ws.send_str(json.dumps(media))

    async def main():
        events = []
        async with Bot(script) as bot:
            up = _adapter(bot, events)
            await up.connect()
            runner = asyncio.ensure_future(up.run())
            await _until(lambda: bot.events("mark") and sum(isinstance(e, ResponseCreated) for e in events) == 2)
            await up.close()
            await runner
        return events, bot

    events, bot = asyncio.run(main())
    done = [e for e in events if isinstance(e, ResponseDone)]
    assert done[0].status == "cancelled" and done[0].reason == "interrupted"
    assert events.index(done[0]) < next(i for i, e in enumerate(events) if isinstance(e, PlayoutClear))
    created = [e.response_id for e in events if isinstance(e, ResponseCreated)]
    assert len(set(created)) == 2
    assert [m["mark"]["name"] for m in bot.events("mark")] == ["held"]


def test_a_bot_that_is_not_there_fails_connect_with_an_upstream_error():
    """No server on the port: connect raises UpstreamError naming the bot's URL."""
    async def main():
        up = MediaStreamUpstream(f"ws://127.0.0.1:{free_tcp_port()}/bot", None, SESSION, lambda e: None)
        try:
            await up.connect()
        except UpstreamError as exc:
            return str(exc)
    assert "bot" in asyncio.run(main())


def test_another_audio_format_is_refused_at_connect():
    """A session not in g711_ulaw cannot speak to a Media Streams bot: connect says which key."""
    async def main():
        up = MediaStreamUpstream("ws://127.0.0.1:9/", None, SessionConfig(model="m"), lambda e: None)
        try:
            await up.connect()
        except UpstreamError as exc:
            return str(exc)
    assert "g711_ulaw" in asyncio.run(main())


def test_a_token_goes_as_a_bearer_header():
    """With a key (MEDIA_STREAM_TOKEN), the upgrade carries Authorization: Bearer <key>."""
    async def main():
        async with Bot() as bot:
            up = _adapter(bot, [], api_key="tok")
            await up.connect()
            await up.close()
        return bot.headers
    assert asyncio.run(main())["Authorization"] == "Bearer tok"
