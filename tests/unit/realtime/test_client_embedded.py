"""RealtimeClient against the EmbeddedModel on 127.0.0.1: the whole offline path, end to end."""

from __future__ import annotations

import asyncio

import pytest

from sipbridge.realtime import protocol as p
from sipbridge.realtime.client import RealtimeClient, UpstreamError
from sipbridge.embedded import EmbeddedModel
from sipbridge.realtime.events import (AudioDelta, ErrorEvent, ItemTruncated, OutputItemAdded, ResponseDone,
                                       SessionCreated, SessionUpdated)

from .helpers import arun, pcm_ramp, wait_until

CFG = p.SessionConfig(model="echo-test")


class Session:
    """An EmbeddedModel plus one connected RealtimeClient whose events are collected."""

    def __init__(self, **model_kwargs):
        self.record: list[dict] = []
        self.model = EmbeddedModel(record=self.record, **model_kwargs)
        self.events: list = []
        self.client: RealtimeClient | None = None
        self.reader: asyncio.Task | None = None

    async def __aenter__(self) -> "Session":
        url = await self.model.start()
        self.client = RealtimeClient(url + "/v1/realtime", "echo-test", None, CFG, self.events.append)
        await self.client.connect()
        self.reader = asyncio.create_task(self.client.run())
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.close()
        await asyncio.gather(self.reader, return_exceptions=True)
        await self.model.stop()

    def of(self, cls):
        return [e for e in self.events if isinstance(e, cls)]


def test_connect_answers_session_update():
    """connect() sends a GA session.update first and returns after session.created and session.updated."""

    async def body():
        async with Session() as s:
            assert [type(e) for e in s.events] == [SessionCreated, SessionUpdated]
            assert s.events[0].session["model"] == "echo-test"
            assert s.record[0]["type"] == "session.update"
            assert s.record[0]["session"]["audio"]["input"]["turn_detection"] is None
            assert s.client.events_in == 2 and s.client.events_out == 1
            assert s.model.connections == 1

    arun(body())


def test_echo_round_trip():
    """append + commit + response.create returns deltas whose concatenation equals the audio sent."""
    pcm = pcm_ramp(730)

    async def body():
        async with Session(pace=50.0) as s:
            for i in range(0, len(pcm), 960):  # 20 ms frames, as the bridge sends them
                s.client.send_audio(pcm[i:i + 960])
            s.client.send(p.input_audio_commit())
            s.client.send(p.response_create())
            await wait_until(lambda: s.of(ResponseDone))
            assert b"".join(d.pcm for d in s.of(AudioDelta)) == pcm
            names = [type(e).__name__ for e in s.events]
            assert names.index("InputCommitted") < names.index("ResponseCreated") < names.index("AudioDelta")
            assert names.index("AudioDone") > max(i for i, n in enumerate(names) if n == "AudioDelta")
            assert s.of(ResponseDone)[0].status == "completed"
            assert s.of(OutputItemAdded)[0].role == "assistant"
            assert {d.item_id for d in s.of(AudioDelta)} == {s.of(OutputItemAdded)[0].item_id}
            assert s.client.malformed == 0

    arun(body())


def test_send_before_connect_is_delivered_after_session_update():
    """Events queued before connect() reach the server after the session.update."""

    async def body():
        record: list[dict] = []
        model = EmbeddedModel(record=record)
        url = await model.start()
        client = RealtimeClient(url, "m", None, CFG, lambda e: None)
        client.send_audio(pcm_ramp(20))
        await client.connect()
        await wait_until(lambda: len(record) == 2)
        assert [r["type"] for r in record] == ["session.update", "input_audio_buffer.append"]
        assert record[0]["_recv_t"] <= record[1]["_recv_t"]
        await client.close()
        await model.stop()

    arun(body())


def test_cancel_mid_response():
    """response.cancel mid-stream yields response.done cancelled/client_cancelled and no delta after it."""
    reply = pcm_ramp(5000)

    async def body():
        async with Session(reply_pcm=reply, pace=2.0) as s:
            s.client.send_audio(pcm_ramp(200))
            s.client.send(p.input_audio_commit())
            s.client.send(p.response_create())
            await wait_until(lambda: len(s.of(AudioDelta)) >= 2)
            s.client.send(p.response_cancel())
            await wait_until(lambda: s.of(ResponseDone))
            done_at = s.events.index(s.of(ResponseDone)[0])
            await asyncio.sleep(0.3)  # several chunk periods at pace 2
            (done,) = s.of(ResponseDone)
            assert (done.status, done.reason) == ("cancelled", "client_cancelled")
            assert not [e for e in s.events[done_at:] if isinstance(e, AudioDelta)]
            assert 0 < len(b"".join(d.pcm for d in s.of(AudioDelta))) < len(reply)

    arun(body())


