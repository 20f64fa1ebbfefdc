"""A worker's stop signals: a handler that takes no lock, stacks on demand, a bound on the stop.

**The handler takes no lock.** CPython runs a signal's Python handler on the main thread between
two bytecodes, wherever that thread is: possibly inside ``log.info``, holding structlog's write
lock or the log tap's queue mutex, neither of them reentrant. A handler that logs there waits for
itself forever: the worker ignores every later SIGTERM until a SIGKILL (seen right after
``ready``, when a test stops the bridge the instant it reads that line). :func:`stop_handler`
only sets flags and puts the line to log on the control thread's ``SimpleQueue``, whose ``put``
is reentrant; the control loop logs ``stop_requested`` / ``stop_forced`` when it runs it.

**Stacks on demand.** :func:`enable_stack_dump` makes ``SIGUSR1`` (unused by the worker) print
every Python thread's stack to stderr (``faulthandler``: C code, no lock, works while the main
thread is stuck). Threads that only run C (pjsua's worker, the media clock) are not Python
threads: ``gdb -p PID -batch -ex 'thread apply all bt'`` shows those.

**A bound on the stop.** :class:`StopWatchdog`, armed when the stop begins, gives the drain
(``sip.drain_timeout_s`` plus the BYEs' grace) and the teardown (:data:`TEARDOWN_BOUND_S`) their
time; if the process is still there after it, it writes one JSON line (``stop_stuck``) and every
thread's stack to stderr straight to the file descriptor (a stuck thread may hold the log's
lock) and exits :data:`EXIT_STUCK` without cleanup, for systemd or the cell's supervisor to
restart it. It is a daemon thread that is never disarmed: it also bounds the interpreter's exit.
"""

from __future__ import annotations

import faulthandler
import functools
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("sipbridge.worker")

STACK_DUMP_SIGNAL = signal.SIGUSR1
TEARDOWN_BOUND_S = 30.0   # after the drain: every close step's own timeout fits in it
EXIT_STUCK = 70           # EX_SOFTWARE: the orderly stop did not finish within its bound


def enable_stack_dump(signum: int = STACK_DUMP_SIGNAL, file=None) -> None:
    """``kill -USR1 PID``: every Python thread's stack to ``file`` (stderr); the process goes on."""
    faulthandler.register(signum, file=file or sys.stderr, all_threads=True, chain=False)


def _log_signal(event: str, signum: int) -> None:
    log.info(event, signal=signal.Signals(signum).name)


def stop_handler(state, post: Callable[[Callable[[], None]], None]) -> Callable:
    """A SIGTERM/SIGINT handler for the control thread's ``state`` (``_stopping``, ``_forced``).

    The first signal sets ``state._stopping``, a later one ``state._forced``; each posts (with
    ``post``, a ``SimpleQueue.put``: reentrant) the command that logs it, which also wakes the
    control loop. No lock, no logging, no allocation beyond the posted command (module doc)."""
    def on_signal(signum, _frame) -> None:
        if state._stopping:
            state._forced = True
            post(functools.partial(_log_signal, "stop_forced", signum))
        else:
            state._stopping = True
            post(functools.partial(_log_signal, "stop_requested", signum))
    return on_signal


class StopWatchdog:
    """Exits the process ``bound_s`` after :meth:`arm` unless it has exited by then."""

    def __init__(self, bound_s: float, exit: Callable[[int], None] = os._exit,
                 fd: int | None = None, code: int = EXIT_STUCK):
        self.bound_s, self.code = bound_s, code
        self._exit = exit
        self._fd = sys.stderr.fileno() if fd is None else fd
        self._thread: threading.Thread | None = None

    def arm(self) -> None:
        """Start counting (once; later calls keep the first bound)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sipbridge-stop-watchdog",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        time.sleep(self.bound_s)
        line = {"event": "stop_stuck", "level": "error", "bound_s": self.bound_s,
                "exit_code": self.code, "then": "stacks below, exit without cleanup"}
        try:
            os.write(self._fd, (json.dumps(line) + "\n").encode())
            faulthandler.dump_traceback(file=self._fd, all_threads=True)
        except OSError:
            pass
        self._exit(self.code)
