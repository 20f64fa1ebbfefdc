"""Where each worker of a cell listens: pure arithmetic on the configuration, no I/O.

A *cell* is one SIP address (``sip.host:sip.port``) served by ``cell.workers`` worker processes,
each a plain single-process sipbridge with its own SIP port and its own slice of the RTP ports:

* worker ``i`` (0-based) listens for SIP on ``cell.worker_port_base + i`` (default base:
  ``sip.port + 1``), on the same host as the cell;
* ``sip.rtp_port_range`` is split evenly: worker ``i`` uses ``rtp_port + i * share`` and the
  ``share`` ports after it, ``share`` being ``rtp_port_range // workers`` rounded down to even
  (RTP/RTCP pairs);
* with a front (``cell.front: kamailio``) the front owns ``sip.port`` and enforces
  ``sip.allow_from``; the workers then accept INVITEs only from the front's address.

``workers: 1`` with ``front: none`` is not a cell: the one process listens on ``sip.port``
itself, exactly as without this section.

``workers: auto`` and ``front: auto`` (the defaults) are settled by :func:`resolve_cell` when the
configuration is built, from the machine's facts (:class:`Machine`, probed by
:mod:`sipbridge.cell.machine`), so everything after that sees plain numbers and names:

* workers: the calls this machine sustains (cores x :data:`CALLS_PER_CORE` at the media rate,
  8000 by default: 8 workers on 2 cores) over the calls one worker holds (4, the pjsua2 wheel's
  per-process limit, or ``sip.max_calls`` if lower; the native port would carry more, but the
  wheel's ``PJSUA_MAX_CALLS`` is compiled in, so density comes from workers, not calls per
  worker), rounded up, clamped to [2, 64], and to what half the memory holds at
  :data:`WORKER_RSS_MB` each; one plain process instead when there is no front to put before
  them (Kamailio missing with ``front: auto``) or the SIP listener is TLS (a cell speaks UDP);
* front: ``kamailio`` when there is more than one worker and Kamailio is installed, else none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError

MIN_RTP_PORTS_PER_WORKER = 8  # 4 calls (the library's ceiling) x an RTP + RTCP pair
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
AUTO = "auto"
LIBRARY_CALLS = 4   # calls one pjsua2 process holds (PJSUA_MAX_CALLS of the wheel)
# Calls one core sustains (all answered, p99 packet interval <= 25 ms), from bench/README.md's
# capacity runs on a 2-core VM *with the SIPp callers and the model server on the same cores*
# (~1 % of a core per call of rig: on a real trunk with a remote model there is headroom):
# 16 kHz: 24 calls sustained ("bench/capacity.py", GIL switch interval run); 8 kHz: 32 calls
# sustained in 3 of 3 runs ("The 8 kHz media path", p99 23.1-23.7 ms).
CALLS_PER_CORE = {16000: 12, 8000: 16}
# a worker with 4 calls up: 116-139 MB ("The native media port", churn); 134-142 MB under a
# minute of 10 cps churn since it trims its heap (memtrim.py)
WORKER_RSS_MB = 140
MIN_AUTO_WORKERS, MAX_AUTO_WORKERS = 2, 64


@dataclass(frozen=True)
class Machine:
    """What ``auto`` sizing reads of the machine: usable cores, total memory, Kamailio present."""
    cores: int
    memory_mb: int
    kamailio: bool


def auto_workers(machine: Machine, media_rate: int = 8000,
                 calls_per_worker: int = LIBRARY_CALLS) -> int:
    """Workers for ``cell.workers: auto``: the sustainable calls over the calls per worker,
    rounded up, clamped to [2, 64] and to half the memory at :data:`WORKER_RSS_MB` each."""
    calls = max(1, machine.cores) * CALLS_PER_CORE.get(media_rate, CALLS_PER_CORE[16000])
    n = min(MAX_AUTO_WORKERS, max(MIN_AUTO_WORKERS, math.ceil(calls / calls_per_worker)))
    return max(1, min(n, machine.memory_mb // 2 // WORKER_RSS_MB))


def resolve_cell(workers, front: str, machine: Machine, media_rate: int = 8000,
                 max_calls: int | None = None, tls: bool = False) -> tuple[int, str]:
    """``(workers, front)`` with every ``auto`` settled for ``machine`` (see the module doc)."""
    if workers == AUTO:
        # front none + workers auto: the user's own front (kamailio-config), sized here all the same
        if tls or (front == AUTO and not machine.kamailio):
            workers = 1
        else:
            workers = auto_workers(machine, media_rate,
                                   min(max_calls or LIBRARY_CALLS, LIBRARY_CALLS))
    if front == AUTO:
        front = "kamailio" if workers > 1 and machine.kamailio else "none"
    return workers, front


@dataclass(frozen=True)
class WorkerSpec:
    """One worker's place in the cell."""
    index: int
    host: str
    sip_port: int
    rtp_port: int
    rtp_port_range: int

    @property
    def target(self) -> tuple[str, int]:
        """Where the front sends this worker's INVITEs and OPTIONS probes."""
        return (reachable_host(self.host), self.sip_port)


