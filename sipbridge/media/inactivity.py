"""RTP inactivity: when has a caller sent no media for long enough to end the call?

A pure decision core, fed once per check with a monotonic time and the stream's cumulative
count of RTP packets accepted (pjmedia's ``rtcp.rxStat.pkt``, which counts only packets that
parsed and matched the negotiated stream, so garbage or a foreign stream does not keep a dead
call alive). The silence clock restarts whenever the count changes (up, or down after a stream
was re-created by a re-INVITE) and while no RTP is expected at all (the caller put the call on
hold with ``a=inactive`` / ``a=recvonly``: our side then does not decode). It fires once, at the
first check at least ``timeout_s`` after the last observed progress; with checks every
``interval`` seconds the call ends between ``timeout_s`` and ``timeout_s + interval`` after the
caller's last packet. ``timeout_s = 0`` disables it.
"""

from __future__ import annotations


class InactivityDetector:
    """Tracks one call's received-packet count; :meth:`observe` says when it has stalled."""

    def __init__(self, timeout_s: float):
        if timeout_s < 0:
            raise ValueError(f"timeout_s must be >= 0, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self.fired = False
        self._count: int | None = None
        self._since: float | None = None

    @property
    def enabled(self) -> bool:
        return self.timeout_s > 0

    def silent_for(self, now: float) -> float:
        """Seconds since the count last moved (0 before the first observation)."""
        return 0.0 if self._since is None else max(0.0, now - self._since)

    def observe(self, now: float, rx_packets: int, expecting: bool = True) -> float | None:
        """Feed one check; returns the silent seconds when the call must end (once), else None.

        ``expecting`` is False while the negotiated direction has us not receiving (hold):
        the clock then restarts, so a call on hold is never ended for silence.
        """
        if not self.enabled or self.fired:
            return None
        if not expecting or self._count is None or rx_packets != self._count:
            self._count = rx_packets
            self._since = now
            return None
        silent = self.silent_for(now)
        if silent >= self.timeout_s:
            self.fired = True
            return silent
        return None
