"""Barge-in on real calls, measured on the wire by the caller (tests/support/barge.py)."""

import pytest

from tests.support import audio
from tests.support.barge import answer_shape, reply_pcm, run_call

# the speech and echo cases run at both sip.media_rate values (8000: Silero's 8 kHz model and
# the echo canceller on 8 kHz frames)
RATES = pytest.mark.parametrize("rate", [16000, 8000])


def at(rate: int) -> dict:
    return {"sip": {"media_rate": rate}}


@RATES
def test_speaking_over_the_agent_silences_it_cancels_and_truncates_at_what_was_heard(tmp_path, rate):
    """Caller speech over a long answer stops the agent on the wire, cancels it, and truncates it at the audio sent."""
    r = run_call(tmp_path, bridge_extra=at(rate))
    assert len(r.barge_ins) == 1 and r.barge_ins[0]["source"] == "local_vad", r.barge_ins
    assert r.onset_to_silence_ms is not None, "the agent never went silent"
    # from the first loud 20 ms (-30 dBFS); from the first audible breath (-40 dBFS) it is up
    # to ~150 ms more, since the energy trigger sits at -35 dBFS (see sipbridge/bargein.py)
    assert r.loud_onset_to_silence_ms <= 150, r.loud_onset_to_silence_ms
    assert r.onset_to_silence_ms <= 300, r.onset_to_silence_ms
    assert r.leaked_packets == 0
    assert r.cancels <= 1  # none when the answer had been fully streamed (4x real time) already
    assert r.truncate_error_ms is not None and abs(r.truncate_error_ms) <= 20, (r.audio_end_ms, r.wire_ms)
    cancelled = [d for d in r.responses_done if d["status"] == "cancelled"]
    assert len(cancelled) == 1


def test_dtmf_digit_interrupts_the_agent(tmp_path):
    """A DTMF digit while the agent talks interrupts it like speech does."""
    r = run_call(tmp_path, speak_over=False, dtmf="5")
    assert [b["source"] for b in r.barge_ins] == ["dtmf"], r.barge_ins
    assert r.onset_to_silence_ms is not None and r.onset_to_silence_ms <= 100, r.onset_to_silence_ms
    assert r.leaked_packets == 0 and r.onset_to_cancel_ms is not None
    assert abs(r.truncate_error_ms) <= 20


@RATES
def test_line_echo_of_the_agent_alone_does_not_interrupt(tmp_path, rate):
    """The agent's own voice echoed back 12 dB down, 40 ms late, never interrupts it: the answer plays out."""
    r = run_call(tmp_path, speak_over=False, echo=(40.0, 12.0), bridge_extra=at(rate))
    assert r.barge_ins == [] and r.cancels == 0
    assert [d["status"] for d in r.responses_done] == ["completed"]
    loud_ms = 20 * int((audio.frame_dbfs(reply_pcm(), 20, 8000) > -45).sum())
    assert r.agent_ms_heard >= loud_ms - 100, (r.agent_ms_heard, loud_ms)


@RATES
def test_speech_over_the_line_echo_still_interrupts(tmp_path, rate):
    """With the agent's echo on the line, the caller speaking over it still interrupts it."""
    r = run_call(tmp_path, echo=(40.0, 12.0), bridge_extra=at(rate))
    assert len(r.barge_ins) == 1 and r.barge_ins[0]["source"] == "local_vad", r.barge_ins
    assert r.loud_onset_to_silence_ms is not None and r.loud_onset_to_silence_ms <= 150
    assert r.onset_to_silence_ms <= 300, r.onset_to_silence_ms
    assert r.leaked_packets == 0


def test_speech_over_music_silences_the_agent_on_the_wire(tmp_path):
    """A caller 12 dB over -25 dBFS music interrupts the agent: silent on the wire soon after the word, cancelled, nothing leaked."""
    # the answer streams at 1.5x real time, so it is still being generated when Silero confirms
    # the voice under the music (later than on a clean line): the confirmation must cancel it
    r = run_call(tmp_path, background="music", pace=1.5)
    assert len(r.barge_ins) == 1 and r.barge_ins[0]["source"] == "local_vad", r.barge_ins
    assert r.onset_to_silence_ms is not None, "the agent never went silent"
    assert r.loud_onset_to_silence_ms <= 150, r.loud_onset_to_silence_ms
    assert r.onset_to_silence_ms <= 250, r.onset_to_silence_ms
    assert r.leaked_packets == 0
    cancelled = [d for d in r.responses_done if d["status"] == "cancelled"]
    assert len(cancelled) == 1
    # the log says what paused the agent: a voice standing out of the music the line had learnt
    # (4 dB at least: a quiet voice Silero is sure of; 9 dB a foreground one)
    paused = [e for e in r.bridge_log if e.get("event") == "barge_in_paused"]
    assert paused and paused[0]["busy"] is True and paused[0]["over_background_db"] >= 4.0, paused
    assert paused[0]["echo"] in ("idle", "acquiring", "cancelling", "echo_free"), paused   # echo_guard


def test_a_caller_over_a_tv_is_answered_and_interrupts_on_the_wire(tmp_path):
    """A TV talking at -30 dBFS all call long (Silero's turn on it never ends): the caller's first words 12 dB over it are answered, their turn ended at their voice's end, and their interruption silences and cancels the agent."""
    r = run_call(tmp_path, background="tv", pace=1.5)    # (run_call asserts the agent answered)
    ended = [e for e in r.bridge_log if e.get("event") == "turn_ended_over_background"]
    assert ended, [e.get("event") for e in r.bridge_log if "turn" in str(e.get("event"))]
    assert len(r.barge_ins) == 1 and r.barge_ins[0]["source"] == "local_vad", r.barge_ins
    assert r.onset_to_silence_ms is not None and r.leaked_packets == 0
    assert [d["status"] for d in r.responses_done].count("cancelled") == 1


def test_music_under_the_agent_neither_pauses_nor_cancels_it_with_the_voice_trigger(tmp_path):
    """With barge_in.trigger voice, music at -25 dBFS on the caller's line all call long and nobody speaking over the agent: the whole answer plays out on the wire with no pause and no gap it does not have itself."""
    r = run_call(tmp_path, speak_over=False, background="music",
                 bridge_extra={"barge_in": {"trigger": "voice"}})
    assert r.barge_ins == [] and r.cancels == 0, r.barge_ins
    assert [d["status"] for d in r.responses_done] == ["completed"]
    resumed = [(e.get("why"), e.get("paused_ms")) for e in r.bridge_log
               if e.get("event") == "barge_in_resumed"]
    # what the caller hears: a pause (the level trigger's 260 ms ones on this music) keeps the
    # answer's rest and plays it later, so the answer lasts longer on the wire than it is, and
    # one inside a word is a silence the answer does not have (its own longest: 300 ms)
    span, longest_quiet = answer_shape(audio.frame_dbfs(reply_pcm(), 20, 8000))
    assert r.answer_span_ms <= span + 40, (r.answer_span_ms, span, resumed)
    assert r.answer_longest_quiet_ms <= longest_quiet + 40, (r.answer_longest_quiet_ms, resumed)
    assert resumed == []
