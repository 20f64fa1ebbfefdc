"""TurnEngine: re-chunking, levels, audio history, skipping quiet chunks, batched scoring across calls."""

import math

import numpy as np
import pytest

from sipbridge.turn import engine as engine_module
from sipbridge.turn.engine import TurnEngine, chunk_dbfs, score_pending
from sipbridge.turn.events import SpeechOnset, SpeechStarted, SpeechStopped
from sipbridge.turn.settings import TurnSettings

from .corpus import frames, prompt, to_line, white_noise


def speech(*names, lead_ms=600, gap_ms=1500):
    """Line audio: lead silence, then each prompt followed by gap_ms of digital silence."""
    parts = [np.zeros(lead_ms * 8, np.int16)]
    for n in names:
        parts += [prompt(n), np.zeros(gap_ms * 8, np.int16)]
    return to_line(np.concatenate(parts))


def feed_all(engine, audio, size=320):
    return [e for f in frames(audio, size) for e in engine.feed(f)]


class CountingRuns:
    """Wraps a model's ONNX run to count batches and rows."""

    def __init__(self, model, monkeypatch):
        self.calls = self.rows = 0
        real = model._run

        def run(audio, state):
            self.calls += 1
            self.rows += audio.shape[0]
            return real(audio, state)

        monkeypatch.setattr(model, "_run", run)


def test_chunk_dbfs_is_rms_relative_to_int16_full_scale():
    """Full-scale square is 0 dBFS, full-scale sine -3.01, half-scale square -6.02, zeros -inf."""
    n = np.arange(512)
    square = np.where(n % 2, 1.0, -1.0).astype(np.float32)
    sine = np.sin(2 * np.pi * 1000 * n / 16000).astype(np.float32)
    assert chunk_dbfs(square) == pytest.approx(0.0, abs=1e-6)
    assert chunk_dbfs(sine) == pytest.approx(-3.0103, abs=1e-3)
    assert chunk_dbfs(square / 2) == pytest.approx(-6.0206, abs=1e-3)
    assert chunk_dbfs(np.zeros(512, np.float32)) == -math.inf


def test_a_real_utterance_gives_onset_start_and_stop(model):
    """hello-world after 600 ms of silence: one Onset within 100 ms of the word (padding covers it), Started, Stopped ~500 ms after its end."""
    audio = speech("hello-world")
    end = 600 * 16 + 2 * len(prompt("hello-world"))
    events = feed_all(TurnEngine(model.new_stream(), TurnSettings()), audio)
    assert [type(e) for e in events] == [SpeechOnset, SpeechStarted, SpeechStopped]
    onset = events[0].audio_start_sample + 200 * 16
    assert 600 * 16 <= onset <= 700 * 16 and events[0].audio_start_sample < 600 * 16
    assert 500 * 16 <= events[2].at_sample - end <= 600 * 16


@pytest.mark.parametrize("size", [1, 100, 511, 512, 513, 1000, 4096])
def test_any_frame_size_gives_the_same_events_as_20ms_frames(model, size):
    """Re-chunking is exact: frames of any length produce the events (and sample positions) of 320-sample frames."""
    audio = speech("please-try-again", "vm-goodbye", gap_ms=900)[: 16000 * 5]
    want = feed_all(TurnEngine(model.new_stream(), TurnSettings()), audio)
    got = feed_all(TurnEngine(model.new_stream(), TurnSettings()), audio, size)
    assert got == want and len(want) >= 3


def test_samples_are_counted_including_a_partial_chunk(model):
    """samples_fed counts every sample pushed; only whole 512-sample chunks are scored."""
    engine = TurnEngine(model.new_stream(), TurnSettings())
    engine.feed(np.zeros(700, np.int16))
    assert engine.samples_fed == 700 and engine.pending_chunks == 0
    assert engine.push(np.zeros(400, np.int16)) == 1


def test_audio_since_returns_exactly_the_fed_samples():
    """audio_since(s) is the fed audio from sample s on, across ring wrap-arounds and odd frame sizes."""
    rng = np.random.default_rng(5)
    audio = rng.integers(-32768, 32767, 16000 * 3, dtype=np.int16)
    engine = TurnEngine(_NoModelStream(), TurnSettings(type="none"), history_ms=250)  # 4000 samples
    at = 0
    for size in rng.integers(1, 3000, 200):
        engine.push(audio[at : at + size])
        at = min(at + size, len(audio))
        for since in (at - 4000, at - 3999, at - 1234, at - 1, at):
            np.testing.assert_array_equal(engine.audio_since(since), audio[max(since, 0, at - 4000) : at])
        if at == len(audio):
            break
    assert len(engine.audio_since(0)) == 4000  # older than the history: clamped to what is kept
    assert len(engine.audio_since(at + 10)) == 0


def test_a_frame_longer_than_the_history_keeps_its_tail():
    """One push bigger than the ring keeps exactly the newest history_ms of it."""
    engine = TurnEngine(_NoModelStream(), TurnSettings(type="none"), history_ms=10)  # 160 samples
    engine.push(np.arange(1000, dtype=np.int16))
    np.testing.assert_array_equal(engine.audio_since(0), np.arange(840, 1000, dtype=np.int16))


