"""EchoCore, the sans-I/O state machine of the embedded model, driven directly."""

from __future__ import annotations

import base64
import json

import numpy as np

from sipbridge.realtime import protocol as p
from sipbridge.embedded.echo_core import BYTES_PER_MS, EchoCore, chime
from sipbridge.realtime.tools import END_CALL

from tests.unit.realtime.helpers import pcm_ramp


def types(events):
    return [e["type"] for e in events]


def drain(core: EchoCore, response_id: str, limit: int = 10000):
    out = []
    for _ in range(limit):
        events = core.next_chunk(response_id)
        if not events:
            return out
        out += events
    raise AssertionError("response never finished")


def commit(core: EchoCore, pcm: bytes):
    assert core.handle(p.input_audio_append(pcm)) == []
    return core.handle(p.input_audio_commit())


def start_response(core: EchoCore) -> str:
    events = core.handle(p.response_create())
    assert types(events) == ["response.created", "response.output_item.added", "response.content_part.added"]
    return events[0]["response"]["id"]


def audio_of(events) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")


def test_greeting_is_session_created_with_model():
    """A new connection is greeted by session.created naming the model in GA shape."""
    (ev,) = EchoCore(model="m1").greeting()
    assert ev["type"] == "session.created" and ev["session"]["model"] == "m1"
    assert ev["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}


def test_commit_creates_user_item():
    """Committing buffered audio answers input_audio_buffer.committed then conversation.item.created for a user item."""
    events = commit(EchoCore(), pcm_ramp(200))
    assert types(events) == ["input_audio_buffer.committed", "conversation.item.created"]
    assert events[1]["item"]["role"] == "user"
    assert events[0]["item_id"] == events[1]["item"]["id"]


def test_commit_needs_100ms():
    """A commit with less than 100 ms buffered is an error naming the offending event."""
    core = EchoCore()
    core.handle(p.input_audio_append(pcm_ramp(99)))
    ev = p.input_audio_commit()
    (err,) = core.handle(ev)
    assert err["type"] == "error" and err["error"]["code"] == "input_audio_buffer_commit_empty"
    assert err["error"]["event_id"] == ev["event_id"]


def test_echo_replays_last_committed_utterance_in_100ms_chunks():
    """response.create streams the last committed utterance back in 100 ms deltas, then closes with completed."""
    core = EchoCore(chunk_ms=100)
    commit(core, pcm_ramp(300, seed=1))
    utterance = pcm_ramp(250, seed=2)
    commit(core, utterance)
    rid = start_response(core)
    events = drain(core, rid)
    deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
    assert [len(base64.b64decode(d["delta"])) for d in deltas] == [100 * BYTES_PER_MS] * 2 + [50 * BYTES_PER_MS]
    assert audio_of(events) == utterance
    assert types(events)[-4:] == ["response.output_audio.done", "response.content_part.done",
                                  "response.output_item.done", "response.done"]
    assert events[-1]["response"]["status"] == "completed"
    assert core.active is None and core.next_chunk(rid) == []


def test_reply_pcm_overrides_echo():
    """A fixed reply_pcm is streamed instead of the caller's utterance."""
    reply = pcm_ramp(120, seed=9)
    core = EchoCore(reply_pcm=reply)
    commit(core, pcm_ramp(200))
    assert audio_of(drain(core, start_response(core))) == reply


def test_response_before_anything_was_said_is_the_chime():
    """With nothing committed yet (a greeting) the answer is the 400 ms chime, then completed."""
    core = EchoCore()
    events = drain(core, start_response(core))
    pcm = np.frombuffer(audio_of(events), dtype="<i2")
    assert np.array_equal(pcm, chime())
    assert len(pcm) == 400 * BYTES_PER_MS // 2
    assert -20 < 20 * np.log10(np.sqrt(np.mean((pcm / 32768.0) ** 2))) < -15  # audible, not loud
    assert events[-1]["response"]["status"] == "completed"


def test_chime_comes_in_the_sessions_output_format():
    """In a G.711 session the chime is 8 kHz mu-law: 400 ms is 3200 bytes."""
    core = EchoCore()
    core.handle(p.session_update(p.SessionConfig(model="m", audio_format="g711_ulaw")))
    assert len(audio_of(drain(core, start_response(core)))) == 3200


def test_call_tool_ends_the_first_completed_response_with_a_function_call():
    """With call_tool offered in the session, the first completed response carries a function_call
    item (parsed by the bridge as FunctionCall); its output is accepted, an unknown call id is not."""
    core = EchoCore(call_tool="end_call")
    core.handle(p.session_update(p.SessionConfig(model="m", tools=(END_CALL,))))
    commit(core, pcm_ramp(200))
    events = drain(core, start_response(core))
    assert types(events)[-5:] == ["response.output_item.done", "response.output_item.added",
                                  "response.function_call_arguments.done", "response.output_item.done",
                                  "response.done"]
    call = p.parse_server_event(json.dumps(events[-2]))
    assert isinstance(call, p.FunctionCall) and call.name == "end_call" and call.arguments == "{}"
    assert [o["type"] for o in events[-1]["response"]["output"]] == ["message", "function_call"]
    (created,) = core.handle(p.function_output(call.call_id, '{"ended": false}'))
    assert created["type"] == "conversation.item.created"
    (err,) = core.handle(p.function_output("call_nope", "{}"))
    assert err["type"] == "error"
    for bad in ({"type": "function_call_output", "call_id": [], "output": "{}"}, {"type": "tool"}, "x"):
        (err,) = core.handle({"type": "conversation.item.create", "item": bad})
        assert err["type"] == "error", bad                  # malformed items answer an error, no crash
    again = drain(core, start_response(core))          # the tool is called once per connection
    assert "response.function_call_arguments.done" not in types(again)


def test_call_tool_not_offered_or_cancelled_makes_no_call():
    """No function call when the session does not offer the tool, nor on a cancelled response."""
    core = EchoCore(call_tool="end_call")
    commit(core, pcm_ramp(200))
    assert "response.function_call_arguments.done" not in types(drain(core, start_response(core)))
    core.handle(p.session_update(p.SessionConfig(model="m", tools=(END_CALL,))))
    rid = start_response(core)
    cancelled = core.handle(p.response_cancel(rid))
    assert "response.function_call_arguments.done" not in types(cancelled)


def test_second_response_create_while_active_is_error():
    """response.create during an active response is refused like the real API."""
    core = EchoCore()
    commit(core, pcm_ramp(200))
    start_response(core)
    (err,) = core.handle(p.response_create())
    assert err["error"]["code"] == "conversation_already_has_active_response"


def test_cancel_stops_stream():
    """response.cancel ends the active response with cancelled/client_cancelled and no further deltas."""
    core = EchoCore()
    commit(core, pcm_ramp(1000))
    rid = start_response(core)
    core.next_chunk(rid)
    events = core.handle(p.response_cancel())
    assert events[-1]["type"] == "response.done"
    assert events[-1]["response"]["status"] == "cancelled"
    assert events[-1]["response"]["status_details"]["reason"] == "client_cancelled"
    assert core.next_chunk(rid) == []


def test_cancel_without_active_response_or_wrong_id_is_error():
    """response.cancel with no active response, or naming another response, returns an error event."""
    core = EchoCore()
    (err,) = core.handle(p.response_cancel())
    assert err["error"]["code"] == "response_cancel_not_active"
    commit(core, pcm_ramp(200))
    start_response(core)
    (err,) = core.handle(p.response_cancel("resp_nope"))
    assert err["type"] == "error" and core.active is not None


def test_truncate_bounds():
    """Truncation succeeds up to the audio already sent for the item and fails beyond it or on other items."""
    core = EchoCore()
    commit_events = commit(core, pcm_ramp(1000))
    user_item = commit_events[0]["item_id"]
    rid = start_response(core)
    item = core.active.item_id
    for _ in range(3):
        core.next_chunk(rid)  # 300 ms sent
    (err,) = core.handle(p.item_truncate(item, 301))
    assert err["type"] == "error" and err["error"]["param"] == "audio_end_ms"
    (ok,) = core.handle(p.item_truncate(item, 300))
    assert ok == {"type": "conversation.item.truncated", "event_id": ok["event_id"], "item_id": item,
                  "content_index": 0, "audio_end_ms": 300}
    assert core.handle(p.item_truncate(item, 250))[0]["type"] == "conversation.item.truncated"
    assert core.handle(p.item_truncate(item, 260))[0]["type"] == "error"  # already cut at 250
    assert core.handle(p.item_truncate(user_item, 0))[0]["type"] == "error"
    assert core.handle(p.item_truncate("item_missing", 0))[0]["type"] == "error"


def test_delete_and_clear():
    """delete removes a known item (error for unknown); clear empties the input buffer."""
    core = EchoCore()
    item_id = commit(core, pcm_ramp(200))[0]["item_id"]
    (deleted,) = core.handle(p.item_delete(item_id))
    assert (deleted["type"], deleted["item_id"]) == ("conversation.item.deleted", item_id)
    assert core.handle(p.item_delete(item_id))[0]["type"] == "error"
    core.handle(p.input_audio_append(pcm_ramp(200)))
    assert types(core.handle(p.input_audio_clear())) == ["input_audio_buffer.cleared"]
    assert core.handle(p.input_audio_commit())[0]["type"] == "error"


def test_unknown_and_bad_events_are_errors():
    """Unknown types, type-less events, bad base64 audio and bad session updates produce error events."""
    core = EchoCore()
    assert core.handle({"type": "bogus.event", "event_id": "e1"})[0]["error"]["event_id"] == "e1"
    assert core.handle({"event_id": "e2"})[0]["type"] == "error"
    assert core.handle({"type": "input_audio_buffer.append", "audio": "%%%"})[0]["type"] == "error"
    assert core.handle({"type": "input_audio_buffer.append", "audio": 5})[0]["type"] == "error"
    assert core.handle({"type": "session.update", "session": "x"})[0]["type"] == "error"
    assert core.malformed("not JSON")[0]["type"] == "error"


def test_session_update_merges_and_validates():
    """session.update merges fields into the effective session and refuses non-24 kHz pcm."""
    core = EchoCore()
    (ev,) = core.handle(p.session_update(p.SessionConfig(model="m", instructions="hi", voice="cedar")))
    s = ev["session"]
    assert ev["type"] == "session.updated" and s["instructions"] == "hi"
    assert s["audio"]["output"]["voice"] == "cedar" and s["audio"]["input"]["turn_detection"] is None
    assert s["model"] == "embedded-echo"
    (err,) = core.handle(p.session_update(p.SessionConfig(model="m", input_rate=16000)))
    assert err["type"] == "error" and "16000" in err["error"]["message"]
    assert core.session["audio"]["input"]["format"]["rate"] == 24000
    (beta,) = core.handle(p.session_update(p.SessionConfig(model="m", api="beta")))
    assert beta["type"] == "session.updated"
