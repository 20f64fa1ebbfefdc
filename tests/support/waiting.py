"""Waiting in a test for something another process or thread does: poll until it is true.

    calls = wait(lambda: listed(bridge) or None, 10, "the call in the list")   # its value

The probe's first truthy value is returned; none within ``timeout`` seconds is an
``AssertionError`` naming ``what`` (:func:`poll` returns None instead, for a caller that
asserts with its own message). ``every`` is the pause between two probes (a probe that
asks over HTTP wants a longer one than a probe that reads memory).
"""

from __future__ import annotations

import time


def poll(probe, timeout: float, every: float = 0.02):
    """The first truthy ``probe()``, asked every ``every`` s, or None after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    return None


def wait(probe, timeout: float, what: str, every: float = 0.02):
    """The first truthy ``probe()``, asked every ``every`` s until ``timeout`` s have passed."""
    value = poll(probe, timeout, every)
    if not value:
        raise AssertionError(f"timed out waiting for {what}")
    return value
