"""A programmable RTP caller for barge-in tests: scheduled speech, simulated echo, DTMF, full records.

SIPp does the signalling (``sipp-scenarios/uac_external_media.xml`` offers the
peer's address in its SDP and sends no RTP itself); an ``RtpPeer`` is the
caller's phone::

    with RtpPeer() as peer, ExternalMediaCall(bridge.target, peer, hold_ms=8000) as call:
        call.connect_peer(timeout=5)        # set_remote() from the 200's SDP (SIPp log)
        peer.wait_remote(5)                 # first RTP from the bridge (symmetric RTP)
        peer.echo(delay_ms=60, atten_db=20) # the bridge hears itself, 60 ms later, -20 dB
        peer.play(speech, at_s=peer.elapsed() + 1.0)
        peer.send_dtmf("5", at_s=peer.elapsed() + 4.0)
        t = peer.first_time(-40, after=peer.t0 + 1.0)          # bridge audio onset (rx)
        res = call.wait()                                      # SippResult

Clock and timeline
------------------
``start()`` fixes ``t0`` (``time.perf_counter()``; ``t0_wall`` is the same
instant in ``time.time()``).  Tick ``k`` fires at exactly ``t0 + k * 20 ms``
(absolute schedule, no drift; a late tick is sent late, never skipped) and
sends one packet carrying timeline samples ``[160 k, 160 k + 160)``: sample
``n`` of the peer's timeline is "on the wire" at ``t0 + n / 8000``, i.e. a
packet's first sample is at its send time and sample ``j`` of it ``j / 8000``
later (packets are built 1 ms ahead, then sent within a few microseconds of
their tick; ``TxPacket.time`` is the actual send time).  Ticks before any
destination is known are built and recorded but not transmitted
(``TxPacket.dest is None``); the clock runs from ``start()`` regardless.
The send and receive threads ask for ``SCHED_FIFO`` priority ``rt_priority``
(default 10; 0 = don't), which root gets: without it, a CPU-bound neighbour
on a small machine delays ticks by 2-30 ms now and then (measured on 2 vCPUs
with another pytest at 100%; with it: none above 0.3 ms).  Only those two
threads are affected (``realtime_threads`` says how many got it).

Received audio is put on the same timeline (``received_pcm(timeline=True)``,
the echo's delay line), sample-accurately, in one of two ways
(``placement=``); ``a`` is a packet's arrival - the kernel's receive
timestamp (``SO_TIMESTAMPNS``, the clock tcpdump uses) converted to the
``perf_counter`` clock, so thread wake-up latency does not count - and
``arrival_pos = round((a - t0) * 8000)``:

* ``"arrival"``: every packet at its own ``arrival_pos`` (later packets
  overwrite overlaps, gaps stay silent).  Exactly "delay from receive time",
  but every bit of network/sender jitter becomes a jump of the echo path.
* ``"rtp"`` (default): a continuous playout clock, like a phone's.  Packets
  are placed by RTP timestamp relative to an anchor: the earliest-arriving
  (least delayed) of the stream's first ``WARMUP_PACKETS`` (10) packets, then
  frozen, so the echo path is time-invariant (needed for AEC tests and to
  measure it with white noise).  ``pos = arrival_pos`` for that anchor packet
  and ``arrival_pos - pos`` = its lateness (jitter) for every later one.
  A new SSRC or a disagreement of more than ``RESYNC_SAMPLES`` (40 ms) between
  arrival and RTP clock (a timestamp jump, a pause the sender did not
  timestamp) re-anchors and warms up again (``resyncs``).

Outgoing audio = SOURCE + ECHO, clipped to int16, then G.711-encoded:

* SOURCE: ``play(pcm, at_s)`` puts ``pcm`` (8 kHz int16) at timeline sample
  ``round(at_s * 8000)`` (sample-accurate, not tick-aligned); clips add up.
  Samples whose time has already been sent when ``play`` is called are lost.
* ECHO: ``echo(delay_ms, atten_db, ir=None)``.  The received audio, placed on
  the timeline as above, is delayed by ``D = round(delay_ms * 8)`` samples,
  convolved with ``ir`` (default ``[1.0]``) and scaled by
  ``10 ** (-atten_db / 20)``:  ``echo[n] = g * sum_m ir[m] * rx[n - D - m]``.
  Realised delay: sample ``j`` of a received packet placed at ``pos`` is
  echoed at timeline sample ``pos + j + D``, i.e. on the wire at
  ``t0 + (pos + j + D) / 8000`` (+ the send lateness, microseconds; + where
  ``ir`` has its energy).  With ``"arrival"`` placement that is exactly
  ``a + j/8000 + delay_ms`` (+/- 62.5 us from rounding ``arrival_pos``) for
  every packet; with ``"rtp"`` placement it is that for the anchor packet and
  ``delay_ms`` after the packet's *expected* arrival for the others (a packet
  that arrived ``x`` late is echoed ``delay_ms - x`` after it arrived).  Seen
  by the far end: ``delay_ms`` + the loopback round trip (measured 0.1-0.25
  ms here).
  A packet is built up to 21 ms before its last sample's wire time, so
  ``delay_ms`` must be >= 20 (``ValueError`` otherwise; from 20 to 21 ms the
  build lead shrinks accordingly).  Received samples placed too late for the
  tick that needed them are dropped from the echo and counted in
  ``echo_late_samples`` (never with "arrival" placement and ``delay_ms`` >= 21;
  with "rtp" placement when a packet is more than ``delay_ms`` - 21 ms late
  relative to the anchor).
* DTMF: ``send_dtmf(digit, at_s)`` replaces the audio of the ticks it covers
  with RFC 4733 packets (PT 101, marker on the first, one RTP timestamp = the
  start tick's, duration growing by 160 per packet, then the end packet sent
  3 times in total on consecutive ticks); audio (with a continuous RTP
  timestamp) resumes afterwards.

Remote address: packets go to the address learned from the most recent RTP
packet received (symmetric RTP: the bridge - and SIPp's ``-rtp_echo`` - send
from the port they receive on) or, until one arrives, to ``set_remote()``.
SIPp 3.6.1's ``-rtp_echo`` echoes every packet back to its *source* address
(verified), which for an ``RtpPeer`` is also the SDP address.

Records (plain lists, safe to read after ``stop()``): ``rx`` (``RxPacket``:
arrival perf/wall time, source, seq, ts, pt, marker, ssrc, payload, decoded
pcm, level, timeline position, telephone event) and ``tx`` (``TxPacket``: tick,
scheduled/actual send time, seq, ts, pt, payload, source/echo components,
mixed pcm, level, event).

Public API::

    PTIME_MS = 20 ; SAMPLES_PER_PACKET = 160 ; DTMF_PT = 101 ; MIN_ECHO_DELAY_MS = 20.0
    @dataclass RxPacket(...) ; @dataclass TxPacket(...) .sent .start_sample
    RESYNC_SAMPLES = 320 ; WARMUP_PACKETS = 10
    class RtpPeer(port=None, law="ulaw", *, host=LOOPBACK, rtcp=True, ssrc=None,
                  dtmf_pt=101, placement="rtp", rt_priority=10)    # context manager
        .start() -> self ; .stop() ; .local_port ; .local_addr ; .t0 ; .t0_wall
        .elapsed() -> float ; .sleep_until(at_s)
        .set_remote(host, port) ; .remote ; .learned_remote ; .wait_remote(timeout) -> (host, port)
        .play(pcm_8k, at_s) -> int (start sample)
        .echo(delay_ms, atten_db=0.0, ir=None) ; .echo_off() ; .echo_delay_samples
        .send_dtmf(digit, at_s, duration_ms=100, volume=10) -> float (actual start, s)
        .rx ; .tx ; .rx_audio() ; .rx_events() ; .tx_sent()
        .received_pcm(timeline=False) -> np.ndarray
        .sent_pcm() ; .sent_source_pcm() ; .sent_echo_pcm()  -> timeline arrays (index 0 = t0)
        .first_time(level_dbfs, after=None, direction="rx", component="pcm", clock="perf")
        .echo_late_samples ; .resyncs ; .anchor_shifts ; .rtcp_received ; .non_rtp_received
        .kernel_timestamps ; .realtime_threads ; .stats() -> dict
    class ExternalMediaCall(target, peer, *, hold_ms=0, timeout=30.0, trace_dir=None,
                            service="sipbridge", extra_args=())   # context manager
        .start() ; .remote_sdp(timeout) -> (ip, port) ; .connect_peer(timeout) -> (ip, port)
        .log_lines() ; .wait(timeout=None) -> SippResult ; .log_path
"""