def test_prefix_padding_audio_is_available_when_the_turn_starts(model):
    """At SpeechStarted, audio_since(audio_start_sample) is the padded start of the turn up to now."""
    audio = speech("vm-reachoper")
    engine = TurnEngine(model.new_stream(), TurnSettings(prefix_padding_ms=400))
    fed = 0
    for frame in frames(audio):
        events = engine.feed(frame)
        fed += len(frame)
        started = [e for e in events if isinstance(e, SpeechStarted)]
        if started:
            start = started[0].audio_start_sample
            np.testing.assert_array_equal(engine.audio_since(start), audio[start:fed])
            assert fed - start >= (400 + 300) * 16
            return
    raise AssertionError("no SpeechStarted")


def test_quiet_stretches_stop_costing_model_runs_after_settling(model, monkeypatch):
    """Five seconds of digital silence cost only the settling chunks' model runs (16 of 156)."""
    runs = CountingRuns(model, monkeypatch)
    engine = TurnEngine(model.new_stream(), TurnSettings())
    feed_all(engine, np.zeros(16000 * 5, np.int16))
    assert runs.calls == engine_module._SETTLE_CHUNKS == 16


def test_quiet_noise_after_a_long_silence_is_not_speech(model):
    """Speech, 3 s of silence, then -43 dBFS noise: no onset (a state frozen at the end of speech would say 0.98)."""
    audio = np.concatenate([speech("hello-world", gap_ms=3000), white_noise(800, -43.0, seed=1)])
    events = feed_all(TurnEngine(model.new_stream(), TurnSettings()), audio)
    assert [type(e) for e in events] == [SpeechOnset, SpeechStarted, SpeechStopped]


def test_type_none_never_runs_the_model_or_emits(model, monkeypatch):
    """With type "none" real speech produces no events and no model runs, but audio is still kept."""
    runs = CountingRuns(model, monkeypatch)
    engine = TurnEngine(model.new_stream(), TurnSettings(type="none"))
    audio = speech("hello-world")
    assert feed_all(engine, audio) == [] and runs.calls == 0
    assert engine.samples_fed == len(audio)


def test_update_switches_detection_on_mid_call(model):
    """update() from "none" to "silero" makes the next utterance produce a turn."""
    engine = TurnEngine(model.new_stream(), TurnSettings(type="none"))
    assert feed_all(engine, speech("hello-world")) == []
    engine.update(TurnSettings())
    assert engine.settings.type == "silero"
    events = feed_all(engine, speech("vm-goodbye"))
    assert [type(e) for e in events] == [SpeechOnset, SpeechStarted, SpeechStopped]


def test_score_pending_gives_each_call_the_events_feed_would(model, monkeypatch):
    """Four calls pushed together and scored in batches get exactly their single-call events, one run per tick."""
    calls = [speech("hello-world"), speech("vm-reachoper", lead_ms=300), np.zeros(16000 * 4, np.int16),
             speech("please-try-again", "vm-goodbye", gap_ms=800)]
    length = min(len(a) for a in calls)
    calls = [a[:length] for a in calls]
    want = [feed_all(TurnEngine(model.new_stream(), TurnSettings()), a) for a in calls]
    engines = [TurnEngine(model.new_stream(), TurnSettings()) for _ in calls]
    got = [[] for _ in calls]
    runs = CountingRuns(model, monkeypatch)
    ticks = 0
    for at in range(0, length, 320):
        for engine, audio in zip(engines, calls):
            engine.push(audio[at : at + 320])
        for out, events in zip(got, score_pending(engines)):
            out += events
        ticks += 1
    assert got == want and all(want[i] for i in (0, 1, 3)) and want[2] == []
    assert runs.calls <= length // 512 and runs.rows < 4 * (length // 512)


def test_score_pending_runs_several_rounds_for_long_pushes(model):
    """An engine holding three ready chunks is scored in three rounds, in order, like feed()."""
    audio = speech("hello-world")[: 512 * 60]
    want = feed_all(TurnEngine(model.new_stream(), TurnSettings()), audio)
    engine = TurnEngine(model.new_stream(), TurnSettings())
    got = []
    for at in range(0, len(audio), 1536):
        assert engine.push(audio[at : at + 1536]) == 3
        got += score_pending([engine])[0]
    assert got == want and engine.pending_chunks == 0


def test_score_pending_refuses_mixed_models(model):
    """Engines on two different models cannot share a batch."""
    from sipbridge.turn.silero import load_model

    engines = [TurnEngine(model.new_stream(), TurnSettings()), TurnEngine(load_model().new_stream(), TurnSettings())]
    with pytest.raises(ValueError):
        score_pending(engines)
    assert score_pending([]) == []


def test_frames_must_be_1d_int16(model):
    """float or 2-D frames are refused rather than silently misread."""
    engine = TurnEngine(model.new_stream(), TurnSettings())
    with pytest.raises(ValueError):
        engine.feed(np.zeros(320, np.float32))
    with pytest.raises(ValueError):
        engine.feed(np.zeros((2, 160), np.int16))


class _NoModelStream:
    """Stands in for a SileroStream where no chunk may be scored (type "none")."""

    model = None
    sample_rate = 16000

    def prob(self, chunk):
        raise AssertionError("the model must not run")

    def skip(self, chunk, *, reset_state=False):
        pass
