"""The reconnect policy: the shared capped backoff in ms, the attempt limit, what counts as a drop."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipbridge.realtime.retry import Outage, backoff_ms, classify_close, is_fatal_error


def test_outage_hands_out_exactly_the_attempts_then_gives_up():
    """An outage yields `attempts` capped-exponential delays, then None for good."""
    o = Outage(backoff_ms(250, 1000), attempts=4, started_ms=0)
    assert [o.next_delay_ms(t) for t in range(6)] == [250, 500, 1000, 1000, None, None]
    assert o.attempt == 4


def test_default_schedule():
    """The default 250/4000 ms schedule over 5 attempts: 250, 500, 1000, 2000, 4000."""
    o = Outage(backoff_ms(250, 4000), attempts=5, started_ms=0)
    assert [o.next_delay_ms(0) for _ in range(5)] == [250, 500, 1000, 2000, 4000]


def test_zero_attempts_gives_up_at_once():
    """With attempts 0 the first question already answers None (hang up immediately)."""
    assert Outage(backoff_ms(250, 4000), attempts=0, started_ms=5).next_delay_ms(5) is None


def test_a_new_outage_starts_from_the_minimum_again():
    """The backoff is shared per call, but each outage restarts its schedule at the minimum."""
    b = backoff_ms(100, 800)
    first = Outage(b, attempts=3, started_ms=0)
    assert [first.next_delay_ms(0) for _ in range(3)] == [100, 200, 400]
    second = Outage(b, attempts=3, started_ms=10_000)
    assert second.next_delay_ms(10_000) == 100


@settings(max_examples=150, deadline=None)
@given(lo=st.integers(10, 5000), span=st.integers(0, 100_000), attempts=st.integers(0, 40),
       jitter=st.floats(0.0, 0.99), seed=st.integers(0, 2**32))
def test_jittered_delays_stay_within_bounds(lo, span, attempts, jitter, seed):
    """Every delay lies in [min, max] and under the un-jittered capped exponential; exactly `attempts` come."""
    o = Outage(backoff_ms(lo, lo + span, jitter, random.Random(seed)), attempts, started_ms=0)
    delays = []
    while (d := o.next_delay_ms(0)) is not None:
        delays.append(d)
    assert len(delays) == attempts
    for n, d in enumerate(delays, 1):
        assert lo <= d <= lo + span
        assert d <= min(lo + span, lo * 2 ** min(n - 1, 40))


def test_outage_length_is_measured_from_its_start():
    """restored() reports ms since the drop, never negative."""
    o = Outage(backoff_ms(250, 4000), attempts=3, started_ms=1000.0)
    assert o.restored(3750.4) == 2750
    assert o.restored(900.0) == 0


@pytest.mark.parametrize("code,kind", [(1000, "normal"), (1001, "drop"), (1006, "drop"), (1011, "drop"),
                                       (4000, "drop"), (None, "drop")])
def test_only_code_1000_is_a_normal_end(code, kind):
    """A deliberate close (1000) ends the call; going away, abnormal, ping timeout, none: reconnect."""
    assert classify_close(code) == kind


def test_fatal_error_codes():
    """session_expired / server_error are fatal; ordinary request errors are not."""
    assert is_fatal_error("session_expired") and is_fatal_error("server_error")
    assert not is_fatal_error("response_cancel_not_active")
    assert not is_fatal_error(None)


def test_fatal_by_error_type_whatever_the_code():
    """error.type server_error is fatal with a null or any code; invalid_request_error only by a fatal code."""
    assert is_fatal_error(None, "server_error") and is_fatal_error("whatever", "server_error")
    assert is_fatal_error("session_expired", "invalid_request_error")
    assert not is_fatal_error(None, "invalid_request_error")
    assert not is_fatal_error("conversation_already_has_active_response", "invalid_request_error")
