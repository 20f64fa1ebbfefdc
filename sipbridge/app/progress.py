"""An outbound call's progress: SIP events in, one public state out, with the time of each step.

States (``state``)::

    queued ──► ringing ──► answered ──► ended
       │          │
       └──────────┴──► failed (status) | no-answer | busy | cancelled

* ``queued``: the request was accepted and the INVITE is (being) sent;
* ``ringing``: a 180/183 (any 18x) came back;
* ``answered``: the far end took the call (2xx, ACK sent); ``ended`` once it is over;
* ``busy``: 486 Busy Here or 600 Busy Everywhere;
* ``no-answer``: our ring timeout ran out (we CANCELled), or the far end said 408/480;
* ``cancelled``: we gave up for another reason before the answer (an API hangup, shutdown);
* ``failed``: any other final status (``status`` holds it: 404, 403, 503, a 407 loop, ...) or
  a local failure (``reason`` says which: the INVITE could not be sent, the model was
  unreachable).

Pure: the worker feeds it events with the time (epoch seconds) and logs what changed. Each
``on_*`` method returns True when the public state changed.
"""

from __future__ import annotations

QUEUED, RINGING, ANSWERED, ENDED = "queued", "ringing", "answered", "ended"
FAILED, NO_ANSWER, BUSY, CANCELLED = "failed", "no-answer", "busy", "cancelled"
FINAL = frozenset({ENDED, FAILED, NO_ANSWER, BUSY, CANCELLED})
BUSY_CODES = frozenset({486, 600})
NO_ANSWER_CODES = frozenset({408, 480})
# why we ended a call before its answer -> the state it ends in
_LOCAL = {"ring_timeout": NO_ANSWER, "cancel": CANCELLED, "shutdown": CANCELLED}


class Progress:
    """One outbound call's state; ``times`` maps each state reached to when."""

    def __init__(self, now: float):
        self.state = QUEUED
        self.status: int | None = None     # the final SIP status of the INVITE (or of the end)
        self.reason: str | None = None     # SIP reason phrase or the local cause
        self.times: dict[str, float] = {QUEUED: now}
        self.invite_sent_at: float | None = None
        self._giving_up: str | None = None   # a local hangup before the answer: why

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def _to(self, state: str, now: float) -> bool:
        if state == self.state:
            return False
        self.state = state
        self.times.setdefault(state, now)
        return True

    def on_invite_sent(self, now: float) -> None:
        """The INVITE left (no state change: the time is the setup-overhead mark)."""
        if self.invite_sent_at is None:
            self.invite_sent_at = now

    def on_provisional(self, code: int, now: float) -> bool:
        """A 1xx response: 18x means the far end is alerting (100 Trying is not ringing)."""
        if self.state == QUEUED and 180 <= code < 190:
            return self._to(RINGING, now)
        return False

    def on_answered(self, now: float) -> bool:
        if self.state in (QUEUED, RINGING):
            self.status = 200
            return self._to(ANSWERED, now)
        return False

    def on_give_up(self, why: str) -> None:
        """We are hanging up before the answer (``ring_timeout`` | ``cancel`` | ``shutdown``, or a
        local failure such as ``upstream_unavailable``); the disconnect that follows says which
        state the call ends in."""
        if not self.final and self.state != ANSWERED and self._giving_up is None:
            self._giving_up = why

    def on_disconnected(self, code: int, reason: str, now: float) -> bool:
        """The call is over: ``code``/``reason`` are the INVITE's final answer before an answer,
        or the last status after it."""
        if self.final:
            return False
        if self.state == ANSWERED:
            self.reason = reason or None
            return self._to(ENDED, now)
        if self._giving_up is not None:
            state = _LOCAL.get(self._giving_up, FAILED)
            self.status, self.reason = (code or None), self._giving_up
            return self._to(state, now)
        self.status, self.reason = (code or None), (reason or None)
        if code in BUSY_CODES:
            return self._to(BUSY, now)
        if code in NO_ANSWER_CODES:
            return self._to(NO_ANSWER, now)
        return self._to(FAILED, now)

    def on_failed(self, reason: str, now: float, status: int | None = None) -> bool:
        """A local failure with no SIP exchange to wait for (the INVITE was never sent)."""
        if self.final:
            return False
        self.status, self.reason = status, reason
        return self._to(FAILED, now)

    def as_dict(self) -> dict:
        """The JSON shape the API returns: state, status, reason, times (epoch seconds)."""
        return {"state": self.state, "status": self.status, "reason": self.reason,
                "times": dict(self.times), "invite_sent_at": self.invite_sent_at}