def is_cell(cfg) -> bool:
    """True when ``sipbridge run`` supervises worker processes instead of being the worker."""
    return cfg.cell.workers > 1 or cfg.cell.front != "none"


def reachable_host(host: str) -> str:
    """An address one can send to for a listener bound to ``host`` (a wildcard means loopback)."""
    return "127.0.0.1" if host in WILDCARD_HOSTS else host


def port_base(cfg) -> int:
    return cfg.cell.worker_port_base or cfg.sip.port + 1


def rtp_share(cfg) -> int:
    """RTP ports each worker gets: an even split of ``sip.rtp_port_range``."""
    share = cfg.sip.rtp_port_range // cfg.cell.workers
    return share - share % 2


def plan(cfg) -> list[WorkerSpec]:
    """The workers of ``cfg``'s cell, in index order (one worker on ``sip.port`` if no cell)."""
    if not is_cell(cfg):
        return [WorkerSpec(0, cfg.sip.host, cfg.sip.port, cfg.sip.rtp_port,
                           cfg.sip.rtp_port_range)]
    base, share = port_base(cfg), rtp_share(cfg)
    return [WorkerSpec(i, cfg.sip.host, base + i, cfg.sip.rtp_port + i * share, share)
            for i in range(cfg.cell.workers)]


def check_cell(cfg) -> None:
    """Raise :class:`ConfigError` (naming the key) when the cell's ports cannot work."""
    if not is_cell(cfg):
        return
    if getattr(cfg.sip, "tls_cert", None) is not None:
        raise ConfigError("sip.tls_cert", "TLS is not available in a cell (the front and the "
                                          "workers speak UDP); run one process for TLS")
    n, base = cfg.cell.workers, port_base(cfg)
    key = "cell.worker_port_base"
    last = base + n - 1
    if last > 65535:
        raise ConfigError(key, f"{n} workers from port {base} run past 65535")
    if base <= cfg.sip.port <= last:
        raise ConfigError(key, f"workers' SIP ports {base}-{last} include sip.port {cfg.sip.port},"
                               " the cell's own address")
    rtp_lo, rtp_hi = cfg.sip.rtp_port, cfg.sip.rtp_port + cfg.sip.rtp_port_range - 1
    if base <= rtp_hi and rtp_lo <= last:
        raise ConfigError(key, f"workers' SIP ports {base}-{last} overlap the RTP ports "
                               f"{rtp_lo}-{rtp_hi} (sip.rtp_port, sip.rtp_port_range)")
    if rtp_lo <= cfg.sip.port <= rtp_hi:
        raise ConfigError("sip.rtp_port", f"RTP ports {rtp_lo}-{rtp_hi} include sip.port "
                                          f"{cfg.sip.port}")
    share = rtp_share(cfg)
    if share < MIN_RTP_PORTS_PER_WORKER:
        raise ConfigError("sip.rtp_port_range",
                          f"{cfg.sip.rtp_port_range} ports split over {n} workers leaves {share} "
                          f"each; each needs at least {MIN_RTP_PORTS_PER_WORKER}")


def worker_environment(cfg, spec: WorkerSpec) -> dict[str, str]:
    """``SIPBRIDGE_*`` overrides that turn the cell's configuration into worker ``spec``'s.

    The worker reads the same file as the supervisor; these variables win over it (and over
    the user's own environment), and make the worker a plain single process.
    """
    env = {
        "SIPBRIDGE_SIP__PORT": str(spec.sip_port),
        "SIPBRIDGE_SIP__RTP_PORT": str(spec.rtp_port),
        "SIPBRIDGE_SIP__RTP_PORT_RANGE": str(spec.rtp_port_range),
        "SIPBRIDGE_CELL__WORKERS": "1",
        "SIPBRIDGE_CELL__FRONT": "none",
    }
    if cfg.cell.front != "none":
        # the front enforces sip.allow_from; every INVITE a worker sees comes from the front
        env["SIPBRIDGE_SIP__ALLOW_FROM"] = f"[{reachable_host(cfg.sip.host)}/32]"
    return env
