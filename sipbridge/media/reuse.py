"""The bookkeeping of a pool of audio ports that are reused, never destroyed: pure, thread-safe.

Both port pools (pjsua2's ``media.port.PortPool`` and ``media.native.pool.NativePortPool``)
keep every port they ever made and the idle ones among them; a finished call's port goes back
to the idle ones and the next call takes the most recently idled first. Making a port is the
pool's own business: :meth:`Reuse.take` answers None when none is idle, the pool makes one,
names it by :attr:`Reuse.size` and records it with :meth:`Reuse.add`.

    reuse = Reuse()
    port = reuse.take() or make(f"bridge{reuse.size}")   # then reuse.add(port) if it is new
    reuse.give_back(port)                                  # the call is over
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

P = TypeVar("P")


class Reuse(Generic[P]):
    """Every port a pool made (``size`` of them) and the idle ones, under one lock."""

    def __init__(self) -> None:
        self._all: list[P] = []
        self._free: list[P] = []
        self._lock = threading.Lock()

    def take(self) -> P | None:
        """The most recently idled port, no longer idle; None when every port is in a call."""
        with self._lock:
            return self._free.pop() if self._free else None

    def add(self, port: P) -> None:
        """Record a port the pool has just made (it is in a call, not idle)."""
        with self._lock:
            self._all.append(port)

    def give_back(self, port: P) -> None:
        """The call is over: ``port`` is idle again. A port this pool never made, or one idle
        already, changes nothing (a double release does not hand it to two calls)."""
        with self._lock:
            if port in self._all and port not in self._free:
                self._free.append(port)

    @property
    def size(self) -> int:
        """How many ports the pool has made."""
        return len(self._all)
