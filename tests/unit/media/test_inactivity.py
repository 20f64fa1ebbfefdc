"""The RTP inactivity decision (pure) and the watchdog that feeds it (with fake calls/stats)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipbridge.config import build
from sipbridge.errors import ConfigError
from sipbridge.media.inactivity import InactivityDetector
from sipbridge.sip.rtpwatch import RtpWatchdog, check_interval


def test_fires_once_at_the_first_check_past_the_timeout():
    """A count that stops moving ends the call at the first check >= timeout later, once."""
    d = InactivityDetector(2)
    assert d.observe(0.0, 10) is None
    assert d.observe(1.0, 60) is None          # progress: the clock restarts at t=1
    assert d.observe(2.0, 60) is None
    assert d.observe(2.9, 60) is None
    assert d.observe(3.0, 60) == pytest.approx(2.0)
    assert d.observe(4.0, 60) is None          # fired already
    assert d.fired


def test_no_packets_at_all_times_out_from_the_first_observation():
    """A caller that never sends RTP is ended ``timeout`` after media came up."""
    d = InactivityDetector(3)
    assert [d.observe(t, 0) for t in (5.0, 6.0, 7.0)] == [None, None, None]
    assert d.observe(8.0, 0) == pytest.approx(3.0)


def test_hold_restarts_the_clock():
    """While we are not receiving (call on hold), silence never ends the call."""
    d = InactivityDetector(2)
    for t in range(20):
        assert d.observe(float(t), 5, expecting=False) is None
    assert d.observe(20.0, 5) is None          # resumed: the clock runs from the last hold check
    assert d.observe(21.0, 5) == pytest.approx(2.0)


def test_count_going_down_counts_as_progress():
    """A re-created stream (counter restarting from 0) is activity, not silence."""
    d = InactivityDetector(2)
    d.observe(0.0, 500)
    assert d.observe(1.9, 3) is None
    assert d.observe(3.8, 3) is None
    assert d.observe(3.9, 3) == pytest.approx(2.0)


def test_zero_disables():
    """timeout 0 never fires; a negative timeout is refused."""
    d = InactivityDetector(0)
    assert all(d.observe(float(t), 0) is None for t in range(100))
    with pytest.raises(ValueError):
        InactivityDetector(-1)


@settings(max_examples=300, deadline=None)
@given(timeout=st.integers(1, 30),
       steps=st.lists(st.tuples(st.floats(0.01, 5.0), st.booleans(), st.booleans()),
                      min_size=1, max_size=80))
def test_fires_exactly_when_a_silence_reaches_the_timeout(timeout, steps):
    """Property: the detector fires at most once, and exactly at the first check where the
    time since the last progress (or hold) reaches the timeout."""
    d = InactivityDetector(timeout)
    now, count, since, fired_at = 0.0, 0, None, None
    for dt, progress, expecting in steps:
        now += dt
        count += 1 if progress else 0
        got = d.observe(now, count, expecting)
        if fired_at is None:
            if since is None or progress or not expecting:
                since = now
                expect = None
            else:
                expect = now - since if now - since >= timeout else None
            assert got == (pytest.approx(expect) if expect is not None else None)
            if got is not None:
                fired_at = now
        else:
            assert got is None


# -- the watchdog shell ------------------------------------------------------------------------

@dataclass
class FakeStats:
    rx_packets: int
    receiving: bool = True


class FakeCall:
    def __init__(self, name: str):
        self.sip_call_id = name
        self.disconnected = False
        self.rtp_stats = None
        self.packets = 0


def _watchdog(calls, ended, timeout=2):
    return RtpWatchdog(timeout, post=lambda f: f(), live_calls=lambda: calls,
                       on_silent=lambda c, s: ended.append((c.sip_call_id, s)),
                       read=lambda c: FakeStats(c.packets))


def test_watchdog_ends_only_the_silent_call_and_keeps_snapshots():
    """Of two calls, only the one whose packet count stalls is ended; both get a snapshot."""
    a, b = FakeCall("a"), FakeCall("b")
    ended: list = []
    w = _watchdog([a, b], ended)
    for t in range(6):
        a.packets += 50
        w.check(now=float(t))
    assert ended == [("b", pytest.approx(2.0))]
    assert a.rtp_stats.rx_packets == 300 and b.rtp_stats.rx_packets == 0


def test_watchdog_skips_calls_without_a_stream_and_forgets_gone_calls():
    """No stats yet means no clock; a call that left the list loses its detector."""
    a = FakeCall("a")
    calls = [a]
    ended: list = []
    w = RtpWatchdog(2, post=lambda f: f(), live_calls=lambda: calls,
                    on_silent=lambda c, s: ended.append(c.sip_call_id), read=lambda c: None)
    for t in range(5):
        w.check(now=float(t))
    assert ended == [] and a.rtp_stats is None
    w2 = _watchdog(calls, ended)
    w2.check(now=0.0)
    calls.clear()
    w2.check(now=1.0)
    assert w2._detectors == {}


def test_watchdog_disabled_starts_no_thread():
    """rtp_timeout_s = 0: start() is a no-op."""
    w = _watchdog([], [], timeout=0)
    w.start()
    assert w._thread is None


def test_config_key_defaults_and_validation():
    """sip.rtp_timeout_s defaults to 30, accepts 0 (off), and names itself when out of range."""
    assert build({}, environ={}).sip.rtp_timeout_s == 30
    assert build({"sip": {"rtp_timeout_s": 0}}, environ={}).sip.rtp_timeout_s == 0
    for bad in (-1, 3601, "10", 2.5):
        with pytest.raises(ConfigError, match="sip.rtp_timeout_s"):
            build({"sip": {"rtp_timeout_s": bad}}, environ={})


@pytest.mark.parametrize("timeout, every", [(2, 1.0), (10, 1.0), (30, 3.0), (45, 4.5), (600, 5.0)])
def test_watchdog_checks_every_tenth_of_the_timeout_within_1_to_5_s(timeout, every):
    """Reading stream statistics costs CPU per call: a tenth of the timeout, 1 s to 5 s."""
    assert check_interval(timeout) == every
    assert RtpWatchdog(timeout, post=lambda f: f(), live_calls=list,
                       on_silent=lambda c, s: None, read=lambda c: None).interval_s == every
