"""An outbound call's progress: SIP events mapped to queued/ringing/answered/... with times."""

from sipbridge.app.progress import (ANSWERED, BUSY, CANCELLED, ENDED, FAILED, NO_ANSWER, QUEUED,
                                    RINGING, Progress)


def test_a_call_that_rings_is_answered_and_ends_keeps_each_time():
    """queued -> ringing (18x) -> answered -> ended, each state stamped once with its time."""
    p = Progress(10.0)
    assert p.state == QUEUED and not p.final
    p.on_invite_sent(10.004)
    assert p.on_provisional(100, 10.01) is False and p.state == QUEUED
    assert p.on_provisional(180, 10.5) is True and p.state == RINGING
    assert p.on_provisional(183, 10.6) is False
    assert p.on_answered(12.0) is True and p.state == ANSWERED and p.status == 200
    assert p.on_disconnected(200, "Normal call clearing", 20.0) is True
    assert p.state == ENDED and p.final
    d = p.as_dict()
    assert d["times"] == {QUEUED: 10.0, RINGING: 10.5, ANSWERED: 12.0, ENDED: 20.0}
    assert d["invite_sent_at"] == 10.004 and d["status"] == 200


def test_busy_codes_486_and_600_are_busy():
    """A 486 or 600 final answer before the answer is reported busy with that status."""
    for code in (486, 600):
        p = Progress(0.0)
        p.on_provisional(180, 0.1)
        assert p.on_disconnected(code, "Busy", 1.0) and p.state == BUSY and p.status == code


def test_our_ring_timeout_is_no_answer_and_an_app_cancel_is_cancelled():
    """A hangup we started at the ring timeout ends no-answer; one for an API cancel ends cancelled."""
    p = Progress(0.0)
    p.on_provisional(180, 0.2)
    p.on_give_up("ring_timeout")
    assert p.on_disconnected(487, "Request Terminated", 30.0)
    assert (p.state, p.status, p.reason) == (NO_ANSWER, 487, "ring_timeout")
    q = Progress(0.0)
    q.on_give_up("cancel")
    q.on_disconnected(487, "Request Terminated", 3.0)
    assert q.state == CANCELLED


def test_far_end_no_answer_codes_and_other_failures():
    """408/480 from the far end are no-answer; 404, 503 and a 407 loop are failed with the status."""
    for code, state in ((408, NO_ANSWER), (480, NO_ANSWER), (404, FAILED), (503, FAILED),
                        (407, FAILED), (603, FAILED)):
        p = Progress(0.0)
        assert p.on_disconnected(code, "x", 1.0)
        assert (p.state, p.status) == (state, code), code


def test_a_local_failure_after_the_invite_fails_with_its_reason():
    """Giving up for a cause that is not ours to name (the model unreachable) ends failed with that reason."""
    p = Progress(0.0)
    p.on_give_up("upstream_unavailable")
    p.on_disconnected(487, "Request Terminated", 1.0)
    assert (p.state, p.reason) == (FAILED, "upstream_unavailable")


def test_final_states_do_not_move_and_a_late_give_up_after_answer_is_ignored():
    """Events after a final state change nothing; a give-up after the answer does not rename the end."""
    p = Progress(0.0)
    p.on_disconnected(486, "Busy", 1.0)
    assert not p.on_answered(2.0) and not p.on_disconnected(200, "", 3.0)
    assert not p.on_failed("late", 4.0) and p.state == BUSY
    a = Progress(0.0)
    a.on_answered(1.0)
    a.on_give_up("cancel")
    a.on_disconnected(200, "Normal call clearing", 5.0)
    assert a.state == ENDED


def test_invite_never_sent_fails_at_once():
    """on_failed before any SIP exchange is a final failed state with the local reason."""
    p = Progress(0.0)
    assert p.on_failed("INVITE not sent: bad URI", 0.001, status=None)
    assert p.final and p.as_dict()["reason"] == "INVITE not sent: bad URI"
