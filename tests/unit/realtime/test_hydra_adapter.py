"""The Hydra adapter against the strict local Hydra server (tests/support/hydra_server.py), over a real socket."""

import asyncio
import time

import numpy as np
import pytest

from sipbridge.realtime.events import (AudioDelta, AudioDone, InputCommitted, ResponseCreated, ResponseDone,
                                       SpeechStarted, TurnDiscarded)
from sipbridge.realtime.providers.hydra import HydraUpstream, hydra_url
from sipbridge.realtime.sessionconfig import SessionConfig, Tool
from sipbridge.realtime.upstream import UpstreamError
from tests.support.hydra_server import HydraServer

KEY = "hydra-test-key"
CFG = SessionConfig(model="hydra", instructions="be brief", voice="wren", turn_detection={"type": "server_vad"})


def tone(ms: int, dbfs: float, rate: int = 24000) -> bytes:
    n = rate * ms // 1000
    amp = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)
    return (amp * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype("<i2").tobytes()


def reply() -> np.ndarray:
    return (8000 * np.sin(2 * np.pi * 300 * np.arange(48000 * 2) / 48000)).astype(np.int16)


async def session(server, key=KEY, config=CFG):
    events = []
    up = HydraUpstream(server.url, key, config, events.append, connect_timeout=3.0)
    await up.connect()
    reader = asyncio.ensure_future(up.run())
    return up, events, reader


async def stream(up, chunks):
    """Send (ms, dbfs) pieces in 100 ms batches at real time, as the session does."""
    for ms, dbfs in chunks:
        for _ in range(ms // 100):
            up.send_audio(tone(100, dbfs))
            await asyncio.sleep(0.1)


async def until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.01)


def test_url_has_the_model_and_never_the_key():
    """The connect URL names model=hydra; a key in the base URL is stripped (it goes in a header)."""
    assert hydra_url(None) == "wss://api.smallest.ai/waves/v1/s2s?model=hydra"
    assert hydra_url("ws://127.0.0.1:1/s2s?api_key=x&model=y") == "ws://127.0.0.1:1/s2s?model=hydra"


def test_a_wrong_key_is_refused_at_the_upgrade_with_401():
    """A bad key: the strict server answers HTTP 401 and connect() raises UpstreamError naming it."""
    async def body():
        with HydraServer(reply()) as server:
            with pytest.raises(UpstreamError) as err:
                await session(server, key="wrong")
            assert err.value.status == 401 and "API key" in str(err.value)
    asyncio.run(body())


def test_a_turn_is_answered_at_the_session_rate_in_documented_frames():
    """Speech in 20-40 ms appends of 16 kHz reaches the server's VAD; the 48 kHz answer comes back at 24 kHz."""
    async def body():
        with HydraServer(reply(), lead_s=5.0) as server:
            up, events, reader = await session(server)
            await stream(up, [(200, -80), (600, -20), (800, -80)])
            await until(lambda: any(isinstance(e, ResponseDone) for e in events))
            await up.close()
            await reader
            assert server.violations == []
            sizes = {len(e["audio"]) for e in server.of("input_audio_buffer.append", sent=False)}
            assert server.audio_bytes == 1600 * 2 * 16  # 1.6 s of 16 kHz pcm16, nothing lost
            assert max(sizes) <= 1708  # base64 of <= 1280 bytes (40 ms)
            started = next(e for e in events if isinstance(e, SpeechStarted))
            assert abs(started.audio_start_ms - 200) <= 40   # where the speech began in the stream
            kinds = [type(e) for e in events if not isinstance(e, AudioDelta)]
            assert kinds.index(InputCommitted) < kinds.index(ResponseCreated) < kinds.index(AudioDone)
            audio = sum(len(e.pcm) for e in events if isinstance(e, AudioDelta))
            assert abs(audio - 2 * 24000 * 2) <= 2 * 48  # 2 s of answer at 24 kHz pcm16
    asyncio.run(body())


def test_noise_is_a_discarded_turn_and_speech_over_the_answer_is_cancelled_by_the_server():
    """200 ms of noise over the answer ends as TurnDiscarded and the answer goes on; real speech makes the
    server cancel it (cancelled/interrupted); the session's cancel after that is a harmless no-op."""
    async def body():
        with HydraServer(np.tile(reply(), 3), lead_s=0.5) as server:
            up, events, reader = await session(server)
            up.create_response("say hello")            # instructions dropped: Hydra takes none
            await until(lambda: any(isinstance(e, ResponseCreated) for e in events))
            rid = next(e for e in events if isinstance(e, ResponseCreated)).response_id
            await stream(up, [(200, -80), (200, -15), (700, -80)])
            assert [e for e in events if isinstance(e, TurnDiscarded)]
            assert not [e for e in events if isinstance(e, ResponseDone)]
            await stream(up, [(600, -20)])
            await until(lambda: any(isinstance(e, ResponseDone) for e in events))
            done = next(e for e in events if isinstance(e, ResponseDone))
            assert (done.response_id, done.status, done.reason) == (rid, "cancelled", "interrupted")
            up.cancel(None)
            up.cancel(rid)                              # too late: a no-op on the server
            up.truncate("x", 300)                       # no truncate in Hydra: nothing sent
            up.commit_input()
            up.clear_input()
            up.update_session(CFG)                      # no change: nothing sent
            up.update_session(SessionConfig(model="hydra", tools=(Tool("f", "d"),)))
            await until(lambda: server.of("session.updated"))
            await up.close()
            await reader
            sent = [e["type"] for e in server.received]
            assert sent.count("response.cancel") == 1 and sent.count("session.update") == 1
            assert server.violations == [] and len(server.of("response.done")) == 1
    asyncio.run(body())
