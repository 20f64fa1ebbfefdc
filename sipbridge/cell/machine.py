"""The machine facts ``cell.workers: auto`` and ``cell.front: auto`` are settled from (I/O edge).

Cores are the ones this process may run on (``sched_getaffinity``: a container's or taskset's
limit, not the host's count); memory is the machine's total (``/proc/meminfo``'s MemTotal, via
``sysconf``); Kamailio is present when its binary is found (:func:`sipbridge.kamailio.kamailio_binary`).
"""

from __future__ import annotations

import os

from ..kamailio import kamailio_binary
from .plan import Machine


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def memory_mb() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError):  # pragma: no cover - not Linux
        return 4096


def probe() -> Machine:
    """This machine, now."""
    return Machine(cores=cores(), memory_mb=memory_mb(), kamailio=kamailio_binary() is not None)
