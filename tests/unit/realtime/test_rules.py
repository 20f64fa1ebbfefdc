"""ResponseGate and VoiceLock: the OpenAI server's one-response and fixed-voice rules, client side."""

from sipbridge.realtime import protocol as p
from sipbridge.realtime.rules import ACTIVE_RESPONSE, ResponseGate, VoiceLock


def test_a_create_goes_at_once_when_nothing_is_active():
    """With no response active or asked for, offer() says send now."""
    gate = ResponseGate()
    assert gate.offer(p.response_create()) is True and gate.busy


def test_a_create_while_one_is_starting_waits_for_its_done():
    """A create offered between response.create and response.created is held until that response is done."""
    gate = ResponseGate()
    first, second = p.response_create(instructions="greet"), p.response_create()
    assert gate.offer(first) and not gate.offer(second)
    gate.created("resp_1")
    assert gate.done("resp_1") is second and gate.asked is second and gate.held == 1


def test_held_creates_leave_in_order_one_per_done():
    """Several held creates are released first in, first out, one at each response.done."""
    gate = ResponseGate()
    a, b, c = (p.response_create() for _ in range(3))
    gate.offer(a), gate.offer(b), gate.offer(c)
    gate.created("r1")
    assert gate.done("r1") is b
    assert gate.done("r2") is None  # b asked, not created yet: a stray done frees nothing
    gate.created("r2")
    assert gate.done("r2") is c


def test_a_late_done_of_an_older_response_releases_nothing():
    """response.done of another response than the active one leaves the held create waiting."""
    gate = ResponseGate()
    gate.created("r_server")          # the server's own response (server VAD create_response)
    held = p.response_create()
    assert not gate.offer(held)
    assert gate.done("r_old") is None and gate.done("r_server") is held


def test_a_create_refused_for_an_unknown_active_response_waits_for_its_done():
    """A refusal with conversation_already_has_active_response puts the create back; the next done sends it."""
    gate = ResponseGate()
    create = p.response_create()
    gate.offer(create)
    assert gate.refused(create["event_id"], ACTIVE_RESPONSE) is None and not gate.offer(p.response_create())
    assert gate.done("resp_unseen") is create


def test_a_refusal_with_a_null_event_id_still_counts_for_the_create_in_flight():
    """The server may leave error.event_id null: an active-response refusal still re-queues the create asked."""
    gate = ResponseGate()
    create = p.response_create()
    gate.offer(create)
    gate.refused(None, ACTIVE_RESPONSE)
    assert gate.done("resp_x") is create


def test_another_refusal_frees_the_gate_and_other_errors_are_ignored():
    """A create refused for another reason frees the gate (the next one goes); unrelated errors change nothing."""
    gate = ResponseGate()
    a, b = p.response_create(), p.response_create()
    gate.offer(a), gate.offer(b)
    assert gate.refused("evt_other", "invalid_value") is None and gate.asked is a
    assert gate.refused(None, None) is None and gate.asked is a
    assert gate.refused(a["event_id"], "invalid_value") is b


def test_voice_goes_through_before_audio_and_is_dropped_after():
    """Before the first audio the voice is sent; after it the update goes without voice, the rest intact."""
    lock = VoiceLock("marin")
    update = p.session_update(p.SessionConfig(model="m", voice="cedar", instructions="x"))
    assert lock.filter(update) == (update, None) and lock.voice == "cedar"
    lock.heard_audio()
    sent, refused = lock.filter(update)
    assert refused is None and "voice" not in sent["session"]["audio"]["output"]
    assert sent["session"]["instructions"] == "x" and "voice" in update["session"]["audio"]["output"]


def test_a_real_voice_change_after_audio_is_reported():
    """After audio, a different voice is dropped and named; beta's top-level voice is handled the same way."""
    lock = VoiceLock("marin")
    lock.heard_audio()
    sent, refused = lock.filter(p.session_update(p.SessionConfig(model="m", voice="ash", api="beta")))
    assert refused == "ash" and "voice" not in sent["session"]
    assert lock.filter(p.input_audio_commit())[1] is None
