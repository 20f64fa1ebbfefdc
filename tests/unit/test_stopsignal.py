"""The worker's stop signals (sipbridge/stopsignal.py), each in a child Python process: real
signals, real structlog set-up, no pjsua."""

import signal
import subprocess
import sys
import textwrap
import time
import types

from sipbridge.stopsignal import EXIT_STUCK, StopWatchdog, stop_handler

# The control loop of sipbridge/worker.py in miniature: the log stream raises SIGTERM in the
# middle of writing the "ready" line, inside structlog's (not reentrant) write lock, which is
# where a test's stop() lands when it signals the instant it reads that line.
SIGNAL_IN_LOG_WRITE = textwrap.dedent("""
    import os, queue, signal, sys, types
    import structlog
    from sipbridge import logs
    from sipbridge.stopsignal import stop_handler

    class Stream:
        sent = False
        def write(self, text):
            if not Stream.sent:
                Stream.sent = True
                os.kill(os.getpid(), signal.SIGTERM)   # the handler runs before this returns
            sys.stdout.write(text)
        def flush(self):
            sys.stdout.flush()
        def isatty(self):
            return False

    logs.configure("info", "json", stream=Stream())
    state = types.SimpleNamespace(_stopping=False, _forced=False)
    commands = queue.SimpleQueue()
    signal.signal(signal.SIGTERM, stop_handler(state, commands.put))
    structlog.get_logger("t").info("ready")
    while not state._stopping:
        commands.get(timeout=0.5)()
    while not commands.empty():
        commands.get()()
    print("exited", flush=True)
""")


def _child(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_a_stop_signal_landing_inside_a_log_write_stops_the_worker():
    """SIGTERM while the main thread holds the log's write lock is logged by the loop and the process exits (the old handler, logging itself, waited for its own lock forever)."""
    child = _child(SIGNAL_IN_LOG_WRITE)
    try:
        out, err = child.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        raise AssertionError(f"the stop signal hung the process:\n{out}\n{err}") from None
    assert child.returncode == 0, err
    lines = out.splitlines()
    assert '"event": "ready"' in lines[0]
    assert '"event": "stop_requested"' in lines[1] and '"signal": "SIGTERM"' in lines[1]
    assert lines[2] == "exited"


def test_the_first_signal_requests_the_stop_and_a_second_forces_it():
    """The handler sets _stopping, then _forced, and posts one log command per signal."""
    state = types.SimpleNamespace(_stopping=False, _forced=False)
    posted = []
    handler = stop_handler(state, posted.append)
    handler(signal.SIGTERM, None)
    assert (state._stopping, state._forced, len(posted)) == (True, False, 1)
    handler(signal.SIGINT, None)
    assert (state._stopping, state._forced, len(posted)) == (True, True, 2)
    assert [p.args for p in posted] == [("stop_requested", signal.SIGTERM),
                                        ("stop_forced", signal.SIGINT)]


def test_sigusr1_prints_every_python_threads_stack_and_the_process_goes_on():
    """kill -USR1 dumps the stack of a thread stuck in a named function to stderr; the process keeps running."""
    child = _child(textwrap.dedent("""
        import threading, time
        from sipbridge.stopsignal import enable_stack_dump
        enable_stack_dump()
        def stuck_in_teardown():
            threading.Event().wait()
        threading.Thread(target=stuck_in_teardown, daemon=True).start()
        print("up", flush=True)
        time.sleep(30)
    """))
    try:
        assert child.stdout.readline().strip() == "up"
        time.sleep(0.2)
        child.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        assert child.poll() is None
    finally:
        child.kill()
    err = child.communicate()[1]
    assert "stuck_in_teardown" in err and "Current thread" in err


def test_the_watchdog_ends_a_stop_stuck_past_its_bound_with_stacks_and_exit_70():
    """A stop step that never returns: after the bound the process exits 70 with a stop_stuck line and the stuck step's stack."""
    child = _child(textwrap.dedent("""
        import threading
        from sipbridge.stopsignal import StopWatchdog
        def stuck_stop_step():
            threading.Event().wait()
        StopWatchdog(0.3).arm()
        stuck_stop_step()
    """))
    started = time.monotonic()
    try:
        err = child.communicate(timeout=20)[1]
    except subprocess.TimeoutExpired:
        child.kill()
        raise AssertionError("the watchdog did not end the stuck process") from None
    assert child.returncode == EXIT_STUCK == 70
    assert time.monotonic() - started < 10
    assert '"event": "stop_stuck"' in err and "stuck_stop_step" in err


def test_the_watchdog_stays_quiet_within_its_bound():
    """Armed, the watchdog neither exits nor writes before its bound has passed."""
    exits = []
    dog = StopWatchdog(5.0, exit=exits.append)
    dog.arm()
    dog.arm()   # a second arm keeps the first bound and thread
    time.sleep(0.2)
    assert exits == [] and dog._thread.is_alive()
