"""A worker's sessions end their append batches on one shared tick, and lose or reorder no audio."""

import asyncio

import numpy as np
import pytest

from sipbridge import config
from sipbridge.session import CallSession
from sipbridge.turn.batch import TickBatch
from sipbridge.turn.silero import load_model

RATE = 8000
FRAME = RATE // 50


@pytest.fixture(scope="module")
def vad_model():
    return load_model()


def session(vad_model, batch, call_id, append_ms=100):
    cfg = config.build({"sip": {"media_rate": RATE}, "realtime": {"append_ms": append_ms}},
                       environ={})
    loop = asyncio.new_event_loop()   # never run: the hand-offs are captured below
    s = CallSession(call_id=call_id, config=cfg, url="ws://127.0.0.1:9", api_key=None, loop=loop,
                    vad_model=vad_model, vad_batch=batch, on_end=lambda reason: None)
    s.sent = []                       # (tick, raw batch) handed to the loop
    s._up.process = lambda pcm: pcm
    s._to_loop = lambda fn, *args: s.sent.append((batch.ticks, args[0])) if args else None
    return s


def drive(sessions, joins, ticks):
    """The pump's round: every joined call's caller frame, then every joined call's agent frame."""
    rng = np.random.default_rng(3)
    fed = {id(s): [] for s in sessions}
    for tick in range(ticks):
        live = [s for s, at in zip(sessions, joins) if tick >= at]
        for s in live:
            pcm = (rng.standard_normal(FRAME) * 200).astype(np.int16).tobytes()
            fed[id(s)].append(pcm)
            s.on_caller_frame(pcm)
        for s in live:
            s.next_frame()
    return fed


def test_calls_joining_on_different_ticks_send_their_batches_on_the_same_ticks(vad_model):
    """Three calls joining at ticks 0, 2 and 3 send every batch on the same ticks, one in five."""
    batch = TickBatch()
    calls = [session(vad_model, batch, f"c{i}") for i in range(3)]
    drive(calls, [0, 2, 3], 60)
    ticks = [[t for t, _ in s.sent] for s in calls]
    assert ticks[1] == ticks[2] == [t for t in ticks[0] if t >= 5] == list(range(5, 60, 5))


def test_aligned_batches_carry_every_frame_in_order(vad_model):
    """The batches of a call that joined mid-phase, concatenated with what is held, are its frames."""
    batch = TickBatch()
    calls = [session(vad_model, batch, f"c{i}", append_ms=60) for i in range(2)]
    fed = drive(calls, [0, 1], 47)
    for s in calls:
        sent = b"".join(pcm for _, pcm in s.sent)
        held = s._batch.flush() or b""
        assert sent + held == b"".join(fed[id(s)])
        assert max(len(pcm) for _, pcm in s.sent) <= 3 * FRAME * 2   # never above append_ms


def test_without_a_tick_batch_batches_follow_the_call_alone(vad_model):
    """A session with no worker TickBatch releases a batch every append_ms of its own audio."""
    calls = [session(vad_model, None, "solo")]
    calls[0]._to_loop = lambda fn, *args: calls[0].sent.append((None, args[0])) if args else None
    drive(calls, [0], 23)
    assert [len(pcm) for _, pcm in calls[0].sent] == [5 * FRAME * 2] * 4
