"""TurnDetector on scripted (probability, dBFS) chunks: timing to the chunk, rejection, pauses, hysteresis.

At 16 kHz a chunk is 512 samples = 32 ms exactly; chunk ``i`` (from 0) ends at
sample ``(i + 1) * 512``. Default settings: threshold 0.5, release 0.35,
min speech 300 ms (10 chunks = 320 ms), silence 500 ms (16 chunks = 512 ms),
prefix padding 200 ms = 3200 samples, floor -45 dBFS.
"""

import math

from hypothesis import given, settings as hsettings, strategies as st

from sipbridge.turn.detector import TurnDetector, TurnState
from sipbridge.turn.events import SpeechOnset, SpeechRejected, SpeechStarted, SpeechStopped
from sipbridge.turn.settings import TurnSettings

N = 512
SPEECH = (0.95, -20.0)
QUIET = (0.02, -70.0)


def run(script, settings=None, detector=None):
    """Feed the script; returns [(chunk_index, event)]."""
    det = detector or TurnDetector(settings or TurnSettings())
    out = []
    for i, (prob, dbfs) in enumerate(script):
        out += [(i, e) for e in det.process((i + 1) * N, prob, dbfs)]
    return out


def kinds(events):
    return [type(e).__name__ for _, e in events]


def test_onset_and_start_land_on_the_right_chunks():
    """Speech from chunk 20 gives SpeechOnset on chunk 20 and SpeechStarted on chunk 29 (10 chunks = 320 ms >= 300)."""
    events = run([QUIET] * 20 + [SPEECH] * 12)
    assert [(i, type(e)) for i, e in events] == [(20, SpeechOnset), (29, SpeechStarted)]
    onset, started = events[0][1], events[1][1]
    assert onset.audio_start_sample == started.audio_start_sample == 20 * N - 3200
    assert started.audio_start_ms == 20 * 32 - 200 and started.at_sample == 30 * N


def test_stop_comes_after_silence_threshold_and_reports_the_last_speech_chunk_end():
    """After speech ending with chunk 39, SpeechStopped comes on chunk 55 (16 x 32 = 512 ms >= 500) at 1280 ms."""
    events = run([QUIET] * 20 + [SPEECH] * 20 + [QUIET] * 30)
    assert kinds(events) == ["SpeechOnset", "SpeechStarted", "SpeechStopped"]
    i, stopped = events[-1]
    assert i == 55 and stopped.audio_end_sample == 40 * N and stopped.audio_end_ms == 1280


def test_a_candidate_shorter_than_min_speech_is_rejected_and_never_started():
    """Nine speech chunks (288 ms < 300) give Onset then Rejected, on the second quiet chunk."""
    events = run([QUIET] * 5 + [SPEECH] * 9 + [QUIET] * 40)
    assert [(i, type(e)) for i, e in events] == [(5, SpeechOnset), (15, SpeechRejected)]
    assert events[1][1].audio_start_sample == events[0][1].audio_start_sample


def test_exactly_min_speech_is_enough():
    """Ten speech chunks (320 ms) are confirmed on the tenth."""
    events = run([QUIET] * 5 + [SPEECH] * 10 + [QUIET] * 40)
    assert [(i, type(e)) for i, e in events] == [(5, SpeechOnset), (14, SpeechStarted), (30, SpeechStopped)]


def test_one_quiet_chunk_inside_a_candidate_is_bridged():
    """A single sub-floor chunk (a stop closure) does not reject a candidate; the speech span counts across it."""
    events = run([QUIET] * 5 + [SPEECH] * 4 + [QUIET] + [SPEECH] * 6 + [QUIET] * 20)
    assert [(i, type(e)) for i, e in events][:2] == [(5, SpeechOnset), (14, SpeechStarted)]


def test_a_pause_just_under_silence_threshold_does_not_end_the_turn():
    """15 quiet chunks (480 ms < 500) inside a turn are a pause: one turn, stopped after the second part."""
    events = run([QUIET] * 5 + [SPEECH] * 20 + [QUIET] * 15 + [SPEECH] * 20 + [QUIET] * 20)
    assert kinds(events) == ["SpeechOnset", "SpeechStarted", "SpeechStopped"]
    assert events[-1][1].audio_end_sample == 60 * N


