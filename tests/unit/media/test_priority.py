"""Media thread priority: found by name, raised to SCHED_RR (or nice), and what was done is reported."""

from __future__ import annotations

import ctypes
import os
import threading

import pytest

from sipbridge.media.priority import media_threads, raise_media_threads

PR_SET_NAME = 15


def test_media_threads_are_picked_by_name():
    """Only threads named clock or media are chosen, in tid order."""
    tasks = {10: "python", 12: "clock", 11: "media\n", 13: "pjsua_0", 14: "clockwork"}
    assert media_threads(tasks) == [11, 12]


def test_none_changes_nothing_and_unknown_modes_are_refused():
    """Mode none returns no threads; an unknown mode raises ValueError."""
    assert raise_media_threads("none") == {}
    with pytest.raises(ValueError):
        raise_media_threads("fifo")


@pytest.mark.parametrize("mode", ["rr", "nice"])
def test_a_thread_named_clock_gets_the_priority_the_report_says(mode):
    """A thread named 'clock' ends up SCHED_RR or at nice -10, exactly as the returned report says."""
    ready, done = threading.Event(), threading.Event()
    tid: list[int] = []

    def body():
        ctypes.CDLL(None).prctl(PR_SET_NAME, b"clock", 0, 0, 0)
        tid.append(threading.get_native_id())
        ready.set()
        done.wait(5)

    t = threading.Thread(target=body)
    t.start()
    try:
        ready.wait(5)
        report = raise_media_threads(mode)
        got = report[f"clock:{tid[0]}"]
        if got == "rr":
            assert os.sched_getscheduler(tid[0]) == os.SCHED_RR
        elif got == "nice":
            assert os.sched_getscheduler(tid[0]) == os.SCHED_OTHER
            assert os.getpriority(os.PRIO_PROCESS, tid[0]) == -10
        else:
            assert got == "unchanged" and os.geteuid() != 0
        if mode == "nice":
            assert got != "rr"
    finally:
        done.set()
        t.join(5)
