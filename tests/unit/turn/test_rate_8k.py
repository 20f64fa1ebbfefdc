"""Turn taking at 8 kHz, as G.711 arrives: Silero's 8 kHz branch, an 8 kHz TurnEngine, mixed-rate batches.

Audio is the Asterisk prompts (8 kHz recordings) through a G.711 µ-law round trip
and nothing else: no resampling. The 16 kHz twin of the same source is built as
the rest of this package's tests build a caller (``corpus.to_line``).
"""

import numpy as np
import pytest

from sipbridge.turn.batch import TickBatch
from sipbridge.turn.engine import RESET_MS, SETTLE_MS, TurnEngine, score_pending
from sipbridge.turn.events import SpeechOnset, SpeechStarted, SpeechStopped
from sipbridge.turn.settings import TurnSettings
from tests.support.audio import ulaw_decode, ulaw_encode

from .corpus import frames, prompt, to_line, white_noise

RATE8, RATE16 = 8000, 16000
CHUNK8 = 256  # 32 ms at 8 kHz
CRISP = ["please-try-again", "conf-now-muted", "vm-goodbye"]  # loud within 30 ms of both ends
LEAD_MS, TAIL_MS = 600, 1500


def line8(x8k: np.ndarray) -> np.ndarray:
    """8 kHz source as an 8 kHz call hears it: a µ-law round trip."""
    return ulaw_decode(ulaw_encode(x8k))


def said(name: str, lead_ms: int = LEAD_MS, tail_ms: int = TAIL_MS) -> np.ndarray:
    """8 kHz source: lead silence, the prompt, tail silence."""
    return np.concatenate([np.zeros(lead_ms * 8, np.int16), prompt(name), np.zeros(tail_ms * 8, np.int16)])


def at_rate(source8k: np.ndarray, rate: int) -> np.ndarray:
    return line8(source8k) if rate == RATE8 else to_line(source8k)


