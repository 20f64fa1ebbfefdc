"""A tap on the log: every event the process logs, handed to in-process subscribers off the caller.

Records, events and metrics are built from the lines the bridge already logs (one source of
truth, one ``grep``). :class:`Tap` is a structlog processor: for each event it puts a shallow
copy (plus ``ts``, epoch seconds) on a bounded queue and returns at once; a daemon thread drains
the queue and calls the subscribers there. The calling thread (the media clock included) never
waits: when the queue is full the copy is dropped and counted in :attr:`Tap.dropped`.

Subscribers run one after another on the tap's thread and must be quick (fold, enqueue, hand to
a loop with ``call_soon_threadsafe``); an exception in one is counted, never raised.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

Subscriber = Callable[[dict], None]

QUEUE_SIZE = 20000


class Tap:
    """structlog processor + fan-out thread. ``subscribe(fn)`` returns an unsubscribe function."""

    def __init__(self, maxsize: int = QUEUE_SIZE, clock: Callable[[], float] = time.time):
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._clock = clock
        self._subs: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.dropped = 0          # events not copied because the queue was full
        self.errors = 0           # subscriber exceptions

    # -- structlog processor (any thread) -----------------------------------------------------
    def __call__(self, _logger, _name, event_dict: dict) -> dict:
        if self._subs:
            copy = dict(event_dict)
            copy.setdefault("ts", self._clock())
            try:
                self._queue.put_nowait(copy)
            except queue.Full:
                self.dropped += 1
        return event_dict

    # -- subscribers --------------------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subs = (*self._subs, fn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sipbridge-tap",
                                                daemon=True)
                self._thread.start()

        def unsubscribe() -> None:
            with self._lock:
                self._subs = tuple(s for s in self._subs if s is not fn)
        return unsubscribe

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until every event queued so far reached the subscribers (True) or ``timeout``."""
        if self._thread is None:
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            for fn in self._subs:
                try:
                    fn(item)
                except Exception:  # noqa: BLE001 - a subscriber bug must not stop the others
                    self.errors += 1


TAP = Tap()
"""The process's tap, installed by :func:`sipbridge.logs.configure`."""
