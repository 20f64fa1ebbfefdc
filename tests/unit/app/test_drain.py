"""The drain policy of a stopping worker: wait for calls, BYE at the deadline or when forced."""

import pytest

from sipbridge import config
from sipbridge.drain import Drain, Step
from sipbridge.errors import ConfigError


def test_no_calls_means_done_at_once():
    """A worker with no call in progress closes immediately, whatever the deadline."""
    assert Drain(started=100.0, timeout_s=30).step(100.0, live=0) is Step.DONE


def test_calls_in_progress_are_waited_for_until_they_end():
    """Before the deadline the worker keeps serving; when the last call ends it is done."""
    d = Drain(started=100.0, timeout_s=30)
    assert d.step(100.0, live=2) is Step.WAIT
    assert d.step(129.9, live=1) is Step.WAIT
    assert d.step(120.0, live=0) is Step.DONE


def test_calls_left_at_the_deadline_are_hung_up_once_then_given_a_grace():
    """At the deadline HANG_UP comes once; the BYEs then get grace_s before the worker closes."""
    d = Drain(started=100.0, timeout_s=2, grace_s=3)
    assert d.deadline == 102.0
    assert d.step(101.99, live=1) is Step.WAIT
    assert d.step(102.0, live=1) is Step.HANG_UP
    assert d.step(102.5, live=1) is Step.WAIT
    assert d.step(104.9, live=1) is Step.WAIT
    assert d.step(105.0, live=1) is Step.DONE


def test_answered_byes_end_the_grace_early():
    """Once every hung-up call has disconnected the worker closes without waiting out the grace."""
    d = Drain(started=0.0, timeout_s=1, grace_s=3)
    assert d.step(1.0, live=2) is Step.HANG_UP
    assert d.step(1.1, live=0) is Step.DONE


def test_zero_timeout_hangs_up_immediately():
    """drain_timeout_s 0 is the old behaviour: BYE to every call as soon as the drain starts."""
    assert Drain(started=5.0, timeout_s=0).step(5.0, live=3) is Step.HANG_UP


def test_a_second_signal_forces_the_hang_up_before_the_deadline():
    """force() (a second SIGTERM/SIGINT) turns the next step into HANG_UP, and only once."""
    d = Drain(started=0.0, timeout_s=30)
    assert d.step(1.0, live=1) is Step.WAIT
    d.force()
    assert d.step(1.1, live=1) is Step.HANG_UP
    d.force()
    assert d.step(1.2, live=1) is Step.WAIT


def test_wait_s_never_sleeps_past_the_next_decision():
    """The worker blocks at most poll_s, and never past the deadline or the end of the grace."""
    d = Drain(started=0.0, timeout_s=10, grace_s=3)
    assert d.wait_s(0.0, poll_s=0.5) == 0.5
    assert d.wait_s(9.8, poll_s=0.5) == pytest.approx(0.2)
    assert d.wait_s(11.0, poll_s=0.5) == 0.0
    d.step(11.0, live=1)
    assert d.wait_s(13.9, poll_s=0.5) == pytest.approx(0.1)


def test_drain_timeout_config_default_and_range():
    """sip.drain_timeout_s defaults to 30 s; negative values are a ConfigError naming the key."""
    assert config.build({}, environ={}).sip.drain_timeout_s == 30
    assert config.build({"sip": {"drain_timeout_s": 0}}, environ={}).sip.drain_timeout_s == 0
    with pytest.raises(ConfigError) as err:
        config.build({"sip": {"drain_timeout_s": -1}}, environ={})
    assert err.value.key == "sip.drain_timeout_s"
