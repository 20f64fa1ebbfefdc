"""Hostile server frames: mutated valid events never raise, never yield a mistyped event, and are counted.

test_parser.py covers random JSON objects and random bytes; here every mutation starts from a
valid event of each modelled type (both dialects), so the fuzzer reaches deep into each parser:
a field dropped, a field's value swapped for any JSON value, huge strings, bad or odd-length
base64 audio, unknown types, nesting, non-object JSON and invalid UTF-8. The client's reader
path (``RealtimeClient._ingest``) is driven with the same frames: the malformed counter moves
exactly for the frames the parser rejected, and nothing escapes to the socket loop.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import types
import typing

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipbridge.realtime import events as E
from sipbridge.realtime.client import RealtimeClient
from sipbridge.realtime.parser import KNOWN_TYPES, parse_server_event
from sipbridge.realtime.protocol import SessionConfig

PCM = base64.b64encode(b"\x01\x00\xff\x7f" * 4).decode()
VALID: dict[str, dict] = {
    "session.created": {"session": {"id": "s", "model": "m"}},
    "session.updated": {"session": {"id": "s"}},
    "response.output_audio.delta": {"response_id": "r", "item_id": "i", "content_index": 0, "delta": PCM},
    "response.audio.delta": {"response_id": "r", "item_id": "i", "content_index": 0, "delta": PCM},
    "response.output_audio.done": {"response_id": "r", "item_id": "i"},
    "response.audio.done": {"response_id": "r", "item_id": "i"},
    "response.output_item.added": {"response_id": "r", "item": {"id": "i", "role": "assistant"}},
    "response.output_item.done": {"response_id": "r", "item": {"id": "i", "type": "function_call",
                                                               "call_id": "c", "name": "end_call",
                                                               "arguments": "{}"}},
    "response.created": {"response": {"id": "r", "status": "in_progress"}},
    "response.done": {"response": {"id": "r", "status": "cancelled",
                                   "status_details": {"type": "cancelled", "reason": "turn_detected"}}},
    "input_audio_buffer.speech_started": {"item_id": "i", "audio_start_ms": 10},
    "input_audio_buffer.speech_stopped": {"item_id": "i", "audio_end_ms": 900},
    "input_audio_buffer.committed": {"item_id": "i"},
    "conversation.item.truncated": {"item_id": "i", "audio_end_ms": 5},
    "conversation.item.input_audio_transcription.completed": {"item_id": "i", "content_index": 0,
                                                              "transcript": "hello"},
    "response.output_audio_transcript.done": {"response_id": "r", "item_id": "i", "transcript": "hi"},
    "response.audio_transcript.done": {"response_id": "r", "item_id": "i", "transcript": "hi"},
    "error": {"error": {"code": "c", "message": "m", "event_id": "e"}},
}
assert set(VALID) == set(KNOWN_TYPES), "a new event type needs a valid sample here"

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
BAD_B64 = st.sampled_from(["!!", "AAE", "AAEC", "A===", "=AAA", "AA AA", "\u00e9\u00e9==", "AAAA\n", ""]) | st.text(max_size=12)
HUGE = st.sampled_from([1 << 16, 1 << 20]).map(lambda n: "x" * n)


def _paths(obj, prefix=()):
    """Every key path inside nested dicts (the places a mutation can hit)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))


@st.composite
def mutated(draw) -> dict:
    etype = draw(st.sampled_from(sorted(VALID)))
    event = {"type": etype, "event_id": "event_1", **copy.deepcopy(VALID[etype])}
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(event))
        path = draw(st.sampled_from(paths))
        parent = event
        for key in path[:-1]:
            parent = parent[key]
        if not isinstance(parent, dict) or path[-1] not in parent:
            continue
        how = draw(st.sampled_from(["drop", "json", "huge", "b64", "nest", "type"]))
        if how == "drop":
            del parent[path[-1]]
        elif how == "json":
            parent[path[-1]] = draw(JSON)
        elif how == "huge":
            parent[path[-1]] = draw(HUGE)
        elif how == "b64":
            parent[path[-1]] = draw(BAD_B64)
        elif how == "nest":
            parent[path[-1]] = {"value": parent[path[-1]]}
        else:
            event["type"] = draw(st.sampled_from(sorted(VALID)) | st.text(max_size=20))
    return event


