"""The early INVITE gate: order of refusals, the admission budget, and the log budget."""

import pytest

from sipbridge.sip.acl import AddressFilter
from sipbridge.sip.gate import AdmissionWindow, EarlyGate, LogBudget
from sipbridge.sip.ratelimit import TokenBuckets


def gate(limiter=None, limit=3, window_s=1.0):
    return EarlyGate(AddressFilter(["10.0.0.0/8"]), limiter, AdmissionWindow(limit, window_s), 30)


def test_window_admits_limit_then_says_when_a_slot_frees():
    """The window admits `limit` at once, then refuses with the time until the oldest expires."""
    w = AdmissionWindow(2, 1.0)
    assert w.admit(0.0) is None and w.admit(0.25) is None
    assert w.admit(0.5) == pytest.approx(0.5)
    assert w.admit(1.0) is None            # the first one expired
    assert w.admit(1.1) == pytest.approx(0.15)


def test_window_refusals_do_not_use_slots():
    """Refused INVITEs take no place in the window: the budget comes back on time under a flood."""
    w = AdmissionWindow(1, 1.0)
    assert w.admit(0.0) is None
    assert all(w.admit(0.001 * i) is not None for i in range(1, 999))
    assert w.admit(1.0) is None


def test_window_rejects_bad_parameters():
    """A limit below 1 or a non-positive window is a programming error."""
    with pytest.raises(ValueError):
        AdmissionWindow(0, 1.0)
    with pytest.raises(ValueError):
        AdmissionWindow(1, 0)


def test_draining_comes_first_with_its_retry_after():
    """While draining every INVITE gets 503 with the drain Retry-After, even from a foreign source."""
    r = gate().judge("192.0.2.1:5060", 0.0, stopping=True)
    assert (r.code, r.headers) == (503, (("Retry-After", "30"),))


def test_disallowed_source_gets_403_without_spending_budget():
    """A source outside allow_from gets 403 and leaves the admission budget untouched."""
    g = gate(limit=1)
    assert all(g.judge("192.0.2.1:5060", 0.0).code == 403 for _ in range(50))
    assert g.judge("10.1.2.3:5060", 0.0) is None


def test_rate_limit_before_budget_with_retry_after():
    """Past its token bucket a source gets 503 rate_limited; the budget is not spent on it."""
    g = gate(TokenBuckets(rate=1, burst=1), limit=2)
    assert g.judge("10.0.0.1:5060", 0.0) is None
    r = g.judge("10.0.0.1:5061", 0.1)
    assert (r.code, r.counter, r.headers) == (503, "rate_limited", (("Retry-After", "1"),))
    assert g.judge("10.0.0.2:5060", 0.1) is None   # the budget still had its second slot


def test_budget_refuses_every_source_with_retry_after():
    """Past the budget any allowed source gets 503 admission_limited with Retry-After >= 1."""
    g = gate(limit=2)
    assert g.judge("10.0.0.1:1", 0.0) is None and g.judge("10.0.0.2:1", 0.0) is None
    r = g.judge("10.0.0.3:1", 0.9)
    assert (r.code, r.counter, r.headers) == (503, "admission_limited", (("Retry-After", "1"),))


def test_unknown_source_only_meets_the_budget():
    """Without a readable source (blind mode) only draining and the budget apply."""
    g = gate(TokenBuckets(rate=1, burst=1), limit=2)
    assert g.judge(None, 0.0) is None and g.judge(None, 0.0) is None
    assert g.judge(None, 0.0).counter == "admission_limited"


def test_log_budget_caps_lines_and_reports_the_rest_next_second():
    """Past `per_s` lines in a second the rest are counted and reported when the next second starts."""
    lb = LogBudget(2)
    assert [lb.allow(5.0 + i / 10)[0] for i in range(5)] == [True, True, False, False, False]
    assert lb.allow(6.2) == (True, 3)
    assert lb.allow(6.3) == (True, 0)