from __future__ import annotations

import math
import os
import re
import secrets
import select
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import audio
from .ports import LOOPBACK, free_rtp_pair
from .rtp import TelephoneEvent, build_rtp, build_telephone_event, parse_rtp, parse_telephone_event

__all__ = [
    "PTIME_MS",
    "SAMPLES_PER_PACKET",
    "DTMF_PT",
    "MIN_ECHO_DELAY_MS",
    "RxPacket",
    "TxPacket",
    "RtpPeer",
    "ExternalMediaCall",
]

RATE = audio.RATE
PTIME_MS = 20
SAMPLES_PER_PACKET = RATE * PTIME_MS // 1000  # 160
DTMF_PT = 101
MIN_ECHO_DELAY_MS = float(PTIME_MS)
_TICK_S = PTIME_MS / 1000.0
_START_LEAD_S = 0.005  # t0 is this far after start(), so both threads are running at tick 0
_BUILD_LEAD_S = 0.001  # a tick's packet is built this long before it is due ...
_SPIN_S = 0.00025  # ... then we sleep until this close to the tick and busy-wait the rest
RESYNC_SAMPLES = 320  # "rtp" placement re-anchors when arrival and RTP clock disagree by > 40 ms
WARMUP_PACKETS = 10  # "rtp" placement: the anchor is the earliest of a stream's first 10 packets

