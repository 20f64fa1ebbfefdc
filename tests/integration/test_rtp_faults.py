"""Media faults on a live call: a caller that goes silent, and malformed or foreign RTP.

One bridge (``sip.rtp_timeout_s: 2``) and one embedded upstream serve the whole module. The
silent caller is SIPp (``uac_silent.xml``: a 1 s pcap, then nothing); every other caller is a
:class:`ScriptedRtpPeer` behind ``uac_external_media.xml``, so the test owns each datagram. The
bridge's ``call_ended`` line carries pjmedia's per-call counters (``rtp_rx_packets``,
``rtp_rx_lost``, ``rtp_rx_discarded``, ...), which is what the assertions read.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from hypothesis import strategies as st

from tests.support import audio
from tests.support.bridge import Bridge, Upstream
from tests.support.rtp import build_rtp
from tests.support.rtp_peer import ExternalMediaCall
from tests.support.rtp_script import ScriptedRtpPeer
from tests.support.sipp import make_audio_pcap, pcap_duration_ms, run_sipp

RTP_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    with Upstream(tmp_path_factory.mktemp("upstream")) as server:
        yield server


@pytest.fixture(scope="module")
def bridge(tmp_path_factory, upstream):
    with Bridge(tmp_path_factory.mktemp("bridge"), upstream.url,
                extra={"sip": {"rtp_timeout_s": RTP_TIMEOUT_S}}) as b:
        yield b
        assert b.stop() == 0, b.output()[-3000:]


def _ended(bridge: Bridge, call_ids_before: set[str], timeout: float = 10.0) -> dict:
    """The ``call_ended`` record of the one call that was not there before."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [r for r in bridge.logs("call_ended") if r["call_id"] not in call_ids_before]
        if new:
            return new[0]
        time.sleep(0.05)
    raise AssertionError("no call_ended for the new call:\n" + bridge.output()[-3000:])


def _ended_ids(bridge: Bridge) -> set[str]:
    return {r["call_id"] for r in bridge.logs("call_ended")}


def _alive(bridge: Bridge) -> None:
    assert bridge.proc.poll() is None, "the bridge died:\n" + bridge.output()[-4000:]


# -- RTP inactivity ---------------------------------------------------------------------------

def test_silent_caller_is_hung_up_after_rtp_timeout(bridge, tmp_path):
    """A caller that stops sending RTP gets a BYE 2-3 s later, logged as reason=rtp_timeout."""
    pcap = tmp_path / "one_second.pcap"
    make_audio_pcap(audio.sine(440, 1000, -20.0), pcap)
    pcap_s = pcap_duration_ms(pcap) / 1000.0
    before = _ended_ids(bridge)
    res = run_sipp("uac_silent", bridge.target, pcap=pcap, hold_ms=10000, timeout=20)
    assert res.ok, res.describe()
    assert "bye_received" in res.files["logs"].read_text()
    ack = next(m for m in res.sent if m.method == "ACK")
    bye = next(m for m in res.received if m.method == "BYE" and not m.is_response)
    silent = bye.time - ack.time - pcap_s
    assert RTP_TIMEOUT_S - 0.2 <= silent <= RTP_TIMEOUT_S + 1.5, silent
    ended = _ended(bridge, before)
    hangup = bridge.wait_log("call_hangup", call_id=ended["call_id"])
    assert hangup["reason"] == "rtp_timeout"
    assert hangup["rtp_timeout_s"] == RTP_TIMEOUT_S and hangup["silent_s"] >= RTP_TIMEOUT_S
    assert 40 <= ended["rtp_rx_packets"] <= 55, ended  # the 1 s pcap: 50 packets
    _alive(bridge)


def test_continuous_rtp_is_not_timed_out(bridge):
    """A caller streaming RTP for twice the timeout keeps the call; it ends with its own BYE."""
    before = _ended_ids(bridge)
    with ScriptedRtpPeer() as peer, \
            ExternalMediaCall(bridge.target, peer, hold_ms=RTP_TIMEOUT_S * 2000 + 1000) as call:
        call.connect_peer(10)
        res = call.wait()
    assert res.ok, res.describe()
    assert "bye_sent" in call.log_lines()
    ended = _ended(bridge, before)
    assert not bridge.logs("call_hangup") or all(
        r["call_id"] != ended["call_id"] for r in bridge.logs("call_hangup"))
    assert ended["rtp_rx_packets"] >= 200 and ended["rtp_rx_lost"] == 0, ended


# -- malformed and foreign RTP ----------------------------------------------------------------

