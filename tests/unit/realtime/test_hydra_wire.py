"""Hydra's wire frames: the client frames carry only documented keys; server frames become neutral events."""

import base64
import json

from sipbridge.realtime.events import (AudioDelta, AudioDone, ErrorEvent, FunctionCall, InputCommitted,
                                       Malformed, ResponseCreated, ResponseDone, SpeechStarted,
                                       TurnDiscarded, Unknown)
from sipbridge.realtime.providers import hydra_wire as wire
from sipbridge.realtime.sessionconfig import SessionConfig, Tool


def frame(**kw) -> str:
    return json.dumps(kw)


def delta(rid=None, item=None, n=4) -> str:
    body = {"type": "response.output_audio.delta", "delta": base64.b64encode(bytes(n)).decode()}
    if rid:
        body["response_id"] = rid
    if item:
        body["item_id"] = item
    return json.dumps(body)


def test_session_configure_holds_only_the_documented_keys():
    """session.configure carries instructions, voice and tools, nothing OpenAI-shaped."""
    cfg = SessionConfig(model="hydra", instructions="be brief", voice="wren",
                        turn_detection={"type": "server_vad"}, tools=(Tool("f", "d"),))
    out = wire.configure(cfg)
    assert out["type"] == "session.configure" and set(out) == {"type", "event_id", "session"}
    assert set(out["session"]) == {"instructions", "voice", "tools"}
    assert out["session"]["tools"][0]["name"] == "f"
    assert set(wire.tools_update(()) ["session"]) == {"tools"}


def test_a_user_turn_maps_to_speech_started_and_committed_and_noise_to_discarded():
    """speech_started -> SpeechStarted; a completed user item -> InputCommitted; an incomplete one -> TurnDiscarded."""
    r = wire.Reader()
    assert r.read(frame(type="input_audio_buffer.speech_started", audio_start_ms=40, item_id="u1")) == \
        SpeechStarted("u1", 40)
    assert r.read(frame(type="conversation.item.done", item={"id": "u1", "role": "user", "status": "completed"})) == \
        InputCommitted("u1")
    assert r.read(frame(type="conversation.item.done", item={"id": "u2", "role": "user", "status": "incomplete"})) == \
        TurnDiscarded("u2")
    assert isinstance(r.read(frame(type="conversation.item.done", item={"id": "a", "role": "assistant",
                                                                        "status": "completed"})), Unknown)


def test_the_old_responses_audio_is_dropped_at_the_next_response_created():
    """After a newer response.created, deltas of the older response are dropped; bare deltas belong to the newest."""
    r = wire.Reader()
    assert r.read(frame(type="response.created", response={"id": "r1"})) == ResponseCreated("r1")
    assert isinstance(r.read(delta("r1", "i1")), AudioDelta)
    r.read(frame(type="response.created", response={"id": "r2"}))
    assert r.read(delta("r1", "i1")) is None and r.stale_deltas == 1
    bare = r.read(delta())
    assert (bare.response_id, bare.item_id) == ("r2", "r2/audio")
    assert r.read(frame(type="response.output_audio.done", response_id="r2")) == AudioDone("r2", "r2/audio")


def test_response_done_carries_status_and_reason_and_ends_the_response():
    """response.done cancelled/interrupted keeps both; a late delta of that response is dropped."""
    r = wire.Reader()
    r.read(frame(type="response.created", response={"id": "r1"}))
    done = r.read(frame(type="response.done", response={"id": "r1", "status": "cancelled",
                                                        "status_details": {"reason": "interrupted"}}))
    assert done == ResponseDone("r1", "cancelled", "interrupted")
    assert r.read(delta("r1")) is None and r.read(delta()) is None


def test_tool_calls_errors_and_bad_frames():
    """function_call_arguments.done -> FunctionCall; error -> ErrorEvent with type and code; junk -> Malformed."""
    r = wire.Reader()
    call = r.read(frame(type="response.function_call_arguments.done", call_id="c1", name="f", arguments="{}"))
    assert isinstance(call, FunctionCall) and (call.call_id, call.name) == ("c1", "f")
    err = r.read(frame(type="error", error={"type": "invalid_request_error", "code": "invalid_audio",
                                            "message": "too small", "event_id": "sb_1"}))
    assert err == ErrorEvent("invalid_audio", "too small", "sb_1", "invalid_request_error")
    assert isinstance(r.read("{"), Malformed)
    assert isinstance(r.read(frame(type="response.created")), Malformed)
    assert isinstance(r.read(delta("r9", n=3)), Malformed)  # half a sample
