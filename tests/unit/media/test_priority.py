"""Media thread priority: found by name, raised to SCHED_RR (or nice), and what was done is reported."""

from __future__ import annotations

import ctypes
import os
import threading
import time

import pytest

from sipbridge.media.priority import media_threads, missing_names, raise_media_threads

PR_SET_NAME = 15
# fake thread ids above any pid_max (at most 2**22): the listings below must not touch real threads
A, B, C = 10**9 + 1, 10**9 + 2, 10**9 + 3


def test_media_threads_are_picked_by_name():
    """Only threads named clock or media are chosen, in tid order."""
    tasks = {10: "python", 12: "clock", 11: "media\n", 13: "pjsua_0", 14: "clockwork"}
    assert media_threads(tasks) == [11, 12]


def test_missing_names_lists_the_expected_names_no_thread_has():
    """A listing with only 'media' (and threads still carrying their creator's name) lacks 'clock'."""
    assert missing_names({1: "python", 2: "media", 3: "python"}) == ["clock"]
    assert missing_names({1: "clock\n", 2: "media"}) == []


def test_a_media_thread_that_names_itself_late_is_waited_for():
    """pjlib threads start under their creator's name: the clock is raised once it has named itself."""
    listings = iter([{A: "python", B: "media", C: "python"}] * 3 + [{A: "python", B: "media", C: "clock"}])
    report = raise_media_threads("nice", wait_s=5, list_tasks=lambda: next(listings))
    assert set(report) == {f"media:{B}", f"clock:{C}"}, report


def test_a_media_thread_that_never_appears_is_reported_not_found():
    """After the wait a missing name is in the report as 'not found', not silently left out."""
    started = time.monotonic()
    report = raise_media_threads("nice", wait_s=0.1, list_tasks=lambda: {A: "python", B: "media"})
    assert report.get("clock") == "not found" and f"media:{B}" in report, report
    assert time.monotonic() - started >= 0.1


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
        report = raise_media_threads(mode, wait_s=0)
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
