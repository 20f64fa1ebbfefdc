"""parse_server_event: every modelled type in GA and beta spelling, and hostile input."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipbridge.realtime import events as E
from sipbridge.realtime.parser import KNOWN_TYPES, parse_server_event

ALL_EVENT_CLASSES = (E.SessionCreated, E.SessionUpdated, E.AudioDelta, E.AudioDone, E.OutputItemAdded,
                     E.ResponseCreated, E.ResponseDone, E.SpeechStarted, E.SpeechStopped, E.InputCommitted,
                     E.ItemTruncated, E.Transcript, E.ErrorEvent, E.Unknown, E.Malformed)


def j(**fields) -> str:
    return json.dumps({"event_id": "event_1", **fields})


@pytest.mark.parametrize("etype,cls", [("session.created", E.SessionCreated), ("session.updated", E.SessionUpdated)])
def test_session_events(etype, cls):
    """session.created/updated parse to their classes holding the session object."""
    ev = parse_server_event(j(type=etype, session={"id": "sess_1", "model": "m"}))
    assert ev == cls(session={"id": "sess_1", "model": "m"})


@pytest.mark.parametrize("etype", ["response.output_audio.delta", "response.audio.delta"])
def test_audio_delta_both_names(etype):
    """GA and beta audio delta names both decode to AudioDelta with the raw pcm bytes."""
    pcm = b"\x01\x00\xff\x7f" * 50
    ev = parse_server_event(j(type=etype, response_id="resp_1", item_id="item_2", output_index=0,
                              content_index=0, delta=base64.b64encode(pcm).decode()))
    assert ev == E.AudioDelta(response_id="resp_1", item_id="item_2", content_index=0, pcm=pcm)


@pytest.mark.parametrize("etype", ["response.output_audio.done", "response.audio.done"])
def test_audio_done_both_names(etype):
    """GA and beta audio done names both parse to AudioDone."""
    ev = parse_server_event(j(type=etype, response_id="r", item_id="i", output_index=0, content_index=0))
    assert ev == E.AudioDone(response_id="r", item_id="i")


def test_output_item_added():
    """response.output_item.added yields response id, item id and role; a role-less item gives role None."""
    ev = parse_server_event(j(type="response.output_item.added", response_id="r", output_index=0,
                              item={"id": "item_9", "type": "message", "role": "assistant", "content": []}))
    assert ev == E.OutputItemAdded(response_id="r", item_id="item_9", role="assistant")
    ev = parse_server_event(j(type="response.output_item.added", response_id="r",
                              item={"id": "fc_1", "type": "function_call"}))
    assert ev == E.OutputItemAdded(response_id="r", item_id="fc_1", role=None)


def test_response_created_and_done():
    """response.created gives the id; response.done gives status and status_details.reason (or None)."""
    assert parse_server_event(j(type="response.created", response={"id": "resp_5", "status": "in_progress"})) \
        == E.ResponseCreated("resp_5")
    done = j(type="response.done", response={"id": "resp_5", "status": "cancelled",
                                             "status_details": {"type": "cancelled", "reason": "turn_detected"}})
    assert parse_server_event(done) == E.ResponseDone("resp_5", "cancelled", "turn_detected")
    plain = j(type="response.done", response={"id": "resp_6", "status": "completed", "status_details": None})
    assert parse_server_event(plain) == E.ResponseDone("resp_6", "completed", None)


def test_input_buffer_events():
    """speech_started, speech_stopped and committed carry item ids and millisecond positions."""
    assert parse_server_event(j(type="input_audio_buffer.speech_started", item_id="i", audio_start_ms=120)) \
        == E.SpeechStarted("i", 120)
    assert parse_server_event(j(type="input_audio_buffer.speech_stopped", item_id="i", audio_end_ms=900)) \
        == E.SpeechStopped("i", 900)
    assert parse_server_event(j(type="input_audio_buffer.committed", item_id="i", previous_item_id=None)) \
        == E.InputCommitted("i")


def test_item_truncated():
    """conversation.item.truncated gives the item id and the cut position."""
    ev = parse_server_event(j(type="conversation.item.truncated", item_id="a", content_index=0, audio_end_ms=1500))
    assert ev == E.ItemTruncated("a", 1500)


def test_error_event():
    """error parses type, code, message and the offending client event_id, with null code and event_id allowed."""
    ev = parse_server_event(j(type="error", error={"type": "invalid_request_error", "code": "x_code",
                                                   "message": "bad", "param": None, "event_id": "evt_1"}))
    assert ev == E.ErrorEvent(code="x_code", message="bad", event_id="evt_1", kind="invalid_request_error")
    ev = parse_server_event(j(type="error", error={"type": "server_error", "code": None, "message": "oops"}))
    assert ev == E.ErrorEvent(code=None, message="oops", event_id=None, kind="server_error")


def test_unknown_type_keeps_raw():
    """A well-formed event of an unmodelled type becomes Unknown with the decoded object."""
    raw = {"type": "rate_limits.updated", "event_id": "e", "rate_limits": []}
    assert parse_server_event(json.dumps(raw)) == E.Unknown(type="rate_limits.updated", raw=raw)


def test_bytes_input_is_decoded():
    """A UTF-8 bytes frame parses the same as text."""
    assert parse_server_event(j(type="response.created", response={"id": "r"}).encode()) == E.ResponseCreated("r")


@pytest.mark.parametrize("data", [
    "", "not json", "{", "[1, 2]", "42", "null", '"str"', b"\xff\xfe\x00", "{}",
    '{"type": 5}', '{"type": null}', "[" * 100000 + "]" * 100000,
])
def test_unreadable_frames_are_malformed(data):
    """Non-JSON, non-object, undecodable or type-less frames (even absurdly nested) become Malformed."""
    assert isinstance(parse_server_event(data), E.Malformed)


@pytest.mark.parametrize("event", [
    {"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", "delta": "!!notbase64!!"},
    {"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", "delta": "AAE"},
    {"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", "delta": "AAAA!AAAA"},
    {"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", "delta": "AAEC"},
    {"type": "response.audio.delta", "response_id": "r", "item_id": "i", "delta": 123},
    {"type": "response.audio.delta", "response_id": "r", "delta": "AAAA"},
    {"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", "content_index": "0",
     "delta": "AAAA"},
    {"type": "response.output_audio.done", "response_id": 1, "item_id": "i"},
    {"type": "response.output_item.added", "response_id": "r", "item": "item_1"},
    {"type": "response.output_item.added", "response_id": "r", "item": {"role": "assistant"}},
    {"type": "response.output_item.added", "response_id": "r", "item": {"id": "i", "role": 7}},
    {"type": "response.created"},
    {"type": "response.created", "response": {"id": None}},
    {"type": "response.done", "response": {"id": "r"}},
    {"type": "response.done", "response": {"id": "r", "status": "cancelled", "status_details": "x"}},
    {"type": "response.done", "response": {"id": "r", "status": "cancelled", "status_details": {"reason": 3}}},
    {"type": "input_audio_buffer.speech_started", "item_id": "i", "audio_start_ms": "120"},
    {"type": "input_audio_buffer.speech_started", "item_id": "i", "audio_start_ms": True},
    {"type": "input_audio_buffer.speech_stopped", "item_id": "i", "audio_end_ms": 1.5},
    {"type": "input_audio_buffer.committed"},
    {"type": "conversation.item.truncated", "item_id": "i"},
    {"type": "error", "error": "boom"},
    {"type": "error", "error": {"code": "c"}},
    {"type": "session.created", "session": []},
    {"type": "session.updated"},
])
def test_missing_or_mistyped_fields_are_malformed(event):
    """A modelled event with a missing field, a wrong type or bad base64 becomes Malformed naming the type."""
    ev = parse_server_event(json.dumps(event))
    assert isinstance(ev, E.Malformed)
    assert event["type"] in ev.reason


def test_known_types_cover_both_dialects():
    """The parser knows the GA and the beta spelling of the audio events."""
    assert {"response.output_audio.delta", "response.audio.delta", "response.output_audio.done",
            "response.audio.done"} <= KNOWN_TYPES


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
FIELDS = st.sampled_from(["response_id", "item_id", "content_index", "delta", "item", "response", "error",
                          "session", "audio_start_ms", "audio_end_ms", "status", "id", "role", "message"])


@settings(max_examples=150, deadline=None)
@given(etype=st.sampled_from(sorted(KNOWN_TYPES)) | st.text(max_size=30),
       fields=st.dictionaries(FIELDS, JSON | st.dictionaries(FIELDS, JSON, max_size=4), max_size=6))
def test_random_json_events_never_raise(etype, fields):
    """Any JSON object with a known or random type yields one of the event classes, never an exception."""
    ev = parse_server_event(json.dumps({"type": etype, **fields}))
    assert isinstance(ev, ALL_EVENT_CLASSES)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200) | st.text(max_size=200) | JSON.map(json.dumps))
def test_random_bytes_and_text_never_raise(data):
    """Arbitrary bytes, text or JSON values yield an event object, never an exception."""
    assert isinstance(parse_server_event(data), ALL_EVENT_CLASSES)


@settings(max_examples=100, deadline=None)
@given(pcm=st.binary(max_size=400).map(lambda b: b[: len(b) // 2 * 2]))
def test_audio_delta_roundtrip(pcm):
    """Whatever whole pcm16 samples are base64-encoded in a delta come back unchanged in AudioDelta.pcm."""
    ev = parse_server_event(json.dumps({"type": "response.output_audio.delta", "response_id": "r",
                                        "item_id": "i", "content_index": 0,
                                        "delta": base64.b64encode(pcm).decode()}))
    assert isinstance(ev, E.AudioDelta) and ev.pcm == pcm


def test_transcripts_of_the_caller_and_of_the_agent_in_both_dialects():
    """Input transcription is the caller's text; the GA and beta audio transcripts are the agent's."""
    caller = parse_server_event(j(type="conversation.item.input_audio_transcription.completed",
                                  item_id="u1", content_index=0, transcript="my order"))
    assert caller == E.Transcript(role="caller", item_id="u1", text="my order")
    for etype in ("response.output_audio_transcript.done", "response.audio_transcript.done"):
        agent = parse_server_event(j(type=etype, response_id="r", item_id="a1", transcript="It shipped."))
        assert agent == E.Transcript(role="agent", item_id="a1", text="It shipped.")
    bad = parse_server_event(j(type="response.audio_transcript.done", item_id="a1", transcript=3))
    assert isinstance(bad, E.Malformed) and "transcript" in bad.reason
