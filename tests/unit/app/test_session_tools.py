"""The agent speaks first (realtime.greeting) and ends the call itself (realtime.end_call_tool).

Same in-process harness as test_session.py: a real EmbeddedModel socket, the test thread as the
media clock. The embedded model greets with its chime and, with ``call_tool="end_call"``, ends
every completed response with a call of that function, as a model does when it says goodbye.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sipcodecs import StreamResampler

from sipbridge.realtime import protocol as rt
from sipbridge.embedded.echo_core import chime
from sipbridge.realtime.tools import TAIL_MS
from sipbridge.sip.callerid import Parties
from tests.support import audio
from tests.unit.app.test_session import GOODBYE, HELLO, RATE, REPLY, REPLY_16K, SILENT, frames_of, quiet


def test_a_greeting_asks_the_model_to_speak_first_once_and_the_caller_hears_it(make_call):
    """greet() sends one response.create carrying the greeting's instructions (a second greet()
    sends nothing more) and the model's first words are played before the caller said anything."""
    call = make_call(realtime={"greeting": "Greet the caller and ask how you can help."}, pace=20)
    call.session.greet()
    call.session.greet()
    (create,) = call.wait_for("response.create")
    assert create["response"] == {"instructions": "Greet the caller and ask how you can help."}
    call.wait_playing()
    heard = np.frombuffer(b"".join(call.play_out()), dtype="<i2")
    expected = StreamResampler(24000, RATE).process_array(chime())
    lag, corr = audio.align(expected, heard, rate=RATE)
    assert corr > 0.9, f"the greeting played is not the model's (corr {corr:.2f})"
    call.barrier()
    assert len(call.sent("response.create")) == 1
    assert call.turn_events() == ["response.create"]


def test_without_a_greeting_the_agent_waits_for_the_caller(make_call):
    """No realtime.greeting: greet() sends nothing and nothing plays."""
    call = make_call()
    call.session.greet()
    call.barrier()
    assert call.turn_events() == []
    assert call.tick() == SILENT and not call.session.playout.playing


def test_end_call_is_offered_only_when_configured(make_call):
    """session.update carries the end_call function (tool_choice auto) only with end_call_tool."""
    (plain,) = make_call().sent("session.update")
    assert "tools" not in plain["session"]
    (offered,) = make_call(realtime={"end_call_tool": True}).sent("session.update")
    assert [t["name"] for t in offered["session"]["tools"]] == ["end_call"]
    assert offered["session"]["tool_choice"] == "auto"


def test_the_agent_hangs_up_after_its_goodbye_has_been_heard(make_call):
    """The model answers, then calls end_call: the whole answer is handed to RTP first, and the
    hang-up comes TAIL_MS of silence after its last sample, not before, not much later."""
    call = make_call(realtime={"end_call_tool": True}, reply=REPLY, call_tool="end_call")
    call.take_turn(HELLO)
    call.wait_playing()
    out = call.play_out()
    call.wait_log("function_call", function="end_call")
    assert call.ended == [], "hung up before the goodbye was over"
    heard = np.frombuffer(b"".join(out), dtype="<i2")
    assert len(heard) >= len(REPLY_16K) // 2 - 20 * RATE // 1000
    quiet_ticks = 0        # silent frames after play_out's last (which may itself be silent)
    while not call.ended:
        assert quiet_ticks * 20 <= TAIL_MS + 20, "no hang-up after the goodbye"
        call.session.next_frame()
        quiet_ticks += 1
        call.barrier()
    assert call.ended == ["agent_ended_call"]
    assert TAIL_MS - 20 <= quiet_ticks * 20 <= TAIL_MS, quiet_ticks
    (ended,) = call.log_events("agent_ended_call")
    assert ended["reason"] is None and ended["timed_out"] is None


