"""Parse and build RTP packets (RFC 3550 fixed header) and RFC 4733 DTMF events.

``parse_rtp`` never raises: it returns ``None`` for anything that is not a
well-formed RTP packet (too short, version != 2, CSRC list / header extension /
padding running past the end, RTCP packet types 200-204 in the second byte).

Public API::

    RTP_VERSION = 2
    @dataclass(frozen=True) RtpPacket(pt, seq, ts, ssrc, payload=b"", marker=False,
        csrcs=(), extension=None, padding=0, version=2)
        .to_bytes() -> bytes ; .has_extension ; .has_padding ; .header_len
    parse_rtp(data: bytes) -> RtpPacket | None
    build_rtp(pt, seq, ts, ssrc, payload=b"", *, marker=False, csrcs=(),
              extension: tuple[int, bytes] | None = None, padding=0) -> bytes
    looks_like_rtcp(data: bytes) -> bool
    @dataclass(frozen=True) TelephoneEvent(event, end, volume, duration)
        .digit -> str            # "0"-"9", "*", "#", "A"-"D", or "ev<N>"
    parse_telephone_event(payload: bytes) -> TelephoneEvent | None
    build_telephone_event(event, duration, *, end=False, volume=10) -> bytes
    packetize(audio: bytes, pt, ssrc, *, seq=0, ts=0, samples_per_packet=160,
              bytes_per_sample=1, marker_first=True) -> list[bytes]
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "RTP_VERSION",
    "RtpPacket",
    "parse_rtp",
    "build_rtp",
    "looks_like_rtcp",
    "TelephoneEvent",
    "parse_telephone_event",
    "build_telephone_event",
    "packetize",
    "DTMF_EVENTS",
]

RTP_VERSION = 2
_FIXED = struct.Struct("!BBHII")

# RFC 4733 event codes for DTMF.
DTMF_EVENTS = {**{str(i): i for i in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
_EVENT_NAMES = {v: k for k, v in DTMF_EVENTS.items()}


@dataclass(frozen=True)
class RtpPacket:
    """One RTP packet; ``extension`` is ``(profile, data)`` with len(data) % 4 == 0."""

    pt: int
    seq: int
    ts: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None
    padding: int = 0  # number of padding bytes, including the trailing count byte
    version: int = RTP_VERSION

    @property
    def has_extension(self) -> bool:
        return self.extension is not None

    @property
    def has_padding(self) -> bool:
        return self.padding > 0

    @property
    def header_len(self) -> int:
        ext = 0 if self.extension is None else 4 + len(self.extension[1])
        return 12 + 4 * len(self.csrcs) + ext

    def to_bytes(self) -> bytes:
        return build_rtp(
            self.pt,
            self.seq,
            self.ts,
            self.ssrc,
            self.payload,
            marker=self.marker,
            csrcs=self.csrcs,
            extension=self.extension,
            padding=self.padding,
        )


def looks_like_rtcp(data: bytes) -> bool:
    """True if the second byte is an RTCP packet type (SR/RR/SDES/BYE/APP, RFC 5761)."""
    return len(data) >= 2 and (data[0] >> 6) == 2 and 200 <= data[1] <= 204


def parse_rtp(data: bytes) -> RtpPacket | None:
    """Parse ``data`` as an RTP packet; return ``None`` if it is not valid RTP."""
    try:
        data = bytes(data)
    except (TypeError, ValueError):
        return None
    if len(data) < 12 or looks_like_rtcp(data):
        return None
    b0, b1, seq, ts, ssrc = _FIXED.unpack_from(data, 0)
    version = b0 >> 6
    if version != RTP_VERSION:
        return None
    has_padding = bool(b0 & 0x20)
    has_ext = bool(b0 & 0x10)
    cc = b0 & 0x0F
    marker = bool(b1 & 0x80)
    pt = b1 & 0x7F
    pos = 12
    end = len(data)
    if pos + 4 * cc > end:
        return None
    csrcs = struct.unpack_from(f"!{cc}I", data, pos) if cc else ()
    pos += 4 * cc
    extension = None
    if has_ext:
        if pos + 4 > end:
            return None
        profile, words = struct.unpack_from("!HH", data, pos)
        pos += 4
        if pos + 4 * words > end:
            return None
        extension = (profile, data[pos : pos + 4 * words])
        pos += 4 * words
    padding = 0
    if has_padding:
        if end <= pos:
            return None
        padding = data[-1]
        if padding == 0 or end - padding < pos:
            return None
        end -= padding
    return RtpPacket(
        pt=pt,
        seq=seq,
        ts=ts,
        ssrc=ssrc,
        payload=data[pos:end],
        marker=marker,
        csrcs=tuple(csrcs),
        extension=extension,
        padding=padding,
        version=version,
    )


def build_rtp(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes = b"",
    *,
    marker: bool = False,
    csrcs: tuple[int, ...] | list[int] = (),
    extension: tuple[int, bytes] | None = None,
    padding: int = 0,
) -> bytes:
    """Serialize an RTP packet; ``padding`` counts all padding bytes incl. the count byte."""
    if not 0 <= pt <= 127:
        raise ValueError(f"payload type out of range: {pt}")
    if len(csrcs) > 15:
        raise ValueError("at most 15 CSRCs")
    if not 0 <= padding <= 255:
        raise ValueError("padding must be 0..255")
    b0 = (RTP_VERSION << 6) | len(csrcs)
    if padding:
        b0 |= 0x20
    if extension is not None:
        b0 |= 0x10
    b1 = (0x80 if marker else 0) | pt
    out = bytearray(_FIXED.pack(b0, b1, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc & 0xFFFFFFFF))
    for csrc in csrcs:
        out += struct.pack("!I", csrc & 0xFFFFFFFF)
    if extension is not None:
        profile, ext = extension
        if len(ext) % 4:
            raise ValueError("extension data length must be a multiple of 4")
        out += struct.pack("!HH", profile & 0xFFFF, len(ext) // 4) + bytes(ext)
    out += bytes(payload)
    if padding:
        out += bytes(padding - 1) + bytes([padding])
    return bytes(out)


@dataclass(frozen=True)
class TelephoneEvent:
    """An RFC 4733 telephone-event payload."""

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str:
        return _EVENT_NAMES.get(self.event, f"ev{self.event}")


def parse_telephone_event(payload: bytes) -> TelephoneEvent | None:
    """Parse a 4-byte RFC 4733 event payload; ``None`` if too short."""
    if len(payload) < 4:
        return None
    event, flags, duration = struct.unpack_from("!BBH", payload, 0)
    return TelephoneEvent(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)


def build_telephone_event(event: int | str, duration: int, *, end: bool = False, volume: int = 10) -> bytes:
    """Build an RFC 4733 event payload; ``event`` may be a DTMF character."""
    code = DTMF_EVENTS[event.upper()] if isinstance(event, str) else int(event)
    return struct.pack("!BBH", code, (0x80 if end else 0) | (volume & 0x3F), duration & 0xFFFF)


def packetize(
    audio: bytes,
    pt: int,
    ssrc: int,
    *,
    seq: int = 0,
    ts: int = 0,
    samples_per_packet: int = 160,
    bytes_per_sample: int = 1,
    marker_first: bool = True,
) -> list[bytes]:
    """Split encoded audio into RTP packets of ``samples_per_packet`` (the last may be short)."""
    step = samples_per_packet * bytes_per_sample
    packets = []
    for i, off in enumerate(range(0, len(audio), step)):
        chunk = audio[off : off + step]
        packets.append(
            build_rtp(
                pt,
                seq + i,
                ts + i * samples_per_packet,
                ssrc,
                chunk,
                marker=marker_first and i == 0,
            )
        )
    return packets