def test_a_pause_just_over_silence_threshold_ends_the_turn():
    """16 quiet chunks (512 ms >= 500) end the turn on the 16th; the speech after it is a new turn."""
    events = run([QUIET] * 5 + [SPEECH] * 20 + [QUIET] * 16 + [SPEECH] * 20 + [QUIET] * 20)
    assert kinds(events) == ["SpeechOnset", "SpeechStarted", "SpeechStopped"] * 2
    assert events[2][0] == 40 and events[2][1].audio_end_sample == 25 * N


def test_thresholds_that_are_whole_chunks_are_met_on_that_chunk():
    """min_speech 320 ms (10 chunks) confirms on the 10th speech chunk; silence 480 ms (15 chunks) stops on the 15th quiet one."""
    events = run([QUIET] * 5 + [SPEECH] * 20 + [QUIET] * 20, TurnSettings(min_speech_ms=320, silence_threshold_ms=480))
    assert [(i, type(e)) for i, e in events] == [(5, SpeechOnset), (14, SpeechStarted), (39, SpeechStopped)]


def test_zero_min_speech_and_zero_silence_react_on_the_first_chunk():
    """With min_speech 0 the onset chunk also starts the turn; with silence 0 the first quiet chunk stops it."""
    events = run([QUIET] + [SPEECH] + [QUIET], TurnSettings(min_speech_ms=0, silence_threshold_ms=0))
    assert [(i, type(e)) for i, e in events] == [(1, SpeechOnset), (1, SpeechStarted), (2, SpeechStopped)]


def test_prefix_padding_is_clamped_at_call_start():
    """Speech from chunk 2 (64 ms) starts its audio at 0, not at -136 ms."""
    events = run([QUIET] * 2 + [SPEECH] * 12)
    assert events[0][1].audio_start_ms == 0 and events[1][1].audio_start_sample == 0


def test_prefix_padding_follows_settings():
    """With 400 ms of padding, speech at chunk 20 (640 ms) starts its audio at 240 ms."""
    events = run([QUIET] * 20 + [SPEECH] * 12, TurnSettings(prefix_padding_ms=400))
    assert events[0][1].audio_start_ms == 240


def test_a_one_chunk_0_dbfs_click_is_rejected():
    """A single full-scale chunk that the model scores 0.9 is an onset then a rejection, never a turn."""
    events = run([QUIET] * 10 + [(0.9, 0.0)] + [QUIET] * 20)
    assert kinds(events) == ["SpeechOnset", "SpeechRejected"]


def test_digital_silence_is_never_speech_whatever_the_probability():
    """-inf dBFS chunks with a high (hangover) probability neither start nor continue speech."""
    det = TurnDetector(TurnSettings())
    assert run([(0.99, -math.inf)] * 30, detector=det) == []
    events = run([SPEECH] * 12 + [(0.99, -math.inf)] * 16)
    assert kinds(events) == ["SpeechOnset", "SpeechStarted", "SpeechStopped"]
    assert events[-1][1].audio_end_sample == 12 * N


def test_probability_hysteresis_holds_speech_between_release_and_threshold():
    """0.4 (between release 0.35 and threshold 0.5) keeps a turn going but cannot start one."""
    assert run([(0.4, -20.0)] * 40) == []
    events = run([SPEECH] * 12 + [(0.4, -20.0)] * 30 + [(0.3, -20.0)] * 16)
    assert kinds(events) == ["SpeechOnset", "SpeechStarted", "SpeechStopped"]
    assert events[-1][1].audio_end_sample == 42 * N


def test_level_hysteresis_holds_speech_just_under_the_floor_but_cannot_start_it():
    """At -50 dBFS (floor -45, 10 dB of hold) a fading word continues a turn; it never starts one."""
    assert run([(0.99, -50.0)] * 40) == []
    events = run([SPEECH] * 12 + [(0.99, -50.0)] * 10 + [(0.99, -56.0)] * 16)
    assert events[-1][1].audio_end_sample == 22 * N


def test_trailing_needs_the_full_threshold_to_resume():
    """Once pausing, a chunk at 0.4 does not resume the turn; the stop is counted from the last real speech."""
    events = run([SPEECH] * 12 + [QUIET] * 3 + [(0.4, -20.0)] * 20)
    assert kinds(events) == ["SpeechOnset", "SpeechStarted", "SpeechStopped"]
    assert events[-1][1].audio_end_sample == 12 * N and events[-1][0] == 12 + 15


