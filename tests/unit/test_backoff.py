"""The capped exponential backoff policy: pure, time passed in."""

import random

import pytest

from sipbridge.backoff import Backoff


def test_waits_double_from_min_up_to_the_cap():
    """Consecutive failures wait min, 2*min, 4*min, ... and never more than max."""
    b = Backoff(min_s=1, max_s=60)
    assert [b.failure(now=0) for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_success_resets_the_sequence():
    """After a success the next failure waits min_s again."""
    b = Backoff(min_s=0.5, max_s=2)
    assert [b.failure(0) for _ in range(4)] == [0.5, 1, 2, 2]
    b.success()
    assert b.failures == 0 and b.next_at is None
    assert b.failure(10) == 0.5


def test_due_follows_the_time_passed_in():
    """A retry is due only once the clock reaches failure time + wait, and never without a failure."""
    b = Backoff(min_s=1, max_s=10)
    assert not b.due(100.0)
    b.failure(100.0)
    b.failure(101.0)              # second failure: 2 s
    assert b.next_at == 103.0
    assert not b.due(102.999)
    assert b.due(103.0)


def test_jitter_is_deterministic_with_a_seeded_rng_and_stays_in_bounds():
    """Jitter shortens waits by up to the fraction, stays within [min, max], and repeats for one seed."""
    def run(seed):
        b = Backoff(min_s=1, max_s=8, jitter=0.2, rng=random.Random(seed))
        return [b.failure(0) for _ in range(50)]
    a, b = run(7), run(7)
    assert a == b
    assert all(1 <= w <= 8 for w in a)
    assert all(0.8 * 8 <= w <= 8 for w in a[4:])  # at the cap: 80-100 % of it
    assert len(set(a[4:])) > 1                    # and actually spread


def test_huge_failure_counts_do_not_overflow():
    """Thousands of failures (a registrar down for days) keep waiting max_s."""
    b = Backoff(min_s=1, max_s=60)
    for _ in range(5000):
        wait = b.failure(0)
    assert wait == 60


@pytest.mark.parametrize("kwargs", [dict(min_s=0), dict(min_s=5, max_s=1), dict(factor=0.5),
                                    dict(jitter=1.0), dict(jitter=-0.1)])
def test_nonsense_parameters_are_refused(kwargs):
    """Zero or inverted bounds, a shrinking factor or jitter outside [0, 1) raise ValueError."""
    with pytest.raises(ValueError):
        Backoff(**kwargs)
