"""CallSession with ``sip.media_rate: 8000``: 160-sample frames in and out, no 16 kHz anywhere.

Same rig as test_session.py (a loop thread, a recording EmbeddedModel, the test thread as the
media clock), driven at the call's own rate: the caller's 8 kHz prompt is scored by Silero's
8 kHz branch, goes up as 24 kHz pcm16 (pinned) or, with the default ``audio_format: auto``, as
µ-law of the very samples heard, and the model's reply plays as 8 kHz frames.
"""

from __future__ import annotations

import base64
import time

import numpy as np
import pytest
from sipcodecs import StreamResampler

from sipbridge.embedded import EmbeddedModel
from sipbridge.realtime.audio_format import G711_ULAW
from tests.support import audio
from tests.unit.app.harness import SessionHarness
from tests.unit.app.test_session import REPLY

RATE, FRAME = 8000, 160
SILENT = bytes(2 * FRAME)
GOODBYE = audio.trim_silence(audio.load_wav(audio.asterisk_prompt("vm-goodbye"), rate=RATE), rate=RATE)
REPLY_8K = StreamResampler(24000, RATE).process(REPLY)   # what the session must play of the reply


class Call(SessionHarness):
    def __init__(self, loop, vad_model, *, pace: float = 50.0, realtime: dict | None = None):
        self.record: list[dict] = []
        super().__init__(loop, EmbeddedModel(record=self.record, reply_pcm=REPLY, pace=pace),
                         sip={"media_rate": RATE}, vad_model=vad_model, realtime=realtime)
        self.ticks = 0

    def sent(self, etype: str) -> list[dict]:
        return [e for e in list(self.record) if e.get("type") == etype]

    def take_turn(self) -> None:
        """The caller says goodbye, then 800 ms of line noise: Silero ends the turn."""
        said = np.concatenate([GOODBYE, audio.noise(800, -65.0, seed=1, rate=RATE)])
        for i in range(0, len(said) // FRAME * FRAME, FRAME):
            self.session.on_caller_frame(said[i:i + FRAME].tobytes())
            self.ticks += 1
        deadline = time.monotonic() + 5
        while not self.session.playout.playing:
            assert time.monotonic() < deadline, f"no reply arrived; sent {[e['type'] for e in self.record]}"
            time.sleep(0.001)

    def tick(self) -> bytes:
        """One 20 ms tick of caller silence in, agent frame out (waiting for the model's audio)."""
        s = self.session
        s.on_caller_frame(SILENT)
        deadline = time.monotonic() + 5
        while s.playout.queued_ms < 20 and s.response_id is not None and not s.playout.paused:
            assert time.monotonic() < deadline, "the model's audio stopped arriving"
            time.sleep(0.001)
        return s.next_frame()


@pytest.fixture
def call(loop, vad_model):
    made = Call(loop, vad_model, realtime={"audio_format": "pcm16"})
    yield made
    made.close()


def test_an_8k_turn_goes_up_as_24k_pcm16_and_the_reply_plays_in_160_sample_frames(call):
    """One turn on the 8 kHz engine: commit + response.create, every 8 kHz sample sent as three
    24 kHz ones, and the reply plays as 20 ms frames of 8 kHz audio that are the model's reply."""
    call.take_turn()
    assert [e["type"] for e in call.record if e["type"] in ("input_audio_buffer.commit", "response.create")] \
        == ["input_audio_buffer.commit", "response.create"]
    assert call.session.engine.sample_rate == RATE and call.session.echo.sample_rate == RATE
    call.session.flush_audio()
    deadline = time.monotonic() + 5
    while sum(len(base64.b64decode(e["audio"])) for e in call.sent("input_audio_buffer.append")) \
            < call.ticks * 3 * FRAME * 2:
        assert time.monotonic() < deadline, "the caller's audio did not all go up"
        time.sleep(0.002)
    frames = [call.tick() for _ in range(len(REPLY_8K) // (2 * FRAME))]
    assert all(len(f) == 2 * FRAME for f in frames)
    heard = np.frombuffer(b"".join(frames), dtype="<i2")
    _, corr = audio.align(np.frombuffer(REPLY_8K, dtype="<i2"), heard, rate=RATE)
    assert corr > 0.9, f"the played reply is not the model's audio (corr {corr:.2f})"
    assert call.session.playout.underruns == 0


@pytest.mark.parametrize("fmt", ["pcm16", "auto"])
def test_an_8k_reply_interrupted_mid_way_is_truncated_at_the_ms_played(loop, vad_model, fmt):
    """interrupt() after 12 ticks of 8 kHz frames truncates the item at 240 ms, in pcm16 and in
    the µ-law auto picks (where 240 ms is 1920 of the model's bytes, one per port sample)."""
    call = Call(loop, vad_model, pace=2, realtime={"audio_format": fmt})
    try:
        call.take_turn()
        played = [call.tick() for _ in range(12)]
        assert all(f != SILENT for f in played)
        s = call.session
        s.interrupt()
        assert s.next_frame() == SILENT
        deadline = time.monotonic() + 5
        while not call.sent("conversation.item.truncate"):
            assert time.monotonic() < deadline, "no truncate reached the model"
            time.sleep(0.002)
        (truncate,) = call.sent("conversation.item.truncate")
        assert truncate["audio_end_ms"] == s.playout.played_ms(truncate["item_id"]) == 240
    finally:
        call.close()


def test_by_default_an_8k_call_talks_ulaw_to_the_model_with_no_resampling(loop, vad_model):
    """audio_format auto on an 8 kHz port: session.update asks for audio/pcmu both ways, the appends
    are exactly the µ-law of the caller's 8 kHz samples (one byte each, nothing resampled), and the
    model's µ-law reply plays sample for sample as its decoded bytes."""
    call = Call(loop, vad_model)
    try:
        s = call.session
        assert s.audio_format is G711_ULAW and s.session_config.audio_format == "g711_ulaw"
        formats = call.sent("session.update")[0]["session"]["audio"]
        assert formats["input"]["format"] == formats["output"]["format"] == {"type": "audio/pcmu"}
        said = np.concatenate([GOODBYE, audio.noise(800, -65.0, seed=1, rate=RATE)])
        call.take_turn()
        s.flush_audio()
        deadline = time.monotonic() + 5
        while sum(len(base64.b64decode(e["audio"])) for e in call.sent("input_audio_buffer.append")) \
                < call.ticks * FRAME:
            assert time.monotonic() < deadline, "the caller's audio did not all go up"
            time.sleep(0.002)
        sent = b"".join(base64.b64decode(e["audio"]) for e in call.sent("input_audio_buffer.append"))
        assert sent == G711_ULAW.encode(said[:call.ticks * FRAME])
        item = s.playout._queue[0][0]
        frames = [call.tick() for _ in range(len(REPLY_8K) // (2 * FRAME))]
        heard = np.frombuffer(b"".join(frames), dtype="<i2")
        model_sent = G711_ULAW.encode(np.frombuffer(REPLY_8K, dtype="<i2"))   # what the model streams
        assert np.array_equal(heard, G711_ULAW.decode(model_sent)[:len(heard)])
        assert s.playout.played_ms(item) == len(heard) * 1000 // RATE
        assert s.playout.underruns == 0
    finally:
        call.close()
