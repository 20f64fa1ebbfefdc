"""Tests for tests/support/waiting.py."""

import threading
import time

import pytest

from tests.support.waiting import wait


def test_wait_returns_the_first_truthy_value_once_another_thread_sets_it():
    """A value set by a thread after 0.1 s is returned, not before it exists."""
    box = {}
    threading.Timer(0.1, lambda: box.update(v=42)).start()
    assert wait(lambda: box.get("v"), 5, "the value") == 42


def test_wait_names_what_it_waited_for_on_timeout():
    """A probe never true raises AssertionError naming `what` after about `timeout`."""
    start = time.monotonic()
    with pytest.raises(AssertionError, match="timed out waiting for the thing"):
        wait(lambda: None, 0.1, "the thing")
    assert time.monotonic() - start >= 0.1


def test_wait_asks_every_given_interval():
    """With every=0.05 over 0.2 s the probe is asked at most 5 times, not hundreds."""
    asked = []
    with pytest.raises(AssertionError):
        wait(lambda: asked.append(1), 0.2, "never", every=0.05)
    assert 1 <= len(asked) <= 5   # sleeps of at least 0.05 s fit 4 times in 0.2 s
