"""The cell supervisor: N worker processes (and optionally Kamailio in front), kept alive.

Each worker is ``python -m sipbridge run --worker-index i`` with the same config file and the
``SIPBRIDGE_*`` overrides of :func:`sipbridge.cell.plan.worker_environment` (its own SIP port and
RTP ports); it logs to the same stream, every line carrying ``worker=i``.

The supervisor blocks in ``select`` on a signal wake-up pipe (SIGCHLD, SIGTERM, SIGINT): an idle
cell costs nothing. The timeout is the next scheduled restart, or a short readiness poll while
the cell starts. Log lines: ``worker_started`` (worker, pid, sip_port, rtp ports),
``worker_exited`` (worker, pid, code or signal), ``worker_restarted`` (worker, pid, attempt,
after_s), ``worker_given_up``, ``cell_ready`` (every worker answered an OPTIONS probe and the
front is up; ``startup_s``: seconds since the supervisor began), ``cell_stopping``,
``cell_stopped``. A front whose ``sip.port`` is taken stops the cell before anything starts
(exit 1, the same one line as a plain process's).

A worker that dies takes its own calls with it and nothing else; it is restarted per
:class:`~sipbridge.cell.policy.RestartPolicy`. On SIGTERM/SIGINT every worker gets SIGTERM (it
drains its calls), the front keeps relaying their BYEs, and once the last worker has exited the
front is stopped and the supervisor exits 0 (1 if every worker had been given up).

With ``api.listen`` set the supervisor also serves the cell's one HTTP interface
(:mod:`sipbridge.cell.api`, on a thread of its own) before it starts any worker (a taken port
stops it at once, exit 1), and gives each worker a unix socket in its working directory and a
token made for this run (:mod:`sipbridge.cell.channel`), where the worker serves its own API.

With ``records.path`` set the supervisor is the cell's one records writer
(:mod:`sipbridge.cell.records_sink`): it opens the file before any worker starts, the workers
hand it their records over a unix socket of its own, and a worker it reaps has its open calls
closed as ``lost`` there and then.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import structlog

from ..kamailio import Kamailio, kamailio_binary, module_dir, sip_options_probe
from .channel import SOCKET_ENV, TOKEN_ENV, socket_path
from .kamailio_cfg import front_spec, render
from .plan import WorkerSpec, plan, worker_environment
from .records_push import RECORDS_ENV
from .policy import RestartPolicy, RestartTracker

log = structlog.get_logger("sipbridge.cell")

READY_POLL_S = 0.25
READY_TIMEOUT_S = 120.0
FRONT = "front"


try:  # looked up here, in the parent: the child between fork and exec only calls it (the
    # supervisor has threads, the cell API's: a dlopen there could wait on a lock forever)
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not glibc
    _PRCTL = None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM this child if the supervisor dies without forwarding a signal."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _check_port_free(host: str, port: int) -> None:
    """Raise ListenError, as a plain process would, when the front's UDP address is taken."""
    import socket

    from ..errors import ListenError
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ListenError(f"cannot listen for SIP over UDP on {host}:{port}: {why}") from None


