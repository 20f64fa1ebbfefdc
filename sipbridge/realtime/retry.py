"""When to retry a lost upstream session, and when to give up: pure, no clock, no I/O.

The schedule is :class:`sipbridge.backoff.Backoff` (capped exponential, shared with trunk
registration): attempt ``n`` (1-based) waits ``min(max, min * 2 ** (n - 1))``, shortened by up
to its ``jitter`` (never below the minimum), so calls that lost the same server at the same
moment do not all knock on it in the same millisecond.

:class:`Outage` follows one outage of one call: :meth:`Outage.next_delay_ms` hands out the wait
before each attempt until ``attempts`` are spent (then ``None``: give up), and
:meth:`Outage.restored` says how long the caller was without the model. Times are milliseconds
passed in by the shell (``loop.time() * 1000``), never read here.

:func:`classify_close` and :func:`is_fatal_error` decide what counts as a drop (reconnect) and
what is the end of the conversation (hang up): a close with code 1000 is the server ending the
session on purpose; any other ending (no close frame, 1001 going away, 1011 a ping timeout or
server error, any other code) is a drop; so is an ``error`` event that says the session itself
is gone: its ``error.type`` is ``server_error`` (the code is often null then), or its code is one
of :data:`FATAL_ERROR_CODES` whatever the type (``session_expired`` comes as an
``invalid_request_error``). A request error (``invalid_request_error`` with any other code, a
refused truncate or cancel) leaves the session as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sipbridge.backoff import Backoff

NORMAL_CLOSE = 1000
# ``error`` codes after which the server session is unusable (the socket may stay open):
# reconnecting gives the caller a fresh session instead of silence.
FATAL_ERROR_CODES = frozenset({"session_expired", "server_error", "internal_error"})


def backoff_ms(min_ms: int, max_ms: int, jitter: float = 0.0, rng=None) -> Backoff:
    """The shared :class:`Backoff` from the ``realtime.reconnect_backoff_*_ms`` values."""
    extra = {} if rng is None else {"rng": rng}
    return Backoff(min_s=min_ms / 1000, max_s=max_ms / 1000, jitter=jitter, **extra)


@dataclass
class Outage:
    """One outage: up to ``attempts`` tries on ``backoff``'s schedule, from ``started_ms``.

    The backoff's failure count is reset when the outage starts (a new outage begins at the
    minimum delay again)."""

    backoff: Backoff
    attempts: int
    started_ms: float
    attempt: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.backoff.success()

    def next_delay_ms(self, now_ms: float) -> int | None:
        """Count one more attempt (due ``now_ms`` + the wait) and return its wait; ``None`` once
        the limit is spent."""
        if self.attempt >= self.attempts:
            return None
        self.attempt += 1
        return round(self.backoff.failure(now_ms / 1000) * 1000)

    def restored(self, now_ms: float) -> int:
        """The outage's length in ms, up to ``now_ms`` (when the new session became usable)."""
        return max(0, round(now_ms - self.started_ms))


def classify_close(code: int | None) -> str:
    """``"normal"`` for a deliberate close (1000), ``"drop"`` for anything else."""
    return "normal" if code == NORMAL_CLOSE else "drop"


FATAL_ERROR_TYPES = frozenset({"server_error"})


def is_fatal_error(code: str | None, kind: str | None = None) -> bool:
    """True for a server ``error`` (``code``, ``kind`` = ``error.type``) that means the session
    itself is gone."""
    return code in FATAL_ERROR_CODES or kind in FATAL_ERROR_TYPES
