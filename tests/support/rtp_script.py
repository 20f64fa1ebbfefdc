"""A scripted RTP caller for media-fault tests: a steady 20 ms G.711 stream the test can bend.

``ScriptedRtpPeer`` is the phone behind ``rtp_peer.ExternalMediaCall`` (which only needs
``host``, ``local_port`` and ``set_remote``) when a test wants to misbehave on purpose::

    with ScriptedRtpPeer() as peer, ExternalMediaCall(bridge.target, peer, hold_ms=3000) as call:
        call.connect_peer(5)
        peer.set_seq(65530)          # the stream crosses 65535 -> 0 in 6 packets
        peer.drop(10)                # a loss burst: 10 ticks built (seq/ts advance) but not sent
        peer.send_raw(b"\\x00" * 5)  # any datagram, now, from the stream's own source port
        peer.play(pcm_8k)            # speech from the next tick on
        peer.rx_since(t)             # packets the far end sent us since perf_counter() t

The sender thread keeps an absolute 20 ms schedule from ``start()``; each tick sends one PCMU
(or PCMA) packet of the queued audio (silence when none) with consecutive sequence numbers and
timestamps and one SSRC; ``silence()`` stops the stream (ticks still advance seq/ts, like a
muted phone that still counts time). Packets go to ``set_remote()``'s address until RTP from
the far end teaches us its source (symmetric RTP). Counters: ``sent``, ``dropped``, ``raw_sent``;
``rx_times`` holds the arrival time of every datagram received.
"""

from __future__ import annotations

import secrets
import select
import socket
import threading
import time

import numpy as np

from . import audio
from .ports import LOOPBACK, free_rtp_pair
from .rtp import build_rtp

TICK_S = 0.02
SAMPLES = 160


class ScriptedRtpPeer:
    """One UDP socket: a 20 ms G.711 sender with hooks for faults, and a receive counter."""

    def __init__(self, host: str = LOOPBACK, law: str = "ulaw", ssrc: int | None = None):
        self.host = host
        self.law = audio.normalize_law(law)
        self.pt = 0 if self.law == "ulaw" else 8
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self.local_port = free_rtp_pair(host)[0]
        self.sent = 0
        self.dropped = 0
        self.raw_sent = 0
        self.rx_times: list[float] = []
        self._seq = secrets.randbits(15)
        self._ts = secrets.randbits(31)
        self._drop = 0
        self._muted = False
        self._audio = np.zeros(0, dtype=np.int16)
        self._remote_set: tuple[str, int] | None = None
        self._remote_learned: tuple[str, int] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, self.local_port))
        self._threads = [threading.Thread(target=self._tx, daemon=True),
                         threading.Thread(target=self._rx, daemon=True)]

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "ScriptedRtpPeer":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self._sock.close()

    def __enter__(self) -> "ScriptedRtpPeer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- control -----------------------------------------------------------------------------
    def set_remote(self, host: str, port: int) -> None:
        with self._lock:
            self._remote_set = (host, int(port))

    @property
    def remote(self) -> tuple[str, int] | None:
        return self._remote_learned or self._remote_set

    def set_seq(self, seq: int) -> None:
        """The next packet's sequence number."""
        with self._lock:
            self._seq = seq & 0xFFFF

    def drop(self, ticks: int) -> None:
        """Build but do not send the next ``ticks`` packets (a loss burst)."""
        with self._lock:
            self._drop += ticks

    def silence(self, muted: bool = True) -> None:
        """Stop (or resume) sending entirely; seq and timestamp keep counting."""
        with self._lock:
            self._muted = muted

    def play(self, pcm_8k) -> None:
        """Queue 8 kHz int16 audio after what is queued already."""
        with self._lock:
            self._audio = np.concatenate([self._audio, np.asarray(pcm_8k, dtype=np.int16)])

    def queued_s(self) -> float:
        return self._audio.size / audio.RATE

    def send_raw(self, data: bytes) -> None:
        """Send one datagram now, from the stream's own port, to the current remote."""
        dest = self.remote
        if dest is None:
            raise RuntimeError("no remote address yet")
        self._sock.sendto(bytes(data), dest)
        self.raw_sent += 1

    def stream_state(self) -> tuple[int, int]:
        """``(next seq, next timestamp)`` of the steady stream."""
        with self._lock:
            return self._seq, self._ts

    def rx_since(self, t: float) -> int:
        """Datagrams received at or after ``time.perf_counter()`` value ``t``."""
        return sum(1 for x in list(self.rx_times) if x >= t)

    def wait_rx(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.rx_times:
            if time.monotonic() > deadline:
                raise TimeoutError("no RTP from the far end")
            time.sleep(0.01)

    # -- threads -----------------------------------------------------------------------------
    def _next_packet(self) -> tuple[bytes | None, tuple[str, int] | None]:
        with self._lock:
            chunk = self._audio[:SAMPLES]
            self._audio = self._audio[SAMPLES:]
            if chunk.size < SAMPLES:
                chunk = np.concatenate([chunk, np.zeros(SAMPLES - chunk.size, dtype=np.int16)])
            seq, ts = self._seq, self._ts
            self._seq = (seq + 1) & 0xFFFF
            self._ts = (ts + SAMPLES) & 0xFFFFFFFF
            skip = self._muted or self._drop > 0
            if self._drop > 0:
                self._drop -= 1
                self.dropped += 1
            dest = self._remote_learned or self._remote_set
        if skip or dest is None:
            return None, dest
        payload = audio.g711_encode(chunk, self.law)
        return build_rtp(self.pt, seq, ts, self.ssrc, payload, marker=self.sent == 0), dest

    def _tx(self) -> None:
        t0 = time.perf_counter()
        k = 0
        while not self._stop.is_set():
            delay = t0 + k * TICK_S - time.perf_counter()
            if delay > 0 and self._stop.wait(delay):
                return
            k += 1
            packet, dest = self._next_packet()
            if packet is not None:
                try:
                    self._sock.sendto(packet, dest)
                    self.sent += 1
                except OSError:
                    pass

    def _rx(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._sock], [], [], 0.05)
                if not ready:
                    continue
                _data, src = self._sock.recvfrom(4096)
            except (OSError, ValueError):
                return
            self.rx_times.append(time.perf_counter())
            self._remote_learned = (src[0], src[1])
