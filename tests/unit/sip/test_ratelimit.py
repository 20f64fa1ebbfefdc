"""Per-source INVITE token buckets: burst, refill, Retry-After, independence, bounded memory."""

import pytest

from sipbridge.sip.ratelimit import Take, TokenBuckets


def test_burst_then_refused_with_retry_after():
    """A source gets `burst` INVITEs at once, then refusals saying when the next token comes."""
    tb = TokenBuckets(rate=2, burst=3)
    assert [tb.take("a", 0.0).allowed for _ in range(4)] == [True, True, True, False]
    refused = tb.take("a", 0.1)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(0.4)
    assert refused.retry_after == 1 and tb.refused == 2


def test_refill_at_rate_up_to_burst():
    """Tokens come back at `rate` per second and never exceed `burst`."""
    tb = TokenBuckets(rate=10, burst=5)
    for _ in range(5):
        tb.take("a", 0.0)
    assert tb.tokens("a", 0.25) == pytest.approx(2.5)
    assert tb.tokens("a", 100.0) == 5
    assert tb.take("a", 0.1).allowed and not tb.take("a", 0.1).allowed


def test_sources_are_independent():
    """One source's flood does not use another's tokens."""
    tb = TokenBuckets(rate=1, burst=1)
    assert tb.take("10.0.0.1", 0.0).allowed and not tb.take("10.0.0.1", 0.0).allowed
    assert tb.take("10.0.0.2", 0.0).allowed


def test_steady_rate_is_sustained():
    """INVITEs exactly at the rate are all allowed, forever."""
    tb = TokenBuckets(rate=10, burst=1)
    assert all(tb.take("a", i * 0.1).allowed for i in range(1000))


def test_retry_after_is_whole_seconds_at_least_one():
    """Retry-After rounds up and is never 0."""
    assert Take(False, 0.01).retry_after == 1 and Take(False, 2.2).retry_after == 3


def test_memory_is_bounded_and_full_buckets_go_first():
    """Past max_keys, refilled buckets are dropped first, then the least recently used."""
    tb = TokenBuckets(rate=1, burst=2, max_keys=3)
    tb.take("idle", 0.0)          # full again by t=1
    tb.take("busy", 1.0)
    tb.take("busy", 1.0)          # empty: carries information
    tb.take("x", 1.0)
    tb.take("y", 1.0)             # over the cap: "idle" (full) is dropped, "busy" kept
    assert len(tb) <= 3 and not tb.take("busy", 1.0).allowed
    for i in range(10000):
        tb.take(f"10.1.{i // 256}.{i % 256}", 2.0)
    assert len(tb) <= 3


def test_bad_parameters_raise():
    """A zero rate or burst is a programming error."""
    with pytest.raises(ValueError):
        TokenBuckets(rate=0, burst=1)
    with pytest.raises(ValueError):
        TokenBuckets(rate=1, burst=0)