def test_cancel_without_response_is_error():
    """response.cancel with nothing in progress returns an error event and the session stays usable."""

    async def body():
        async with Session() as s:
            cancel = p.response_cancel()
            s.client.send(cancel)
            await wait_until(lambda: s.of(ErrorEvent))
            assert s.of(ErrorEvent)[0].event_id == cancel["event_id"]
            s.client.send(p.input_audio_clear())
            await wait_until(lambda: any(r["type"] == "input_audio_buffer.clear" for r in s.record))
            assert s.client.connected

    arun(body())


def test_truncate_bounds():
    """Truncating the assistant item within its sent audio succeeds; beyond it returns an error for that event."""

    async def body():
        async with Session(reply_pcm=pcm_ramp(1000), pace=100.0) as s:
            s.client.send(p.response_create())
            await wait_until(lambda: s.of(ResponseDone))
            item = s.of(OutputItemAdded)[0].item_id
            too_far = p.item_truncate(item, 1001)
            s.client.send(too_far)
            s.client.send(p.item_truncate(item, 400))
            await wait_until(lambda: s.of(ItemTruncated))
            assert s.of(ItemTruncated) == [ItemTruncated(item, 400)]
            assert [e.event_id for e in s.of(ErrorEvent)] == [too_far["event_id"]]

    arun(body())


def test_api_key_required_gives_401_upstream_error():
    """Without the right key the upgrade is refused with HTTP 401 and connect() raises a clear UpstreamError."""

    async def body():
        model = EmbeddedModel(api_key="sk-right")
        url = await model.start()
        for key in (None, "sk-wrong"):
            client = RealtimeClient(url, "m", key, CFG, lambda e: None)
            with pytest.raises(UpstreamError) as info:
                await client.connect()
            assert info.value.status == 401
            assert "401" in str(info.value) and "API key" in str(info.value)
        assert model.refused == 2 and model.connections == 0
        good = RealtimeClient(url, "m", "sk-right", CFG, lambda e: None)
        await good.connect()
        assert model.connections == 1
        await good.close()
        await model.stop()

    arun(body())


def test_unreachable_server_fails_fast():
    """A port with no listener makes connect() raise UpstreamError well within the timeout."""

    async def body():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        client = RealtimeClient(f"ws://127.0.0.1:{port}", "m", None, CFG, lambda e: None, connect_timeout=2.0)
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamError, match="cannot connect"):
            await client.connect()
        assert asyncio.get_running_loop().time() - t0 < 2.0

    arun(body())


def test_silent_server_times_out():
    """A server that accepts TCP but never answers the upgrade makes connect() raise within connect_timeout."""

    async def body():
        held = []
        server = await asyncio.start_server(lambda r, w: held.append(w), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = RealtimeClient(f"ws://127.0.0.1:{port}", "m", None, CFG, lambda e: None, connect_timeout=0.4)
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamError, match="within 0.4 s"):
            await client.connect()
        assert 0.35 < asyncio.get_running_loop().time() - t0 < 1.5
        for w in held:
            w.close()
        server.close()

    arun(body())


def test_refused_session_update_raises():
    """An error answer to session.update (unsupported 16 kHz input) makes connect() raise with the server's reason."""

    async def body():
        model = EmbeddedModel()
        url = await model.start()
        client = RealtimeClient(url, "m", None, p.SessionConfig(model="m", input_rate=16000), lambda e: None)
        with pytest.raises(UpstreamError, match="16000"):
            await client.connect()
        await model.stop()

    arun(body())


def test_on_event_exceptions_do_not_kill_reader():
    """An on_event callback that raises on every event still sees the whole response delivered."""

    async def body():
        model = EmbeddedModel(reply_pcm=pcm_ramp(300), pace=100.0)
        url = await model.start()
        seen = []

        def on_event(ev):
            seen.append(ev)
            raise RuntimeError("bridge bug")

        client = RealtimeClient(url, "m", None, CFG, on_event)
        await client.connect()
        reader = asyncio.create_task(client.run())
        client.send(p.response_create())
        await wait_until(lambda: any(isinstance(e, ResponseDone) for e in seen))
        assert not reader.done()
        await client.close()
        assert (await reader).code == 1000
        await model.stop()

    arun(body())


def test_server_stop_ends_run_cleanly():
    """When the model server shuts down, run() returns CloseInfo with code 1001 and later sends are dropped."""

    async def body():
        model = EmbeddedModel()
        url = await model.start()
        client = RealtimeClient(url, "m", None, CFG, lambda e: None)
        await client.connect()
        reader = asyncio.create_task(client.run())
        await model.stop()
        info = await reader
        assert info.code == 1001
        await client.close()
        client.send(p.response_create())
        assert client.dropped >= 1

    arun(body())
