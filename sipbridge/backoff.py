"""Capped exponential backoff for retrying something that failed (a trunk's REGISTER, a lost model
session). Shared by the SIP shell and the upstream side, so it belongs to neither.

Pure: no clock, no sleeping. The caller says when a failure happened and gets back how long to
wait; a success resets the sequence. The n-th consecutive failure waits

    min(max_s, min_s * factor ** (n - 1))

scaled down by up to ``jitter`` (a fraction, drawn from ``rng``) so that many bridges that lost
the same registrar do not come back in lockstep; the result never leaves ``[min_s, max_s]``.
Pass a seeded ``random.Random`` (or ``jitter=0``) for a deterministic sequence.

    policy = Backoff(min_s=1, max_s=60)
    delay = policy.failure(now)       # 1, 2, 4, 8, ... 60, 60
    policy.due(now)                   # False until now >= the time returned by next_at
    policy.success()                  # back to min_s for the next failure
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    min_s: float = 1.0
    max_s: float = 60.0
    factor: float = 2.0
    jitter: float = 0.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    failures: int = 0                 # consecutive failures so far
    next_at: float | None = None      # when the next attempt is due (None: no retry pending)

    def __post_init__(self) -> None:
        if not 0 < self.min_s <= self.max_s:
            raise ValueError(f"need 0 < min_s <= max_s, got {self.min_s}, {self.max_s}")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def delay(self, failures: int) -> float:
        """Un-jittered wait after the ``failures``-th consecutive failure (1-based)."""
        if failures < 1:
            return 0.0
        # cap the exponent: factor ** n overflows a float long before it matters
        exponent = min(failures - 1, 64)
        return min(self.max_s, self.min_s * self.factor ** exponent)

    def failure(self, now: float) -> float:
        """Record a failure at ``now``; return the seconds to wait before the next attempt."""
        self.failures += 1
        wait = self.delay(self.failures)
        if self.jitter:
            wait *= 1.0 - self.jitter * self.rng.random()
        wait = min(self.max_s, max(self.min_s, wait))
        self.next_at = now + wait
        return wait

    def success(self) -> None:
        """The attempt worked: the next failure starts again from ``min_s``."""
        self.failures = 0
        self.next_at = None

    def due(self, now: float) -> bool:
        """True when a retry is pending and its time has come."""
        return self.next_at is not None and now >= self.next_at
