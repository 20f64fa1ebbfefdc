"""The end_call decision (Hangup) and the protocol pieces of functions, sans I/O."""

from __future__ import annotations

import json

import pytest

from sipbridge.realtime import protocol as rt
from sipbridge.realtime.tools import END_CALL, Hangup, call_reason


def run(h: Hangup, playing: list[bool]) -> int | None:
    """Feed one tick per ``playing`` flag; the index of the tick that fired, or None."""
    fired = [i for i, p in enumerate(playing) if h.tick(p)]
    assert len(fired) <= 1, "fired more than once"
    return fired[0] if fired else None


def test_no_hang_up_while_the_response_that_asked_is_still_going():
    """Quiet frames count only once that response is done; then TAIL_MS of quiet fires it."""
    h = Hangup("resp_1", "call_1", tail_ms=100)
    assert run(h, [False] * 20) is None          # silent, but the goodbye may still be coming
    h.response_done("resp_other")
    assert run(h, [False] * 20) is None
    h.response_done("resp_1")
    assert run(h, [True] * 10 + [False] * 10) == 14   # 5 quiet frames after the last audio


def test_audio_resets_the_quiet_count():
    """A paused or still-queued goodbye (playing) holds the hang-up back."""
    h = Hangup("r", "c", tail_ms=60)
    h.response_done("r")
    assert run(h, [False, False, True, False, False, True, False, False, False]) == 8


def test_a_goodbye_that_never_ends_is_hung_up_at_max_wait():
    """A model still talking after max_wait_ms is hung up anyway (the call asked to end)."""
    h = Hangup("r", "c", max_wait_ms=1000)
    assert run(h, [True] * 60) == 49
    assert not h.done


def test_claim_takes_the_action_once_and_then_the_clock_never_fires():
    """The socket-lost path claims it first: tick then never fires; a second claim is refused."""
    h = Hangup("r", "c", tail_ms=20)
    h.response_done("r")
    assert h.claim() and not h.claim()
    assert run(h, [False] * 5) is None


@pytest.mark.parametrize("arguments, reason", [
    ('{"reason": "caller said goodbye"}', "caller said goodbye"), ("{}", None), ("", None),
    ("not json", None), ('{"reason": 5}', None), ('["x"]', None), ('{"reason": "' + "x" * 500 + '"}', "x" * 200),
])
def test_call_reason_reads_what_it_can(arguments, reason):
    assert call_reason(arguments) == reason


@pytest.mark.parametrize("api", ["ga", "beta"])
def test_tools_go_in_session_update_in_both_dialects(api):
    """tools + tool_choice auto, the same shape in GA and beta; none: neither key."""
    with_tool = rt.session_update(rt.SessionConfig(model="m", api=api, tools=(END_CALL,)))["session"]
    assert with_tool["tools"] == [{"type": "function", "name": "end_call",
                                   "description": END_CALL.description, "parameters": END_CALL.parameters}]
    assert with_tool["tool_choice"] == "auto"
    plain = rt.session_update(rt.SessionConfig(model="m", api=api))["session"]
    assert "tools" not in plain and "tool_choice" not in plain


def test_response_create_with_instructions_and_function_output():
    assert "response" not in rt.response_create()
    assert rt.response_create("Say hello")["response"] == {"instructions": "Say hello"}
    item = rt.function_output("call_1", '{"ok": true}')
    assert item["type"] == "conversation.item.create"
    assert item["item"] == {"type": "function_call_output", "call_id": "call_1", "output": '{"ok": true}'}


def test_output_item_done_parses_function_calls_and_other_items():
    base = {"type": "response.output_item.done", "response_id": "r", "output_index": 0}
    call = rt.parse_server_event(json.dumps({**base, "item": {
        "id": "i", "type": "function_call", "call_id": "c", "name": "end_call", "arguments": '{"reason": "x"}'}}))
    assert call == rt.FunctionCall("r", "i", "c", "end_call", '{"reason": "x"}')
    msg = rt.parse_server_event(json.dumps({**base, "item": {"id": "i", "type": "message"}}))
    assert msg == rt.OutputItemDone("r", "i", "message")
    bad = rt.parse_server_event(json.dumps({**base, "item": {"id": "i", "type": "function_call", "name": "x"}}))
    assert isinstance(bad, rt.Malformed) and "call_id" in bad.reason
