"""Run ``sipbridge run`` and a recording upstream model server as real subprocesses.

pjsua2 is a per-process singleton that aborts on failed assertions, so call tests never import
it; they start the bridge like a user would and read its JSON log lines.

API::

    Upstream(tmp_path, api_key=None, reply_wav=None, pace=4.0)  # context manager
        .url, .events(type=None) -> list[dict], .wait_for(type, timeout) -> dict
    Bridge(tmp_path, upstream_url, api_key=None, extra=None, command=None, env=None)
        .sip_port, .target, .rtp_range, .logs(event=None) -> list[dict]
        .api_url (http://127.0.0.1:<free port>; None with api.listen null)
        .wait_log(event, timeout, **match) -> dict, .stop(timeout) -> int (exit code)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from .ports import free_port_block, free_tcp_port, free_udp_port

PYTHON = sys.executable


def terminate(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM ``proc`` and wait up to ``timeout`` s for it; SIGKILL it if it is still there."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


STACKS_AFTER_S = 5.0   # Bridge.stop(): a bridge still there this long after SIGTERM shows its stacks


class ExitCode(int):
    """An exit code whose repr carries why the process had to be killed (empty otherwise)."""

    def __new__(cls, code: int, detail: str = ""):
        obj = super().__new__(cls, code)
        obj.detail = detail
        return obj

    def __repr__(self) -> str:
        return super().__repr__() + (f" <{self.detail}>" if self.detail else "")


def _handles(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (SigCgt): else the signal would kill it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except (OSError, ValueError):
        pass
    return False


def _native_stacks(pid: int) -> str:
    """Every thread's C stack (pjsua's threads are not Python's), by gdb if it is installed."""
    import shutil
    if shutil.which("gdb") is None:
        return "(no gdb: native stacks not taken)"
    try:
        return subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 12"],
                              capture_output=True, text=True, timeout=20).stdout[-20000:]
    except (OSError, subprocess.SubprocessError) as exc:
        return f"(gdb failed: {exc!r})"


