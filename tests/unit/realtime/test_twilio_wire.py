"""Twilio Media Streams messages and the media_stream adapter's bookkeeping (pure)."""

import base64
import json

from sipbridge.realtime.events import AudioDelta, AudioDone, ResponseCreated, ResponseDone
from sipbridge.realtime.providers.twilio_wire import (BotClear, BotMark, BotMedia, BotRefused, BotTurns,
                                                      Marks, Outbound, PLAYOUT_LAG_FRAMES, parse_bot, sid)

SID = "MZ" + "a" * 32


def _out() -> Outbound:
    return Outbound(SID, "CA" + "b" * 32, "AC" + "c" * 32, {"caller": "+15550100", "called": "200"})


def test_connected_then_start_carry_the_stream_the_call_and_mulaw_8k():
    """connected has no sequence number; start is sequence "1" with the ids, the numbers as
    custom parameters and audio/x-mulaw 8 kHz mono."""
    out = _out()
    assert out.connected() == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = out.start()
    assert start == {"event": "start", "sequenceNumber": "1", "streamSid": SID, "start": {
        "accountSid": "AC" + "c" * 32, "streamSid": SID, "callSid": "CA" + "b" * 32,
        "tracks": ["inbound"], "customParameters": {"caller": "+15550100", "called": "200"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
    json.dumps(start)


def test_caller_audio_goes_as_whole_20ms_chunks_numbered_and_timestamped():
    """450 bytes of µ-law make two 160-byte media messages (chunks 1, 2 at 0 and 20 ms); the
    130 left wait for the next batch, which completes chunk 3 at 40 ms."""
    out = _out()
    out.start()
    data = bytes(range(256)) + bytes(194)
    first = out.media(data[:450])
    assert [m["sequenceNumber"] for m in first] == ["2", "3"]
    assert [(m["media"]["chunk"], m["media"]["timestamp"]) for m in first] == [("1", "0"), ("2", "20")]
    assert all(m["media"]["track"] == "inbound" and m["streamSid"] == SID for m in first)
    assert base64.b64decode(first[1]["media"]["payload"]) == data[160:320]
    third = out.media(data[450:] + bytes(30))
    assert len(third) == 1 and third[0]["media"]["chunk"] == "3" and third[0]["media"]["timestamp"] == "40"
    assert base64.b64decode(third[0]["media"]["payload"]) == data[320:450] + bytes(30)


def test_dtmf_mark_and_stop_continue_the_sequence():
    """dtmf is on inbound_track, mark echoes the name, stop names the account and the call."""
    out = _out()
    assert out.dtmf("5") == {"event": "dtmf", "sequenceNumber": "1", "streamSid": SID,
                             "dtmf": {"track": "inbound_track", "digit": "5"}}
    assert out.mark("m1")["mark"] == {"name": "m1"} and out.mark("m1")["sequenceNumber"] == "3"
    assert out.stop()["stop"] == {"accountSid": "AC" + "c" * 32, "callSid": "CA" + "b" * 32}


def test_the_bots_media_mark_and_clear_are_read():
    """media's payload is decoded, mark keeps its name, clear is a clear."""
    payload = base64.b64encode(b"\xff" * 160).decode()
    assert parse_bot(json.dumps({"event": "media", "streamSid": SID, "media": {"payload": payload}}), SID) \
        == BotMedia(b"\xff" * 160)
    assert parse_bot(json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": "x"}}), SID) == BotMark("x")
    assert parse_bot(json.dumps({"event": "clear", "streamSid": SID}), SID) == BotClear()


def test_anything_else_from_the_bot_is_refused_with_a_reason():
    """Binary, non-JSON, unknown events, another stream's id, bad base64 and nameless marks are refused."""
    cases = [b"\x00", "{", json.dumps([1]), json.dumps({"event": "start", "streamSid": SID}),
             json.dumps({"event": "clear", "streamSid": "MZother"}),
             json.dumps({"event": "clear"}),
             json.dumps({"event": "media", "streamSid": SID, "media": {"payload": "@@@"}}),
             json.dumps({"event": "media", "streamSid": SID}),
             json.dumps({"event": "mark", "streamSid": SID, "mark": {}})]
    for text in cases:
        got = parse_bot(text, SID)
        assert isinstance(got, BotRefused) and got.reason, text


def test_a_burst_of_bot_audio_is_one_response_until_a_gap():
    """Audio 100 ms apart stays in one response; after 500 ms of nothing the response completes
    (its item done first) and the next audio opens a second one."""
    turns = BotTurns("s", gap_ms=500)
    first = turns.audio(b"\x01" * 160, 0)
    assert first == [ResponseCreated("s-r1"), AudioDelta("s-r1", "s-i1", 0, b"\x01" * 160)]
    assert turns.audio(b"\x02" * 80, 100) == [AudioDelta("s-r1", "s-i1", 0, b"\x02" * 80)]
    assert turns.position() == ("s-i1", 240)
    assert turns.tick(599) == []
    assert turns.tick(600) == [AudioDone("s-r1", "s-i1"), ResponseDone("s-r1", "completed", None)]
    assert turns.position() == ("s-i1", 240)
    assert turns.audio(b"\x03", 700)[0] == ResponseCreated("s-r2")


def test_a_clear_cancels_the_open_response_and_the_next_audio_is_a_new_one():
    """clear ends the response as cancelled/interrupted; nothing open: nothing to end."""
    turns = BotTurns("s", gap_ms=500)
    turns.audio(b"\x01" * 160, 0)
    assert turns.clear() == [AudioDone("s-r1", "s-i1"), ResponseDone("s-r1", "cancelled", "interrupted")]
    assert turns.clear() == []
    assert turns.audio(b"\x01", 10)[0] == ResponseCreated("s-r2")


def test_a_mark_is_due_only_once_the_audio_before_it_was_played_and_sent():
    """A mark after 480 samples (60 ms) of item i1 is held at 59 ms played; at 60 ms it waits
    two more frames (the packets carrying that audio) before it is released; a later mark waits
    behind it, in order."""
    marks, played = Marks(), {"i1": 0}
    assert marks.add("a", ("i1", 480)) == [] and marks.add("b", ("i1", 800)) == []
    played["i1"] = 59
    assert marks.due(played.get, 10) == []
    played["i1"] = 60
    assert marks.due(played.get, 11) == []
    assert marks.due(played.get, 12) == []
    assert marks.due(played.get, 13) == ["a"]
    played["i1"] = 100
    assert marks.due(played.get, 14) == [] and marks.due(played.get, 16) == ["b"] and len(marks) == 0
    assert PLAYOUT_LAG_FRAMES == 2


def test_a_mark_before_any_audio_is_due_at_once_and_a_flush_returns_all_held():
    """No audio before a mark: it goes back now; dropped audio releases every held mark in order."""
    marks = Marks()
    assert marks.add("first", None) == ["first"]
    marks.add("a", ("i1", 160))
    marks.add("b", None)                       # behind "a": waits for the same point
    assert marks.due(lambda item: 0, 100) == []
    assert marks.flush() == ["a", "b"] and len(marks) == 0


def test_ids_are_twilio_shaped_and_stable():
    """sid() is the prefix and 32 hex digits, the same for the same seed."""
    a = sid("CA", "call-1")
    assert a.startswith("CA") and len(a) == 34 and int(a[2:], 16) >= 0
    assert sid("CA", "call-1") == a != sid("CA", "call-2")
