"""Speech segments by level with hysteresis, turn pairing, first words and barge-in figures."""

import numpy as np
import pytest

from sipbridge.caller.analysis import (BargeIn, Levels, Segment, analyse, segments, turns,
                                       window_dbfs)

RATE = 8000


def silence(ms):
    return np.zeros(RATE * ms // 1000, dtype=np.int16)


def tone(ms, dbfs=-20.0, hz=440):
    t = np.arange(RATE * ms // 1000) / RATE
    amp = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)  # RMS of the sine = dbfs
    return np.round(amp * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def noise(ms, dbfs, seed=1):
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0, 32768 * 10 ** (dbfs / 20), RATE * ms // 1000)).astype(np.int16)


def cat(*parts):
    return np.concatenate(parts)


def test_window_level_of_a_sine_is_its_rms_in_dbfs():
    """A sine of RMS -20 dBFS measures -20 dBFS in every 10 ms window; digital silence is -inf."""
    db = window_dbfs(cat(tone(100), silence(20)), RATE)
    assert np.allclose(db[:10], -20.0, atol=0.1)
    assert np.all(np.isneginf(db[10:]))


def test_one_burst_is_one_segment_at_its_exact_times():
    """A 600 ms tone after 300 ms of silence is one segment from 300 to 900 ms."""
    assert segments(cat(silence(300), tone(600), silence(700)), RATE) == [Segment(300, 900)]


def test_origin_shifts_every_time():
    """Times are counted from origin_ms."""
    assert segments(cat(silence(300), tone(600)), RATE, origin_ms=100) == [Segment(200, 800)]


def test_quiet_noise_is_not_speech():
    """Noise at -60 dBFS (below off_dbfs) gives no segment."""
    assert segments(noise(2000, -60), RATE) == []


def test_level_between_thresholds_neither_starts_nor_is_lost():
    """-40 dBFS alone starts nothing, but right before and after loud speech it belongs to it."""
    assert segments(tone(1000, -40), RATE) == []
    pcm = cat(silence(200), tone(200, -40), tone(300, -20), tone(200, -40), silence(800))
    assert segments(pcm, RATE) == [Segment(200, 900)]


def test_a_pause_shorter_than_min_silence_does_not_split():
    """Two words 400 ms apart are one segment; 600 ms apart, two (min_silence_ms 500)."""
    short = cat(tone(300), silence(400), tone(300), silence(600))
    assert segments(short, RATE) == [Segment(0, 1000)]
    long = cat(tone(300), silence(600), tone(300), silence(600))
    assert segments(long, RATE) == [Segment(0, 300), Segment(900, 1200)]


def test_a_click_shorter_than_min_speech_is_dropped():
    """A 30 ms burst is no speech with min_speech_ms 80; 100 ms is."""
    assert segments(cat(silence(200), tone(30), silence(800)), RATE) == []
    assert segments(cat(silence(200), tone(100), silence(800)), RATE) == [Segment(200, 300)]


def test_speech_running_to_the_end_is_closed_at_its_last_loud_window():
    """A segment still open when the audio ends ends at its last loud window."""
    assert segments(cat(silence(100), tone(500), silence(200)), RATE) == [Segment(100, 600)]


def test_levels_refuse_off_above_on():
    """off_dbfs above on_dbfs is a ValueError."""
    with pytest.raises(ValueError):
        Levels(on_dbfs=-50, off_dbfs=-40)


def test_reply_is_paired_with_its_utterance_and_timed_from_its_end():
    """The agent's segment after an utterance is its reply; EOU->reply is start minus end."""
    t = turns([Segment(100, 1500), Segment(4000, 5000)], [Segment(2100, 3500), Segment(5700, 6000)])
    assert [(x.reply_start_ms, x.eou_to_reply_ms, x.barge_in) for x in t] == [
        (2100, 600, None), (5700, 700, None)]


def test_no_reply_before_the_next_utterance_is_none():
    """An agent segment after the next utterance began is not the earlier utterance's reply."""
    t = turns([Segment(0, 1000), Segment(1600, 2400)], [Segment(3000, 3500)])
    assert t[0].reply_start_ms is None and t[0].eou_to_reply_ms is None
    assert t[1].reply_start_ms == 3000 and t[1].eou_to_reply_ms == 600


def test_agent_starting_before_the_caller_finished_is_a_negative_gap():
    """A reply that starts inside the utterance reports a negative EOU->reply time."""
    t = turns([Segment(0, 2000)], [Segment(1800, 2600)])
    assert t[0].eou_to_reply_ms == -200


def test_barge_in_measures_onset_to_the_agent_going_silent():
    """An utterance starting inside an agent segment is a barge-in: onset to the segment's end."""
    t = turns([Segment(0, 1000), Segment(2500, 3500)], [Segment(1600, 2650), Segment(4100, 4900)])
    assert t[1].barge_in == BargeIn(onset_ms=2500, to_silence_ms=150)
    assert t[1].eou_to_reply_ms == 600
    assert t[0].barge_in is None


def test_agent_talking_on_past_the_utterance_was_not_interrupted():
    """When the agent segment outlasts the utterance, the barge-in has no silence time."""
    t = turns([Segment(2000, 2300)], [Segment(1000, 4000)])
    assert t[0].barge_in == BargeIn(onset_ms=2000, to_silence_ms=None)


def test_analyse_a_whole_call_on_one_clock():
    """Sent and received audio on one clock: first words, reply and barge-in, from the answer."""
    sent = cat(silence(200), tone(1000), silence(1700), tone(800), silence(3000))
    # the agent answers 700 ms after the first utterance and is cut 120 ms into the second
    received = cat(silence(1900), tone(1020, -25, 300), silence(1300), tone(900, -25, 300))
    r = analyse(sent, received, RATE, origin_ms=40)
    assert r.caller == [Segment(160, 1160), Segment(2860, 3660)]
    assert r.agent == [Segment(1860, 2880), Segment(4180, 5080)]
    assert r.first_words_ms == 1860
    assert r.duration_ms == len(sent) * 1000 / RATE - 40
    assert [(t.eou_to_reply_ms, t.barge_in) for t in r.turns] == [
        (700, None), (520, BargeIn(2860, 20))]
    assert r.agent_speech_ms == 1920


def test_analyse_pads_the_shorter_side_and_handles_silence():
    """A silent agent gives no first words and turns without replies; lengths may differ."""
    r = analyse(cat(tone(500), silence(600)), silence(300), RATE)
    assert r.first_words_ms is None and r.agent == []
    assert [(t.utterance, t.reply_start_ms) for t in r.turns] == [(Segment(0, 500), None)]
    assert r.duration_ms == 1100