class _LineReader:
    """Collects a pipe's lines on a thread; JSON lines are parsed, others kept as text."""

    def __init__(self, pipe):
        self.lines: list[str] = []
        self.records: list[dict] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self._thread.start()

    def _run(self, pipe) -> None:
        for raw in pipe:
            line = raw.decode(errors="replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                if line.startswith("{"):
                    try:
                        self.records.append(json.loads(line))
                    except ValueError:
                        pass
                self._cond.notify_all()

    def wait(self, predicate, timeout: float):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for rec in self.records:
                    if predicate(rec):
                        return rec
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)


class Upstream:
    """``python -m sipbridge.embedded`` on loopback, recording every client event."""

    def __init__(self, tmp_path: Path, api_key: str | None = None, reply_wav: Path | None = None,
                 pace: float = 4.0, call_tool: str | None = None, tool_args: str | None = None,
                 extra_args: list[str] | None = None):
        """``extra_args``: more options of ``python -m sipbridge.embedded`` (--azure-deployment)."""
        self.record = Path(tmp_path) / f"upstream-{time.monotonic_ns()}.jsonl"
        cmd = [PYTHON, "-m", "sipbridge.embedded", "--port", str(free_tcp_port()),
               "--record", str(self.record), "--pace", str(pace)]
        if api_key:
            cmd += ["--api-key", api_key]
        if reply_wav:
            cmd += ["--reply-wav", str(reply_wav)]
        if call_tool:
            cmd += ["--call-tool", call_tool]
        if tool_args is not None:
            cmd += ["--tool-args", tool_args]
        cmd += list(extra_args or ())
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.url = self.proc.stdout.readline().decode().strip()
        if not self.url.startswith("ws://"):
            self.stop()
            raise RuntimeError(f"upstream server did not start: {self.url!r}")

    def events(self, etype: str | None = None) -> list[dict]:
        if not self.record.exists():
            return []
        out = []
        for line in self.record.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if etype is None or rec.get("type") == etype:
                out.append(rec)
        return out

    def wait_for(self, etype: str, timeout: float = 10.0, count: int = 1) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(etype)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"upstream never received {count} x {etype}")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def stop(self) -> None:
        terminate(self.proc, 5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Bridge:
    """``sipbridge run`` on free loopback ports, with its JSON log captured."""

    def __init__(self, tmp_path: Path, upstream_url: str | None, api_key: str | None = None,
                 extra: dict | None = None, ready_timeout: float = 30.0,
                 command: list[str] | None = None, env: dict | None = None):
        """``env``: variables added to the bridge's environment (e.g. SIPBRIDGE_API_TOKEN).
        ``command``: the program run with ``-c CONFIG`` instead of ``python -m sipbridge run``
        (bench/floor_worker.py reads the same config and logs the same lines)."""
        extra_env = env
        self.sip_port = free_udp_port()
        rtp = free_port_block(40)
        self.rtp_range = (rtp, rtp + 40)
        cfg = {
            "sip": {"host": "127.0.0.1", "port": self.sip_port, "rtp_port": rtp,
                    "rtp_port_range": 40, "allow_from": ["127.0.0.1/32"],
                    # SIGTERM (stop()) hangs up at once; drain tests set a deadline via extra
                    "drain_timeout_s": 0},
            "realtime": {"api_key_env": "SIPBRIDGE_TEST_API_KEY"},
            "log": {"format": "json", "level": "info"},
            # one plain process (the default, cell.workers: auto, is a cell sized to the machine);
            # a test that wants a cell sets cell via extra
            "cell": {"workers": 1},
            # the HTTP API on a free port (the default 8080 would collide between bridges)
            "api": {"listen": f"127.0.0.1:{free_tcp_port()}"},
            # never the repo's working directory; .records_path is the file (tests read it)
            "records": {"path": str(Path(tmp_path) / f"records-{self.sip_port}.db")},
        }
        if upstream_url:
            cfg["realtime"]["url"] = upstream_url
        for section, values in (extra or {}).items():
            if isinstance(values, dict):
                cfg.setdefault(section, {}).update(values)
            else:  # a list section (trunks) is taken as given
                cfg[section] = values
        self.records_path = cfg["records"]["path"]
        listen = cfg.get("api", {}).get("listen")
        self.api_url = f"http://{listen}" if listen else None   # None: api.listen null
        self.config_path = Path(tmp_path) / f"bridge-{self.sip_port}.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SIPBRIDGE_") and k != "OPENAI_API_KEY"}
        if api_key:
            env["SIPBRIDGE_TEST_API_KEY"] = api_key
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra_env or {})
        argv = list(command or [PYTHON, "-m", "sipbridge", "run"])
        self.proc = subprocess.Popen([*argv, "-c", str(self.config_path)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        self._out = _LineReader(self.proc.stdout)
        self.exit_code: int | None = None
        if not self._out.wait(lambda r: r.get("event") == "ready", ready_timeout):
            self.stop()
            raise RuntimeError("sipbridge did not become ready:\n" + self.output())

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    def logs(self, event: str | None = None) -> list[dict]:
        return [r for r in list(self._out.records) if event is None or r.get("event") == event]

    def wait_log(self, event: str, timeout: float = 10.0, **match) -> dict:
        rec = self._out.wait(lambda r: r.get("event") == event and
                             all(r.get(k) == v for k, v in match.items()), timeout)
        if rec is None:
            raise AssertionError(f"no {event} {match} in the bridge log:\n" + self.output()[-4000:])
        return rec

    def tcp_connections_to(self, port: int) -> int:
        """Established TCP connections from the bridge process to 127.0.0.1:``port``."""
        return established_to(self.proc.pid, port)

    def output(self) -> str:
        return "\n".join(self._out.lines)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM; SIGKILL at ``timeout``. A bridge still there after :data:`STACKS_AFTER_S`
        is asked for its Python stacks (SIGUSR1, where it handles it: sipbridge/stopsignal.py),
        and one that must be killed gets gdb's native stacks too (where gdb is installed); both
        go to stderr (shown with a failing test) and into the returned code's repr, so an
        ``assert bridge.stop() == 0`` names where the bridge was stuck."""
        proc, detail = self.proc, ""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(min(STACKS_AFTER_S, timeout))
            except subprocess.TimeoutExpired:
                mark = len(self._out.lines)
                if _handles(proc.pid, signal.SIGUSR1):
                    proc.send_signal(signal.SIGUSR1)
                try:
                    proc.wait(max(timeout - STACKS_AFTER_S, 0.5))
                except subprocess.TimeoutExpired:
                    native = _native_stacks(proc.pid)
                    proc.kill()
                    proc.wait()
                    self._out._thread.join(5)
                    detail = (f"SIGKILLed {timeout:g} s after SIGTERM; output since "
                              f"{STACKS_AFTER_S:g} s (Python stacks):\n"
                              + "\n".join(self._out.lines[mark:])[-6000:])
                    print(f"{detail}\n{native}", file=sys.stderr)
        self._out._thread.join(5)
        self.exit_code = ExitCode(self.proc.returncode, detail)
        return self.exit_code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def established_to(pid: int, port: int) -> int:
    """Count established TCP sockets of process ``pid`` whose remote port is ``port``."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir() if fd_dir.exists() else ():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            remote_port = int(cols[2].rsplit(":", 1)[1], 16)
            if cols[3] == "01" and remote_port == port and cols[9] in inodes:
                count += 1
    return count
