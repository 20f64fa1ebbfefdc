"""Real recordings through a simulated phone line: turns end once, on time; music, noise and clicks never start one.

Callers are Asterisk prompts joined into utterances (two prompts with a pause of
``silence_threshold_ms - 150`` inside, or one prompt), 1500 ms apart, resampled
8 -> 16 kHz and taken through G.711 µ-law, optionally over a -60 dBFS noise floor.

The prompts are chosen for crisp edges: each reaches -40 dBFS within 30 ms of
its first and last sound above -50 dBFS. That is a precondition, checked below,
not a convenience: a word that fades out for 200 ms under -40 dBFS (or starts
with 100 ms of a barely audible "s") makes a nominal 350 ms pause sound like
500+ ms of silence to any level-gated detector; on random prompt pairs about
one call in twenty then ends a turn inside such a pause.
"""

import numpy as np
import pytest

from sipbridge.turn.engine import TurnEngine
from sipbridge.turn.events import SpeechOnset, SpeechStarted, SpeechStopped
from sipbridge.turn.settings import TurnSettings, resolve

from .corpus import MUSIC, caller, frames, prompt, read_wav, scaled_to, to_line, white_noise

UTTERANCE_SETS = {
    "a": [["conf-now-muted", "vm-reachoper"], ["hello-world"], ["please-try-again", "vm-nobodyavail"]],
    "b": [["number-not-answering", "pls-hold-while-try"], ["vm-goodbye"], ["vm-from-phonenumber", "auth-thankyou"]],
}
CRISP_MS = 30


def edge_ms(name: str, loud_dbfs: float = -40.0) -> tuple[int, int]:
    """ms from a trimmed prompt's start to its first 10 ms frame at loud_dbfs, and from its last such frame to its end."""
    x = prompt(name)
    f = x[: len(x) // 80 * 80].astype(np.float64).reshape(-1, 80) / 32768
    level = 10 * np.log10(np.maximum((f**2).mean(axis=1), 1e-20))
    loud = np.flatnonzero(level >= loud_dbfs)
    return int(loud[0]) * 10, (len(level) - 1 - int(loud[-1])) * 10


def run(audio: np.ndarray, settings: TurnSettings, model) -> list:
    engine = TurnEngine(model.new_stream(), settings)
    return [e for f in frames(audio) for e in engine.feed(f)]


@pytest.mark.parametrize("name", sorted({n for s in UTTERANCE_SETS.values() for u in s for n in u}))
def test_corpus_prompts_have_crisp_edges(name):
    """Every corpus prompt is loud within 30 ms of both ends, so the scripted pauses are the real pauses."""
    lead, tail = edge_ms(name)
    assert lead <= CRISP_MS and tail <= CRISP_MS, (lead, tail)


@pytest.mark.parametrize("noise_dbfs", [None, -60.0], ids=["digital-silence", "noise-60"])
@pytest.mark.parametrize("profile", [None, "fast", "patient", "noisy"])
@pytest.mark.parametrize("corpus", sorted(UTTERANCE_SETS))
def test_each_utterance_ends_exactly_once_and_on_time(model, corpus, profile, noise_dbfs):
    """One SpeechStopped per utterance, none in the in-utterance pauses, each <= silence + 100 ms after the true end."""
    settings = resolve({"profile": profile} if profile else {})
    silence = settings.silence_threshold_ms
    call = caller(UTTERANCE_SETS[corpus], pause_ms=silence - 150, noise_dbfs=noise_dbfs, seed=7)
    events = run(call.audio, settings, model)
    stops = [e for e in events if isinstance(e, SpeechStopped)]
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    assert len(stops) == len(starts) == len(call.utterance_ends), [(type(e).__name__, e.at_sample // 16) for e in events]
    for begin, end, start, stop in zip(call.utterance_starts, call.utterance_ends, starts, stops):
        assert 0 < stop.at_sample - end <= (silence + 100) * 16, (stop, end)
        assert -150 * 16 <= stop.audio_end_sample - end <= 100 * 16, (stop, end)
        assert start.audio_start_sample <= begin <= start.at_sample, (start, begin)


@pytest.mark.parametrize("path", sorted(MUSIC.glob("*.wav")), ids=lambda p: p.stem)
def test_music_on_hold_at_minus_30_dbfs_never_starts_a_turn(model, path):
    """Whole music-on-hold tracks at -30 dBFS RMS produce no SpeechStarted."""
    audio = to_line(scaled_to(read_wav(path), -30.0))
    events = run(audio, TurnSettings(), model)
    assert not [e for e in events if isinstance(e, SpeechStarted)]


def test_white_noise_at_minus_40_dbfs_is_not_even_an_onset(model):
    """Ten seconds of -40 dBFS white noise on the line produce no event at all."""
    noise = white_noise(10_000, -40.0, seed=3, rate=8000)
    assert run(to_line(noise), TurnSettings(), model) == []


@pytest.mark.parametrize("kind", ["noise-burst", "impulse"])
def test_a_100_ms_click_never_starts_a_turn(model, kind):
    """A 100 ms full-scale burst (or a decaying impulse) in silence is at most a rejected onset."""
    x = np.zeros(8000 * 2, np.int16)
    if kind == "noise-burst":
        x[8000 : 8000 + 800] = scaled_to(white_noise(100, 0.0, seed=9, rate=8000), -3.0)
    else:
        t = np.arange(800)
        x[8000 : 8000 + 800] = (32767 * np.exp(-t / 80) * np.cos(t * 1.3)).astype(np.int16)
    events = run(to_line(x), TurnSettings(), model)
    assert not [e for e in events if isinstance(e, SpeechStarted)]
    assert sum(isinstance(e, SpeechOnset) for e in events) <= 1
