"""The early INVITE gate: which INVITEs are answered before pjsua opens sockets for them (pure).

pjsua opens an RTP/RTCP socket pair for every new INVITE that finds a free call slot, *before*
``onIncomingCall`` runs; a refused INVITE closes them again, but pjlib's select ioqueue (64
handles in the ``pjsua2-python`` wheel) frees a closed socket's handle only ~500 ms later
(``PJ_IOQUEUE_KEY_FREE_DELAY``). About 32 INVITEs within half a second therefore abort the
process (``pj_ioqueue_register_sock2`` assertion), whatever the application answers.

:class:`EarlyGate` decides, for each new INVITE seen by a PJSIP module placed before pjsua's
(:mod:`sipbridge.sip.pjgate`), in this order:

1. draining: **503** with the drain ``Retry-After``;
2. a source outside ``sip.allow_from``: **403**;
3. over the source's token bucket (``sip.invite_rate_per_s`` / ``sip.invite_burst``): **503**
   with ``Retry-After`` (counted as ``rate_limited``);
4. over the worker's admission budget (:data:`ADMIT_LIMIT` INVITEs per :data:`ADMIT_WINDOW_S`,
   every source together): **503** with ``Retry-After`` (counted as ``admission_limited``).

Steps 2 and 3 need the source address; when it cannot be read (``source`` is None) only 1 and 4
apply and the policy in ``onIncomingCall`` does the rest. Everything else (framing, digest auth,
numbers, capacity) stays there: at most the budget's INVITEs reach it. Time is passed in.
"""

from __future__ import annotations

import math
from collections import deque

from .acl import AddressFilter, split_host_port
from .inbound import Refusal
from .ratelimit import TokenBuckets

# Each admitted INVITE may hold 2 of the 64 ioqueue handles for ~0.5 s after it is refused;
# 10 a second keeps those under 20 even when all arrive at once, leaving the rest for the SIP
# listeners, TLS connections and 4 live calls (8 handles). Measured: 32 in 0.5 s abort.
ADMIT_LIMIT = 10
ADMIT_WINDOW_S = 1.0


class AdmissionWindow:
    """At most ``limit`` admissions in any ``window_s`` seconds (a sliding window)."""

    def __init__(self, limit: int = ADMIT_LIMIT, window_s: float = ADMIT_WINDOW_S):
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = float(window_s)
        self._times: deque[float] = deque()

    def admit(self, now: float) -> float | None:
        """Admit one at ``now`` (None), or refuse: seconds until the oldest admission expires."""
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) < self.limit:
            self._times.append(now)
            return None
        return max(self._times[0] + self.window_s - now, 0.0)


class EarlyGate:
    """The early INVITE decisions (see the module docstring); ``limiter`` may be None (no limit)."""

    def __init__(self, acl: AddressFilter, limiter: TokenBuckets | None,
                 window: AdmissionWindow, drain_retry_after_s: int):
        self.acl = acl
        self.limiter = limiter
        self.window = window
        self.drain_retry_after_s = drain_retry_after_s

    def judge(self, source: str | None, now: float, stopping: bool = False) -> Refusal | None:
        """Refuse the new INVITE from ``source`` (``ip:port``, None if unknown), or None: let it in."""
        if stopping:
            return Refusal(503, "Service Unavailable", "draining",
                           (("Retry-After", str(self.drain_retry_after_s)),))
        if source is not None:
            if not self.acl.allows(source):
                return Refusal(403, "Forbidden", "source not in sip.allow_from")
            if self.limiter is not None:
                take = self.limiter.take(split_host_port(source)[0], now)
                if not take.allowed:
                    return Refusal(503, "Service Unavailable", "INVITE rate limit for this source",
                                   (("Retry-After", str(take.retry_after)),), "rate_limited")
        wait = self.window.admit(now)
        if wait is not None:
            return Refusal(503, "Service Unavailable",
                           f"over the worker's admission budget ({self.window.limit} INVITEs "
                           f"per {self.window.window_s:g} s)",
                           (("Retry-After", str(max(1, math.ceil(wait)))),), "admission_limited")
        return None


class LogBudget:
    """At most ``per_s`` log lines per second; the rest are counted and reported once a second."""

    def __init__(self, per_s: int):
        self.per_s = per_s
        self._second: int | None = None
        self._used = 0
        self._suppressed = 0

    def allow(self, now: float) -> tuple[bool, int]:
        """``(log this one, lines suppressed in the previous second(s) to report now)``."""
        second = math.floor(now)
        report = 0
        if second != self._second:
            report, self._suppressed = self._suppressed, 0
            self._second, self._used = second, 0
        if self._used < self.per_s:
            self._used += 1
            return True, report
        self._suppressed += 1
        return False, report
