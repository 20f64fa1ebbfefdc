"""When a stopping worker hangs up: the pure drain policy (time passed in, no clocks here).

On SIGTERM the worker stops taking calls (new INVITEs get 503 with ``Retry-After``) and lets
the calls in progress run to their natural end. :class:`Drain` decides, each time it is asked,
whether to keep waiting, to hang up the calls left (once: at ``sip.drain_timeout_s``, or at
once when a second signal forces it), or that the worker may close::

    d = Drain(started=now, timeout_s=30)
    d.step(now, live_calls)    # -> Step.WAIT | Step.HANG_UP | Step.DONE
    d.force()                  # a second SIGTERM/SIGINT: hang up at the next step

After the hang-up, the BYEs get ``grace_s`` to be answered; then the worker closes whatever
is left (pjsua's own teardown ends those dialogs).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

HANGUP_GRACE_S = 3.0
DRAIN_RETRY_AFTER_S = 30   # Retry-After on the 503 that new INVITEs get while draining


class Step(enum.Enum):
    WAIT = "wait"          # calls are still running (or their BYEs unanswered): keep serving
    HANG_UP = "hang_up"    # send BYE to every call left (returned once)
    DONE = "done"          # nothing left to wait for: close the worker


@dataclass
class Drain:
    """The drain of one stopping worker; ``started`` and every ``now`` share one clock."""

    started: float
    timeout_s: float
    grace_s: float = HANGUP_GRACE_S
    forced: bool = False
    hung_up_at: float | None = field(default=None, init=False)

    @property
    def deadline(self) -> float:
        """When calls still running are hung up."""
        return self.started + self.timeout_s

    def force(self) -> None:
        """Hang up at the next step instead of waiting for the deadline."""
        self.forced = True

    def step(self, now: float, live: int) -> Step:
        """What to do with ``live`` calls not yet disconnected, at time ``now``."""
        if live <= 0:
            return Step.DONE
        if self.hung_up_at is None:
            if self.forced or now >= self.deadline:
                self.hung_up_at = now
                return Step.HANG_UP
            return Step.WAIT
        return Step.DONE if now >= self.hung_up_at + self.grace_s else Step.WAIT

    def wait_s(self, now: float, poll_s: float = 0.05) -> float:
        """How long the worker may block before the next step (at most ``poll_s``)."""
        due = self.deadline if self.hung_up_at is None else self.hung_up_at + self.grace_s
        return max(0.0, min(poll_s, due - now))