_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python does not export it
_TIMESPEC = struct.Struct("@qq")

Addr = tuple[str, int]


@dataclass
class RxPacket:
    """One RTP packet received; ``arrival`` is the kernel's receive timestamp on the perf_counter clock."""

    arrival: float  # perf_counter seconds (kernel SO_TIMESTAMPNS, else perf_counter() after recvmsg)
    arrival_wall: float  # the same instant in time.time() seconds (what tcpdump would show)
    src: Addr
    seq: int
    ts: int
    pt: int
    marker: bool
    ssrc: int
    payload: bytes
    pcm: np.ndarray | None = None  # decoded G.711 (PT 0/8), else None
    level: float | None = None  # dBFS of ``pcm``
    pos: int | None = None  # timeline sample where ``pcm`` was placed
    arrival_pos: int | None = None  # round((arrival - t0) * 8000): where "arrival" placement puts it
    event: TelephoneEvent | None = None  # RFC 4733 payload (PT == dtmf_pt)
    arrival_user: float | None = None  # perf_counter() when Python got it (arrival + wake-up latency)


@dataclass
class TxPacket:
    """One tick's packet; ``dest is None`` means it was built but not transmitted (no remote yet)."""

    tick: int
    sched: float  # perf_counter time of the tick: t0 + tick * 20 ms
    time: float  # perf_counter just before sendto (== sched + lateness)
    time_wall: float
    seq: int | None
    ts: int
    pt: int
    marker: bool
    payload: bytes
    dest: Addr | None
    source: np.ndarray | None = None  # int16 source component (audio packets)
    echo: np.ndarray | None = None  # int16 echo component (audio packets)
    pcm: np.ndarray | None = None  # int16 mix that was encoded (audio packets)
    level: float | None = None  # dBFS of ``pcm``
    event: TelephoneEvent | None = None  # DTMF packets

    @property
    def sent(self) -> bool:
        return self.dest is not None

    @property
    def start_sample(self) -> int:
        return self.tick * SAMPLES_PER_PACKET


@dataclass
class _Clip:
    start: int
    pcm: np.ndarray  # float64


@dataclass
class _Dtmf:
    digit: str
    start_tick: int
    steps: int
    volume: int

    @property
    def end_tick(self) -> int:  # exclusive; the last step is followed by 2 more end packets
        return self.start_tick + self.steps + 2


class _Timeline:
    """A growable float64 sample array indexed from the peer's t0."""

    def __init__(self, capacity: int = RATE * 30) -> None:
        self.buf = np.zeros(capacity, dtype=np.float64)
        self.length = 0

    def write(self, pos: int, data: np.ndarray) -> None:
        end = pos + len(data)
        if end > len(self.buf):
            new = np.zeros(max(end, 2 * len(self.buf)), dtype=np.float64)
            new[: self.length] = self.buf[: self.length]
            self.buf = new
        self.buf[pos:end] = data
        self.length = max(self.length, end)

    def read(self, start: int, end: int) -> np.ndarray:
        """Samples ``[start, end)``, zero outside what was written."""
        out = np.zeros(max(0, end - start), dtype=np.float64)
        lo, hi = max(start, 0), min(end, self.length)
        if hi > lo:
            out[lo - start : hi - start] = self.buf[lo:hi]
        return out


def _wall_minus_perf() -> float:
    """``time.time() - time.perf_counter()`` from the tightest of 20 bracketed readings (~0.2 us)."""
    best = (math.inf, 0.0)
    for _ in range(20):
        p1 = time.perf_counter()
        w = time.time()
        p2 = time.perf_counter()
        best = min(best, (p2 - p1, w - (p1 + p2) / 2))
    return best[1]


def _realtime_thread(priority: int) -> bool:
    """Best effort: SCHED_FIFO for the calling thread (needs root/CAP_SYS_NICE); False if refused."""
    if priority <= 0 or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # pid 0 = this thread
        return True
    except (OSError, AttributeError):
        return False


def _to_float(pcm: np.ndarray | Sequence[int]) -> np.ndarray:
    return np.asarray(pcm, dtype=np.float64).reshape(-1)


def _clip16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


