"""Mid-call session.update after the agent has spoken: the update applies, the fixed voice stays.

The embedded model refuses any voice in a session.update after its first audio
(``cannot_update_voice``, the whole update refused), as OpenAI's server does.
"""

from __future__ import annotations

import time

from tests.unit.app.test_session import HELLO, quiet


def _spoken(call) -> None:
    call.feed(quiet(200))
    call.feed(HELLO)
    call.session.commit_turn()
    call.wait_log("response.done", 10.0)


def _updates_answered(call, count: int) -> None:
    """Wait until ``count`` session.updates reached the model and its answers came back: the
    barrier event after them is refused (an unknown type), and that refusal comes back last."""
    deadline = time.monotonic() + 5
    while len(call.sent("session.update")) < count:
        assert time.monotonic() < deadline, "the session.update never reached the model"
        time.sleep(0.005)
    call.barrier()
    call.wait_log("upstream_error", code="invalid_value")


def test_new_instructions_after_audio_apply_and_the_unchanged_voice_is_left_out(make_call):
    """update_model(instructions=...) after the first answer: the update carries no voice, the
    model accepts it (no upstream_error) and the next answer still plays."""
    call = make_call(turn={"type": "none"}, realtime={"voice": "marin"})
    assert call.sent("session.update")[0]["session"]["audio"]["output"]["voice"] == "marin"
    _spoken(call)
    call.session.update_model(instructions="be brief")
    _updates_answered(call, 2)
    update = call.sent("session.update")[-1]["session"]
    assert update["instructions"] == "be brief" and "voice" not in update["audio"]["output"]
    assert [r for r in call.log_events("upstream_error") if r.get("code") == "cannot_update_voice"] == []


def test_a_voice_change_after_audio_is_logged_and_the_rest_of_the_update_applies(make_call):
    """update_model(voice=other, instructions=...) after audio: the voice change is logged as
    impossible (realtime.voice_fixed), the instructions still reach the model."""
    call = make_call(turn={"type": "none"}, realtime={"voice": "marin"})
    _spoken(call)
    call.session.update_model(voice="ash", instructions="slower")
    _updates_answered(call, 2)
    fixed = call.wait_log("realtime.voice_fixed")
    assert (fixed["asked"], fixed["voice"]) == ("ash", "marin")
    update = call.sent("session.update")[-1]["session"]
    assert update["instructions"] == "slower" and "voice" not in update["audio"]["output"]
    assert [r for r in call.log_events("upstream_error") if r.get("code") == "cannot_update_voice"] == []
