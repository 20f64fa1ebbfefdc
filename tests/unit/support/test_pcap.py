"""Tests for tests/support/pcap.py: classic pcap reading (many link types) and writing."""

import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import pcap, rtp, system
from tests.support.pcap import UdpDatagram

SIPP_PCAP_DIR = system.SIPP_SHARE


def _dgram(i=0, payload=b"hello"):
    return UdpDatagram("127.0.0.1", "127.0.0.2", 4000 + i, 5000 + i, 1_700_000_000.25 + i * 0.02, payload)


def _ip_packet(d: UdpDatagram) -> bytes:
    """The IPv4 packet inside the Ethernet frame pcap.udp_frame() builds."""
    return pcap.udp_frame(d)[14:]


def _classic(linktype: int, frames, endian="<", nanos=False, ts=1_700_000_000.5) -> bytes:
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for i, frame in enumerate(frames):
        sec = int(ts) + i
        frac = 500_000_000 if nanos else 500_000
        out += struct.pack(endian + "IIII", sec, frac, len(frame), len(frame)) + frame
    return out


def test_write_then_read_round_trip(tmp_path):
    """Datagrams written by write_pcap() are read back with identical fields (µs timestamps)."""
    dgrams = [_dgram(i, bytes([i]) * (i + 1)) for i in range(50)]
    path = tmp_path / "x.pcap"
    assert pcap.write_pcap(path, dgrams) == 50
    assert pcap.pcap_linktype(path) == pcap.LINKTYPE_ETHERNET
    back = pcap.read_pcap(path)
    assert [(d.src, d.dst, d.sport, d.dport, d.payload) for d in back] == [
        (d.src, d.dst, d.sport, d.dport, d.payload) for d in dgrams
    ]
    assert all(abs(a.ts - b.ts) < 1e-6 for a, b in zip(back, dgrams))


@given(st.lists(st.binary(max_size=300), max_size=20))
@settings(max_examples=50, deadline=None)
def test_round_trip_property(payloads):
    """Any list of payloads survives write_pcap() + read_pcap() from bytes."""
    import tempfile

    dgrams = [_dgram(i, p) for i, p in enumerate(payloads)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p.pcap"
        pcap.write_pcap(path, dgrams)
        assert [x.payload for x in pcap.read_pcap(path.read_bytes())] == payloads


def test_written_checksums_are_valid():
    """IPv4 header and UDP checksums written by udp_frame() verify to zero."""
    d = _dgram(payload=b"odd-length payload!")
    frame = pcap.udp_frame(d)
    ip = frame[14:34]
    assert pcap._inet_checksum(ip) == 0
    udp = frame[34:]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    assert pcap._inet_checksum(pseudo + udp) == 0


def test_tcpdump_accepts_written_file(tmp_path):
    """tcpdump reads our pcap and reports the UDP checksums as correct."""
    path = tmp_path / "x.pcap"
    pcap.write_pcap(path, [_dgram(i) for i in range(3)])
    out = subprocess.run(["tcpdump", "-nn", "-vv", "-r", str(path)], capture_output=True, text=True).stdout
    assert out.count("udp sum ok") == 3


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nanos", [False, True])
def test_byte_orders_and_nanosecond_timestamps(endian, nanos):
    """Both byte orders and both timestamp resolutions give the same datagrams and times."""
    data = _classic(pcap.LINKTYPE_ETHERNET, [pcap.udp_frame(_dgram(0)), pcap.udp_frame(_dgram(1))], endian, nanos)
    got = pcap.read_pcap(data)
    assert [g.sport for g in got] == [4000, 4001]
    assert got[0].ts == pytest.approx(1_700_000_000.5, abs=1e-6)
    assert got[1].ts == pytest.approx(1_700_000_001.5, abs=1e-6)


def _sll(ip: bytes) -> bytes:
    return struct.pack("!HHH8sH", 0, 772, 6, bytes(8), 0x0800) + ip


def _sll2(ip: bytes) -> bytes:
    return struct.pack("!HHIHBB8s", 0x0800, 0, 1, 772, 0, 6, bytes(8)) + ip


def _vlan(d: UdpDatagram) -> bytes:
    eth = pcap.udp_frame(d)
    return eth[:12] + b"\x81\x00\x00\x05" + eth[12:]


@pytest.mark.parametrize(
    "linktype,make",
    [
        (pcap.LINKTYPE_ETHERNET, lambda d: pcap.udp_frame(d)),
        (pcap.LINKTYPE_ETHERNET, _vlan),
        (pcap.LINKTYPE_LINUX_SLL, lambda d: _sll(_ip_packet(d))),
        (pcap.LINKTYPE_LINUX_SLL2, lambda d: _sll2(_ip_packet(d))),
        (pcap.LINKTYPE_RAW, _ip_packet),
        (12, _ip_packet),
        (pcap.LINKTYPE_IPV4, _ip_packet),
        (pcap.LINKTYPE_NULL, lambda d: struct.pack("<I", 2) + _ip_packet(d)),
        (pcap.LINKTYPE_NULL, lambda d: struct.pack(">I", 2) + _ip_packet(d)),
        (pcap.LINKTYPE_LOOP, lambda d: struct.pack(">I", 2) + _ip_packet(d)),
    ],
)
def test_link_types(linktype, make):
    """UDP is extracted from Ethernet (+VLAN), Linux SLL/SLL2, raw IP and null/loop framing."""
    d = _dgram(payload=b"payload")
    got = pcap.read_pcap(_classic(linktype, [make(d)]))
    assert len(got) == 1
    assert (got[0].src, got[0].dst, got[0].sport, got[0].dport, got[0].payload) == (
        d.src,
        d.dst,
        d.sport,
        d.dport,
        b"payload",
    )


def test_ipv6_udp_is_read():
    """A raw IPv6/UDP packet is decoded with its addresses."""
    udp = struct.pack("!HHHH", 1111, 2222, 12, 0) + b"ipv6"
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 64, b"\x00" * 15 + b"\x01", b"\x00" * 15 + b"\x01") + udp
    got = pcap.read_pcap(_classic(pcap.LINKTYPE_RAW, [ip6]))
    assert [(g.src, g.sport, g.dport, g.payload) for g in got] == [("::1", 1111, 2222, b"ipv6")]