class RtpPeer:
    """Threaded UDP RTP endpoint on ``host``: 20 ms G.711 sender (source + echo + DTMF) and recorder.

    ``port``: RTP port to bind (default: a free even port).  ``law``: "ulaw"
    (PT 0) or "alaw" (PT 8) for what we send; received PT 0/8 are decoded
    either way.  ``rtcp``: also bind ``port + 1`` and count what arrives there
    (peers send RTCP to RTP port + 1).  ``dtmf_pt``: telephone-event PT, sent
    and parsed.  ``placement``: "rtp" or "arrival" (module docstring).
    ``rt_priority``: SCHED_FIFO priority for the two threads, 0 = leave them.
    """

    def __init__(
        self,
        port: int | None = None,
        law: str = "ulaw",
        *,
        host: str = LOOPBACK,
        rtcp: bool = True,
        ssrc: int | None = None,
        dtmf_pt: int = DTMF_PT,
        placement: str = "rtp",
        rt_priority: int = 10,
    ) -> None:
        if placement not in ("rtp", "arrival"):
            raise ValueError("placement must be 'rtp' or 'arrival'")
        self.placement = placement
        self.rt_priority = rt_priority
        self.realtime_threads = 0  # how many of the 2 threads got SCHED_FIFO
        self.law = audio.normalize_law(law)
        self.pt = 0 if self.law == "ulaw" else 8
        self.dtmf_pt = dtmf_pt
        self.host = host
        if port is None:
            port = free_rtp_pair(host)[0]  # even port, odd one free for RTCP
        self._port = int(port)
        self._want_rtcp = rtcp
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc & 0xFFFFFFFF
        self._seq0 = secrets.randbits(15)
        self._ts0 = secrets.randbits(31)
        self._seq_next = self._seq0
        self._marker_pending = True

        self.rx: list[RxPacket] = []
        self.tx: list[TxPacket] = []
        self.t0: float | None = None
        self.t0_wall: float | None = None
        self.echo_late_samples = 0
        self.resyncs = 0
        self.anchor_shifts = 0
        self.rtcp_received = 0
        self.non_rtp_received = 0
        self.send_errors = 0
        self.kernel_timestamps = False
        self._wall_minus_perf = 0.0

        self._lock = threading.Lock()
        self._remote_set: Addr | None = None
        self._remote_learned: Addr | None = None
        self._remote_event = threading.Event()
        self._rx_line = _Timeline()
        self._built_upto = 0  # timeline samples [0, _built_upto) have been built into packets
        self._anchor: tuple[int, int, int, int] | None = None  # "rtp" placement: (ssrc, pos, rtp ts, packets seen)
        self._clips: list[_Clip] = []
        self._echo: tuple[int, float, np.ndarray] | None = None  # (D, gain, ir)
        self._dtmf: list[_Dtmf] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sock: socket.socket | None = None
        self._rtcp_sock: socket.socket | None = None
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def local_port(self) -> int:
        return self._port

    @property
    def local_addr(self) -> Addr:
        return (self.host, self._port)

    def start(self) -> "RtpPeer":
        """Bind the socket(s), fix ``t0`` and start the receive and 20 ms send threads."""
        if self._started:
            raise RuntimeError("RtpPeer already started")
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((self.host, self._port))
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            self.kernel_timestamps = True
        except OSError:
            self.kernel_timestamps = False
        if self._want_rtcp:
            self._rtcp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                self._rtcp_sock.bind((self.host, self._port + 1))
            except OSError:
                self._sock.close()
                self._rtcp_sock.close()
                raise
        self._started = True
        self._wall_minus_perf = _wall_minus_perf()
        self.t0 = time.perf_counter() + _START_LEAD_S
        self.t0_wall = self.t0 + self._wall_minus_perf
        self._threads = [
            threading.Thread(target=self._rx_loop, name=f"rtp-peer-rx-{self._port}", daemon=True),
            threading.Thread(target=self._tx_loop, name=f"rtp-peer-tx-{self._port}", daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop both threads and close the sockets; the records stay readable."""
        if not self._started or self._stop.is_set():
            return
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2.0)
        for s in (self._sock, self._rtcp_sock):
            if s is not None:
                s.close()

    def __enter__(self) -> "RtpPeer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def elapsed(self) -> float:
        """Seconds since ``t0`` (negative before tick 0)."""
        self._require_started()
        return time.perf_counter() - self.t0

    def sleep_until(self, at_s: float) -> None:
        """Sleep until timeline time ``at_s`` (seconds after ``t0``)."""
        self._require_started()
        delay = self.t0 + at_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)

    def _require_started(self) -> None:
        if self.t0 is None:
            raise RuntimeError("RtpPeer not started")

    # ------------------------------------------------------------------ remote

    def set_remote(self, host: str, port: int) -> None:
        """Destination to use until RTP from the far end teaches us its address."""
        with self._lock:
            self._remote_set = (host, int(port))

    @property
    def learned_remote(self) -> Addr | None:
        """Source address of the most recent RTP packet received (None before the first)."""
        return self._remote_learned

    @property
    def remote(self) -> Addr | None:
        """Where packets go now: the learned address, else the one from ``set_remote``."""
        return self._remote_learned or self._remote_set

    def wait_remote(self, timeout: float = 5.0) -> Addr:
        """Block until an RTP packet has been received; return its source. ``TimeoutError`` if none."""
        if not self._remote_event.wait(timeout):
            raise TimeoutError(f"no RTP received on {self.host}:{self._port} within {timeout}s")
        assert self._remote_learned is not None
        return self._remote_learned

    # ------------------------------------------------------------------ programming

    def play(self, pcm_8k: np.ndarray | Sequence[int], at_s: float) -> int:
        """Mix ``pcm_8k`` (8 kHz int16) into the source from timeline time ``at_s``; returns its start sample."""
        start = int(round(at_s * RATE))
        clip = _Clip(start, _to_float(pcm_8k))
        with self._lock:
            self._clips.append(clip)
        return start

    def echo(self, delay_ms: float, atten_db: float = 0.0, ir: np.ndarray | Sequence[float] | None = None) -> None:
        """Echo the received audio ``delay_ms`` later, ``atten_db`` quieter, through FIR ``ir``."""
        if delay_ms < MIN_ECHO_DELAY_MS:
            raise ValueError(f"echo delay must be >= {MIN_ECHO_DELAY_MS} ms (one packet), got {delay_ms}")
        taps = np.array([1.0]) if ir is None else _to_float(ir)
        if taps.size == 0:
            raise ValueError("ir must have at least one tap")
        cfg = (int(round(delay_ms * RATE / 1000.0)), 10.0 ** (-float(atten_db) / 20.0), taps)
        with self._lock:
            self._echo = cfg

    def echo_off(self) -> None:
        with self._lock:
            self._echo = None

    @property
    def echo_delay_samples(self) -> int | None:
        """The realised echo delay ``D`` in samples (``round(delay_ms * 8)``), or None when off."""
        cfg = self._echo
        return None if cfg is None else cfg[0]

    def send_dtmf(self, digit: str, at_s: float, duration_ms: int = 100, volume: int = 10) -> float:
        """Queue an RFC 4733 event from the tick nearest ``at_s`` (or the next free one); returns its start (s)."""
        build_telephone_event(digit, 0)  # validates the digit
        steps = max(1, int(duration_ms) // PTIME_MS)
        with self._lock:
            tick = max(int(round(at_s / _TICK_S)), self._built_upto // SAMPLES_PER_PACKET)
            for ev in self._dtmf:
                if tick < ev.end_tick and ev.start_tick < tick + steps + 2:
                    tick = ev.end_tick
            self._dtmf.append(_Dtmf(digit.upper(), tick, steps, volume))
            self._dtmf.sort(key=lambda e: e.start_tick)
        return tick * _TICK_S

    # ------------------------------------------------------------------ threads

    def _rx_loop(self) -> None:
        self.realtime_threads += _realtime_thread(self.rt_priority)
        socks = [s for s in (self._sock, self._rtcp_sock) if s is not None]
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                return
            for s in ready:
                try:
                    data, anc, _flags, src = s.recvmsg(4096, socket.CMSG_SPACE(_TIMESPEC.size))
                except OSError:
                    continue
                user = time.perf_counter()
                if s is self._rtcp_sock:
                    self.rtcp_received += 1
                    continue
                arrival = user
                for level, kind, cdata in anc:
                    if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(cdata) >= _TIMESPEC.size:
                        sec, nsec = _TIMESPEC.unpack_from(cdata)
                        kernel = sec + nsec * 1e-9 - self._wall_minus_perf
                        if -0.05 < user - kernel < 0.05:  # else the wall clock was stepped: keep ours
                            arrival = kernel
                self._on_datagram(data, src, arrival, user)

    def _on_datagram(self, data: bytes, src: Addr, arrival: float, user: float) -> None:
        arrival_wall = arrival + self._wall_minus_perf
        pkt = parse_rtp(data)
        if pkt is None:
            if len(data) >= 2 and 200 <= data[1] <= 204:
                self.rtcp_received += 1  # RTCP multiplexed on the RTP port
            else:
                self.non_rtp_received += 1
            return
        rec = RxPacket(arrival, arrival_wall, src, pkt.seq, pkt.ts, pkt.pt, pkt.marker, pkt.ssrc, pkt.payload,
                       arrival_user=user)
        law = audio.law_for_pt(pkt.pt)
        if law is not None:
            rec.pcm = audio.g711_decode(pkt.payload, law)
            rec.level = audio.dbfs(rec.pcm)
        elif pkt.pt == self.dtmf_pt:
            rec.event = parse_telephone_event(pkt.payload)
        with self._lock:
            if rec.pcm is not None and rec.pcm.size:
                pos = rec.arrival_pos = int(round((arrival - self.t0) * RATE))
                if self.placement == "rtp":
                    pos = self._rtp_position(pkt.ssrc, pkt.ts, pos)
                rec.pos = pos
                if pos >= 0:
                    self._rx_line.write(pos, rec.pcm.astype(np.float64))
                if self._echo is not None:
                    late = self._built_upto - (pos + self._echo[0])
                    if late > 0:
                        self.echo_late_samples += min(late, rec.pcm.size)
            self.rx.append(rec)
            self._remote_learned = (src[0], src[1])
        self._remote_event.set()

    def _rtp_position(self, ssrc: int, ts: int, arrival_pos: int) -> int:
        """Timeline position on the sender's RTP clock (see "rtp" placement in the module docstring)."""
        if self._anchor is not None and self._anchor[0] == ssrc:
            _, apos, ats, seen = self._anchor
            delta = ((ts - ats + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            predicted = apos + delta
            if abs(arrival_pos - predicted) <= RESYNC_SAMPLES:
                if seen < WARMUP_PACKETS:
                    if arrival_pos < predicted:  # earlier than the anchor: it had more transit/lateness
                        self.anchor_shifts += 1
                        self._anchor = (ssrc, arrival_pos, ts, seen + 1)
                        return arrival_pos
                    self._anchor = (ssrc, apos, ats, seen + 1)
                return predicted
            self.resyncs += 1
        self._anchor = (ssrc, arrival_pos, ts, 1)
        return arrival_pos

    def _tx_loop(self) -> None:
        self.realtime_threads += _realtime_thread(self.rt_priority)
        k = 0
        while not self._stop.is_set():
            sched = self.t0 + k * _TICK_S
            if not self._sleep_until(sched - self._build_lead()):
                return
            built = self._build_tick(k, sched)
            if not self._sleep_until(sched - _SPIN_S):
                return
            while time.perf_counter() < sched:  # the last 0.25 ms: sleep() overshoots ~0.1 ms
                os.sched_yield()  # releases the GIL on each turn
            self._transmit(built)
            k += 1

    def _sleep_until(self, deadline: float) -> bool:
        """Sleep until ``deadline`` (perf_counter); False if stop() was called meanwhile."""
        delay = deadline - time.perf_counter()
        if delay > 0.1:  # long waits stay interruptible; never happens on schedule
            if self._stop.wait(delay - 0.05):
                return False
            delay = deadline - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        return not self._stop.is_set()

    def _build_lead(self) -> float:
        """How early a packet is built: 1 ms, less when the echo delay leaves less than that beyond 20 ms."""
        cfg = self._echo
        if cfg is None:
            return _BUILD_LEAD_S
        return min(_BUILD_LEAD_S, max(0.0, cfg[0] / RATE - _TICK_S))

    def _build_tick(self, k: int, sched: float) -> TxPacket:
        n0 = k * SAMPLES_PER_PACKET
        n1 = n0 + SAMPLES_PER_PACKET
        ts = (self._ts0 + n0) & 0xFFFFFFFF
        with self._lock:
            dest = self._remote_learned or self._remote_set
            ev = next((e for e in self._dtmf if e.start_tick <= k < e.end_tick), None)
            source = np.zeros(SAMPLES_PER_PACKET)
            for clip in self._clips:
                lo, hi = max(n0, clip.start), min(n1, clip.start + clip.pcm.size)
                if hi > lo:
                    source[lo - n0 : hi - n0] += clip.pcm[lo - clip.start : hi - clip.start]
            echo = np.zeros(SAMPLES_PER_PACKET)
            if self._echo is not None:
                d, gain, ir = self._echo
                x = self._rx_line.read(n0 - d - (ir.size - 1), n1 - d)
                echo = gain * (np.convolve(x, ir, mode="valid") if ir.size > 1 else x)
            self._built_upto = n1
            self._clips = [c for c in self._clips if c.start + c.pcm.size > n1]
            if ev is not None and k == ev.end_tick - 1:
                self._dtmf = [e for e in self._dtmf if e is not ev]
        if ev is not None:
            step = k - ev.start_tick
            last = ev.steps - 1
            duration = (min(step, last) + 1) * SAMPLES_PER_PACKET
            payload = build_telephone_event(ev.digit, duration, end=step >= last, volume=ev.volume)
            ts = (self._ts0 + ev.start_tick * SAMPLES_PER_PACKET) & 0xFFFFFFFF
            return TxPacket(k, sched, 0.0, 0.0, None, ts, self.dtmf_pt, step == 0, payload, dest,
                            event=parse_telephone_event(payload))
        mix = _clip16(source + echo)
        return TxPacket(k, sched, 0.0, 0.0, None, ts, self.pt, False, audio.g711_encode(mix, self.law), dest,
                        source=_clip16(source), echo=_clip16(echo), pcm=mix, level=audio.dbfs(mix))

    def _transmit(self, rec: TxPacket) -> None:
        if rec.dest is not None:
            rec.seq = self._seq_next
            self._seq_next = (self._seq_next + 1) & 0xFFFF
            if rec.pt == self.pt and self._marker_pending:
                rec.marker, self._marker_pending = True, False
            data = build_rtp(rec.pt, rec.seq, rec.ts, self.ssrc, rec.payload, marker=rec.marker)
            rec.time, rec.time_wall = time.perf_counter(), time.time()
            try:
                self._sock.sendto(data, rec.dest)
            except OSError:
                self.send_errors += 1
        else:
            rec.time, rec.time_wall = time.perf_counter(), time.time()
        self.tx.append(rec)

    # ------------------------------------------------------------------ records & analysis

    def rx_audio(self) -> list[RxPacket]:
        """Received G.711 packets in arrival order."""
        return [p for p in list(self.rx) if p.pcm is not None]

    def rx_events(self) -> list[RxPacket]:
        """Received telephone-event packets (PT ``dtmf_pt``)."""
        return [p for p in list(self.rx) if p.event is not None]

    def tx_sent(self) -> list[TxPacket]:
        """Packets actually transmitted, in order."""
        return [p for p in list(self.tx) if p.sent]

    def received_pcm(self, timeline: bool = False) -> np.ndarray:
        """Decoded received audio: packets concatenated in arrival order, or (``timeline``) as placed on the
        timeline from t0 (see ``placement``) - the echo's delay line."""
        if timeline:
            with self._lock:
                return _clip16(self._rx_line.read(0, self._rx_line.length))
        parts = [p.pcm for p in self.rx_audio()]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def _sent_timeline(self, attr: str) -> np.ndarray:
        packets = list(self.tx)
        out = np.zeros(len(packets) * SAMPLES_PER_PACKET, dtype=np.int16)
        for p in packets:
            comp = getattr(p, attr)
            if p.sent and comp is not None:
                out[p.start_sample : p.start_sample + SAMPLES_PER_PACKET] = comp
        return out

    def sent_pcm(self) -> np.ndarray:
        """Mixed audio of the transmitted packets on the timeline (index 0 = t0; zeros elsewhere)."""
        return self._sent_timeline("pcm")

    def sent_source_pcm(self) -> np.ndarray:
        """SOURCE component of the transmitted packets on the timeline."""
        return self._sent_timeline("source")

    def sent_echo_pcm(self) -> np.ndarray:
        """ECHO component of the transmitted packets on the timeline."""
        return self._sent_timeline("echo")

    def first_time(
        self,
        level_dbfs: float,
        after: float | None = None,
        direction: str = "rx",
        component: str = "pcm",
        clock: str = "perf",
        span_ms: int = 20,
    ) -> float | None:
        """Onset: wire time of the first sample louder than ``level_dbfs`` that starts a loud 20 ms stretch.

        ``direction`` "rx" scans received audio packets (time = arrival + j/8000),
        "tx" transmitted ones (time = actual send time + j/8000; ``component``
        "pcm" (mix), "source" or "echo").  Only packets whose time is >=
        ``after`` count (same clock as the result).  A sample qualifies when
        ``|x| >= A`` and the 160 samples from it have an RMS above ``A``, with
        ``A`` the amplitude of ``level_dbfs`` (full scale 32768); with ``span_ms``
        > 20, each following 20 ms up to ``span_ms`` must be that loud too (a
        speech onset, not a breath or a click before it).  Returns
        ``time.perf_counter()`` seconds (``clock="wall"``: ``time.time()``), or
        None if nothing qualifies.
        """
        if direction == "rx":
            pkts = [(p.arrival, p.arrival_wall, p.pcm) for p in self.rx_audio()]
        elif direction == "tx":
            if component not in ("pcm", "source", "echo"):
                raise ValueError("component must be pcm, source or echo")
            pkts = [(p.time, p.time_wall, getattr(p, component)) for p in self.tx_sent() if p.pcm is not None]
        else:
            raise ValueError("direction must be 'rx' or 'tx'")
        wall = clock == "wall"
        if after is not None:
            pkts = [p for p in pkts if (p[1] if wall else p[0]) >= after]
        if not pkts:
            return None
        x = np.concatenate([p[2].astype(np.float64) for p in pkts])
        times = np.concatenate([(p[1] if wall else p[0]) + np.arange(p[2].size) / RATE for p in pkts])
        amp = 32768.0 * 10.0 ** (level_dbfs / 20.0)
        csum = np.concatenate([[0.0], np.cumsum(x * x)])
        idx = np.arange(x.size)
        end = np.minimum(idx + SAMPLES_PER_PACKET, x.size)
        power = (csum[end] - csum[idx]) / (end - idx)
        ok = (np.abs(x) >= amp) & (power > amp * amp)
        for k in range(1, max(1, span_ms // 20)):
            later = np.zeros_like(ok)
            shift = k * SAMPLES_PER_PACKET
            later[: max(0, x.size - shift)] = power[shift:] > amp * amp
            ok &= later
        hit = np.flatnonzero(ok)
        return float(times[hit[0]]) if hit.size else None

    def stats(self) -> dict[str, float | int | None]:
        """Counters and send-schedule lateness (ms) for assertion messages."""
        sent = self.tx_sent()
        late = np.array([(p.time - p.sched) * 1000.0 for p in self.tx]) if self.tx else np.zeros(0)
        return {
            "ticks": len(self.tx),
            "sent": len(sent),
            "received": len(self.rx),
            "received_audio": len(self.rx_audio()),
            "received_events": len(self.rx_events()),
            "rtcp_received": self.rtcp_received,
            "non_rtp_received": self.non_rtp_received,
            "send_errors": self.send_errors,
            "echo_late_samples": self.echo_late_samples,
            "late_ms_median": float(np.median(late)) if late.size else None,
            "late_ms_max": float(late.max()) if late.size else None,
        }


# --------------------------------------------------------------------------- SIPp signalling


class ExternalMediaCall:
    """``uac_external_media.xml`` run in a background thread with the SDP pointing at ``peer``.

    ``hold_ms`` > 0: SIPp hangs up after ``hold_ms`` (unless the far end does
    first); ``hold_ms`` <= 0: SIPp waits for the far end's BYE.  The far end's
    RTP address from the 200's SDP is read from SIPp's log file while the call
    is up (``remote_sdp()``), so the peer can send before it has heard anything.
    """

    SCENARIO = "uac_external_media"
    _REMOTE_RE = re.compile(r"^remote_rtp (\S+) (\d+)\s*$", re.M)

    def __init__(
        self,
        target: str,
        peer: RtpPeer,
        *,
        hold_ms: int = 0,
        timeout: float = 30.0,
        trace_dir: str | Path | None = None,
        service: str = "sipbridge",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.target = target
        self.peer = peer
        self.hold_ms = int(hold_ms)
        self.timeout = timeout
        self.trace_dir = Path(trace_dir) if trace_dir else Path(tempfile.mkdtemp(prefix="sipp-extmedia-"))
        self.trace_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.trace_dir / f"{self.SCENARIO}_logs.log"  # run_sipp's -log_file naming
        self.service = service
        self.extra_args = tuple(extra_args)
        self.result = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "ExternalMediaCall":
        from .sipp import run_sipp  # local import: sipp.py is heavier and optional for pure peer tests

        def run() -> None:
            try:
                self.result = run_sipp(
                    self.SCENARIO,
                    self.target,
                    keys={"rtp_ip": self.peer.host, "rtp_port": self.peer.local_port},
                    hold_ms=self.hold_ms,
                    timeout=self.timeout,
                    service=self.service,
                    extra_args=self.extra_args,
                    trace_dir=self.trace_dir,
                )
            except BaseException as exc:  # surfaced by wait()
                self.error = exc

        self._thread = threading.Thread(target=run, name="sipp-external-media", daemon=True)
        self._thread.start()
        return self

    def log_lines(self) -> list[str]:
        """Lines SIPp's <log> actions wrote so far (``remote_rtp ...``, ``bye_sent``, ``bye_received``)."""
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def remote_sdp(self, timeout: float = 10.0) -> Addr:
        """The far end's RTP address from the 200's SDP, as soon as SIPp has logged it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                m = self._REMOTE_RE.search(self.log_path.read_text(errors="replace"))
            except OSError:
                m = None
            if m:
                return (m.group(1), int(m.group(2)))
            if self._thread is not None and not self._thread.is_alive():
                why = self.result.describe() if self.result else repr(self.error)
                raise RuntimeError("SIPp ended without a 200 with SDP:\n" + why)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no remote_rtp line in {self.log_path} within {timeout}s")
            time.sleep(0.005)

    def connect_peer(self, timeout: float = 10.0) -> Addr:
        """``peer.set_remote()`` to the address in the 200's SDP; returns it."""
        addr = self.remote_sdp(timeout)
        self.peer.set_remote(*addr)
        return addr

    def wait(self, timeout: float | None = None):
        """Join SIPp and return its ``SippResult`` (re-raising anything ``run_sipp`` raised)."""
        assert self._thread is not None, "not started"
        self._thread.join(self.timeout + 15 if timeout is None else timeout)
        if self._thread.is_alive():
            raise TimeoutError("SIPp still running")
        if self.error is not None:
            raise self.error
        return self.result

    def __enter__(self) -> "ExternalMediaCall":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._thread.join(self.timeout + 15)
