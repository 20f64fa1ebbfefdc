"""The supervisor with stand-in workers: restarts, give-up, SIGTERM forwarding, idle cost.

The supervisor runs as a real subprocess (it owns signal handlers); its workers are
``fake_worker.py`` processes, so no pjsua2 is involved.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sipbridge.kamailio import sip_options_probe
from tests.support.ports import free_port_block

HERE = Path(__file__).resolve().parent
SCRIPT = """
import sys
from sipbridge import config, logs
from sipbridge.cell.supervisor import Supervisor
logs.configure("info", "json")
cfg = config.build({"sip": {"port": %(port)d, "rtp_port": %(rtp)d, "rtp_port_range": 40},
                    "cell": {"workers": 2, "front": "none", "worker_port_base": %(base)d,
                             "restart_backoff_ms": 100, "restart_limit": 3},
                    "api": {"listen": None}, "records": {"path": %(records)r}},
                   environ={})  # the cell API: tests/integration
sys.exit(Supervisor(cfg, None, python=%(python)r).run())
"""


class Cell:
    def __init__(self, tmp_path: Path, crash: bool = False):
        fake = tmp_path / "fake-python"
        fake.write_text(f"#!/bin/sh\nexec {sys.executable} {HERE / 'fake_worker.py'} \"$@\"\n")
        fake.chmod(0o755)
        base = free_port_block(3, align=1)
        code = SCRIPT % {"port": base, "base": base + 1, "rtp": free_port_block(40),
                         "python": str(fake), "records": str(tmp_path / "records.db")}
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SIPBRIDGE_")},
               "PYTHONUNBUFFERED": "1", "FAKE_WORKER_CRASH": "1" if crash else "0"}
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, text=True)
        self.records: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.records.append(json.loads(line))

    def events(self, name, **match):
        return [r for r in list(self.records) if r["event"] == name
                and all(r.get(k) == v for k, v in match.items())]

    def wait(self, name, count=1, timeout=15.0, **match):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name, **match)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no {count} x {name} {match}: {self.records}")

    def finish(self, timeout=15.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_killed_worker_is_restarted_alone_and_sigterm_stops_the_cell(tmp_path):
    """A SIGKILLed worker is logged and restarted while the other keeps its pid; SIGTERM
    reaches every worker and the supervisor exits 0 once they have exited."""
    cell = Cell(tmp_path)
    ready = cell.wait("cell_ready")[0]
    first, second = ready["pids"]
    os.kill(second, signal.SIGKILL)
    exited = cell.wait("worker_exited", worker=1)[0]
    assert exited["signal"] == "SIGKILL" and exited["pid"] == second
    restarted = cell.wait("worker_restarted", worker=1)[0]
    assert restarted["pid"] != second and restarted["attempt"] == 1
    assert [e["pid"] for e in cell.events("worker_started", worker=0)] == [first]
    port = cell.events("worker_started", worker=1)[-1]["sip_port"]
    deadline = time.monotonic() + 10
    while sip_options_probe("127.0.0.1", port, 0.1) is None:  # its SIGTERM handler is set
        assert time.monotonic() < deadline
    cell.proc.send_signal(signal.SIGTERM)
    assert cell.finish() == 0
    exits = cell.events("worker_exited", expected=True)
    assert sorted((e["worker"], e["code"]) for e in exits) == [(0, 0), (1, 0)]
    assert cell.events("cell_stopped")[0]["code"] == 0


def test_idle_supervisor_does_not_poll(tmp_path):
    """Once the cell is ready, the supervisor uses no CPU while nothing happens."""
    cell = Cell(tmp_path)
    cell.wait("cell_ready")
    before = cpu_ticks(cell.proc.pid)
    time.sleep(1.5)
    assert cpu_ticks(cell.proc.pid) - before <= 1  # clock ticks of 10 ms
    cell.proc.send_signal(signal.SIGTERM)
    assert cell.finish() == 0


def test_crash_loop_gives_up_and_exits_1(tmp_path):
    """Workers that crash restart_limit times within the window are given up; with none
    left the supervisor exits 1."""
    cell = Cell(tmp_path, crash=True)
    assert cell.finish(timeout=30) == 1
    for worker in (0, 1):
        assert len(cell.events("worker_exited", worker=worker, code=3)) == 3
        assert len(cell.events("worker_restarted", worker=worker)) == 2
        assert len(cell.events("worker_given_up", worker=worker)) == 1
    assert cell.events("cell_stopped")[0]["given_up"] == [0, 1]
