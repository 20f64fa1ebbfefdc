"""The README's ``sipbridge run`` as a newcomer types it, on free loopback ports.

The default is a cell sized to the machine (``cell.workers: auto``, Kamailio in front), so the
free ports are sized for it: ``sip.port`` and the workers' SIP ports after it (one block), and
RTP ports enough for every worker. The other changes are the ones a shared test machine needs,
all through ``SIPBRIDGE_*`` overrides: no HTTP API unless asked (a free port then), records
under the test's directory or none. Ready is ``cell_ready`` (a cell) or the plain ``ready``.

    run = ReadmeRun(root, run_command, api=True, records=tmp_path / "records.db")
    run.sip_port, run.api_url, run.ready (the log line), run.ready_after_s, run.stop()
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from sipbridge.cell.machine import probe
from sipbridge.cell.plan import CALLS_PER_CORE, auto_workers

from .bridge import _LineReader, terminate
from .ports import free_port_block, free_tcp_port

RTP_PER_WORKER = 20


def most_auto_workers() -> int:
    """The most workers ``cell.workers: auto`` gives on this machine (at any media rate)."""
    machine = probe()
    return max(auto_workers(machine, rate) for rate in CALLS_PER_CORE)


def is_ready(rec: dict) -> bool:
    """The cell's ``cell_ready``, or a plain process's ``ready`` (a worker's carries ``worker``)."""
    return rec.get("event") == "cell_ready" or (rec.get("event") == "ready"
                                                and "worker" not in rec)


class ReadmeRun:
    def __init__(self, root: Path, command: list[str], api: bool = False,
                 records: Path | None = None, env: dict | None = None,
                 ready_timeout: float = 60.0):
        n = most_auto_workers()
        self.sip_port = free_port_block(n + 1, align=1)   # the front, then worker i at +1+i
        rtp_range = max(40, RTP_PER_WORKER * n)
        self.api_url = f"http://127.0.0.1:{free_tcp_port()}" if api else None
        environ = {k: v for k, v in os.environ.items()
                   if not k.startswith("SIPBRIDGE_") and k != "OPENAI_API_KEY"}
        environ.update(SIPBRIDGE_SIP__PORT=str(self.sip_port),
                       SIPBRIDGE_SIP__RTP_PORT=str(free_port_block(rtp_range)),
                       SIPBRIDGE_SIP__RTP_PORT_RANGE=str(rtp_range),
                       SIPBRIDGE_API__LISTEN=self.api_url[len("http://"):] if api else "null",
                       SIPBRIDGE_RECORDS__PATH=str(records) if records else "null",
                       PYTHONUNBUFFERED="1", **(env or {}))
        started = time.monotonic()
        self.proc = subprocess.Popen(command, cwd=root, env=environ,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.out = _LineReader(self.proc.stdout)
        self.ready = self.out.wait(is_ready, ready_timeout)
        self.ready_after_s = time.monotonic() - started
        if not self.ready:
            self.stop()
            raise AssertionError("the README's run command never became ready:\n"
                                 + "\n".join(self.out.lines[-40:]))

    def events(self, event: str) -> list[dict]:
        return [r for r in list(self.out.records) if r.get("event") == event]

    def tail(self) -> str:
        return "\n".join(line for line in self.out.lines if '"pjsip"' not in line)[-6000:]

    def stop(self, timeout: float = 30.0) -> int:
        terminate(self.proc, timeout)
        self.out._thread.join(5)
        return self.proc.returncode
