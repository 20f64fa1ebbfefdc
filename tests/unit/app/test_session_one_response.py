"""A turn ended while the previous response is still starting is answered, not refused.

The model is the embedded model, which refuses a second ``response.create`` while one is
active (``conversation_already_has_active_response``), as OpenAI's server does.
"""

from __future__ import annotations

import time

from tests.unit.app.test_session import HELLO, quiet

DONE_TIMEOUT = 10.0


def _greet_then_commit(call) -> None:
    """The caller has spoken; the greeting is asked for and the caller's turn is committed right
    after, before the greeting's response.created can have come back."""
    call.feed(quiet(200))
    call.feed(HELLO)
    call.session.flush_audio()
    call.session.greet()
    call.session.commit_turn()


def _wait_done(call, count: int) -> list[dict]:
    deadline = time.monotonic() + DONE_TIMEOUT
    while len(done := call.log_events("response.done")) < count:
        assert time.monotonic() < deadline, f"only {len(done)} of {count} responses finished"
        time.sleep(0.005)
    return done


def test_a_turn_committed_while_the_greeting_starts_is_answered_after_it(make_call):
    """greet() then commit_turn() at once: the second response.create waits for the greeting's
    response.done, both responses complete and the server refuses nothing."""
    call = make_call(turn={"type": "none"}, realtime={"greeting": "say hello"}, pace=8.0)
    _greet_then_commit(call)
    done = _wait_done(call, 2)
    assert [d["status"] for d in done] == ["completed", "completed"]
    assert [e["type"] for e in call.sent("response.create")] == ["response.create"] * 2
    assert call.log_events("upstream_error") == []
    assert call.session.client.responses.held == 1


def test_without_the_gate_the_same_turn_is_refused_and_never_answered(make_call):
    """The same sequence with the client's one-response gate off: the server refuses the turn's
    response.create and only the greeting is answered (the bug the gate fixes)."""
    call = make_call(turn={"type": "none"}, realtime={"greeting": "say hello"}, pace=8.0)
    call.on_loop(setattr, call.session.client.responses, "offer", lambda event: True)
    _greet_then_commit(call)
    error = call.wait_log("upstream_error", code="conversation_already_has_active_response")
    assert error["type"] == "invalid_request_error"
    _wait_done(call, 1)
    time.sleep(1.0)
    assert len(call.log_events("response.done")) == 1
