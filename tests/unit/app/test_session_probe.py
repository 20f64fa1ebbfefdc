"""barge_in.vad_hop_ms: a worker's calls score their probe streams in the same model runs as the turn streams."""

import asyncio

import numpy as np
import pytest

from sipbridge import config
from sipbridge.session import CallSession
from sipbridge.turn.batch import TickBatch
from sipbridge.turn.silero import load_model

RATE = 8000
FRAME = RATE // 50
TICKS = 100


@pytest.fixture(scope="module")
def vad_model():
    return load_model()


def runs_and_rows(vad_model, monkeypatch, hop_ms):
    """Three calls joining on ticks 0, 1 and 3 of a worker, 100 ticks of -24 dBFS noise each:
    (model runs, rows scored, ticks with a run, each call's engine)."""
    cfg = config.build({"sip": {"media_rate": RATE}, "barge_in": {"vad_hop_ms": hop_ms}}, environ={})
    batch = TickBatch()
    loop = asyncio.new_event_loop()   # never run
    calls = [CallSession(call_id=f"c{i}", config=cfg, url="ws://127.0.0.1:9", api_key=None, loop=loop,
                         vad_model=vad_model, vad_batch=batch, on_end=lambda reason: None)
             for i in range(3)]
    for s in calls:
        s._to_loop = lambda fn, *args: None
    seen = {"runs": 0, "rows": 0, "ticks": set()}
    real = vad_model._run
    tick = 0

    def run(audio, state):
        seen["runs"] += 1
        seen["rows"] += audio.shape[0]
        seen["ticks"].add(tick)
        return real(audio, state)

    monkeypatch.setattr(vad_model, "_run", run)
    rng = np.random.default_rng(5)
    for tick in range(TICKS):
        live = [s for s, at in zip(calls, (0, 1, 3)) if tick >= at]
        for s in live:
            s.on_caller_frame((rng.standard_normal(FRAME) * 2000).astype(np.int16).tobytes())
        for s in live:
            s.next_frame()
    loop.close()
    return seen["runs"], seen["rows"], len(seen["ticks"]), [s.engine for s in calls]


def test_the_default_16_ms_hop_scores_both_streams_of_every_call_in_one_run_per_tick(vad_model, monkeypatch):
    """With vad_hop_ms 16 each call's probe is scored beside its turn stream: twice the rows, in the one model run a tick has."""
    runs, rows, ticks, engines = runs_and_rows(vad_model, monkeypatch, 16)
    runs32, rows32, ticks32, engines32 = runs_and_rows(vad_model, monkeypatch, 32)
    assert all(e._probe is not None for e in engines) and all(e._probe is None for e in engines32)
    # one run per tick that scores anything, but for the two ticks a call joined on (its first
    # round is scored late, with the next tick's): the probe adds no run to any tick
    assert runs - ticks == runs32 - ticks32 <= 2
    assert 1.9 * rows32 <= rows <= 2.1 * rows32
    assert ticks > ticks32                                # the probe's chunks end on other ticks
