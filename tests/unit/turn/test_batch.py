"""TickBatch: a worker's calls scored together once per media tick, each getting feed()'s events."""

import numpy as np

from sipbridge.turn.batch import TickBatch
from sipbridge.turn.engine import TurnEngine
from sipbridge.turn.settings import TurnSettings

from .corpus import frames, prompt, to_line

FRAME = 320


def speech(*names, lead_ms=600, gap_ms=1500):
    parts = [np.zeros(lead_ms * 8, np.int16)]
    for n in names:
        parts += [prompt(n), np.zeros(gap_ms * 8, np.int16)]
    return to_line(np.concatenate(parts))


def joined(model, count):
    """A TickBatch whose ``count`` engines have all delivered frames for two ticks (a call joins
    on its first frame, so the first tick of a late joiner may complete in the next)."""
    engines = [TurnEngine(model.new_stream(), TurnSettings()) for _ in range(count)]
    batch = TickBatch()
    for _ in range(2):
        batch.flush()  # the tick begins: agent frames are requested
        for engine in engines:
            batch.push(engine, np.zeros(FRAME, np.int16), lambda ev: None)
    return batch, engines


def feed_all(engine, audio):
    return [e for f in frames(audio, FRAME) for e in engine.feed(f)]


def test_calls_scored_per_tick_get_exactly_their_single_call_events(model):
    """Three calls pushed through a TickBatch every tick get the events feed() gives each alone."""
    calls = [speech("hello-world"), speech("vm-reachoper", lead_ms=300),
             speech("please-try-again", "vm-goodbye", gap_ms=800)]
    length = min(len(a) for a in calls) // FRAME * FRAME
    calls = [a[:length] for a in calls]
    want = [feed_all(TurnEngine(model.new_stream(), TurnSettings()), a) for a in calls]
    engines = [TurnEngine(model.new_stream(), TurnSettings()) for _ in calls]
    got = [[] for _ in calls]
    batch = TickBatch()
    for at in range(0, length, FRAME):
        batch.flush()
        for engine, audio, out in zip(engines, calls, got):
            batch.push(engine, audio[at:at + FRAME], out.extend)
    assert got == want and all(want)
    # one round per tick, plus one: on the first tick the later joiners' frames wait for the next
    assert batch.late_rounds == 1 and batch.rounds == length // FRAME + 1


def test_a_round_is_scored_only_once_every_member_has_pushed(model):
    """Until the last member of the tick pushes, nobody's events are delivered; then all are."""
    batch, engines = joined(model, 3)
    delivered = []
    silence = np.zeros(FRAME, np.int16)
    batch.push(engines[0], silence, lambda ev: delivered.append(0))
    batch.push(engines[1], silence, lambda ev: delivered.append(1))
    assert delivered == []
    batch.push(engines[2], silence, lambda ev: delivered.append(2))
    assert delivered == [0, 1, 2]


def test_a_member_that_stops_delivering_delays_one_round_then_leave_frees_the_rest(model):
    """A silent member holds its round open only until the next tick begins; after leave() rounds close at once."""
    batch, (a, b) = joined(model, 2)
    late = batch.late_rounds
    silence = np.zeros(FRAME, np.int16)
    delivered = []
    batch.push(a, silence, lambda ev: delivered.append("a1"))
    batch.push(b, silence, lambda ev: delivered.append("b1"))
    assert delivered == ["a1", "b1"]
    batch.push(a, silence, lambda ev: delivered.append("a2"))   # b's media went away
    assert delivered == ["a1", "b1"]
    batch.flush()                                               # the next tick begins
    assert delivered[-1] == "a2" and batch.late_rounds == late + 1
    batch.leave(b)
    batch.push(a, silence, lambda ev: delivered.append("a3"))
    assert delivered[-1] == "a3" and batch.late_rounds == late + 1


def test_one_calls_failing_handler_does_not_cost_the_others_their_events(model):
    """An exception in one call's event handler is logged; the other calls of the round still get theirs."""
    batch, (a, b) = joined(model, 2)
    silence = np.zeros(FRAME, np.int16)
    delivered = []

    def boom(events):
        raise RuntimeError("handler bug")
    batch.push(a, silence, boom)
    batch.push(b, silence, lambda ev: delivered.append("b"))
    assert delivered == ["b"]
