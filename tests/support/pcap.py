"""Minimal classic-libpcap reader/writer for UDP traffic (no third-party deps).

Reading understands classic pcap files in both byte orders, with microsecond
or nanosecond timestamps, and the link types Ethernet (1, with 802.1Q/QinQ
tags), BSD null/loopback (0, host byte order), OpenBSD loop (108), raw IP
(101, 12, 14), IPv4 (228), IPv6 (229), Linux cooked SLL (113) and SLL2 (276).
IPv4 and IPv6 (without extension headers) are decoded; only the first fragment
of a fragmented datagram is seen.  Anything that is not UDP is skipped, and a
truncated trailing record just ends the iteration.  pcapng is not supported
(``tcpdump -w`` writes classic pcap).

Writing always produces Ethernet (link type 1) + IPv4 + UDP frames with valid
IP and UDP checksums -- the format SIPp's ``play_pcap_audio`` expects.

Public API::

    @dataclass(frozen=True) UdpDatagram(src, dst, sport, dport, ts, payload)
        .src_addr -> (src, sport) ; .dst_addr -> (dst, dport)
    read_pcap(source: str | Path | bytes) -> list[UdpDatagram]
    iter_udp(source) -> Iterator[UdpDatagram]
    iter_records(data: bytes) -> Iterator[tuple[float, int, bytes]]   # (ts, linktype, frame)
    pcap_linktype(source) -> int
    write_pcap(path, datagrams: Iterable[UdpDatagram], snaplen=65535) -> int  # packets written
    udp_frame(d: UdpDatagram, ip_id=0) -> bytes                       # one Ethernet frame
    write_rtp_pcap(path, rtp_packets: Sequence[bytes], *, interval=0.020, start_ts=..., src=..., dst=...) -> int
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

__all__ = [
    "UdpDatagram",
    "read_pcap",
    "iter_udp",
    "iter_records",
    "pcap_linktype",
    "write_pcap",
    "udp_frame",
    "write_rtp_pcap",
    "LINKTYPE_NULL",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_RAW",
    "LINKTYPE_LOOP",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL2",
]

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
_RAW_ALIASES = {LINKTYPE_RAW, 12, 14}  # DLT_RAW differs between OSes

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_PCAPNG = 0x0A0D0D0A

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN = {0x8100, 0x88A8, 0x9100}
_IPPROTO_UDP = 17


@dataclass(frozen=True)
class UdpDatagram:
    """One UDP datagram seen in (or destined for) a capture; ``ts`` is epoch seconds."""

    src: str
    dst: str
    sport: int
    dport: int
    ts: float
    payload: bytes

    @property
    def src_addr(self) -> tuple[str, int]:
        return (self.src, self.sport)

    @property
    def dst_addr(self) -> tuple[str, int]:
        return (self.dst, self.dport)


# --------------------------------------------------------------------------- reading


def _load(source: str | Path | bytes | bytearray | memoryview) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    return Path(source).read_bytes()


def _header(data: bytes) -> tuple[str, float, int]:
    """Return (endianness prefix, timestamp fraction divisor, linktype)."""
    if len(data) < 24:
        raise ValueError("not a pcap file: shorter than the 24-byte global header")
    for endian in ("<", ">"):
        (magic,) = struct.unpack_from(endian + "I", data, 0)
        if magic in (_MAGIC_US, _MAGIC_NS):
            divisor = 1e6 if magic == _MAGIC_US else 1e9
            (network,) = struct.unpack_from(endian + "I", data, 20)
            # Upper bits may carry FCS info (see pcap-savefile(5)); link type is the low 16.
            return endian, divisor, network & 0xFFFF
    (magic,) = struct.unpack_from("<I", data, 0)
    if magic == _PCAPNG:
        raise ValueError("pcapng is not supported; write classic pcap (tcpdump -w does)")
    raise ValueError("not a pcap file: bad magic number")


def pcap_linktype(source: str | Path | bytes) -> int:
    """Return the link-layer type recorded in a pcap file's global header."""
    return _header(_load(source))[2]


def iter_records(data: bytes) -> Iterator[tuple[float, int, bytes]]:
    """Yield ``(timestamp, linktype, captured frame bytes)`` for each record."""
    endian, divisor, linktype = _header(data)
    rec = struct.Struct(endian + "IIII")
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = rec.unpack_from(data, pos)
        pos += 16
        if pos + incl > len(data):
            return  # truncated last record (capture killed mid-write)
        yield sec + frac / divisor, linktype, data[pos : pos + incl]
        pos += incl