def _garbage(peer: ScriptedRtpPeer) -> None:
    """Random bytes whose first byte says RTP version 1: pjmedia's decode fails."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        data = bytearray(rng.integers(0, 256, 100, dtype=np.uint8).tobytes())
        data[0] = (data[0] & 0x3F) | 0x40
        peer.send_raw(bytes(data))
        time.sleep(0.01)


def _short(peer: ScriptedRtpPeer) -> None:
    """Datagrams of 0-11 bytes: shorter than an RTP header."""
    for n in range(12):
        peer.send_raw(os.urandom(n))
        time.sleep(0.01)


def _wrong_pt(peer: ScriptedRtpPeer) -> None:
    """The stream's own SSRC with payload types never negotiated (18 = G.729, 96 dynamic)."""
    seq, ts = peer.stream_state()
    for i in range(20):
        peer.send_raw(build_rtp(18 if i % 2 else 96, seq + 1000 + i, ts, peer.ssrc, bytes(160)))
        time.sleep(0.01)


def _foreign_ssrc(peer: ScriptedRtpPeer) -> None:
    """A second, loud PCMU stream (another SSRC, its own numbering) interleaved for 1 s."""
    for i in range(50):
        noise = audio.g711_encode(audio.noise(20, -10.0, seed=i), "ulaw")
        peer.send_raw(build_rtp(0, 100 + i, 5000 + 160 * i, peer.ssrc ^ 0x5A5A5A5A, noise))
        time.sleep(0.02)


def _header_only(peer: ScriptedRtpPeer) -> None:
    """Valid headers of the stream's SSRC and PT with no payload at all."""
    seq, ts = peer.stream_state()
    for i in range(10):
        peer.send_raw(build_rtp(0, seq + 2000 + i, ts, peer.ssrc, b""))
        time.sleep(0.01)


def _stale(peer: ScriptedRtpPeer) -> None:
    """Late copies: packets of the stream's SSRC with sequence numbers already played."""
    seq, ts = peer.stream_state()
    for i in range(10):
        peer.send_raw(build_rtp(0, (seq - 5 - i) & 0xFFFF, (ts - 160 * (5 + i)) & 0xFFFFFFFF,
                                peer.ssrc, b"\xff" * 160))
        time.sleep(0.02)


def _seq_wrap(peer: ScriptedRtpPeer) -> None:
    """The stream's sequence number jumps to 65520 and wraps to 0 twenty packets later."""
    peer.set_seq(65520)
    time.sleep(1.0)


def _loss_bursts(peer: ScriptedRtpPeer) -> None:
    """Three bursts of 10 consecutive packets never sent."""
    for _ in range(3):
        peer.drop(10)
        time.sleep(0.4)


