"""The RTP watchdog: every few seconds, on the control thread, snapshot every answered call's RTP
counters and end the calls whose caller has gone silent for ``sip.rtp_timeout_s``.

pjsua has no media-inactivity option (pjproject issue #4030 suggests exactly this: a timer that
compares ``rtcp.rx.pkt``), so a small ticker thread posts :meth:`RtpWatchdog.check` through the
worker's command queue every ``interval_s``; the check itself runs on the control thread, which
is registered with pjlib and issues every call command. The decision is
:class:`~sipbridge.media.inactivity.InactivityDetector`'s; the snapshot is kept on the call
(``call.rtp_stats``) so ``call_ended`` can report it even when the stream is gone by then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from ..media.inactivity import InactivityDetector

CHECK_INTERVAL_S = (1.0, 5.0)   # a check every tenth of the timeout, within these bounds


def check_interval(timeout_s: float) -> float:
    """Seconds between checks: a tenth of the timeout, 1 to 5 s (30 s: every 3 s).

    A check is not free: pjsua2's ``getStreamStat`` copies the whole RTCP statistics structure
    through SWIG, ~5 % of a loaded worker's CPU when every call was read every second
    (py-spy, bench/capacity.py). A silent caller is still ended within a tenth of the timeout.
    """
    low, high = CHECK_INTERVAL_S
    return min(high, max(low, timeout_s / 10.0))


class RtpWatchdog:
    """``live_calls()`` lists the answered calls; ``on_silent(call, silent_s)`` ends one.

    ``read(call)`` returns an :class:`~sipbridge.sip.rtpstats.RtpStats` or None (default:
    :func:`~sipbridge.sip.rtpstats.read_stats`; tests pass a fake and never load pjsua2).
    """

    def __init__(self, timeout_s: float, post: Callable[[Callable[[], None]], None],
                 live_calls: Callable[[], Iterable], on_silent: Callable[[object, float], None],
                 interval_s: float | None = None, read: Callable | None = None):
        if read is None:
            from .rtpstats import read_stats as read
        self._read = read
        self.timeout_s = timeout_s
        self.interval_s = check_interval(timeout_s) if interval_s is None else interval_s
        self._post = post
        self._live_calls = live_calls
        self._on_silent = on_silent
        self._detectors: dict[str, InactivityDetector] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start posting checks (no-op when the timeout is disabled)."""
        if self.timeout_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._tick, name="sipbridge-rtpwatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._post(self.check)

    def check(self, now: float | None = None) -> None:
        """Control thread: read each live call's stats, feed its detector, end stalled calls."""
        if self._stop.is_set():
            return
        now = time.monotonic() if now is None else now
        seen: set[str] = set()
        for call in list(self._live_calls()):
            if getattr(call, "disconnected", False):
                continue
            stats = self._read(call)
            if stats is None:
                continue
            call.rtp_stats = stats
            key = f"{call.sip_call_id}/{id(call)}"
            seen.add(key)
            detector = self._detectors.get(key)
            if detector is None:
                detector = self._detectors[key] = InactivityDetector(self.timeout_s)
            silent = detector.observe(now, stats.rx_packets, stats.receiving)
            if silent is not None:
                self._on_silent(call, silent)
        for key in list(self._detectors):
            if key not in seen:
                del self._detectors[key]
