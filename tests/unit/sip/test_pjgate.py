"""Reading pjsip_rx_data in the early gate: the assumed 2.15 layout and its per-request cross-checks.

The structures are filled in Python (no pjsua2 in the test process); the real layout is checked at
start-up against a probe (see ``test_invite_flood.py``, which asserts ``mode: full``).
"""

import ctypes
import socket

from sipbridge.sip import pjgate
from sipbridge.sip.pjgate import PACKET_OFFSET, _RxData, _call_id, _message, _source, probe_request


def rdata(text: bytes = b"INVITE sip:bot@h SIP/2.0\r\nCall-ID: abc@x\r\n\r\n",
          ip: str = "127.0.0.1", port: int = 5070, name: str | None = None,
          family: int = 2) -> _RxData:
    rd = _RxData()
    rd.pkt_info.packet = text
    rd.pkt_info.len = len(text)
    raw = family.to_bytes(2, "little") + port.to_bytes(2, "big") + socket.inet_aton(ip) + bytes(20)
    ctypes.memmove(ctypes.addressof(rd.pkt_info.src_addr), raw, 28)
    rd.pkt_info.src_name = (name if name is not None else ip).encode()
    rd.pkt_info.src_port = port
    rd.msg_info.msg_buf = ctypes.addressof(rd) + PACKET_OFFSET
    rd.msg_info.len = len(text)
    return rd


def test_layout_matches_the_215_header_on_x86_64():
    """The packet buffer sits after pool, transport, tp_data, the 34-pointer op key, rdata and a time value."""
    assert PACKET_OFFSET == 3 * 8 + 34 * 8 + 8 + 16
    assert _RxData.pkt_info.offset + pjgate._PktInfo.src_addr.offset == PACKET_OFFSET + 4000 + 16


def test_source_when_name_port_and_sockaddr_agree():
    """A request's source is ip:port only when the string, the port field and the sockaddr agree."""
    assert _source(rdata()) == "127.0.0.1:5070"


def test_source_refuses_a_disagreeing_layout():
    """A wrong name, port or address family (a shifted layout) gives no source at all."""
    assert _source(rdata(name="10.9.9.9")) is None
    bad_port = rdata()
    bad_port.pkt_info.src_port = 5071
    assert _source(bad_port) is None
    assert _source(rdata(family=10)) is None


def test_message_only_from_inside_the_packet_buffer():
    """The request text is read only when msg_buf and len lie inside the rdata's own packet."""
    rd = rdata()
    assert _message(rd, ctypes.addressof(rd)).startswith(b"INVITE sip:bot@h")
    rd.msg_info.msg_buf = ctypes.addressof(rd) + PACKET_OFFSET + 3990
    assert _message(rd, ctypes.addressof(rd)) is None
    rd.msg_info.msg_buf = 0
    assert _message(rd, ctypes.addressof(rd)) is None


def test_call_id_full_and_compact():
    """The Call-ID is read from the full or the compact header, None if absent."""
    assert _call_id(b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x1@h\r\n\r\n") == "x1@h"
    assert _call_id(b"INVITE sip:a@b SIP/2.0\r\ni: x2@h\r\n\r\n") == "x2@h"
    assert _call_id(b"INVITE sip:a@b SIP/2.0\r\n\r\n") is None


def test_probe_is_a_complete_options_request():
    """The start-up probe is an OPTIONS with every header pjsip requires and no body."""
    text = probe_request("127.0.0.1", 5060, 40000, "t1").decode()
    assert text.startswith("OPTIONS sip:gate-probe@127.0.0.1:5060 SIP/2.0\r\n")
    for header in ("Via: SIP/2.0/UDP 127.0.0.1:40000", "From:", "To:", "Call-ID: gate-probe-t1",
                   "CSeq: 1 OPTIONS", "Max-Forwards: 70", "Content-Length: 0"):
        assert header in text
    assert text.endswith("\r\n\r\n")
