"""The worker's heap trimmer: only after a call ended, at most once per interval, and the real
libc trim runs."""

from sipbridge.memtrim import Trimmer, libc_trim


def test_trims_only_after_a_call_ended_and_at_most_once_per_interval():
    """No call ended: no trim; ended: one trim, the next not before interval_s, and only if another call ended."""
    done = []
    t = Trimmer(2.0, trim=lambda: done.append(1))
    assert not t.tick(0.0) and not done
    t.call_ended()
    assert t.tick(0.5) and done == [1]
    assert not t.tick(0.6)                  # nothing ended since
    t.call_ended()
    assert not t.tick(2.4)                  # too soon after the last trim
    assert t.tick(2.5) and t.trims == 2
    assert not t.tick(10.0)


def test_the_libc_trim_runs_here():
    """On glibc the trim is the real malloc_trim(0) and returns without error."""
    trim = libc_trim()
    assert trim() in (0, 1)
