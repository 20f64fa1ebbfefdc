"""When to restart a process that died: exponential backoff, give up on a crash loop. Pure.

Every exit that was not asked for counts as a crash. The ``n``-th crash of a process within the
last ``window_s`` seconds is restarted after ``backoff_s * 2**(n-1)`` seconds (capped at
``max_backoff_s``); the ``limit``-th crash within the window is not restarted at all. Crashes
older than the window are forgotten, so a worker that ran fine for a while starts over at
``backoff_s``. Times are passed in (seconds on any monotonic clock).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    limit: int = 5
    window_s: float = 60.0

    @classmethod
    def from_config(cls, cell) -> "RestartPolicy":
        return cls(backoff_s=cell.restart_backoff_ms / 1000, limit=cell.restart_limit,
                   window_s=float(cell.restart_window_s))


class RestartTracker:
    """Crash history per process key; :meth:`on_crash` says when (or whether) to restart."""

    def __init__(self, policy: RestartPolicy):
        self.policy = policy
        self._crashes: dict[Hashable, deque[float]] = {}

    def on_crash(self, key: Hashable, now: float) -> float | None:
        """Record a crash of ``key`` at ``now``; return the delay before restarting it, or None
        to give up (``limit`` crashes within ``window_s``)."""
        p = self.policy
        times = self._crashes.setdefault(key, deque())
        times.append(now)
        while times and now - times[0] > p.window_s:
            times.popleft()
        if len(times) >= p.limit:
            return None
        return min(p.backoff_s * 2 ** (len(times) - 1), p.max_backoff_s)

    def recent(self, key: Hashable, now: float) -> int:
        """Crashes of ``key`` within the window ending at ``now``."""
        return sum(1 for t in self._crashes.get(key, ()) if now - t <= self.policy.window_s)