def _network_layer(linktype: int, frame: bytes) -> tuple[int, bytes] | None:
    """Strip the link-layer header; return (ethertype-ish, network packet) or None."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        (etype,) = struct.unpack_from("!H", frame, 12)
        pos = 14
        while etype in _ETH_VLAN:
            if len(frame) < pos + 4:
                return None
            (etype,) = struct.unpack_from("!H", frame, pos + 2)
            pos += 4
        return etype, frame[pos:]
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(frame) < 4:
            return None
        # NULL stores the AF in the capturing host's byte order; accept either.
        le, be = struct.unpack_from("<I", frame, 0)[0], struct.unpack_from(">I", frame, 0)[0]
        family = le if le < 256 else be
        if family == 2:
            return _ETH_IPV4, frame[4:]
        if family in (10, 24, 28, 30):  # AF_INET6 on Linux / BSDs / macOS
            return _ETH_IPV6, frame[4:]
        return None
    if linktype in _RAW_ALIASES or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not frame:
            return None
        version = frame[0] >> 4
        return (_ETH_IPV4 if version == 4 else _ETH_IPV6 if version == 6 else -1), frame
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        (etype,) = struct.unpack_from("!H", frame, 14)
        return etype, frame[16:]
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None
        (etype,) = struct.unpack_from("!H", frame, 0)
        return etype, frame[20:]
    return None


def _udp_from_ip(etype: int, pkt: bytes) -> tuple[str, str, bytes] | None:
    """Return (src, dst, udp segment) for an IPv4/IPv6 packet carrying UDP."""
    if etype == _ETH_IPV4:
        if len(pkt) < 20 or pkt[0] >> 4 != 4:
            return None
        ihl = (pkt[0] & 0x0F) * 4
        total_len, frag = struct.unpack_from("!H2xH", pkt, 2)
        if ihl < 20 or len(pkt) < ihl or pkt[9] != _IPPROTO_UDP:
            return None
        if frag & 0x1FFF:  # not the first fragment
            return None
        end = min(len(pkt), total_len) if total_len >= ihl else len(pkt)
        src = str(ipaddress.IPv4Address(pkt[12:16]))
        dst = str(ipaddress.IPv4Address(pkt[16:20]))
        return src, dst, pkt[ihl:end]
    if etype == _ETH_IPV6:
        if len(pkt) < 40 or pkt[0] >> 4 != 6 or pkt[6] != _IPPROTO_UDP:
            return None
        (plen,) = struct.unpack_from("!H", pkt, 4)
        src = str(ipaddress.IPv6Address(pkt[8:24]))
        dst = str(ipaddress.IPv6Address(pkt[24:40]))
        return src, dst, pkt[40 : 40 + plen]
    return None


def iter_udp(source: str | Path | bytes) -> Iterator[UdpDatagram]:
    """Yield every UDP datagram in a pcap file (path or raw bytes)."""
    for ts, linktype, frame in iter_records(_load(source)):
        net = _network_layer(linktype, frame)
        if net is None:
            continue
        ip = _udp_from_ip(*net)
        if ip is None:
            continue
        src, dst, seg = ip
        if len(seg) < 8:
            continue
        sport, dport, ulen = struct.unpack_from("!HHH", seg, 0)
        end = min(len(seg), ulen) if ulen >= 8 else len(seg)
        yield UdpDatagram(src=src, dst=dst, sport=sport, dport=dport, ts=ts, payload=bytes(seg[8:end]))


def read_pcap(source: str | Path | bytes) -> list[UdpDatagram]:
    """Read all UDP datagrams of a classic pcap file into a list."""
    return list(iter_udp(source))


# --------------------------------------------------------------------------- writing


def _inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


_SRC_MAC = bytes.fromhex("020000000001")
_DST_MAC = bytes.fromhex("020000000002")


def udp_frame(d: UdpDatagram, ip_id: int = 0) -> bytes:
    """Encode one datagram as an Ethernet/IPv4/UDP frame with valid checksums."""
    src = ipaddress.IPv4Address(d.src).packed
    dst = ipaddress.IPv4Address(d.dst).packed
    ulen = 8 + len(d.payload)
    if ulen > 0xFFFF - 20:
        raise ValueError("payload too large for one UDP datagram")
    pseudo = src + dst + struct.pack("!BBH", 0, _IPPROTO_UDP, ulen)
    udp_nock = struct.pack("!HHHH", d.sport, d.dport, ulen, 0) + d.payload
    csum = _inet_checksum(pseudo + udp_nock) or 0xFFFF
    udp = struct.pack("!HHHH", d.sport, d.dport, ulen, csum) + d.payload
    ip_nock = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, ip_id & 0xFFFF, 0x4000, 64, _IPPROTO_UDP, 0, src, dst)
    ip = ip_nock[:10] + struct.pack("!H", _inet_checksum(ip_nock)) + ip_nock[12:]
    return _DST_MAC + _SRC_MAC + struct.pack("!H", _ETH_IPV4) + ip + udp


def write_pcap(path: str | Path, datagrams: Iterable[UdpDatagram], snaplen: int = 65535) -> int:
    """Write datagrams as a little-endian, microsecond, Ethernet pcap; return the count."""
    out = bytearray(struct.pack("<IHHiIII", _MAGIC_US, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
    n = 0
    for n, d in enumerate(datagrams, start=1):
        frame = udp_frame(d, ip_id=n)
        usec_total = int(round(d.ts * 1e6))
        sec, usec = divmod(usec_total, 1_000_000)
        out += struct.pack("<IIII", sec, usec, min(len(frame), snaplen), len(frame))
        out += frame[:snaplen]
    Path(path).write_bytes(bytes(out))
    return n


def write_rtp_pcap(
    path: str | Path,
    rtp_packets: Sequence[bytes],
    *,
    interval: float = 0.020,
    start_ts: float = 1_700_000_000.0,
    src: tuple[str, int] = ("10.0.0.1", 6000),
    dst: tuple[str, int] = ("10.0.0.2", 6000),
    times: Sequence[float] | None = None,
) -> int:
    """Write RTP packets (already serialized) spaced ``interval`` s apart (or at ``times``)."""
    if times is not None and len(times) != len(rtp_packets):
        raise ValueError("times must have one entry per packet")
    datagrams = (
        UdpDatagram(
            src=src[0],
            dst=dst[0],
            sport=src[1],
            dport=dst[1],
            ts=(start_ts + i * interval) if times is None else start_ts + times[i],
            payload=bytes(p),
        )
        for i, p in enumerate(rtp_packets)
    )
    return write_pcap(path, datagrams)
