"""Tests for tests/support/capture.py: tcpdump capture on lo and RTP stream analysis."""

import socket
import time

import numpy as np
import pytest

from tests.support import audio, rtp
from tests.support.capture import RtpCapture, build_filter, rtp_streams
from tests.support.pcap import UdpDatagram
from tests.support.ports import free_rtp_pair



def test_build_filter():
    """build_filter() combines single ports and a port range into a UDP BPF expression."""
    assert build_filter() == "udp"
    assert build_filter([5004, 4000, 4000]) == "udp and (port 4000 or port 5004)"
    assert build_filter([1], (10, 20)) == "udp and (port 1 or portrange 10-20)"


def _datagrams(levels_dbfs, pt=0, t0=100.0, src=("127.0.0.1", 4000), dst=("127.0.0.1", 5000)):
    law = audio.law_for_pt(pt)
    out = []
    for i, lvl in enumerate(levels_dbfs):
        pcm = audio.silence(20) if lvl is None else audio.sine(440, 20, lvl)
        pkt = rtp.build_rtp(pt, i, i * 160, 7, audio.g711_encode(pcm, law))
        out.append(UdpDatagram(src[0], dst[0], src[1], dst[1], t0 + i * 0.02, pkt))
    return out


def test_stream_levels_and_speech_spans_offline():
    """RtpStream reports per-packet levels, an activity mask and bridged speech spans."""
    levels = [None] * 5 + [-20] * 10 + [None] * 5 + [-20] * 5
    dg = _datagrams(levels) + [UdpDatagram("127.0.0.1", "127.0.0.1", 4000, 5000, 200.0, b"SIP/2.0 200 OK")]
    streams = rtp_streams(dg)
    (key, s), = streams.items()
    assert key == (("127.0.0.1", 4000), ("127.0.0.1", 5000))
    assert len(s) == 25 and s.payload_types == [0] and s.ssrcs == [7]
    assert s.active_mask(-45).tolist() == [lvl is not None for lvl in levels]
    spans = s.speech_spans(min_gap_s=0.05)
    assert [(round(a, 2), round(b, 2)) for a, b in spans] == [(0.1, 0.3), (0.4, 0.5)]
    assert len(s.pcm()) == 25 * 160
    assert s.seq_gaps() == 0 and np.allclose(s.interarrival(), 0.02)


def test_seq_gaps_and_dtmf_offline():
    """seq_gaps() counts missing sequence numbers; dtmf_digits() lists each event once."""
    dg = _datagrams([-20] * 10)
    del dg[3:6]
    ev = [rtp.build_rtp(101, 50 + i, 999, 8, rtp.build_telephone_event("5", 160 * i, end=i == 2)) for i in range(3)]
    dg += [UdpDatagram("127.0.0.1", "127.0.0.1", 4000, 5000, 300.0 + i, p) for i, p in enumerate(ev)]
    (s,) = rtp_streams(dg).values()
    assert s.seq_gaps() == 3
    assert s.dtmf_digits() == "5" and len(s.dtmf_events()) == 3


def test_capture_sees_packets_sent_right_after_start():
    """RtpCapture is really listening when start() returns and parses the packets after stop()."""
    rtp_port, _ = free_rtp_pair()
    src_port, _ = free_rtp_pair()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", src_port))
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", rtp_port))
    pcm = np.concatenate([audio.silence(100), audio.sine(300, 200, -20)])
    packets = rtp.packetize(audio.ulaw_encode(pcm), 0, 0xABCD)
    try:
        with RtpCapture(ports=[rtp_port]) as cap:
            for p in packets:
                tx.sendto(p, ("127.0.0.1", rtp_port))
                time.sleep(0.002)
    finally:
        tx.close()
        rx.close()
    s = cap.stream(dst_port=rtp_port)
    assert s.src == ("127.0.0.1", src_port)
    assert [p.seq for p in s.packets] == list(range(15))
    assert s.active_mask().tolist() == [False] * 5 + [True] * 10
    assert cap.tcpdump_stats.get("dropped", 0) == 0
    with pytest.raises(LookupError):
        cap.stream(dst_port=1)
