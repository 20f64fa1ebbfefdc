"""The call summary: the JSON object's fields and the text a person reads."""

import json

from sipbridge.caller.analysis import BargeIn, Report, Segment, Turn
from sipbridge.caller.summary import Outcome, as_dict, as_text


def report():
    return Report(duration_ms=8760.4, first_words_ms=2820.0,
                  turns=[Turn(Segment(100, 2120), 2820, 700),
                         Turn(Segment(3400, 4550), 5950, 1400, BargeIn(3400, 130.4))],
                  caller=[Segment(100, 2120), Segment(3400, 4550)],
                  agent=[Segment(2820, 3530), Segment(5950, 7050)])


def test_answered_call_as_json():
    """An answered call gives every figure in whole ms, JSON-serialisable."""
    d = as_dict(Outcome("sip:bot@h", True, 200, "OK", 6.2), report(), "heard.wav")
    assert json.loads(json.dumps(d)) == d
    assert d["answered"] and d["status"] == 200 and d["setup_ms"] == 6
    assert d["first_words_ms"] == 2820 and d["duration_ms"] == 8760
    assert d["agent_speech_ms"] == 1810
    assert d["turns"][0] == {"utterance_start_ms": 100, "utterance_end_ms": 2120,
                             "reply_start_ms": 2820, "eou_to_reply_ms": 700, "barge_in": None}
    assert d["turns"][1]["barge_in"] == {"onset_ms": 3400, "to_silence_ms": 130}
    assert d["agent_segments_ms"] == [[2820, 3530], [5950, 7050]]
    assert d["recorded"] == "heard.wav" and d["hung_up_by"] == "caller"


def test_answered_call_as_text():
    """The text names the answer, first words, each turn's EOU->reply and the barge-in."""
    text = as_text(as_dict(Outcome("sip:bot@h", True, 200, "OK", 6), report(), "heard.wav"))
    assert text.startswith("answered: 200 OK (6 ms after the INVITE); times below are from the answer\n")
    assert "agent's first words: 2820 ms after the answer" in text
    assert "utterance 1: 0.10 s - 2.12 s; reply at 2.82 s, end-of-utterance -> reply 700 ms" in text
    assert "end-of-utterance -> reply 1400 ms; barge-in: agent silent 130 ms after the onset" in text
    assert "heard audio saved to heard.wav" in text


def test_unanswered_call_shows_the_sip_status():
    """A refused call prints its SIP status and reason, and has no audio figures."""
    d = as_dict(Outcome("sip:bot@h", False, 486, "Busy Here"), None)
    assert d == {"uri": "sip:bot@h", "answered": False, "status": 486, "reason": "Busy Here",
                 "setup_ms": None}
    assert as_text(d) == "not answered: 486 Busy Here"
    assert as_text(as_dict(Outcome("u", False, None, "no answer within 5 s"), None)) == \
        "not answered: no answer within 5 s"


def test_silent_agent_and_silent_caller_are_said_plainly():
    """No agent speech and no caller speech are stated, not left blank."""
    empty = Report(duration_ms=3000, first_words_ms=None)
    text = as_text(as_dict(Outcome("u", True, 200, "OK", None, "agent"), empty))
    assert "agent's first words: none heard" in text
    assert "caller said nothing" in text
    assert "hung up by the agent" in text


def test_turn_without_reply_or_stop():
    """A turn with no reply and a barge-in the agent talked through read as such."""
    r = Report(duration_ms=3000, first_words_ms=0.0,
               turns=[Turn(Segment(500, 800), None, None, BargeIn(500, None))],
               agent=[Segment(0, 2000)])
    text = as_text(as_dict(Outcome("u", True, 200, "OK"), r))
    assert "no reply before the next utterance; barge-in: the agent talked on" in text
