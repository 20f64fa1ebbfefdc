"""Tests for tests/support/rtp.py: RTP/RFC 4733 build and parse."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import rtp


def test_minimal_packet_round_trip():
    """A plain 12-byte-header packet parses back to the same fields."""
    data = rtp.build_rtp(0, 65535, 0xFFFFFFFF, 0x12345678, b"\xff" * 160, marker=True)
    assert len(data) == 172 and data[0] == 0x80 and data[1] == 0x80
    p = rtp.parse_rtp(data)
    assert p == rtp.RtpPacket(pt=0, seq=65535, ts=0xFFFFFFFF, ssrc=0x12345678, payload=b"\xff" * 160, marker=True)
    assert p.to_bytes() == data


def test_csrc_extension_and_padding_are_parsed():
    """CSRC list, header extension and padding are decoded and stripped from the payload."""
    data = rtp.build_rtp(
        8, 7, 160, 1, b"abc", csrcs=(10, 20), extension=(0xBEDE, b"\x01\x02\x03\x04"), padding=5
    )
    p = rtp.parse_rtp(data)
    assert p.csrcs == (10, 20)
    assert p.extension == (0xBEDE, b"\x01\x02\x03\x04")
    assert p.padding == 5 and p.payload == b"abc"
    assert p.header_len == 12 + 8 + 8
    assert p.to_bytes() == data


@given(
    pt=st.integers(0, 127),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    ext=st.one_of(st.none(), st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4]))),
    padding=st.integers(0, 255),
)
@settings(max_examples=200, deadline=None)
def test_build_parse_round_trip_property(pt, seq, ts, ssrc, payload, marker, csrcs, ext, padding):
    """Any packet build_rtp() makes is parsed back identically (unless it collides with RTCP PTs)."""
    data = rtp.build_rtp(pt, seq, ts, ssrc, payload, marker=marker, csrcs=csrcs, extension=ext, padding=padding)
    p = rtp.parse_rtp(data)
    if marker and 72 <= pt <= 76:
        assert p is None  # second byte 200..204 is indistinguishable from RTCP
        return
    assert (p.pt, p.seq, p.ts, p.ssrc, p.payload, p.marker) == (pt, seq, ts, ssrc, payload, marker)
    assert p.csrcs == tuple(csrcs) and p.extension == ext and p.padding == padding


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x00\x00",
        b"\x80" * 11,  # one byte short of a header
        bytes([0x40, 0, 0, 1]) + bytes(8),  # version 1
        bytes([0x00, 0, 0, 1]) + bytes(8),  # version 0
        bytes([0x83, 0, 0, 1]) + bytes(8) + bytes(4),  # CC=3 but one CSRC present
        bytes([0x90, 0, 0, 1]) + bytes(8) + b"\xbe\xde",  # extension header cut short
        bytes([0x90, 0, 0, 1]) + bytes(8) + b"\xbe\xde\x00\x02" + bytes(4),  # extension words missing
        bytes([0xA0, 0, 0, 1]) + bytes(8) + b"ab\x00",  # padding count 0
        bytes([0xA0, 0, 0, 1]) + bytes(8) + b"ab\x09",  # padding longer than the payload
        bytes([0xA0, 0, 0, 1]) + bytes(8),  # padding flag, no bytes at all
        bytes([0x80, 200]) + bytes(6),  # RTCP sender report
        bytes([0x81, 201, 0, 7]) + bytes(28),  # RTCP receiver report
        b"INVITE sip:x@127.0.0.1 SIP/2.0\r\n",
        b"SIP/2.0 200 OK\r\n",
    ],
)
def test_malformed_inputs_return_none(data):
    """parse_rtp() returns None for truncated, wrong-version, RTCP and SIP data."""
    assert rtp.parse_rtp(data) is None


@given(st.binary(max_size=200))
@settings(max_examples=500, deadline=None)
def test_parse_never_raises(data):
    """parse_rtp() never raises on arbitrary bytes and any result re-serialises exactly."""
    p = rtp.parse_rtp(data)
    if p is not None:
        assert p.version == 2
        # padding bytes other than the count byte are not preserved, so compare the rest
        rebuilt = p.to_bytes()
        assert rebuilt[: len(rebuilt) - p.padding] == data[: len(data) - p.padding]


def test_parse_rejects_non_bytes():
    """parse_rtp() returns None for objects that are not bytes-like."""
    assert rtp.parse_rtp(None) is None
    assert rtp.parse_rtp(12345) is None


def test_build_validates_arguments():
    """build_rtp() rejects out-of-range PT, too many CSRCs and unaligned extensions."""
    with pytest.raises(ValueError):
        rtp.build_rtp(128, 0, 0, 0)
    with pytest.raises(ValueError):
        rtp.build_rtp(0, 0, 0, 0, csrcs=list(range(16)))
    with pytest.raises(ValueError):
        rtp.build_rtp(0, 0, 0, 0, extension=(1, b"abc"))


def test_telephone_event_round_trip():
    """RFC 4733 event payloads for '#' round-trip, with the end bit and duration."""
    payload = rtp.build_telephone_event("#", 1280, end=True, volume=10)
    assert payload == struct.pack("!BBH", 11, 0x80 | 10, 1280)
    ev = rtp.parse_telephone_event(payload)
    assert (ev.event, ev.end, ev.volume, ev.duration, ev.digit) == (11, True, 10, 1280, "#")
    assert rtp.parse_telephone_event(b"\x01") is None


def test_packetize_increments_seq_and_ts_with_wraparound():
    """packetize() splits audio into 160-sample packets with seq/ts wrapping modulo 2^16/2^32."""
    pkts = [rtp.parse_rtp(p) for p in rtp.packetize(bytes(400), 0, 99, seq=65535, ts=0xFFFFFF60)]
    assert [len(p.payload) for p in pkts] == [160, 160, 80]
    assert [p.seq for p in pkts] == [65535, 0, 1]
    assert [p.ts for p in pkts] == [0xFFFFFF60, 0, 160]
    assert [p.marker for p in pkts] == [True, False, False]