def test_speech_over_the_goodbye_calls_the_hang_up_off_and_tells_the_model(make_call):
    """The caller talks over the goodbye: the answer is cancelled as any barge-in, the line stays
    up, and the model gets end_call's output saying the call goes on."""
    call = make_call(realtime={"end_call_tool": True}, reply=REPLY, call_tool="end_call", pace=20)
    call.take_turn(HELLO)
    call.wait_playing()
    call.wait_log("function_call", function="end_call")       # the call arrives with the answer
    for frame in frames_of(np.concatenate([quiet(200), GOODBYE])):
        call.tick(frame)
    call.wait_log("end_call_called_off")
    (item,) = call.wait_for("conversation.item.create")
    assert item["item"]["type"] == "function_call_output"
    assert json.loads(item["item"]["output"])["ended"] is False
    # the answer had all arrived (the call comes with its end): what was not heard is truncated
    (cut,) = call.wait_for("conversation.item.truncate")
    assert 0 < cut["audio_end_ms"] < len(REPLY) // 48
    for _ in range((TAIL_MS + 500) // 20):
        call.tick()
    call.barrier()
    assert call.ended == []


def test_a_call_of_a_function_not_offered_is_answered_and_the_agent_goes_on(make_call):
    """A model calling an unknown function gets an error output and a new response.create; no hang-up."""
    call = make_call()
    call.on_loop(call.session._on_event, rt.FunctionCall("resp_x", "item_x", "call_x", "end_call", "{}"))
    (item,) = call.wait_for("conversation.item.create")
    assert item["item"]["call_id"] == "call_x" and "error" in json.loads(item["item"]["output"])
    call.wait_for("response.create")
    assert call.session.hangup is None and call.ended == []


TARGET = "sip:desk@pbx.example"


def test_transfer_call_refers_once_the_announcement_was_heard_and_a_refusal_goes_back(make_call):
    """transfer_call (offered with transfer_to): the worker is asked to REFER to the target only
    after the announcement played and TAIL_MS passed; a 603 goes back to the model as the
    function's output with a new response, and the call stays up."""
    call = make_call(realtime={"transfer_to": TARGET}, reply=REPLY, call_tool="transfer_call")
    (update,) = call.sent("session.update")
    assert [t["name"] for t in update["session"]["tools"]] == ["transfer_call"]
    call.take_turn(HELLO)
    call.wait_playing()
    call.play_out()
    call.wait_log("function_call", function="transfer_call")
    assert call.transfers == [], "transferred before the announcement was over"
    for _ in range(TAIL_MS // 20 + 1):
        call.session.next_frame()
    call.barrier()
    assert call.transfers == [TARGET] and call.ended == []
    assert call.wait_log("agent_transfers_call")["target"] == TARGET

    call.session.transfer_result(603, "Decline")
    (item,) = call.wait_for("conversation.item.create")
    out = json.loads(item["item"]["output"])
    assert out["transferred"] is False and out["status"] == 603 and out["why"] == "Decline"
    call.wait_for("response.create", 2)
    assert call.ended == [] and call.transfers == [TARGET]


def test_instructions_and_greeting_name_the_calls_parties(make_call):
    """{caller} and {called} are filled per call in session.update's instructions and the
    greeting; a call whose INVITE named nobody readable says unknown."""
    realtime = {"instructions": "The caller is {caller}; they dialled {called}.", "greeting": "Greet {caller}."}
    assert make_call(realtime=realtime).session.greeting == "Greet unknown."
    call = make_call(realtime=realtime, parties=Parties("+4930123456", "100"))
    (update,) = call.sent("session.update")
    assert update["session"]["instructions"] == "The caller is +4930123456; they dialled 100."
    call.session.greet()
    (create,) = call.wait_for("response.create")
    assert create["response"]["instructions"] == "Greet +4930123456."


@pytest.mark.parametrize("realtime, tool", [({"end_call_tool": True}, "end_call"),
                                            ({"transfer_to": TARGET}, "transfer_call")])
def test_a_socket_lost_during_the_goodbye_ends_or_transfers_at_once(make_call, realtime, tool):
    """The model asked to end (or transfer) and its socket drops before the tail: the bridge acts
    now (no model is needed for a BYE or a REFER) instead of calling it off, and once only."""
    call = make_call(realtime=realtime, reply=REPLY, call_tool=tool)
    call.take_turn(HELLO)
    call.wait_playing()
    call.wait_log("function_call", function=tool)
    call.on_loop(call.session._upstream_lost)
    call.barrier()
    assert call.wait_log("upstream_lost_before_goodbye")["action"] == tool
    if tool == "end_call":
        assert call.ended == ["agent_ended_call"] and call.transfers == []
    else:
        assert call.transfers == [TARGET] and call.ended == []
    assert not call.sent("conversation.item.create"), "called off instead of acted on"
    for _ in range(TAIL_MS // 20 + 5):                  # the clock never acts on it again
        call.session.next_frame()
    call.barrier()
    assert len(call.ended) + len(call.transfers) == 1
