"""The embedded model run as a separate process, the way integration tests use it."""

from __future__ import annotations

import asyncio
import json
import select
import signal
import subprocess
import sys
import wave

import numpy as np
import pytest

from sipbridge.realtime import protocol as p
from sipbridge.realtime.client import RealtimeClient, UpstreamError
from sipbridge.realtime.events import AudioDelta, ResponseDone
from sipbridge.embedded.wav import WavError, load_wav_24k

from tests.unit.realtime.helpers import arun, pcm_ramp, wait_until


def write_wav(path, samples: np.ndarray, rate: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def test_cli_serves_records_and_exits_zero_on_sigterm(tmp_path):
    """The CLI prints its URL first, demands the key, plays the reply WAV, records JSON lines, and exits 0 on SIGTERM."""
    wav = tmp_path / "reply.wav"
    write_wav(wav, np.full(8000 // 2, 1000), 8000)  # 0.5 s at 8 kHz -> 12000 samples at 24 kHz
    rec = tmp_path / "rec.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sipbridge.embedded", "--host", "127.0.0.1", "--port", "0",
         "--api-key", "sk-cli", "--record", str(rec), "--reply-wav", str(wav), "--pace", "50"],
        stdout=subprocess.PIPE, stderr=(tmp_path / "stderr.log").open("w"), text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready, "embedded CLI printed no URL within 10 s"
        url = proc.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:")

        async def body():
            with pytest.raises(UpstreamError, match="401"):
                await RealtimeClient(url, "m", None, p.SessionConfig(model="m"), lambda e: None).connect()
            events = []
            client = RealtimeClient(url, "m", "sk-cli", p.SessionConfig(model="m"), events.append)
            await client.connect()
            reader = asyncio.create_task(client.run())
            client.send_audio(pcm_ramp(200))
            client.send(p.input_audio_commit())
            client.send(p.response_create())
            await wait_until(lambda: any(isinstance(e, ResponseDone) for e in events))
            reply = b"".join(e.pcm for e in events if isinstance(e, AudioDelta))
            await client.close()
            await reader
            return reply

        reply = arun(body())
        assert len(reply) == 12000 * 2
        assert set(np.frombuffer(reply, "<i2")) == {1000}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [json.loads(line) for line in rec.read_text().splitlines()]
    assert [r["type"] for r in lines] == ["session.update", "input_audio_buffer.append",
                                          "input_audio_buffer.commit", "response.create"]
    assert all(isinstance(r["_recv_t"], float) for r in lines)
    assert [r["_recv_t"] for r in lines] == sorted(r["_recv_t"] for r in lines)


def test_load_wav_stereo_and_bad_width(tmp_path):
    """Stereo 24 kHz WAV is averaged to mono unchanged in length; 8-bit WAV is refused with WavError."""
    stereo = np.array([[100, 300], [-200, -400]] * 10).reshape(-1)
    path = tmp_path / "s.wav"
    write_wav(path, stereo, 24000, channels=2)
    assert np.frombuffer(load_wav_24k(str(path)), "<i2").tolist() == [200, -300] * 10
    bad = tmp_path / "b.wav"
    with wave.open(str(bad), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(b"\x80" * 100)
    with pytest.raises(WavError):
        load_wav_24k(str(bad))
    with pytest.raises(WavError):
        load_wav_24k(str(tmp_path / "missing.wav"))
