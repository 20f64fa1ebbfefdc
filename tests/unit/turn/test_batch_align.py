"""TickBatch chunk alignment: a call joining on any tick cuts its Silero chunks on the others' ticks."""

import numpy as np
import pytest

from sipbridge.turn.batch import TickBatch
from sipbridge.turn.engine import TurnEngine
from sipbridge.turn.settings import TurnSettings

from .corpus import frames, prompt

RATE = 8000
FRAME = 160


class Runs:
    """Counts the model runs of a SileroModel (wraps ``probs``)."""

    def __init__(self, model, monkeypatch):
        self.count = 0
        probs = model.probs

        def counted(streams, chunks):
            self.count += 1
            return probs(streams, chunks)
        monkeypatch.setattr(model, "probs", counted)


def engine(model):
    return TurnEngine(model.new_stream(RATE), TurnSettings())


def loud(ticks, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(ticks * FRAME) * 3000).astype(np.int16)


def test_a_call_joining_later_completes_chunks_on_the_same_ticks(model):
    """A call that joins three ticks after another has the same partial chunk after every tick."""
    batch = TickBatch()
    first, late = engine(model), engine(model)
    for tick in range(20):
        batch.flush()
        batch.push(first, np.zeros(FRAME, np.int16), lambda ev: None)
        if tick >= 3:
            batch.push(late, np.zeros(FRAME, np.int16), lambda ev: None)
            assert late.partial_samples == first.partial_samples
    assert batch.aligned == 1


def test_alignment_holds_when_the_new_call_pushes_before_the_others_in_its_tick(model):
    """A joiner whose first frame comes first in its tick is aligned to where the others will be."""
    batch = TickBatch()
    first, late = engine(model), engine(model)
    for tick in range(12):
        batch.flush()
        if tick >= 5:
            batch.push(late, np.zeros(FRAME, np.int16), lambda ev: None)
        batch.push(first, np.zeros(FRAME, np.int16), lambda ev: None)
        if tick >= 5:
            assert late.partial_samples == first.partial_samples


def four_staggered_calls(model, batch):
    engines = [engine(model) for _ in range(4)]
    audio = [loud(80, seed) for seed in range(4)]
    for tick in range(80):
        batch.flush()
        for i, e in enumerate(engines):
            if tick >= i:
                batch.push(e, audio[i][(tick - i) * FRAME:(tick - i + 1) * FRAME], lambda ev: None)


def test_aligned_calls_share_one_model_run_per_tick(model, monkeypatch):
    """Four loud calls joining on ticks 0, 1, 2, 3 cost one model run per chunk tick, not one per phase."""
    runs = Runs(model, monkeypatch)
    batch = TickBatch()
    four_staggered_calls(model, batch)
    aligned = runs.count
    chunk_ticks = 80 * FRAME // 256          # ticks on which the first call completes a chunk
    assert aligned <= chunk_ticks + 3        # a joiner's first chunk may take a run of its own
    assert batch.aligned == 3
    runs.count = 0
    monkeypatch.setattr(TickBatch, "_align", lambda self, engine, frame_len: None)
    four_staggered_calls(model, TickBatch())
    assert runs.count >= aligned + 20        # unaligned: a run on nearly every tick


def test_an_aligned_engine_reports_the_same_sample_indices_for_the_same_audio(model):
    """Alignment moves chunk cuts only: a turn is found at the same audio, indices in fed samples."""
    audio = np.concatenate([np.zeros(4800, np.int16), prompt("hello-world"),
                            np.zeros(12000, np.int16)])   # 8 kHz
    plain, shifted = engine(model), engine(model)
    shifted.align(96)
    got = {}
    for name, e in (("plain", plain), ("shifted", shifted)):
        events = [ev for f in frames(audio, FRAME) for ev in e.feed(f)]
        got[name] = [(type(ev).__name__, getattr(ev, "audio_start_sample", None)
                      or getattr(ev, "audio_end_sample", 0)) for ev in events]
        assert e.samples_fed == len(audio) // FRAME * FRAME
    assert [k for k, _ in got["plain"]] == [k for k, _ in got["shifted"]]
    assert "SpeechStopped" in [k for k, _ in got["plain"]]
    for (_, a), (_, b) in zip(got["plain"], got["shifted"]):
        assert abs(a - b) <= 256                 # within one chunk of the same audio


def test_align_is_refused_once_audio_was_fed(model):
    """align() on an engine that has taken a frame, or with a shift of a chunk or more, raises."""
    e = engine(model)
    with pytest.raises(ValueError):
        e.align(256)
    e.feed(np.zeros(FRAME, np.int16))
    with pytest.raises(RuntimeError):
        e.align(32)


def test_ticks_count_the_first_flush_after_caller_frames_only(model):
    """TickBatch.ticks advances once per tick (many agent-frame flushes), never on flushes alone."""
    batch = TickBatch()
    calls = [engine(model), engine(model)]
    batch.flush()
    for _ in range(7):
        for e in calls:
            batch.push(e, np.zeros(FRAME, np.int16), lambda ev: None)
        for _ in calls:
            batch.flush()
    assert batch.ticks == 7
