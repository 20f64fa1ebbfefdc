"""Capture RTP on the loopback interface with tcpdump and split it into streams.

    with RtpCapture(ports=[media_a, media_b]) as cap:     # waits for "listening on"
        ... place a call ...
    # leaving the block: short settle, SIGINT, wait, parse
    streams = cap.streams()             # {((src_ip, sport), (dst_ip, dport)): RtpStream}
    up = cap.stream(dst_port=media_b)
    up.active_mask(-45.0)               # per 20 ms packet: louder than -45 dBFS?

tcpdump runs as ``tcpdump -i lo -n -U --immediate-mode -s 0 -w FILE <filter>``;
needs root or CAP_NET_RAW (``capture_available()`` tells).  Only UDP is
captured; the default filter is built from ``ports`` / ``port_range``.

Public API::

    capture_available() -> bool
    build_filter(ports=(), port_range=None) -> str
    class RtpCapture(ports=(), port_range=None, *, bpf=None, path=None,
                     iface="lo", settle=0.2)       # context manager
        .start(timeout=5.0) .stop() .path .datagrams() .streams()
        .stream(src_port=None, dst_port=None, pt=None) -> RtpStream
        .tcpdump_stats -> dict[str, int]          # captured / received / dropped
    @dataclass(frozen=True) RtpRecord(arrival, seq, ts, pt, marker, ssrc, payload)
    @dataclass RtpStream(src, dst, packets)
        .ssrcs .payload_types .first_arrival .last_arrival .duration
        .audio_packets(pts=(0, 8)) -> list[RtpRecord]
        .pcm() -> np.ndarray                         # decoded G.711, arrival order
        .packet_levels(t0=None) -> list[tuple[float, float]]   # (t, dBFS) per audio packet
        .active_mask(threshold_dbfs=-45.0) -> np.ndarray[bool]
        .active_times(threshold_dbfs=-45.0, t0=None) -> list[float]
        .speech_spans(threshold_dbfs=-45.0, min_gap_s=0.2, t0=None) -> list[tuple[float, float]]
        .seq_gaps() -> int ; .interarrival() -> np.ndarray
        .dtmf_events() -> list[tuple[float, TelephoneEvent]]
        .dtmf_digits() -> str
    rtp_streams(datagrams) -> dict[key, RtpStream]
    decode_payload(payload, pt) -> np.ndarray | None
    payload_dbfs(payload, pt) -> float | None
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from . import audio
from .pcap import UdpDatagram, read_pcap
from .rtp import TelephoneEvent, parse_rtp, parse_telephone_event

__all__ = [
    "capture_available",
    "build_filter",
    "RtpCapture",
    "RtpRecord",
    "RtpStream",
    "rtp_streams",
    "decode_payload",
    "payload_dbfs",
]

Addr = tuple[str, int]
StreamKey = tuple[Addr, Addr]
_TCPDUMP = "tcpdump"


def capture_available() -> bool:
    """True if tcpdump is installed and we are root (or tcpdump has capture capabilities)."""
    exe = shutil.which(_TCPDUMP)
    if not exe:
        return False
    if os.geteuid() == 0:
        return True
    try:  # non-root: only works with file capabilities, e.g. cap_net_raw+eip
        out = subprocess.run(["getcap", exe], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "cap_net_raw" in out


def build_filter(ports: Iterable[int] = (), port_range: tuple[int, int] | None = None) -> str:
    """BPF expression for UDP on the given ports and/or inclusive port range."""
    terms = [f"port {int(p)}" for p in sorted(set(ports))]
    if port_range is not None:
        lo, hi = port_range
        terms.append(f"portrange {int(lo)}-{int(hi)}")
    if not terms:
        return "udp"
    return f"udp and ({' or '.join(terms)})"


# --------------------------------------------------------------------------- streams


def decode_payload(payload: bytes, pt: int) -> np.ndarray | None:
    """Decode a G.711 payload (PT 0 or 8) to int16 PCM; None for other payload types."""
    law = audio.law_for_pt(pt)
    return None if law is None else audio.g711_decode(payload, law)


def payload_dbfs(payload: bytes, pt: int) -> float | None:
    """Level of one G.711 packet in dBFS; None for non-G.711 payload types."""
    pcm = decode_payload(payload, pt)
    return None if pcm is None else audio.dbfs(pcm)


@dataclass(frozen=True)
class RtpRecord:
    """One captured RTP packet; ``arrival`` is the capture timestamp (epoch seconds)."""

    arrival: float
    seq: int
    ts: int
    pt: int
    marker: bool
    ssrc: int
    payload: bytes


@dataclass
class RtpStream:
    """All RTP packets from ``src`` to ``dst`` (any SSRC / PT), in capture order."""

    src: Addr
    dst: Addr
    packets: list[RtpRecord] = field(default_factory=list)

    @property
    def ssrcs(self) -> list[int]:
        return list(dict.fromkeys(p.ssrc for p in self.packets))

    @property
    def payload_types(self) -> list[int]:
        return list(dict.fromkeys(p.pt for p in self.packets))

    @property
    def first_arrival(self) -> float:
        return self.packets[0].arrival if self.packets else 0.0

    @property
    def last_arrival(self) -> float:
        return self.packets[-1].arrival if self.packets else 0.0

    @property
    def duration(self) -> float:
        """Seconds between the first and last packet."""
        return self.last_arrival - self.first_arrival

    def __len__(self) -> int:
        return len(self.packets)

    def audio_packets(self, pts: Iterable[int] = (0, 8)) -> list[RtpRecord]:
        """Packets whose payload type is one of ``pts`` (G.711 by default)."""
        wanted = set(pts)
        return [p for p in self.packets if p.pt in wanted]

    def pcm(self) -> np.ndarray:
        """Decoded G.711 audio of all audio packets, concatenated in arrival order."""
        parts = [decode_payload(p.payload, p.pt) for p in self.audio_packets()]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def packet_levels(self, t0: float | None = None) -> list[tuple[float, float]]:
        """``(arrival - t0, dBFS)`` for each G.711 packet; ``t0`` defaults to the first arrival."""
        base = self.first_arrival if t0 is None else t0
        return [(p.arrival - base, audio.dbfs(decode_payload(p.payload, p.pt))) for p in self.audio_packets()]

    def active_mask(self, threshold_dbfs: float = -45.0) -> np.ndarray:
        """Per G.711 packet: True if louder than ``threshold_dbfs``."""
        return np.array([lvl > threshold_dbfs for _, lvl in self.packet_levels()], dtype=bool)

    def active_times(self, threshold_dbfs: float = -45.0, t0: float | None = None) -> list[float]:
        """Arrival times (relative to ``t0``) of the non-silent G.711 packets."""
        return [t for t, lvl in self.packet_levels(t0) if lvl > threshold_dbfs]

    def speech_spans(
        self, threshold_dbfs: float = -45.0, min_gap_s: float = 0.2, t0: float | None = None
    ) -> list[tuple[float, float]]:
        """Runs of non-silent packets as ``(start, end)`` seconds; short gaps are bridged."""
        spans: list[list[float]] = []
        for t in self.active_times(threshold_dbfs, t0):
            if spans and t - spans[-1][1] <= min_gap_s:
                spans[-1][1] = t + 0.02
            else:
                spans.append([t, t + 0.02])
        return [(a, b) for a, b in spans]

    def seq_gaps(self) -> int:
        """Number of sequence numbers missing between consecutive packets of each SSRC."""
        missing = 0
        last: dict[int, int] = {}
        for p in self.packets:
            if p.ssrc in last:
                delta = (p.seq - last[p.ssrc]) & 0xFFFF
                if 1 < delta < 0x8000:
                    missing += delta - 1
            last[p.ssrc] = p.seq
        return missing

    def interarrival(self) -> np.ndarray:
        """Seconds between consecutive packets."""
        t = np.array([p.arrival for p in self.packets], dtype=float)
        return np.diff(t)

    def dtmf_events(self, pts: Iterable[int] | None = None) -> list[tuple[float, TelephoneEvent]]:
        """``(arrival, event)`` for telephone-event packets (PT 96-127 unless ``pts`` given)."""
        wanted = set(pts) if pts is not None else set(range(96, 128))
        out = []
        for p in self.packets:
            if p.pt in wanted:
                ev = parse_telephone_event(p.payload)
                if ev is not None:
                    out.append((p.arrival, ev))
        return out

    def dtmf_digits(self, pts: Iterable[int] | None = None) -> str:
        """Digits sent as RFC 4733 events (one per distinct RTP timestamp)."""
        digits = []
        seen: set[tuple[int, int]] = set()
        for p in self.packets:
            if p.pt in (set(pts) if pts is not None else set(range(96, 128))):
                ev = parse_telephone_event(p.payload)
                if ev is not None and (p.ssrc, p.ts) not in seen:
                    seen.add((p.ssrc, p.ts))
                    digits.append(ev.digit)
        return "".join(digits)


def rtp_streams(datagrams: Iterable[UdpDatagram]) -> dict[StreamKey, RtpStream]:
    """Group the RTP datagrams by (source, destination); non-RTP datagrams are dropped."""
    streams: dict[StreamKey, RtpStream] = {}
    for d in datagrams:
        pkt = parse_rtp(d.payload)
        if pkt is None:
            continue
        key = (d.src_addr, d.dst_addr)
        stream = streams.get(key)
        if stream is None:
            stream = streams[key] = RtpStream(src=d.src_addr, dst=d.dst_addr)
        stream.packets.append(RtpRecord(d.ts, pkt.seq, pkt.ts, pkt.pt, pkt.marker, pkt.ssrc, pkt.payload))
    return streams


# --------------------------------------------------------------------------- capture


class RtpCapture:
    """tcpdump on ``iface`` (loopback) for the lifetime of a ``with`` block."""

    def __init__(
        self,
        ports: Iterable[int] = (),
        port_range: tuple[int, int] | None = None,
        *,
        bpf: str | None = None,
        path: str | Path | None = None,
        iface: str = "lo",
        settle: float = 0.2,
    ) -> None:
        self.filter = bpf or build_filter(ports, port_range)
        self._tmpdir = None
        if path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="rtpcap-")
            path = Path(self._tmpdir) / "capture.pcap"
        self.path = Path(path)
        self.iface = iface
        self.settle = settle
        self.proc: subprocess.Popen | None = None
        self.stderr_lines: list[str] = []
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None
        self._datagrams: list[UdpDatagram] | None = None

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.stderr_lines.append(line)
            if "listening on" in line:
                self._listening.set()
        self._listening.set()  # EOF: unblock start() (it then checks poll())

    def start(self, timeout: float = 5.0) -> "RtpCapture":
        """Start tcpdump and block until it reports ``listening on``."""
        cmd = [_TCPDUMP, "-i", self.iface, "-n", "-U", "--immediate-mode", "-s", "0", "-w", str(self.path), self.filter]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read_stderr, name="tcpdump-stderr", daemon=True)
        self._reader.start()
        if not self._listening.wait(timeout) or self.proc.poll() is not None:
            self._kill()
            raise RuntimeError(f"tcpdump did not start: {' '.join(cmd)}\n" + "\n".join(self.stderr_lines))
        return self

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """Let in-flight packets land, SIGINT tcpdump (it flushes the file) and wait for it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        time.sleep(self.settle)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._kill()
        if self._reader:
            self._reader.join(timeout=2)

    def __enter__(self) -> "RtpCapture":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def tcpdump_stats(self) -> dict[str, int]:
        """Counters from tcpdump's exit summary: captured, received (by filter), dropped."""
        stats = {}
        for line in self.stderr_lines:
            parts = line.split()
            if len(parts) >= 3 and parts[0].isdigit() and parts[1] == "packets":
                name = {"captured": "captured", "received": "received", "dropped": "dropped"}.get(parts[2])
                if name:
                    stats[name] = int(parts[0])
        return stats

    def datagrams(self) -> list[UdpDatagram]:
        """All UDP datagrams in the capture file (parsed once, after ``stop()``)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("stop the capture before reading it")
        if self._datagrams is None:
            self._datagrams = read_pcap(self.path) if self.path.exists() and self.path.stat().st_size >= 24 else []
        return self._datagrams

    def streams(self) -> dict[StreamKey, RtpStream]:
        """RTP streams keyed by ``((src_ip, sport), (dst_ip, dport))``."""
        return rtp_streams(self.datagrams())

    def stream(self, src_port: int | None = None, dst_port: int | None = None, pt: int | None = None) -> RtpStream:
        """The single stream matching the given ports (and PT); raises if none or several match."""
        found = [
            s
            for s in self.streams().values()
            if (src_port is None or s.src[1] == src_port)
            and (dst_port is None or s.dst[1] == dst_port)
            and (pt is None or pt in s.payload_types)
        ]
        if len(found) != 1:
            have = [f"{s.src}->{s.dst} pts={s.payload_types} n={len(s)}" for s in self.streams().values()]
            raise LookupError(f"{len(found)} streams match src_port={src_port} dst_port={dst_port} pt={pt}; have {have}")
        return found[0]
