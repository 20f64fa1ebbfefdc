"""The log tap: copies of log events to subscribers, off the logging thread (sipbridge/app/tap.py)."""

import io
import threading
import time

import structlog

from sipbridge import logs
from sipbridge.app.tap import TAP, Tap


def test_subscribers_get_a_stamped_copy_on_the_taps_thread():
    """The processor returns the dict untouched; the subscriber gets a copy with ts, elsewhere."""
    tap = Tap(clock=lambda: 42.0)
    got = []
    tap.subscribe(lambda ev: got.append((ev, threading.current_thread().name)))
    original = {"event": "call_answered", "call_id": "x"}
    assert tap(None, "info", original) is original and "ts" not in original
    assert tap.flush(2.0)
    assert got == [({"event": "call_answered", "call_id": "x", "ts": 42.0}, "sipbridge-tap")]


def test_a_stuck_subscriber_never_blocks_logging_and_drops_are_counted():
    """With the subscriber stuck, a full queue makes the processor drop (and count), not wait."""
    tap = Tap(maxsize=3)
    release = threading.Event()
    tap.subscribe(lambda ev: release.wait(5))
    started = time.monotonic()
    for i in range(10):
        tap(None, "info", {"event": "e", "n": i})
    elapsed = time.monotonic() - started
    release.set()
    assert elapsed < 0.05, elapsed
    assert 6 <= tap.dropped <= 7        # one may already be in the subscriber's hands


def test_a_failing_subscriber_is_counted_and_the_others_still_run():
    """An exception in one subscriber does not stop the next one or the thread."""
    tap = Tap()
    got = []
    tap.subscribe(lambda ev: 1 / 0)
    unsubscribe = tap.subscribe(got.append)
    tap(None, "info", {"event": "a"})
    tap(None, "info", {"event": "b"})
    assert tap.flush(2.0)
    assert [e["event"] for e in got] == ["a", "b"] and tap.errors == 2
    unsubscribe()
    tap(None, "info", {"event": "c"})
    assert tap.flush(2.0) and len(got) == 2


def test_without_subscribers_nothing_is_copied():
    """No subscriber: the processor does no work and queues nothing."""
    tap = Tap(maxsize=1)
    for _ in range(3):
        tap(None, "info", {"event": "e"})
    assert tap.dropped == 0 and tap._queue.qsize() == 0


def test_the_configured_log_taps_info_lines_even_when_the_level_hides_them():
    """log.level warning: an info line is not written, but the tap (records, events) sees it."""
    out = io.StringIO()
    got = []
    unsubscribe = TAP.subscribe(got.append)
    try:
        logs.configure("warning", "json", stream=out)
        log = structlog.get_logger("t")
        log.info("call_answered", call_id="k1")
        log.warning("call_rejected", call_id="k1", status=486)
        assert TAP.flush(2.0)
    finally:
        unsubscribe()
        logs.configure("info", "json", stream=io.StringIO())
    mine = [e["event"] for e in got if e.get("call_id") == "k1"]
    assert mine == ["call_answered", "call_rejected"]
    written = out.getvalue()
    assert "call_rejected" in written and "call_answered" not in written
