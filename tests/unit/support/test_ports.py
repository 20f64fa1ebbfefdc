"""Tests for tests/support/ports.py."""

import socket

from tests.support import ports


def test_free_udp_port_is_bindable_on_loopback():
    """A port from free_udp_port() can be bound for UDP on 127.0.0.1."""
    port = ports.free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))


def test_free_port_for_udp_and_tcp():
    """free_port(udp=True, tcp=True) returns a port bindable for both protocols."""
    port = ports.free_port(udp=True, tcp=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
        u.bind(("127.0.0.1", port))
        t.bind(("127.0.0.1", port))


def test_rtp_pair_is_even_then_odd_and_free():
    """free_rtp_pair() gives an even RTP port and the next (odd) RTCP port, both free."""
    rtp, rtcp = ports.free_rtp_pair()
    assert rtp % 2 == 0 and rtcp == rtp + 1
    assert ports.is_udp_port_free(rtp) and ports.is_udp_port_free(rtcp)


def test_port_block_alignment_and_no_reuse():
    """free_port_block() honours alignment and never hands out the same ports twice."""
    first = ports.free_port_block(8, align=4)
    second = ports.free_port_block(8, align=4)
    assert first % 4 == 0 and second % 4 == 0
    assert set(range(first, first + 8)).isdisjoint(range(second, second + 8))


def test_busy_port_is_reported_busy():
    """is_udp_port_free() is False while a socket holds the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        assert not ports.is_udp_port_free(s.getsockname()[1])