def test_update_raises_the_threshold_from_the_next_chunk():
    """0.55 chunks start speech at threshold 0.5; after update(threshold=0.6) they no longer can."""
    det = TurnDetector(TurnSettings())
    det.update(TurnSettings(threshold=0.6))
    assert run([(0.55, -20.0)] * 20, detector=det) == []
    det.update(TurnSettings())
    assert det.process(21 * N, 0.55, -20.0) == [SpeechOnset(20 * 32 - 200, 20 * N - 3200, 21 * N)]


def test_update_mid_turn_keeps_the_turn_and_applies_new_silence_at_once():
    """Shortening silence_threshold to 300 ms during a 320 ms pause stops on the next chunk, with no new onset."""
    det = TurnDetector(TurnSettings())
    events = run([SPEECH] * 12 + [QUIET] * 10, detector=det)
    assert det.state is TurnState.TRAILING and kinds(events) == ["SpeechOnset", "SpeechStarted"]
    det.update(TurnSettings(silence_threshold_ms=300))
    assert det.process(23 * N, *QUIET) == [SpeechStopped(12 * 32, 12 * N, 23 * N)]


def test_states_follow_the_turn():
    """idle -> candidate -> speaking -> trailing -> idle, readable as strings."""
    det = TurnDetector(TurnSettings())
    seen = []
    for i, chunk in enumerate([QUIET] + [SPEECH] * 10 + [QUIET] * 16):
        det.process((i + 1) * N, *chunk)
        seen.append(det.state.value)
    assert seen[0] == "idle" and seen[1] == "candidate" and seen[10] == "speaking"
    assert seen[11] == "trailing" and seen[-1] == "idle"


def test_reset_drops_the_turn_silently():
    """reset() after a DTMF commit returns to idle; no SpeechStopped follows."""
    det = TurnDetector(TurnSettings())
    run([SPEECH] * 12, detector=det)
    det.reset()
    assert det.state is TurnState.IDLE
    assert [e for i in range(13, 40) for e in det.process(i * N, *QUIET)] == []


def test_end_sample_must_increase():
    """Feeding the same chunk end twice is a caller bug and raises."""
    det = TurnDetector(TurnSettings())
    det.process(N, *QUIET)
    try:
        det.process(N, *QUIET)
    except ValueError:
        return
    raise AssertionError("no ValueError")


def test_ms_conversions_use_the_sample_rate():
    """At 8 kHz a 512-sample chunk is 64 ms and 200 ms of padding is 1600 samples."""
    det = TurnDetector(TurnSettings(), sample_rate=8000)
    events = run([QUIET] * 10 + [SPEECH] * 6, detector=det)
    assert events[0][1].audio_start_sample == 10 * N - 1600 and events[0][1].audio_start_ms == 640 - 200
    assert kinds(events) == ["SpeechOnset", "SpeechStarted"]  # 5 chunks = 320 ms


chunk = st.tuples(st.floats(0, 1), st.sampled_from([-math.inf, -80.0, -50.0, -44.0, -30.0, 0.0]))


@hsettings(max_examples=300, deadline=None)
@given(st.lists(chunk, max_size=300), st.sampled_from([TurnSettings(), TurnSettings(min_speech_ms=0,
       silence_threshold_ms=0), TurnSettings(threshold=0.9, silence_threshold_ms=100)]))
def test_events_always_follow_the_turn_grammar(script, settings):
    """Any input yields Onset (Rejected | Started Stopped?)* in order, with stops after the silence threshold."""
    events = [e for _, e in run(script, settings)]
    expect = "onset"
    silence = settings.silence_threshold_ms * 16
    for e in events:
        if expect == "onset":
            assert isinstance(e, SpeechOnset)
            expect = "outcome"
        elif expect == "outcome":
            assert isinstance(e, (SpeechRejected, SpeechStarted))
            expect = "stop" if isinstance(e, SpeechStarted) else "onset"
        else:
            assert isinstance(e, SpeechStopped)
            assert e.at_sample - e.audio_end_sample >= silence
            expect = "onset"
    for a, b in zip(events, events[1:]):
        assert a.at_sample <= b.at_sample
