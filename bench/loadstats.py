"""Pure helpers of bench/capacity.py: process CPU/RSS from /proc, RTP packet intervals from a
header-only capture, and the verdict per load step. No subprocesses, no sockets.

* :func:`proc_sample` reads one process's CPU seconds and RSS (``/proc/PID/stat`` and
  ``status``); :func:`cpu_percent` turns two samples into percent of one core.
* :func:`send_times` reads a classic pcap written by ``tcpdump -s 64`` (headers only: the
  payload is not needed for timing) into ``{(src_port, dst_port): [t, ...]}``.
* :func:`interval_stats` pools the gaps between consecutive packets of each stream inside a
  time window: what a caller's jitter buffer sees of the bridge's media clock.
"""

from __future__ import annotations

import os
import struct
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcSample:
    pid: int
    cpu_s: float       # user + system CPU seconds so far
    rss_bytes: int
    alive: bool


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """``/proc/PID/smaps_rollup``'s ``Key: N kB`` lines as ``{key: bytes}`` (Rss, Pss, ...)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[key.strip()] = int(parts[0]) * 1024
    return out


def memory(pid: int) -> dict[str, int]:
    """``{"rss": bytes, "pss": bytes}`` of ``pid``: resident, and proportional (shared pages
    divided among the processes mapping them: what a process really adds next to others like
    it). Zeros when the process is gone."""
    try:
        roll = parse_smaps_rollup(Path(f"/proc/{pid}/smaps_rollup").read_text())
    except OSError:
        return {"rss": 0, "pss": 0}
    return {"rss": roll.get("Rss", 0), "pss": roll.get("Pss", 0)}


def proc_sample(pid: int) -> ProcSample:
    """CPU seconds (user + system) and resident memory of ``pid``; ``alive=False`` if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / _CLK_TCK
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
        return ProcSample(pid, cpu, rss, True)
    except (OSError, ValueError, IndexError):
        return ProcSample(pid, 0.0, 0, False)


def cpu_percent(before: ProcSample, after: ProcSample, wall_s: float) -> float:
    """Percent of one core ``pid`` used between two samples ``wall_s`` apart."""
    if wall_s <= 0 or not (before.alive and after.alive):
        return 0.0
    return 100.0 * (after.cpu_s - before.cpu_s) / wall_s


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores from ``/proc/stat``: diff two reads for machine load."""
    cols = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = cols[3] + (cols[4] if len(cols) > 4 else 0)
    return float(sum(cols) - idle), float(sum(cols))


def children_named(name: str, parent: int | None = None) -> list[int]:
    """PIDs of live processes called ``name`` whose parent is ``parent`` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if comm == name and ppid == parent:
            out.append(int(entry.name))
    return out


def send_times(path: str | Path) -> dict[tuple[int, int], list[float]]:
    """Capture times of IPv4/UDP packets per ``(src_port, dst_port)`` from a classic pcap.

    Truncated records (``-s 64``) are fine: only the Ethernet/SLL, IP and UDP headers are read.
    """
    data = Path(path).read_bytes()
    if len(data) < 24:
        return {}
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path} is not a classic pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
    link_len = {1: 14, 113: 16, 276: 20, 101: 0, 228: 0}.get(linktype)
    if link_len is None:
        raise ValueError(f"{path}: unsupported link type {linktype}")
    scale = 1e-9 if nano else 1e-6
    rec = struct.Struct(endian + "IIII")
    out: dict[tuple[int, int], list[float]] = defaultdict(list)
    at = 24
    while at + 16 <= len(data):
        sec, frac, incl, _orig = rec.unpack_from(data, at)
        frame = at + 16
        at = frame + incl
        if at > len(data):
            break
        ip = frame + link_len
        if incl < link_len + 28 or data[ip] >> 4 != 4 or data[ip + 9] != 17:
            continue
        udp = ip + (data[ip] & 0x0F) * 4
        if udp + 4 > at:
            continue
        sport, dport = struct.unpack_from(">HH", data, udp)
        out[(sport, dport)].append(sec + frac * scale)
    return dict(out)


def interval_stats(streams: dict, t0: float, t1: float, late_ms: float = 25.0) -> dict:
    """Gaps between consecutive packets of each stream, both packets inside ``[t0, t1]``, pooled.

    Returns ``streams``, ``intervals``, ``p50_ms``, ``p99_ms``, ``p999_ms``, ``max_ms`` and
    ``over_<late_ms>`` (count of gaps longer than ``late_ms``); percentiles are None without data.
    """
    gaps = []
    used = 0
    for times in streams.values():
        t = np.asarray(times, dtype=np.float64)
        t = t[(t >= t0) & (t <= t1)]
        if len(t) < 2:
            continue
        used += 1
        gaps.append(np.diff(np.sort(t)) * 1000.0)
    key = f"over_{late_ms:g}ms"
    if not gaps:
        return {"streams": 0, "intervals": 0, "p50_ms": None, "p99_ms": None, "p999_ms": None,
                "max_ms": None, key: 0}
    g = np.concatenate(gaps)
    return {"streams": used, "intervals": int(len(g)),
            "p50_ms": round(float(np.percentile(g, 50)), 2),
            "p99_ms": round(float(np.percentile(g, 99)), 2),
            "p999_ms": round(float(np.percentile(g, 99.9)), 2),
            "max_ms": round(float(g.max()), 2), key: int(np.count_nonzero(g > late_ms))}


def step_sustained(step: dict, p99_limit_ms: float = 25.0) -> bool:
    """A load step passes: every call answered, none failed, bridge->caller p99 gap within limit."""
    p99 = step.get("rtp_out_interval", {}).get("p99_ms")
    return (step.get("failed", 1) == 0 and step.get("answered", 0) >= step.get("calls", 1)
            and p99 is not None and p99 <= p99_limit_ms)