def test_non_udp_garbage_and_truncation_are_skipped():
    """TCP packets, junk frames and a truncated last record are ignored without raising."""
    good = pcap.udp_frame(_dgram(payload=b"ok"))
    tcp = bytearray(good)
    tcp[14 + 9] = 6  # protocol = TCP
    data = _classic(pcap.LINKTYPE_ETHERNET, [bytes(tcp), b"\x00\x01", good, good])
    data = data[:-5]  # cut the last record short
    got = pcap.read_pcap(data)
    assert [g.payload for g in got] == [b"ok"]


def test_bad_files_raise_value_error():
    """Non-pcap input and pcapng raise ValueError with a clear message."""
    with pytest.raises(ValueError, match="bad magic"):
        pcap.read_pcap(b"\x00" * 24)
    with pytest.raises(ValueError, match="pcapng"):
        pcap.read_pcap(struct.pack("<I", 0x0A0D0D0A) + bytes(28))
    with pytest.raises(ValueError, match="shorter"):
        pcap.read_pcap(b"\xd4\xc3\xb2\xa1")


def test_write_rtp_pcap_spacing():
    """write_rtp_pcap() spaces packets by the interval and keeps the RTP bytes."""
    import tempfile

    pkts = rtp.packetize(bytes(160 * 5), 0, 42)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.pcap"
        pcap.write_rtp_pcap(path, pkts, interval=0.02)
        got = pcap.read_pcap(path)
    assert [g.payload for g in got] == pkts
    assert [round(b.ts - a.ts, 6) for a, b in zip(got, got[1:])] == [0.02] * 4


def test_reads_sipp_sample_pcaps():
    """SIPp's shipped g711a.pcap and dtmf_2833_pound.pcap parse as RTP (PCMA, and '#' events)."""
    audio_pkts = [rtp.parse_rtp(d.payload) for d in pcap.read_pcap(SIPP_PCAP_DIR / "g711a.pcap")]
    assert len(audio_pkts) > 100 and {p.pt for p in audio_pkts} == {8}
    dtmf = [rtp.parse_rtp(d.payload) for d in pcap.read_pcap(SIPP_PCAP_DIR / "dtmf_2833_pound.pcap")]
    events = {rtp.parse_telephone_event(p.payload).digit for p in dtmf}
    assert events == {"#"}
