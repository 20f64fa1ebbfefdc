"""TurnEngine's probe: a second stream half a chunk behind, scored for the barge-in only."""

import numpy as np
import pytest

from sipbridge.turn import engine as engine_module
from sipbridge.turn.engine import TurnEngine, score_pending
from sipbridge.turn.settings import TurnSettings

from .corpus import frames, prompt, to_line
from .test_engine import CountingRuns

CHUNK = 512   # at 16 kHz


def talk(*names, lead_ms=300, gap_ms=400):
    """Line audio with gaps shorter than the engine's settling (no chunk skips the model)."""
    parts = [np.zeros(lead_ms * 8, np.int16)]
    for n in names:
        parts += [prompt(n), np.zeros(gap_ms * 8, np.int16)]
    return to_line(np.concatenate(parts))


def with_probe(model, settings=None):
    return TurnEngine(model.new_stream(), settings or TurnSettings(), probe=model.new_stream())


def trace(engine, audio):
    """Per 20 ms frame: (samples fed, events, last_prob, barge_prob)."""
    out = []
    for f in frames(audio, 320):
        events = engine.feed(f)
        out.append((engine.samples_fed, events, engine.last_prob, engine.barge_prob))
    return out


def test_the_probe_scores_the_audio_half_a_chunk_after_the_main_streams_cuts(model):
    """Frames that end only a probe chunk carry that chunk's score: a stream fed the audio behind 256 zeros."""
    audio = talk("hello-world")
    ref = model.new_stream()
    shifted = np.concatenate([np.zeros(CHUNK // 2, np.int16), audio])
    probe_scores = {k * CHUNK + CHUNK // 2: ref.prob(shifted[k * CHUNK : (k + 1) * CHUNK].astype(np.float32) / 32768)
                    for k in range(len(shifted) // CHUNK)}
    checked = 0
    before = 0
    for fed, _events, last, barge in trace(with_probe(model), audio):
        ends = [e for e in probe_scores if before < e <= fed]
        main_end = any(before < e <= fed for e in range(CHUNK, fed + 1, CHUNK))
        if ends and not main_end:
            assert barge == pytest.approx(probe_scores[ends[-1]], abs=1e-4)
            checked += 1
        elif main_end and not ends:
            assert barge == last
        before = fed
    assert checked > 30 and max(probe_scores.values()) > 0.9


def test_turn_events_and_main_scores_are_the_same_with_or_without_a_probe(model):
    """The detector never sees the probe: events and last_prob match an engine without one, frame by frame."""
    audio = talk("hello-world", "vm-goodbye")
    plain = trace(TurnEngine(model.new_stream(), TurnSettings()), audio)
    probed = trace(with_probe(model), audio)
    assert [(f, e, p) for f, e, p, _b in plain] == [(f, e, p) for f, e, p, _b in probed]
    assert any(e for _f, e, _p, _b in plain)


def test_the_probe_says_speech_no_later_and_sometimes_sooner(model):
    """The first frame whose barge-in score reaches 0.5 never comes after the main stream's, and for some words before."""
    sooner = 0
    for name in ("hello-world", "vm-goodbye", "auth-thankyou", "tt-weasels", "vm-then-pound"):
        rows = trace(with_probe(model), talk(name))
        first_main = next(i for i, r in enumerate(rows) if r[2] >= 0.5)
        first_barge = next(i for i, r in enumerate(rows) if r[3] >= 0.5)
        assert first_barge <= first_main, name
        sooner += first_barge < first_main
    assert sooner >= 1


def test_score_pending_with_probes_matches_feed(model):
    """Calls with probes scored together get feed()'s events and barge-in scores, in shared model runs."""
    calls = [talk("hello-world"), talk("vm-goodbye", lead_ms=500)]
    length = min(len(a) for a in calls)
    calls = [a[:length] for a in calls]
    want = [trace(with_probe(model), a) for a in calls]
    engines = [with_probe(model) for _ in calls]
    got = [[] for _ in calls]
    for at in range(0, length, 320):
        for engine, audio in zip(engines, calls):
            engine.push(audio[at : at + 320])
        for out, engine, events in zip(got, engines, score_pending(engines)):
            out.append((engine.samples_fed, events, engine.last_prob, engine.barge_prob))
    for g, w in zip(got, want):
        assert [(f, e) for f, e, _l, _b in g] == [(f, e) for f, e, _l, _b in w]
        assert np.allclose([b for *_x, b in g], [b for *_x, b in w], atol=1e-4)


def test_a_quiet_line_costs_the_probe_only_its_settling(model, monkeypatch):
    """Five seconds of digital silence: each stream runs its 16 settling chunks, then neither runs."""
    runs = CountingRuns(model, monkeypatch)
    engine = with_probe(model)
    for f in frames(np.zeros(16000 * 5, np.int16), 320):
        engine.feed(f)
    assert runs.rows == 2 * engine_module._SETTLE_CHUNKS


def test_a_probe_must_be_another_stream_at_the_same_rate(model):
    """The main stream itself, or a stream at another rate, is refused as a probe."""
    stream = model.new_stream()
    with pytest.raises(ValueError):
        TurnEngine(stream, TurnSettings(), probe=stream)
    with pytest.raises(ValueError):
        TurnEngine(model.new_stream(), TurnSettings(), probe=model.new_stream(8000))