def feed_all(engine: TurnEngine, audio: np.ndarray) -> list:
    return [e for f in frames(audio, engine.sample_rate // 50) for e in engine.feed(f)]


def scores(stream, audio: np.ndarray) -> np.ndarray:
    n = stream.chunk_samples
    return np.array([stream.prob(audio[i : i + n]) for i in range(0, len(audio) // n * n, n)])


def test_streams_know_their_rate_and_refuse_others(model):
    """new_stream(8000) takes 256-sample chunks; a 512-sample chunk or a rate Silero lacks is a ValueError."""
    s8, s16 = model.new_stream(RATE8), model.new_stream()
    assert (s8.sample_rate, s8.chunk_samples) == (RATE8, CHUNK8)
    assert (s16.sample_rate, s16.chunk_samples) == (RATE16, 512)
    with pytest.raises(ValueError):
        s8.prob(np.zeros(512, np.int16))
    for rate in (44100, 11025, 4000):  # the model itself would score these on its 8 kHz branch
        with pytest.raises(ValueError):
            model.new_stream(rate)


@pytest.mark.parametrize("name", ["hello-world", *CRISP])
def test_8k_scoring_finds_speech_in_a_prompt(model, name):
    """A prompt over 8 kHz µ-law reaches > 0.9 within its first half second and is mostly > 0.5."""
    p = scores(model.new_stream(RATE8), line8(prompt(name)))
    assert p[:16].max() > 0.9
    assert np.mean(p > 0.5) > 0.75, p.round(2)


@pytest.mark.parametrize("dbfs", [-30.0, -40.0, -50.0])
def test_8k_scoring_stays_low_on_silence_and_noise(model, dbfs):
    """Digital silence stays < 0.1 and 3 s of white noise < 0.2 (the default threshold is 0.5)."""
    assert scores(model.new_stream(RATE8), np.zeros(CHUNK8 * 20, np.int16)).max() < 0.1
    assert scores(model.new_stream(RATE8), white_noise(3000, dbfs, seed=3, rate=RATE8)).max() < 0.2


@pytest.mark.parametrize("name", CRISP)
def test_an_8k_engine_finds_one_turn_at_the_true_start_and_end(model, name):
    """Prompt then silence at 8 kHz: Onset, Started, Stopped; start and end within two 256-sample chunks of the
    truth, and within one 32 ms chunk of what a 16 kHz engine decides on the same source."""
    settings = TurnSettings()
    source = said(name)
    start, end = LEAD_MS * 8, LEAD_MS * 8 + len(prompt(name))  # 8 kHz samples
    engine = TurnEngine(model.new_stream(RATE8), settings)
    events = feed_all(engine, line8(source))
    assert [type(e) for e in events] == [SpeechOnset, SpeechStarted, SpeechStopped]
    onset = events[0].audio_start_sample + settings.prefix_padding_ms * RATE8 // 1000
    assert abs(onset - start) <= 2 * CHUNK8 and abs(events[2].audio_end_sample - end) <= 2 * CHUNK8
    assert events[0].audio_start_ms == events[0].audio_start_sample * 1000 // RATE8
    # the silence threshold is counted in 8 kHz samples: the stop is decided ~500 ms after the speech ends
    assert 500 <= (events[2].at_sample - events[2].audio_end_sample) * 1000 / RATE8 < 500 + 32
    twin = feed_all(TurnEngine(model.new_stream(RATE16), settings), to_line(source))
    for e8, e16 in zip(events, twin, strict=True):
        assert type(e8) is type(e16) and abs(e8.at_sample / RATE8 - e16.at_sample / RATE16) <= 0.032


@pytest.mark.parametrize("rate", [RATE8, RATE16])
def test_settle_and_reset_are_the_same_milliseconds_at_either_rate(model, rate):
    """In digital silence the model runs for the first SETTLE_MS (rounded up to a 32 ms chunk), then the stream
    is skipped; the state is first zeroed on the chunk that completes RESET_MS of quiet."""
    engine = TurnEngine(model.new_stream(rate), TurnSettings())
    stream, log = engine.stream, []
    real_prob, real_skip = stream.prob, stream.skip
    stream.prob = lambda chunk: log.append("run") or real_prob(chunk)
    stream.skip = lambda chunk, reset_state=False: log.append("reset" if reset_state else "skip") or real_skip(
        chunk, reset_state=reset_state)
    feed_all(engine, np.zeros(2 * rate, np.int16))
    assert log.index("skip") * 32 == -(-SETTLE_MS // 32) * 32 == 512
    assert (log.index("reset") + 1) * 32 == -(-RESET_MS // 32) * 32 == 1024


def test_the_audio_history_is_kept_in_milliseconds_at_8k(model):
    """history_ms=250 keeps 2000 samples at 8 kHz; audio_since returns them exactly."""
    engine = TurnEngine(model.new_stream(RATE8), TurnSettings(type="none"), history_ms=250)
    audio = np.arange(8000, dtype=np.int16)
    for f in frames(audio, 160):
        engine.push(f)
    assert engine.sample_rate == RATE8 and engine.samples_fed == 8000
    np.testing.assert_array_equal(engine.audio_since(0), audio[-2000:])


def test_a_batch_of_8k_and_16k_calls_scores_each_as_it_would_alone(model, monkeypatch):
    """Calls at both rates in one TickBatch get exactly the events each gets alone; no model run mixes rates."""
    plan = [(RATE8, said("please-try-again")), (RATE16, said("vm-reachoper", lead_ms=300)),
            (RATE8, said("conf-now-muted", lead_ms=900)), (RATE8, np.zeros(8000 * 3, np.int16)),
            (RATE16, said("vm-goodbye", lead_ms=450))]
    ticks = min(len(src) for _, src in plan) // 160
    calls = [(rate, at_rate(src, rate)[: ticks * rate // 50]) for rate, src in plan]
    want = [feed_all(TurnEngine(model.new_stream(rate), TurnSettings()), audio) for rate, audio in calls]
    engines = [TurnEngine(model.new_stream(rate), TurnSettings()) for rate, _ in calls]
    widths: list[list[int]] = []
    real_run = model._run

    def run(audio, state):
        widths[-1].append(audio.shape[1])
        return real_run(audio, state)

    monkeypatch.setattr(model, "_run", run)
    got = [[] for _ in calls]
    batch = TickBatch()
    for tick in range(ticks):
        widths.append([])
        batch.flush()
        for engine, (rate, audio), out in zip(engines, calls, got):
            size = rate // 50
            batch.push(engine, audio[tick * size : (tick + 1) * size], out.extend)
    assert got == want
    assert all(want[i] for i in (0, 1, 2, 4)) and want[3] == []
    # one run per rate present in a round: 288-wide (8 kHz) and 576-wide (16 kHz) inputs, never one run for both
    assert max(len(w) for w in widths) == 2 and all(len(set(w)) == len(w) <= 2 for w in widths)
    assert {x for w in widths for x in w} == {288, 576}


def test_score_pending_groups_rates_and_probs_refuses_to_mix_them(model):
    """score_pending on one 8 kHz and one 16 kHz engine equals each alone; probs() on mixed streams is a ValueError."""
    audio8, audio16 = line8(said("vm-goodbye")), to_line(said("vm-goodbye"))
    want8 = feed_all(TurnEngine(model.new_stream(RATE8), TurnSettings()), audio8)
    want16 = feed_all(TurnEngine(model.new_stream(RATE16), TurnSettings()), audio16)
    e8, e16 = TurnEngine(model.new_stream(RATE8), TurnSettings()), TurnEngine(model.new_stream(), TurnSettings())
    got8, got16 = [], []
    for tick in range(len(audio8) // 160):
        e8.push(audio8[tick * 160 : (tick + 1) * 160])
        e16.push(audio16[tick * 320 : (tick + 1) * 320])
        a, b = score_pending([e8, e16])
        got8 += a
        got16 += b
    assert got8 == want8 and got16 == want16 and len(want8) == 3
    with pytest.raises(ValueError, match="8000 and 16000 Hz in one batch"):
        model.probs([model.new_stream(RATE8), model.new_stream()],
                    [np.zeros(CHUNK8, np.int16), np.zeros(512, np.int16)])
