"""Per-call RTP receive statistics from pjmedia, as plain values for logs and the watchdog.

pjmedia parses every datagram on the call's RTP port and counts what it did with it
(``Call.getStreamStat(i)``): ``rtcp.rxStat.pkt`` RTP packets accepted, ``loss`` sequence numbers
never received (computed from the extended sequence number, so 65535 -> 0 is no loss),
``discard`` packets dropped (not RTP: too short, version != 2; wrong payload type; nothing
after the header), ``dup`` / ``reorder``, the interarrival jitter (RFC 3550, in microseconds)
and the jitter buffer's ``lost`` (frames concealed) and ``discard`` (frames dropped late or on
overflow). :func:`read_stats` reads them on a pjlib-registered thread (the control thread or
pjsua's worker) and never raises: a call torn down meanwhile yields ``None``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pjsua2 as pj


@dataclass(frozen=True)
class RtpStats:
    """One snapshot of a call's first audio stream."""

    rx_packets: int
    rx_lost: int
    rx_discarded: int
    rx_dup: int
    rx_reorder: int
    rx_jitter_ms: float | None      # mean interarrival jitter, None before two packets
    rx_jitter_max_ms: float | None
    jb_lost: int                    # frames the jitter buffer had to conceal
    jb_discarded: int               # frames the jitter buffer dropped
    tx_packets: int
    receiving: bool                 # the negotiated direction has us decoding (not on hold)

    def log_fields(self) -> dict:
        """Flat ``rtp_*`` keys for a log line."""
        return {f"rtp_{k}": v for k, v in asdict(self).items() if k != "receiving"}


def _ms(usec_stat) -> tuple[float | None, float | None]:
    if usec_stat.n <= 0:
        return None, None
    return round(usec_stat.mean / 1000.0, 2), round(usec_stat.max / 1000.0, 2)


def _audio_index(call) -> tuple[int, bool] | None:
    """``(media index, receiving)`` of the call's first audio stream with media, else None."""
    info = call.getInfo()  # keep it referenced: ``info.media`` is a view into it (SWIG)
    for i, media in enumerate(info.media):
        if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status != pj.PJSUA_CALL_MEDIA_NONE:
            receiving = (media.status in (pj.PJSUA_CALL_MEDIA_ACTIVE,
                                          pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)
                         and bool(media.dir & pj.PJMEDIA_DIR_DECODING))
            return i, receiving
    return None


def read_stats(call) -> RtpStats | None:
    """Snapshot the call's audio stream counters; ``None`` when it has no stream (or is gone)."""
    try:
        found = _audio_index(call)
        if found is None:
            return None
        index, receiving = found
        st = call.getStreamStat(index)
    except Exception:  # noqa: BLE001 - pj.Error for a call already torn down, or no stream yet
        return None
    rx, jb = st.rtcp.rxStat, st.jbuf
    jitter, jitter_max = _ms(rx.jitterUsec)
    return RtpStats(rx_packets=int(rx.pkt), rx_lost=int(rx.loss), rx_discarded=int(rx.discard),
                    rx_dup=int(rx.dup), rx_reorder=int(rx.reorder), rx_jitter_ms=jitter,
                    rx_jitter_max_ms=jitter_max, jb_lost=int(jb.lost),
                    jb_discarded=int(jb.discard), tx_packets=int(st.rtcp.txStat.pkt),
                    receiving=receiving)


def log_fields(stats: RtpStats | None) -> dict:
    """``stats.log_fields()``, or ``{"rtp_stats": None}`` when no stream was ever read."""
    return stats.log_fields() if stats is not None else {"rtp_stats": None}