FRAMES = (
    mutated().map(json.dumps)
    | mutated().map(lambda e: json.dumps(e).encode())
    | JSON.map(json.dumps)                                              # non-object JSON too
    | st.binary(max_size=64).map(lambda b: b"\xff" + b)                 # invalid UTF-8
    | mutated().map(lambda e: json.dumps(e).encode()[:-1] + b"\xc3")    # truncated multibyte
    | st.text(max_size=50)
)


def assert_well_typed(ev) -> None:
    """A parsed event's fields have exactly their declared types (bool is not an int)."""
    hints = typing.get_type_hints(type(ev))
    for f in dataclasses.fields(ev):
        value, hint = getattr(ev, f.name), hints[f.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None
            allowed = tuple(typing.get_origin(t) or t for t in typing.get_args(hint))
        else:
            allowed = (typing.get_origin(hint) or hint,)  # dict[str, Any] -> dict
        assert isinstance(value, allowed), f"{type(ev).__name__}.{f.name} = {value!r}"
        if int in allowed:
            assert not isinstance(value, bool), f"{type(ev).__name__}.{f.name} is a bool"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=mutated())
def test_mutated_events_parse_to_well_typed_events_or_malformed(event):
    """A valid event with fields dropped, swapped, huge or bad base64 yields a well-typed event or Malformed."""
    ev = parse_server_event(json.dumps(event))
    assert isinstance(ev, typing.get_args(E.ServerEvent))
    assert_well_typed(ev)
    if isinstance(ev, E.AudioDelta):
        assert len(ev.pcm) % 2 == 0, "an audio delta must hold whole pcm16 samples"
    if isinstance(ev, E.Unknown):
        assert ev.type not in KNOWN_TYPES


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=FRAMES)
def test_any_frame_never_raises(frame):
    """Text, bytes, invalid UTF-8, non-object JSON and mutated events all come back as an event object."""
    ev = parse_server_event(frame)
    assert isinstance(ev, typing.get_args(E.ServerEvent))
    assert_well_typed(ev)


def test_odd_length_audio_is_malformed():
    """A delta that decodes to an odd number of bytes is not pcm16 audio: Malformed, not a crash later."""
    ev = parse_server_event(json.dumps({"type": "response.output_audio.delta", "response_id": "r",
                                        "item_id": "i", "delta": base64.b64encode(b"\x01\x02\x03").decode()}))
    assert isinstance(ev, E.Malformed) and "pcm16" in ev.reason


def test_huge_valid_delta_still_parses():
    """A large but valid delta (10 s at 24 kHz) parses to its bytes: size alone is not malformed."""
    pcm = b"\x00\x01" * 240000
    ev = parse_server_event(json.dumps({"type": "response.audio.delta", "response_id": "r", "item_id": "i",
                                        "delta": base64.b64encode(pcm).decode()}))
    assert isinstance(ev, E.AudioDelta) and ev.pcm == pcm


def _client(on_event) -> RealtimeClient:
    return RealtimeClient("ws://127.0.0.1:9", "m", None, SessionConfig(model="m"), on_event)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(FRAMES, min_size=1, max_size=8))
def test_client_counts_malformed_frames_and_keeps_reading(frames):
    """The client's reader counts every frame, moves its malformed counter exactly for the rejected
    ones, and survives an event handler that raises."""
    seen = []

    def on_event(ev):
        seen.append(ev)
        raise RuntimeError("handler bug")  # must not escape into the reader loop

    client = _client(on_event)
    expected = sum(isinstance(parse_server_event(f), E.Malformed) for f in frames)
    for f in frames:
        client._ingest(f)
    assert client.events_in == len(frames) == len(seen)
    assert client.malformed == expected


def test_malformed_counter_moves_for_each_kind_of_garbage():
    """Non-JSON, non-object JSON, invalid UTF-8, a mistyped field and bad base64 each add one."""
    client = _client(lambda ev: None)
    garbage = ["{", "[1]", b"\xff\xfe", json.dumps({"type": "response.created", "response": {"id": 7}}),
               json.dumps({"type": "response.audio.delta", "response_id": "r", "item_id": "i", "delta": "!!"})]
    for n, frame in enumerate(garbage, 1):
        client._ingest(frame)
        assert client.malformed == n
    client._ingest(json.dumps({"type": "rate_limits.updated"}))  # unknown but well-formed: not malformed
    assert client.malformed == len(garbage) and client.events_in == len(garbage) + 1