class _FrontProcess(Kamailio):
    """The runner from :mod:`sipbridge.kamailio`, keeping only Kamailio's last lines in memory
    and copying them into the log (a long-running front must not grow a list forever)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lines = deque(maxlen=200)

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self._lines.append(line)
            if line.strip():
                log.info("kamailio", line=line)


class Supervisor:
    """Runs the cell described by ``cfg`` until SIGTERM/SIGINT; :meth:`run` returns the exit code."""

    def __init__(self, cfg, config_path: str | None, python: str = sys.executable,
                 workdir: str | None = None, clock=time.monotonic):
        self.cfg = cfg
        self.config_path = config_path
        self.python = python
        self.clock = clock
        self.specs: dict[int, WorkerSpec] = {s.index: s for s in plan(cfg)}
        self.procs: dict[int, subprocess.Popen] = {}
        self.due: dict[int, float] = {}          # worker -> when to restart it
        self.attempts: dict[int, int] = {}
        self.given_up: set[int] = set()
        self.tracker = RestartTracker(RestartPolicy.from_config(cfg.cell))
        self.stopping = False
        self.failed = False
        self.ready = False
        self.front: _FrontProcess | None = None
        self._own_workdir = workdir is None  # ours: removed at exit (it may hold passwords)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="sipbridge-cell-"))
        self._wake_r = self._wake_w = -1
        self._started_at = 0.0
        self._created_at = clock()
        # the cell's API (api.listen) and the token of its channel to the workers: fresh per run,
        # handed to the workers in their environment, never logged (see cell/api.py, channel.py)
        self.api = None
        self.records = None   # the cell's records writer (records.path), see records_sink.py
        self._control_token = secrets.token_urlsafe(32)

    # -- process control ----------------------------------------------------------------------
    def _spawn(self, index: int) -> subprocess.Popen:
        spec = self.specs[index]
        cmd = [self.python, "-m", "sipbridge", "run", "--worker-index", str(index)]
        if self.config_path:
            cmd += ["--config", str(self.config_path)]
        env = {**os.environ, **worker_environment(self.cfg, spec)}
        if self.cfg.api.listen is not None:   # the worker serves the cell's API over this channel
            env[SOCKET_ENV] = socket_path(self.workdir, index)
            env[TOKEN_ENV] = self._control_token
        if self.records is not None:   # and hands its records to the cell's one writer
            env[RECORDS_ENV] = self.records.path
            env[TOKEN_ENV] = self._control_token
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                preexec_fn=_die_with_parent)
        self.procs[index] = proc
        log.info("worker_started", worker=index, pid=proc.pid, sip_port=spec.sip_port,
                 rtp_ports=f"{spec.rtp_port}-{spec.rtp_port + spec.rtp_port_range - 1}")
        return proc

    def _start_front(self) -> None:
        files = render(front_spec(self.cfg, str(self.workdir), mpath=module_dir()))
        for name, text in files.items():
            if name != "kamailio.cfg":
                path = self.workdir / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        front = _FrontProcess(files["kamailio.cfg"], self.workdir,
                              sip=(self.cfg.sip.host, self.cfg.sip.port))
        try:
            front.start()
        except (RuntimeError, TimeoutError, OSError) as exc:
            log.error("front_failed", kind="kamailio", reason=str(exc)[-3000:])
            self.failed = True
            self._begin_stop("front failed")
            return
        self.front = front
        log.info("front_started", kind="kamailio", pid=self.front.proc.pid,
                 listen=f"{self.cfg.sip.host}:{self.cfg.sip.port}", workers=len(self.specs),
                 trunks_registered=len(getattr(self.cfg, "trunks", ())),
                 conf_dir=str(self.workdir))

    def _reap(self) -> None:
        now = self.clock()
        for index, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.procs[index]
            if self.records is not None:   # its calls' records say lost now, not at its restart
                self.records.worker_gone(index, proc.pid)
            fields = {"signal": signal.Signals(-code).name} if code < 0 else {"code": code}
            log.info("worker_exited", worker=index, pid=proc.pid, expected=self.stopping, **fields)
            if self.stopping:
                continue
            delay = self.tracker.on_crash(index, now)
            if delay is None:
                self.given_up.add(index)
                log.error("worker_given_up", worker=index,
                          crashes=self.tracker.recent(index, now),
                          window_s=self.tracker.policy.window_s)
            else:
                self.due[index] = now + delay
        if self.front is not None and not self.front.running() and not self.stopping:
            log.error("front_exited", code=self.front.proc.returncode,
                      output=self.front.output()[-2000:])
            delay = self.tracker.on_crash(FRONT, now)
            self.front = None
            if delay is None:
                log.error("front_given_up")
                self.failed = True
                self._begin_stop("front given up")
            else:
                self.due[FRONT] = now + delay

    def _restart_due(self) -> None:
        now = self.clock()
        for key, when in list(self.due.items()):
            if when > now or self.stopping:
                continue
            del self.due[key]
            if key == FRONT:
                self._start_front()
                continue
            self.attempts[key] = self.attempts.get(key, 0) + 1
            proc = self._spawn(key)
            log.info("worker_restarted", worker=key, pid=proc.pid, attempt=self.attempts[key])

    def running_workers(self) -> dict[int, int]:
        """Index -> pid of the workers running now (any thread: a copy of a dict)."""
        return {i: p.pid for i, p in self.procs.copy().items()}

    def restart_count(self) -> int:
        """Worker restarts since the cell started."""
        return sum(self.attempts.copy().values())

    def _begin_stop(self, why: str) -> None:
        if not self.stopping:
            log.info("cell_stopping", why=why, workers=sorted(self.procs))
        self.stopping = True
        self.due.clear()
        for proc in self.procs.values():
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _check_ready(self) -> None:
        if self.ready or self.stopping:
            return
        if len(self.procs) < len(self.specs) - len(self.given_up):
            return
        if any(sip_options_probe(*self.specs[i].target, timeout=0.1) is None for i in self.procs):
            if self.clock() - self._started_at > READY_TIMEOUT_S:
                log.error("cell_not_ready", waited_s=READY_TIMEOUT_S)
                self._begin_stop("workers did not start")
            return
        if self.cfg.cell.front == "kamailio" and self.front is None:
            self._start_front()
            if self.front is None:
                return
        self.ready = True
        log.info("cell_ready", workers=len(self.procs), front=self.cfg.cell.front,
                 listen=f"{self.cfg.sip.host}:{self.cfg.sip.port}",
                 startup_s=round(self.clock() - self._created_at, 2),
                 pids=[p.pid for _, p in sorted(self.procs.items())])

    # -- main loop ----------------------------------------------------------------------------
    def _install_signals(self) -> selectors.BaseSelector:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, lambda *_: None)  # the wake-up fd carries the signal number
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ)
        return sel

    def _drain_wakeups(self) -> set[int]:
        seen: set[int] = set()
        while True:
            try:
                data = os.read(self._wake_r, 512)
            except BlockingIOError:
                return seen
            if not data:
                return seen
            seen.update(data)

    def _timeout(self) -> float | None:
        waits = [max(0.0, when - self.clock()) for when in self.due.values()]
        if not self.ready and not self.stopping:
            waits.append(READY_POLL_S)
        return min(waits) if waits else None

    def run(self) -> int:
        if self.cfg.cell.front == "kamailio" and kamailio_binary() is None:
            from ..errors import ConfigError
            raise ConfigError("cell.front", "kamailio is not installed (Debian package "
                                            "'kamailio'); install it or set cell.front: none")
        if self.cfg.cell.front == "kamailio":
            _check_port_free(self.cfg.sip.host, self.cfg.sip.port)
        if getattr(self.cfg, "trunks", ()) and self.cfg.cell.front == "none":
            log.warning("trunks_not_registered", trunks=[t.name for t in self.cfg.trunks],
                        why="a cell's workers never register; the front does (cell.front: "
                            "kamailio, or the db/ of `sipbridge kamailio-config --out DIR`)")
        if self.cfg.api.listen is not None:   # first: a taken port stops the cell before it starts
            from .api import CellApi
            self.api = CellApi(self, self.workdir, self._control_token)
            try:
                self.api.start()
            except BaseException:
                if self._own_workdir:
                    shutil.rmtree(self.workdir, ignore_errors=True)
                raise
        if self.cfg.records.path:   # the one writer: before any worker has a record to hand over
            from .records_sink import RecordsSink
            self.records = RecordsSink(self.cfg.records, self.workdir, self._control_token)
            try:
                self.records.start()
            except BaseException:
                if self.api is not None:
                    self.api.stop()
                if self._own_workdir:
                    shutil.rmtree(self.workdir, ignore_errors=True)
                raise
        sel = self._install_signals()
        self._started_at = self.clock()
        try:
            for index in self.specs:
                self._spawn(index)
            while True:
                sel.select(self._timeout())
                signals = self._drain_wakeups()
                if signals & {signal.SIGTERM, signal.SIGINT}:
                    if self.stopping:  # asked again: pass it on
                        self._begin_stop("signal")
                    else:
                        self._begin_stop(signal.Signals(max(signals & {15, 2})).name)
                self._reap()
                if self.stopping and not self.procs:
                    break
                if not self.stopping and not self.procs and not self.due:
                    log.error("cell_empty", given_up=sorted(self.given_up))
                    self.failed = True
                    break
                self._restart_due()
                self._check_ready()
        finally:
            if self.procs:
                self._begin_stop("exiting")
            for proc in self.procs.values():
                proc.wait()
            if self.front is not None:
                self.front.stop()
            if self.records is not None:   # every worker has exited: what is still open is lost
                self.records.stop()
            if self.api is not None:
                self.api.stop()
            signal.set_wakeup_fd(-1)
            sel.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
        code = 1 if self.failed or len(self.given_up) == len(self.specs) else 0
        log.info("cell_stopped", code=code, given_up=sorted(self.given_up))
        return code
