"""Free-port helpers for tests that run SIP/RTP endpoints on 127.0.0.1.

Everything here binds to the loopback address only.  Candidate ports are drawn
at random from a band *below* the kernel's ephemeral range (see
``/proc/sys/net/ipv4/ip_local_port_range``) so that a port we hand out is not
immediately grabbed by some unrelated client socket.  A port is only reported
free after a real ``bind()`` on it succeeded, but the check is inherently racy
(the socket is closed before the caller binds it), so callers should pick the
port as late as possible.

Public API::

    LOOPBACK = "127.0.0.1"
    is_udp_port_free(port, host=LOOPBACK) -> bool
    is_tcp_port_free(port, host=LOOPBACK) -> bool
    free_udp_port(host=LOOPBACK) -> int
    free_tcp_port(host=LOOPBACK) -> int
    free_port(udp=True, tcp=False, host=LOOPBACK) -> int
    free_port_block(count, align=2, udp=True, tcp=False, host=LOOPBACK) -> int
    free_rtp_pair(host=LOOPBACK) -> tuple[int, int]     # (even RTP, odd RTCP)
"""

from __future__ import annotations

import random
import socket
import threading
import time

__all__ = [
    "LOOPBACK",
    "is_udp_port_free",
    "is_tcp_port_free",
    "free_udp_port",
    "free_tcp_port",
    "free_port",
    "free_port_block",
    "free_rtp_pair",
]

LOOPBACK = "127.0.0.1"

_DEFAULT_LOW = 20000
_ATTEMPTS = 500
_rng = random.Random()
# ports handed out lately (port -> monotonic time): not given twice while the test that got
# them may still be starting what binds them. Forgotten after HANDED_OUT_S: a process that
# keeps every port it ever handed out runs out of its band in a long suite (it did: "no
# block of 200 free ports" near the end of a 1,800-test run).
HANDED_OUT_S = 120.0
_handed_out: dict[int, float] = {}
_lock = threading.Lock()


def _ephemeral_low() -> int:
    """Return the first port of the kernel's ephemeral range (32768 if unknown)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _band() -> tuple[int, int]:
    """Return the inclusive (low, high) band from which candidates are drawn."""
    high = _ephemeral_low() - 1
    low = _DEFAULT_LOW if high - _DEFAULT_LOW > 2000 else 10000
    return low, high


def _can_bind(kind: int, port: int, host: str) -> bool:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            # Mirror what servers do, so TIME_WAIT leftovers do not count as busy.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def is_udp_port_free(port: int, host: str = LOOPBACK) -> bool:
    """True if a UDP socket can currently be bound to ``host:port``."""
    return _can_bind(socket.SOCK_DGRAM, port, host)


def is_tcp_port_free(port: int, host: str = LOOPBACK) -> bool:
    """True if a TCP socket can currently be bound to ``host:port``."""
    return _can_bind(socket.SOCK_STREAM, port, host)


def _all_free(first: int, count: int, udp: bool, tcp: bool, host: str) -> bool:
    for port in range(first, first + count):
        if _handed_out.get(port, -HANDED_OUT_S) > time.monotonic() - HANDED_OUT_S:
            return False
        if udp and not is_udp_port_free(port, host):
            return False
        if tcp and not is_tcp_port_free(port, host):
            return False
    return True


def free_port_block(
    count: int, align: int = 2, udp: bool = True, tcp: bool = False, host: str = LOOPBACK
) -> int:
    """Return the first port of ``count`` consecutive ports that are all free.

    The first port is a multiple of ``align`` (2 by default, so RTP ports are
    even).  Raises ``RuntimeError`` if nothing was found.
    """
    if count < 1 or align < 1:
        raise ValueError("count and align must be >= 1")
    low, high = _band()
    with _lock:
        for _ in range(_ATTEMPTS):
            first = _rng.randrange(low, high - count + 1)
            first -= first % align
            if first < low:
                continue
            if _all_free(first, count, udp, tcp, host):
                now = time.monotonic()
                for port in [p for p, t in _handed_out.items() if t <= now - HANDED_OUT_S]:
                    del _handed_out[port]
                _handed_out.update(dict.fromkeys(range(first, first + count), now))
                return first
    raise RuntimeError(f"no block of {count} free ports found on {host}")


def free_port(udp: bool = True, tcp: bool = False, host: str = LOOPBACK) -> int:
    """Return one port that is free for UDP (and for TCP too if ``tcp``)."""
    return free_port_block(1, align=1, udp=udp, tcp=tcp, host=host)


def free_udp_port(host: str = LOOPBACK) -> int:
    """Return a port that is currently free for UDP on ``host``."""
    return free_port(udp=True, tcp=False, host=host)


def free_tcp_port(host: str = LOOPBACK) -> int:
    """Return a port that is currently free for TCP on ``host``."""
    return free_port(udp=False, tcp=True, host=host)


def free_rtp_pair(host: str = LOOPBACK) -> tuple[int, int]:
    """Return ``(rtp, rtcp)``: an even UDP port and the odd one after it, both free."""
    first = free_port_block(2, align=2, udp=True, host=host)
    return first, first + 1
