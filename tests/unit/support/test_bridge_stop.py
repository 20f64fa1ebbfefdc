"""tests/support/bridge.py's stop() on a process that ignores SIGTERM: its stacks reach the
failure message. The "bridge" is a small Python program that logs ready like sipbridge does."""

import sys
import textwrap

from tests.support import bridge as bridge_mod
from tests.support.bridge import Bridge, ExitCode

STUCK = textwrap.dedent("""
    import faulthandler, signal, sys, threading
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    print('{"event": "ready"}', flush=True)
    def stuck_in_shutdown():
        threading.Event().wait()
    stuck_in_shutdown()
""")


def test_a_bridge_deaf_to_sigterm_is_killed_and_its_exit_code_shows_its_stacks(tmp_path, monkeypatch,
                                                                                capsys):
    """A process ignoring SIGTERM is asked for stacks (SIGUSR1), SIGKILLed at the timeout; the code's repr and stderr name the stuck function."""
    script = tmp_path / "stuck.py"
    script.write_text(STUCK)
    monkeypatch.setattr(bridge_mod, "STACKS_AFTER_S", 0.3)
    monkeypatch.setattr(bridge_mod, "_native_stacks", lambda pid: f"native stacks of {pid}")
    b = Bridge(tmp_path, None, command=[sys.executable, str(script)])
    code = b.stop(timeout=1.5)
    assert code == -9 and isinstance(code, ExitCode)
    assert "SIGKILLed 1.5 s after SIGTERM" in repr(code) and "stuck_in_shutdown" in repr(code)
    err = capsys.readouterr().err
    assert "stuck_in_shutdown" in err and f"native stacks of {b.proc.pid}" in err


def test_a_process_without_a_sigusr1_handler_is_not_sent_one(tmp_path):
    """SIGUSR1 would kill a program that does not handle it (a cell's supervisor): stop() checks SigCgt first."""
    script = tmp_path / "plain.py"
    script.write_text("import time\nprint('{\"event\": \"ready\"}', flush=True)\ntime.sleep(30)\n")
    b = Bridge(tmp_path, None, command=[sys.executable, str(script)])
    try:
        assert not bridge_mod._handles(b.proc.pid, 10)
    finally:
        assert b.stop() == -15 and repr(b.exit_code) == "-15"