FAULTS = {
    # name: (fault, check of the call_ended record given the peer)
    "garbage": (_garbage, lambda e, p: e["rtp_rx_discarded"] >= 20),
    "short": (_short, lambda e, p: e["rtp_rx_discarded"] == 0),  # pjmedia: keep-alives, ignored
    "wrong_pt": (_wrong_pt, lambda e, p: e["rtp_rx_discarded"] > 0),
    "foreign_ssrc": (_foreign_ssrc, lambda e, p: e["rtp_rx_discarded"] > 0),
    "header_only": (_header_only, lambda e, p: e["rtp_rx_discarded"] > 0),
    "stale": (_stale, lambda e, p: e["rtp_jb_discarded"] + e["rtp_rx_dup"] > 0),
    "seq_wrap": (_seq_wrap, lambda e, p: e["rtp_rx_lost"] == 0),
    "loss_bursts": (_loss_bursts, lambda e, p: e["rtp_rx_lost"] == p.dropped == 30),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_bad_rtp_is_dropped_and_counted(bridge, fault):
    """Each kind of malformed or foreign RTP leaves the call up and both ways flowing, and shows
    in the call's RTP counters."""
    inject, check = FAULTS[fault]
    before = _ended_ids(bridge)
    with ScriptedRtpPeer() as peer, ExternalMediaCall(bridge.target, peer, hold_ms=2500) as call:
        call.connect_peer(10)
        peer.wait_rx(5)
        time.sleep(0.3)
        inject(peer)
        t = time.perf_counter()
        time.sleep(0.5)
        back = peer.rx_since(t)
        _alive(bridge)
        res = call.wait()
    assert res.ok and "bye_sent" in call.log_lines(), res.describe()  # the caller hung up
    assert back >= 20, f"the bridge's RTP stalled after the fault: {back} packets in 0.5 s"
    ended = _ended(bridge, before)
    assert not [r for r in bridge.logs("call_hangup") if r["call_id"] == ended["call_id"]]
    assert ended["rtp_rx_packets"] >= 80, ended
    assert check(ended, peer), {k: v for k, v in ended.items() if k.startswith("rtp_")}


def test_speech_after_bad_rtp_still_reaches_the_model(bridge, upstream):
    """After every kind of bad RTP in one call, the caller's next sentence still streams
    upstream, ends a turn, and the model's answer comes back as RTP."""
    speech = audio.load_wav(audio.asterisk_prompt("hello-world"))
    before = _ended_ids(bridge)
    commits = len(upstream.events("input_audio_buffer.commit"))
    with ScriptedRtpPeer() as peer, ExternalMediaCall(bridge.target, peer, hold_ms=9000) as call:
        call.connect_peer(10)
        peer.wait_rx(5)
        for inject, _check in FAULTS.values():
            if inject is not _seq_wrap:  # 1 s of plain stream each: keep the call short
                inject(peer)
        peer.set_seq(65530)  # the sentence itself crosses 65535 -> 0
        appends = len(upstream.events("input_audio_buffer.append"))
        peer.play(speech)
        upstream.wait_for("input_audio_buffer.commit", timeout=6, count=commits + 1)
        assert len(upstream.events("input_audio_buffer.append")) > appends
        t = time.perf_counter()
        time.sleep(0.5)
        assert peer.rx_since(t) >= 20
        _alive(bridge)
        res = call.wait()
    assert res.ok and "bye_sent" in call.log_lines(), res.describe()
    ended = _ended(bridge, before)
    # (rx_lost is not asserted here: the SSRC and sequence restarts before the loss bursts
    # reset pjmedia's loss accounting; test_bad_rtp_is_dropped_and_counted[loss_bursts] does)
    assert ended["rtp_rx_discarded"] >= 40, ended


# -- fuzzing ----------------------------------------------------------------------------------

def _raw_rtp(b0: int, b1: int, seq: int, ts: int, ssrc: int, rest: bytes) -> bytes:
    """A header from raw fields (flag bits, CSRC count and all), no validation, then ``rest``."""
    return bytes([b0, b1]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + \
        ssrc.to_bytes(4, "big") + rest


def _packets(own_ssrc: int):
    """Random datagrams, structured headers with random flags and lying lengths (CSRC count,
    extension length, padding count), and mutated copies of a valid packet."""
    structured = st.builds(
        lambda version, pad, ext, cc, marker, pt, seq, ts, ssrc, rest:
            _raw_rtp((version << 6) | (pad << 5) | (ext << 4) | cc, (marker << 7) | pt,
                     seq, ts, ssrc, rest),
        st.sampled_from([2, 2, 2, 0, 1, 3]), st.integers(0, 1), st.integers(0, 1),
        st.integers(0, 15), st.integers(0, 1),
        st.sampled_from([0, 0, 8, 101, 13, 18, 72, 96, 127]) | st.integers(0, 127),
        st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF),
        st.sampled_from([own_ssrc]) | st.integers(0, 0xFFFFFFFF),
        st.binary(max_size=1488))
    valid = build_rtp(0, 1234, 160000, own_ssrc, bytes(160))
    mutated = st.builds(
        lambda cut, flips: bytes(_flip(valid[:cut], flips)),
        st.integers(0, len(valid)),
        st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 255)), max_size=8))
    return st.one_of(st.binary(max_size=1500), structured, mutated)


def _flip(data: bytes, flips) -> bytearray:
    out = bytearray(data)
    for pos, mask in flips:
        if pos < len(out):
            out[pos] ^= mask
    return out


FUZZ_BUDGET_S = 8.0


def test_fuzzed_rtp_never_breaks_the_call(bridge):
    """Hundreds of random, structured-with-random-fields and mutated RTP datagrams into one live
    call: the bridge survives, keeps the call and its outbound RTP, and counts discards."""
    from hypothesis import HealthCheck, given, settings

    before = _ended_ids(bridge)
    hold_ms = int(FUZZ_BUDGET_S * 1000) + 2500
    sent = {"n": 0}
    with ScriptedRtpPeer() as peer, ExternalMediaCall(bridge.target, peer, hold_ms=hold_ms) as call:
        call.connect_peer(10)
        peer.wait_rx(5)
        deadline = time.monotonic() + FUZZ_BUDGET_S

        @settings(max_examples=400, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(batch=st.lists(_packets(peer.ssrc), min_size=1, max_size=8))
        def fuzz(batch):
            if time.monotonic() > deadline:
                return
            for data in batch:
                peer.send_raw(data)
                sent["n"] += 1
            time.sleep(0.005)
            _alive(bridge)

        fuzz()
        t = time.perf_counter()
        time.sleep(0.5)
        back = peer.rx_since(t)
        _alive(bridge)
        res = call.wait()
    assert res.ok and "bye_sent" in call.log_lines(), res.describe()
    assert back >= 20, back
    assert sent["n"] >= 300, sent
    ended = _ended(bridge, before)
    assert not [r for r in bridge.logs("call_hangup") if r["call_id"] == ended["call_id"]]
    assert ended["rtp_rx_discarded"] > 0, ended
