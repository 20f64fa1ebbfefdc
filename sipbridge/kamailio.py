"""Run a Kamailio process with a configuration text: for the cell front and for tests.

The configuration is written to ``workdir/kamailio.cfg`` and Kamailio runs in the foreground
(``-DD -E``: no daemon, log to stderr) as a child process, so stopping it is a plain SIGTERM and
nothing outlives us. Readiness is the SIP port answering: an ``OPTIONS`` probe over UDP gets any
response (the configurations here answer OPTIONS themselves).

    with Kamailio(cfg_text, workdir, sip=("127.0.0.1", 5060)) as k:
        ...           # k.output() is what it logged so far
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules",
               "/usr/local/lib64/kamailio/modules", "/usr/local/lib/kamailio/modules")


def kamailio_binary() -> str | None:
    """Path of the ``kamailio`` executable, or None when it is not installed."""
    return shutil.which("kamailio") or next(
        (p for p in ("/usr/sbin/kamailio", "/usr/local/sbin/kamailio") if os.path.exists(p)), None)


def module_dir() -> str:
    """Directory holding Kamailio's modules (``mpath``) on this machine."""
    for d in MODULE_DIRS:
        if os.path.exists(os.path.join(d, "tm.so")):
            return d
    raise FileNotFoundError("Kamailio modules not found in " + ", ".join(MODULE_DIRS))


def sip_options_probe(host: str, port: int, timeout: float = 0.5) -> str | None:
    """Send one OPTIONS over UDP; return the status line of the answer, None if none came."""
    tag = secrets.token_hex(6)
    msg = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:{{lport}};branch=z9hG4bK{tag};rport\r\n"
           f"From: <sip:probe@127.0.0.1>;tag={tag}\r\nTo: <sip:{host}:{port}>\r\n"
           f"Call-ID: probe-{tag}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
           f"Content-Length: 0\r\n\r\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        s.sendto(msg.replace("{lport}", str(s.getsockname()[1])).encode(), (host, port))
        try:
            data = s.recv(65535)
        except (socket.timeout, ConnectionRefusedError):
            return None
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


class Kamailio:
    """One Kamailio child process running ``cfg_text``; ``sip`` is the (host, port) it listens on."""

    def __init__(self, cfg_text: str, workdir: str | os.PathLike, sip: tuple[str, int],
                 binary: str | None = None):
        self.cfg_text = cfg_text
        self.workdir = Path(workdir)
        self.sip = sip
        self.binary = binary or kamailio_binary()
        self.proc: subprocess.Popen | None = None
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def cfg_path(self) -> Path:
        return self.workdir / "kamailio.cfg"

    def start(self, timeout: float = 10.0) -> "Kamailio":
        if self.binary is None:
            raise FileNotFoundError("kamailio is not installed (Debian package 'kamailio')")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cfg_path.write_text(self.cfg_text)
        check = subprocess.run([self.binary, "-c", "-f", str(self.cfg_path)],
                               capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"kamailio rejected {self.cfg_path}:\n{check.stderr[-3000:]}")
        self.proc = subprocess.Popen(
            [self.binary, "-f", str(self.cfg_path), "-DD", "-E", "-Y", str(self.workdir),
             "-P", str(self.workdir / "kamailio.pid")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited with {self.proc.returncode}:\n"
                                   + self.output()[-3000:])
            if sip_options_probe(*self.sip, timeout=0.2) is not None:
                return self
        self.stop()
        raise TimeoutError(f"kamailio did not answer OPTIONS on {self.sip} within {timeout} s")

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self._lines)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout``; return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self._reader is not None:
            self._reader.join(timeout=2)
        return self.proc.returncode

    def __enter__(self) -> "Kamailio":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
