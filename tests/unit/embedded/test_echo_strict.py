"""The embedded model holds clients to the real server's rules: unknown fields, fixed voice, error shape."""

from __future__ import annotations

from sipbridge.embedded.echo_core import EchoCore
from sipbridge.realtime import protocol as p

from .test_echo_core import commit, drain, start_response
from tests.unit.realtime.helpers import pcm_ramp


def only_error(events) -> dict:
    (ev,) = events
    assert ev["type"] == "error", ev
    return ev["error"]


def test_unknown_fields_are_refused_wherever_they_sit():
    """An unknown event field, session key, nested audio key or response key is unknown_parameter, named."""
    core = EchoCore()
    for event, param in (
            ({**p.input_audio_commit(), "flush": True}, "flush"),
            ({"type": "session.update", "session": {"type": "realtime", "vad": 1}}, "session.vad"),
            ({"type": "session.update", "session": {"audio": {"output": {"voice": "x", "pitch": 2}}}},
             "session.audio.output.pitch"),
            ({"type": "response.create", "response": {"instructions": "hi", "colour": "blue"}},
             "response.colour")):
        err = only_error(core.handle(event))
        assert (err["type"], err["code"], err["param"]) == ("invalid_request_error", "unknown_parameter", param)
        assert param in err["message"] and err["event_id"] == event.get("event_id")
    assert core.active is None and core.session["audio"]["output"]["voice"] == "alloy"


def test_everything_the_bridge_sends_is_accepted():
    """The bridge's own GA and beta builders (tools, VAD, per-response instructions) pass the strict check."""
    core = EchoCore()
    vad = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500,
           "create_response": True, "interrupt_response": False}
    for api in ("ga", "beta"):
        cfg = p.SessionConfig(model="m", voice="marin", instructions="be brief", api=api, turn_detection=vad,
                              tools=(p.Tool("lookup", "find"),))
        assert core.handle(p.session_update(cfg))[0]["type"] == "session.updated"
    created = core.handle(p.response_create(instructions="say hi"))
    assert created[0]["type"] == "response.created"
    assert core.handle(p.response_cancel(created[0]["response"]["id"]))[-1]["type"] == "response.done"


def test_voice_is_fixed_after_the_first_audio_and_the_whole_update_is_refused():
    """After a delta, an update carrying a voice (even the same one) is cannot_update_voice and nothing applies."""
    core = EchoCore()
    cfg = p.SessionConfig(model="m", voice="marin", instructions="first")
    assert core.handle(p.session_update(cfg))[0]["type"] == "session.updated"  # before audio: fine
    commit(core, pcm_ramp(200))
    drain(core, start_response(core))
    for voice in ("marin", "ash"):
        update = p.session_update(p.SessionConfig(model="m", voice=voice, instructions="second"))
        err = only_error(core.handle(update))
        assert (err["type"], err["code"]) == ("invalid_request_error", "cannot_update_voice")
        assert err["event_id"] == update["event_id"]
    assert core.session["instructions"] == "first"
    without_voice = p.session_update(p.SessionConfig(model="m", instructions="second"))
    assert core.handle(without_voice)[0]["type"] == "session.updated"
    assert core.session["instructions"] == "second" and core.session["audio"]["output"]["voice"] == "marin"


def test_a_second_create_names_the_active_response():
    """While a response runs, response.create is refused with the active response's id in the message."""
    core = EchoCore()
    rid = start_response(core)
    err = only_error(core.handle(p.response_create()))
    assert err["code"] == "conversation_already_has_active_response" and rid in err["message"]
