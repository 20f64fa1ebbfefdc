"""The barge-in path replayed offline (bench/barge_sim.py): the real session, Silero and policy."""

from __future__ import annotations


import pytest

from tests.support import audio, bench_module

barge_sim = bench_module.load("barge_sim")


@pytest.fixture(scope="module")
def model():
    return barge_sim.load_model()


def _prompt(name: str):
    return audio.trim_silence(audio.load_wav(audio.asterisk_prompt(name), rate=8000), rate=8000)


@pytest.mark.parametrize("name", ["auth-thankyou", "activated", "sorry"])
def test_words_silero_doubts_at_first_stop_the_agent_within_two_frames(model, name):
    """Words that open on sounds Silero doubts, or with a stop gap, silence the agent within 40 ms for good."""
    pcm = _prompt(name)
    for at_ms in (2140, 2220, 1200):
        res = barge_sim.simulate(model, pcm, at_ms, total_ms=at_ms + len(pcm) // 8 + 600)
        assert res["barge_ins"] == 1
        assert barge_sim.onset_to_silence(res, pcm, at_ms) <= 40, at_ms


def test_a_breath_before_the_first_word_is_not_the_onset(model):
    """tt-somethingwrong opens with 140 ms of breath: the agent stops 20 ms after the word, not the breath."""
    pcm = _prompt("tt-somethingwrong")
    res = barge_sim.simulate(model, pcm, 1200, total_ms=1200 + len(pcm) // 8 + 600)
    assert barge_sim.onset_to_silence(res, pcm, 1200) <= 40
    assert barge_sim.onset_to_silence(res, pcm, 1200, span=1) >= 140


def test_line_echo_alone_never_pauses_the_agent(model):
    """The agent's own voice echoed 6 dB down, 20 ms late, neither pauses nor cancels it."""
    res = barge_sim.simulate(model, None, 0, echo=(20, 6), total_ms=5000)
    assert (res["pauses"], res["barge_ins"]) == (0, 0)
    assert (res["out_dbfs"] > barge_sim.SILENT_DBFS).sum() > 150   # it talked throughout


@pytest.mark.parametrize("case", [22, 159, 199])
def test_music_under_the_agents_first_second_is_not_forgotten_and_never_pauses_it(model, case):
    """Music (the corpus's tuning part) that the echo canceller sank under the agent's first second: once back it is the known background, not a new sound (these paused the agent 300 ms)."""
    noise_corpus = bench_module.load("noise_corpus")
    bg, _level = noise_corpus.background("music", "tune", case, 10000)
    res = barge_sim.simulate(model, None, 0, background=bg, agent_at_ms=2000, total_ms=10000, rate=8000)
    assert (res["pauses"], res["barge_ins"]) == (0, 0)
