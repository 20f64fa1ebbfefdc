"""Waiting in a test for something another process or thread does: poll until it is true.

    calls = wait(lambda: listed(bridge) or None, 10, "the call in the list")   # its value

The probe's first truthy value is returned; none within ``timeout`` seconds is an
``AssertionError`` naming ``what``. ``every`` is the pause between two probes (a probe that
asks over HTTP wants a longer one than a probe that reads memory).
"""

from __future__ import annotations

import time


def wait(probe, timeout: float, what: str, every: float = 0.02):
    """The first truthy ``probe()``, asked every ``every`` s until ``timeout`` s have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
