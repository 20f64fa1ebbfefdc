"""Per-source INVITE rate limit: one token bucket per key (source IP), sans I/O, bounded memory.

Each key's bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; an
INVITE takes one token or is refused, and :meth:`TokenBuckets.take` then says how long until
the next token (the ``Retry-After`` of the 503). Time is passed in (seconds, any monotonic
origin). At most ``max_keys`` buckets are kept: a bucket that has refilled to ``burst`` carries
no information and is dropped first, then the least recently used one. Dropping a bucket can
only ever be generous to its key (it comes back full), never refuse a call it should not.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Take:
    """The answer for one INVITE: allowed, else seconds until a token is there."""

    allowed: bool
    retry_after_s: float = 0.0

    @property
    def retry_after(self) -> int:
        """Whole seconds for a ``Retry-After`` header (at least 1)."""
        return max(1, math.ceil(self.retry_after_s))


class TokenBuckets:
    """Token buckets keyed by source; ``rate`` tokens/s, ``burst`` tokens at most."""

    def __init__(self, rate: float, burst: int, max_keys: int = 4096):
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate must be > 0, burst >= 1, max_keys >= 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, t)
        self.refused = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def tokens(self, key: str, now: float) -> float:
        """Tokens ``key`` has at ``now`` (``burst`` for a key not seen)."""
        entry = self._buckets.get(key)
        if entry is None:
            return float(self.burst)
        tokens, t = entry
        return min(float(self.burst), tokens + max(0.0, now - t) * self.rate)

    def take(self, key: str, now: float) -> Take:
        """Spend one of ``key``'s tokens at ``now``, or refuse and say when to come back."""
        tokens = self.tokens(key, now)
        if tokens >= 1.0 - 1e-9:  # float refill (0.1 s x 10/s) must still make a whole token
            self._store(key, max(0.0, tokens - 1.0), now)
            return Take(True)
        self._store(key, tokens, now)
        self.refused += 1
        return Take(False, (1.0 - tokens) / self.rate)

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self.max_keys:
            self._evict(now)

    def _evict(self, now: float) -> None:
        full = [k for k in self._buckets if self.tokens(k, now) >= self.burst]
        for k in full:  # all of them: the next few new keys then need no scan
            del self._buckets[k]
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
