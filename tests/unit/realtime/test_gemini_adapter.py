"""The Gemini Live adapter against the strict local Gemini server (tests/support/gemini_server.py)."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest

from sipbridge.realtime.providers.gemini import GeminiUpstream
from sipbridge.realtime.upstream import (AudioDelta, FunctionCall, ResponseDone, SessionConfig, Tool,
                                         UpstreamError)
from tests.support.gemini_server import GeminiServer

from .helpers import arun, wait_until

KEY = "gm-test-key"


def tone(ms: int, rate: int = 24000, freq: float = 440.0) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2").tobytes()


def heard(server: GeminiServer, conn: int | None = None) -> bytes:
    return b"".join(base64.b64decode(m["realtimeInput"]["audio"]["data"])
                    for m in server.messages("realtimeInput", conn) if "audio" in m["realtimeInput"])


def markers(server: GeminiServer) -> list[str]:
    return [next(iter(m["realtimeInput"])) for m in server.messages("realtimeInput")
            if "audio" not in m["realtimeInput"]]


@pytest.fixture
def server(tmp_path):
    with GeminiServer(tmp_path, KEY, pace=1.0) as s:
        yield s


def make(server, events, key=KEY, **config):
    return GeminiUpstream(server.url, "gemini-test", key, SessionConfig(model="x", **config), events.append)


def test_a_committed_turn_reaches_the_model_as_16khz_and_its_answer_comes_back(server):
    """Setup first, nothing before setupComplete (audio queued early waits); the turn goes as activityStart, 16 kHz PCM, activityEnd; the 24 kHz echo comes back under one response id, completed."""
    events: list = []

    async def go():
        up = make(server, events)
        up.send_audio(tone(500))      # before connect: queued, held for the turn
        await up.connect()
        reader = asyncio.ensure_future(up.run())
        up.send_audio(tone(500))
        up.commit_input()
        up.create_response()          # Gemini answers the turn itself: no clientContent
        await wait_until(lambda: any(isinstance(e, ResponseDone) for e in events), 5)
        await up.close()
        await asyncio.gather(reader, return_exceptions=True)

    arun(go(), 15)
    assert server.refusals() == []
    assert list(server.messages()[0]) == ["setup"]
    assert markers(server) == ["activityStart", "activityEnd"] and not server.messages("clientContent")
    assert len(heard(server)) == 16000 * 2      # 1 s at 16 kHz
    deltas = [e for e in events if isinstance(e, AudioDelta)]
    assert {d.response_id for d in deltas} == {"gemini_resp_1"}
    assert sum(len(d.pcm) for d in deltas) == 24000 * 2    # the 1 s echo at 24 kHz
    assert [e for e in events if isinstance(e, ResponseDone)] == [ResponseDone("gemini_resp_1", "completed", None)]


def test_a_barge_in_cancel_sends_activity_start_and_the_answer_is_interrupted(server):
    """cancel() during an answer: activityStart goes at once (the stop signal) and the server's interrupted ends the response as cancelled."""
    events: list = []

    async def go():
        up = make(server, events)
        await up.connect()
        reader = asyncio.ensure_future(up.run())
        up.send_audio(tone(2000))
        up.commit_input()
        await wait_until(lambda: any(isinstance(e, AudioDelta) for e in events), 5)
        up.send_audio(tone(300, freq=600))   # the caller talks over the answer: held
        up.cancel("gemini_resp_1")
        up.truncate("gemini_item_1", 100)    # nothing to say to Gemini: a no-op
        await wait_until(lambda: any(isinstance(e, ResponseDone) for e in events), 5)
        await up.close()
        await asyncio.gather(reader, return_exceptions=True)

    arun(go(), 15)
    assert server.refusals() == []
    assert markers(server) == ["activityStart", "activityEnd", "activityStart"]
    assert [e for e in events if isinstance(e, ResponseDone)] == [
        ResponseDone("gemini_resp_1", "cancelled", "turn_detected")]
    got = sum(len(e.pcm) for e in events if isinstance(e, AudioDelta))
    assert got < 2 * 24000 * 2, "the whole answer arrived: the server was not stopped"


