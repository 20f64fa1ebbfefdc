"""Scheduling priority for pjmedia's media threads, so a busy machine does not delay packets.

Every call's 20 ms tick (caller frame in, turn decisions, agent frame out) runs on pjmedia's
``clock`` thread, and RTP is read by its ``media`` thread. On a loaded machine these compete
with everything else under the default time-sharing policy and the interval between a caller's
packets stretches (``bench/capacity.py`` measures its p99). Like other media servers we ask the
kernel to run them first:

* ``rr``: ``SCHED_RR`` at ``RR_PRIORITY`` (needs root or CAP_SYS_NICE; falls back to ``nice``);
* ``nice``: time-sharing at nice ``NICE`` (needs the same for a negative nice; else unchanged);
* ``none``: leave them alone.

The threads are found by the names pjlib gives them (``/proc/self/task/*/comm``). A new thread
carries its creator's name until it names itself, so on a busy machine the clock thread can be
running yet unnamed just after the stack starts: :func:`raise_media_threads` waits up to
``WAIT_S`` for every expected name and reports one it never saw as ``"<name>": "not found"``.
Pure parts (:func:`media_threads`, :func:`missing_names`) take the task listing as an argument.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

MEDIA_THREAD_NAMES = ("clock", "media")
RR_PRIORITY = 10
NICE = -10
CHOICES = ("rr", "nice", "none")
WAIT_S = 2.0          # how long to wait for a media thread to name itself
POLL_S = 0.01


def media_threads(tasks: Mapping[int, str], names: Iterable[str] = MEDIA_THREAD_NAMES) -> list[int]:
    """Thread ids whose name is one of ``names``, from a ``{tid: comm}`` listing."""
    wanted = set(names)
    return sorted(tid for tid, comm in tasks.items() if comm.strip() in wanted)


def missing_names(tasks: Mapping[int, str],
                  names: Iterable[str] = MEDIA_THREAD_NAMES) -> list[str]:
    """The names in ``names`` that no thread of the ``{tid: comm}`` listing has, in order."""
    present = {comm.strip() for comm in tasks.values()}
    return [name for name in names if name not in present]


def task_names(pid: int | None = None) -> dict[int, str]:
    """``{tid: comm}`` of the threads of process ``pid`` (this one by default)."""
    root = Path(f"/proc/{pid or os.getpid()}/task")
    out: dict[int, str] = {}
    for task in root.iterdir():
        try:
            out[int(task.name)] = (task / "comm").read_text().strip()
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return out


def _raise_one(tid: int, mode: str) -> str:
    """Apply ``mode`` to one thread; return what it got (rr, nice or unchanged)."""
    if mode == "rr":
        try:
            os.sched_setscheduler(tid, os.SCHED_RR, os.sched_param(RR_PRIORITY))
            return "rr"
        except (PermissionError, OSError):
            pass
    try:
        os.setpriority(os.PRIO_PROCESS, tid, NICE)
        return "nice"
    except (PermissionError, OSError):
        return "unchanged"


def raise_media_threads(mode: str, wait_s: float = WAIT_S,
                        list_tasks: Callable[[], Mapping[int, str]] = task_names) -> dict[str, str]:
    """Raise the priority of this process's media threads; ``{"clock:123": "rr", ...}``.

    Waits up to ``wait_s`` for every name in ``MEDIA_THREAD_NAMES`` to appear; a name still
    missing then is reported as ``{"clock": "not found"}`` rather than silently left out.
    """
    if mode not in CHOICES:
        raise ValueError(f"mode must be one of {CHOICES}, got {mode!r}")
    if mode == "none":
        return {}
    deadline = time.monotonic() + wait_s
    tasks = list_tasks()
    while missing_names(tasks) and time.monotonic() < deadline:
        time.sleep(POLL_S)
        tasks = list_tasks()
    report = {f"{tasks[tid]}:{tid}": _raise_one(tid, mode) for tid in media_threads(tasks)}
    report.update({name: "not found" for name in missing_names(tasks)})
    return report
