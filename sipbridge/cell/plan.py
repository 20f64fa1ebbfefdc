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
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

MIN_RTP_PORTS_PER_WORKER = 8  # 4 calls (the library's ceiling) x an RTP + RTCP pair
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


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