def test_a_go_away_resumes_on_a_new_connection_with_the_handle(server):
    """goAway: the adapter reconnects with setup.sessionResumption.handle (the latest resumable one) before the server closes; the next turn is answered there; run() never ends."""
    events: list = []

    async def go():
        up = make(server, events)
        await up.connect()
        reader = asyncio.ensure_future(up.run())
        await asyncio.sleep(0.2)
        assert (await asyncio.to_thread(server.goaway, 1500)) == "ok goaway 1"
        await wait_until(lambda: up.resumes == 1, 3)
        await wait_until(lambda: server.goaway_closed() == [1], 5, step=0.02)   # the old one closed
        assert not reader.done()
        up.send_audio(tone(400))
        up.commit_input()
        await wait_until(lambda: any(isinstance(e, ResponseDone) for e in events), 5)
        await up.close()
        await asyncio.gather(reader, return_exceptions=True)

    arun(go(), 20)
    assert server.refusals() == []
    setups = server.messages("setup")
    assert len(setups) == 2 and setups[1]["setup"]["sessionResumption"] == {"handle": "h1-0"}
    assert len(heard(server, conn=2)) == 16000 * 2 * 400 // 1000
    assert [e.status for e in events if isinstance(e, ResponseDone)] == ["completed"]


def test_a_session_update_resumes_with_the_new_setup_and_the_handle(server):
    """update_session (new instructions, server turns): a new connection whose setup carries them and the latest handle; the call's audio then streams without activity markers."""
    events: list = []

    async def go():
        up = make(server, events, instructions="first")
        await up.connect()
        reader = asyncio.ensure_future(up.run())
        await asyncio.sleep(0.2)
        up.update_session(SessionConfig(model="x", instructions="second", turn_detection={
            "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 200, "silence_duration_ms": 400}))
        await wait_until(lambda: up.resumes == 1, 3)
        up.send_audio(tone(200))
        await asyncio.sleep(0.3)
        await up.close()
        await asyncio.gather(reader, return_exceptions=True)

    arun(go(), 10)
    assert server.refusals() == []
    first, second = (m["setup"] for m in server.messages("setup"))
    assert first["systemInstruction"]["parts"][0]["text"] == "first"
    assert second["systemInstruction"]["parts"][0]["text"] == "second"
    assert second["sessionResumption"] == {"handle": "h1-0"}
    assert second["realtimeInputConfig"]["automaticActivityDetection"]["disabled"] is False
    assert len(heard(server, conn=2)) == 16000 * 2 * 200 // 1000 and markers(server) == []


def test_a_tool_call_is_answered_with_a_tool_response(tmp_path):
    """toolCall -> FunctionCall; function_output -> toolResponse with the call's id and name; the model speaks on."""
    events: list = []
    with GeminiServer(tmp_path, KEY, pace=4.0, call_tool="lookup") as server:
        async def go():
            up = make(server, events, tools=(Tool("lookup", "Look it up"),))
            await up.connect()
            reader = asyncio.ensure_future(up.run())
            up.send_audio(tone(300))
            up.commit_input()
            await wait_until(lambda: any(isinstance(e, FunctionCall) for e in events), 5)
            call = next(e for e in events if isinstance(e, FunctionCall))
            up.function_output(call.call_id, '{"beeps": 2}')
            up.create_response()
            await wait_until(lambda: any(isinstance(e, AudioDelta) for e in events), 5)
            await wait_until(lambda: len([e for e in events if isinstance(e, ResponseDone)]) == 2, 5)
            await up.close()
            await asyncio.gather(reader, return_exceptions=True)

        arun(go(), 15)
        assert server.refusals() == []
        (resp,) = server.messages("toolResponse")
        assert resp["toolResponse"]["functionResponses"] == [{"id": "call-1-1", "name": "lookup",
                                                              "response": {"beeps": 2}}]
        assert not server.messages("clientContent")


def test_a_wrong_key_is_refused_at_the_upgrade(server):
    """Another key: HTTP 403 at the upgrade, an UpstreamError with the status; nothing was sent."""
    async def go():
        with pytest.raises(UpstreamError) as err:
            await make(server, [], key="nope").connect()
        assert err.value.status == 403

    arun(go())
    assert server.messages() == []
