"""Tests for tests/support/rtp_peer.py: two RtpPeers on loopback, tcpdump, and SIPp signalling.

Peers talk over 127.0.0.1 in real time, so each test runs for 1-3 s.
"""

import numpy as np
import pytest

from tests.support import audio
from tests.support.capture import RtpCapture
from tests.support.rtp import DTMF_EVENTS
from tests.support.rtp_peer import SAMPLES_PER_PACKET, ExternalMediaCall, RtpPeer
from tests.support.sipp import SippUas


RATE = audio.RATE


def _through_echo(delay_ms, atten_db, ir=None, placement="rtp", signal=None):
    """B plays ``signal`` (default 1.2 s of white noise) to A, A echoes it back; returns (a, b)."""
    signal = audio.noise(1200, -20.0, seed=3) if signal is None else signal
    with RtpPeer(placement=placement) as a, RtpPeer() as b:
        a.echo(delay_ms, atten_db, ir)
        b.set_remote(*a.local_addr)  # A never gets set_remote(): it must learn B from B's packets
        b.play(signal, at_s=0.3)
        b.sleep_until(0.3 + len(signal) / RATE + 0.3)
    return a, b


def _onset(pcm, level_dbfs):
    """Index of the first sample RtpPeer.first_time() would call the onset (same criterion, offline)."""
    x = np.asarray(pcm, dtype=np.float64)
    amp = 32768 * 10 ** (level_dbfs / 20)
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    i = np.arange(x.size)
    e = np.minimum(i + SAMPLES_PER_PACKET, x.size)
    return int(np.flatnonzero((np.abs(x) >= amp) & ((c[e] - c[i]) / (e - i) > amp * amp))[0])


def _echo_response(b, max_lag, taps):
    """Least-squares FIR (``taps`` long) from B's sent source to B's received audio, starting at ``max_lag``."""
    x = b.sent_source_pcm().astype(np.float64)
    y = b.received_pcm(timeline=True).astype(np.float64)
    n = min(x.size, y.size)
    x, y = x[:n], y[:n]
    return np.array([np.dot(x[: n - (max_lag + m)], y[max_lag + m :]) / np.dot(x, x) for m in range(taps)])


@pytest.mark.parametrize(
    "delay_ms, atten_db, placement",
    [(47.5, 12.0, "rtp"), (130.0, 6.0, "rtp"), (21.0, 0.0, "rtp"), (61.25, 20.0, "arrival")],
)
def test_echo_delay_and_attenuation_as_asked(delay_ms, atten_db, placement):
    """Audio sent to a peer with echo(delay_ms, atten_db) comes back delay_ms later (+ loopback transit) and atten_db quieter."""
    # white noise exposes any 1-sample jump of the echo path; "arrival" placement has those by design
    # (each packet lands where it arrived), so it is measured with speech
    signal = audio.make_utterance(["hello-world"]).pcm if placement == "arrival" else None
    a, b = _through_echo(delay_ms, atten_db, placement=placement, signal=signal)
    assert a.learned_remote == b.local_addr and b.learned_remote == a.local_addr
    assert a.echo_late_samples == 0 and a.echo_delay_samples == round(delay_ms * 8)
    # seen from B: its own noise (on its send timeline) vs what came back (placed on arrival)
    src, back = b.sent_source_pcm(), b.received_pcm(timeline=True)
    lag, corr = audio.align(src, back, max_lag_ms=300)
    assert corr > (0.98 if placement == "rtp" else 0.8), (lag, corr, a.stats(), b.stats())
    assert abs(lag / 8.0 - delay_ms) <= 1.0, (lag / 8.0, a.stats(), b.stats())
    m = min(src.size, back.size - lag)
    x, y = src[:m].astype(np.float64), back[lag : lag + m].astype(np.float64)
    if placement == "rtp":  # least-squares gain: also proves the echo is a clean, aligned copy
        gain_db = 20 * np.log10(np.dot(x, y) / np.dot(x, x))
    else:  # per-packet jumps of a sample or two blur the LS gain; energy is what is preserved
        gain_db = 10 * np.log10(np.dot(y, y) / np.dot(x, x))
    assert abs(gain_db + atten_db) <= 0.5, gain_db
    # A placed what it received where `placement` says, and echoed exactly that, D samples later
    rx_pkts = a.rx_audio()
    if placement == "arrival":
        assert all(r.pos == r.arrival_pos for r in rx_pkts)
    else:  # one RTP clock, anchored on the earliest of the first 10 packets, then frozen
        ref = rx_pkts[10]
        assert all(((r.ts - ref.ts) & 0xFFFFFFFF) == r.pos - ref.pos for r in rx_pkts[10:]) and a.resyncs == 0
        assert max(r.pos - r.arrival_pos for r in rx_pkts) <= 1  # never echoed before it arrived (+/- rounding)
    d = a.echo_delay_samples
    rx, echo = a.received_pcm(timeline=True).astype(np.float64), a.sent_echo_pcm().astype(np.float64)
    seg = slice(int(0.4 * RATE), int(1.4 * RATE))
    expected = 10 ** (-atten_db / 20) * rx[seg.start - d : seg.stop - d]
    assert np.max(np.abs(echo[seg] - expected)) <= 0.51  # only int16 rounding


def test_echo_impulse_response_is_applied():
    """echo(..., ir=h) convolves the delayed received audio with h: the measured response is g*h at delay_ms."""
    ir = np.zeros(41)
    ir[[0, 5, 40]] = [1.0, -0.5, 0.25]
    a, b = _through_echo(52.0, 6.0, ir)
    g = 10 ** (-6.0 / 20)
    lag0 = round(52.0 * 8)
    h = _echo_response(b, lag0 - 4, 52)  # a few taps of margin for the loopback transit
    peak = int(np.argmax(np.abs(h)))
    assert abs(peak - 4) <= 8, h  # the direct path lands at delay_ms within +/- 1 ms
    est = h[peak : peak + 41]
    assert np.allclose(est, g * ir, atol=0.04), np.round(est[[0, 5, 40]], 3)
    assert a.echo_late_samples == 0


def test_scheduled_speech_is_on_the_wire_at_its_time(tmp_path):
    """Audio play()ed at at_s shows up on the wire (tcpdump timestamps) at t0 + at_s, sample-accurately placed in its packet."""
    at_s = 0.4567  # deliberately not on a 20 ms tick: sample 3654 = packet 22, offset 134
    tone = audio.sine(700, 300, -12.0)
    with RtpPeer() as a:
        with RtpCapture(ports=[a.local_port], path=tmp_path / "rtp.pcap") as cap:
            with RtpPeer() as b:
                b.set_remote(*a.local_addr)
                b.play(tone, at_s)
                b.sleep_until(at_s + 0.6)
    up = cap.stream(src_port=b.local_port, dst_port=a.local_port)
    pkts = up.audio_packets()
    assert len(pkts) == len(b.tx_sent()) and up.seq_gaps() == 0
    # strict absolute 20 ms schedule: no drift over the run (a late packet does not delay the next)
    arr = np.array([p.arrival for p in pkts])
    first_tick = b.tx_sent()[0].tick
    dev = arr - (b.t0_wall + (first_tick + np.arange(len(pkts))) * 0.020)
    assert abs(np.median(dev)) < 0.0005 and np.mean(np.abs(dev) < 0.001) >= 0.9, np.round(dev * 1000, 2)
    assert all(((q.ts - p.ts) & 0xFFFFFFFF) == SAMPLES_PER_PACKET for p, q in zip(pkts, pkts[1:]))
    # onset on the wire: packet k, sample j of the captured stream, at capture time + j/8000
    lead = _onset(tone, -30)  # the sine starts at phase 0: its first loud sample is sample 1
    k, j = divmod(_onset(np.concatenate([audio.ulaw_decode(p.payload) for p in pkts]), -30), SAMPLES_PER_PACKET)
    assert (first_tick + k) * SAMPLES_PER_PACKET + j == round(at_s * RATE) + lead
    wire_onset = pkts[k].arrival + j / RATE
    expected = b.t0_wall + at_s + lead / RATE
    assert abs(wire_onset - expected) <= 0.005, (wire_onset - expected) * 1000
    # the peers' own onset detection agrees, in both directions
    tx_onset = b.first_time(-30, direction="tx")
    rx_onset = a.first_time(-30)
    expected = b.t0 + at_s + lead / RATE
    assert abs(tx_onset - expected) <= 0.005 and abs(rx_onset - expected) <= 0.005
    assert b.first_time(-30, direction="tx", component="echo") is None
    assert a.first_time(-30, after=b.t0 + at_s + 0.35) is None


def test_dtmf_events_are_well_formed_rfc4733():
    """send_dtmf() replaces audio with RFC 4733 packets: PT 101, one timestamp, marker first, growing duration, 3 end packets."""
    with RtpPeer() as a, RtpPeer() as b:
        b.set_remote(*a.local_addr)
        start_s = b.send_dtmf("7", at_s=0.3, duration_ms=100)
        b.sleep_until(0.7)
    assert start_s == pytest.approx(0.3)
    rx = a.rx
    ev_idx = [i for i, p in enumerate(rx) if p.pt == 101]
    assert len(ev_idx) == 7 and ev_idx == list(range(ev_idx[0], ev_idx[0] + 7))
    evs = [rx[i] for i in ev_idx]
    before, after = rx[ev_idx[0] - 1], rx[ev_idx[-1] + 1]
    assert before.pt == 0 and after.pt == 0
    assert [((p.seq - before.seq) & 0xFFFF) for p in evs + [after]] == list(range(1, 9))  # no seq gap
    assert {p.ssrc for p in rx} == {b.ssrc}
    assert {p.ts for p in evs} == {(before.ts + SAMPLES_PER_PACKET) & 0xFFFFFFFF}  # event starts at its tick
    assert after.ts == (before.ts + 8 * SAMPLES_PER_PACKET) & 0xFFFFFFFF  # audio clock never stopped
    assert [p.marker for p in evs] == [True] + [False] * 6 and not after.marker
    assert [p.event.event for p in evs] == [DTMF_EVENTS["7"]] * 7 and {p.event.volume for p in evs} == {10}
    assert [p.event.duration for p in evs] == [160, 320, 480, 640, 800, 800, 800]
    assert [p.event.end for p in evs] == [False] * 4 + [True] * 3
    assert [len(p.payload) for p in evs] == [4] * 7
    assert abs(evs[0].arrival - (b.t0 + 0.3)) <= 0.005
    assert np.diff([p.arrival for p in evs]).min() > 0.015  # one per 20 ms tick, not a burst


def test_peer_sends_nothing_until_it_has_a_destination():
    """Ticks before any remote is known are recorded but not transmitted; the first received packet teaches the peer where to send."""
    with RtpPeer() as a, RtpPeer() as b:
        a.sleep_until(0.2)
        assert a.tx and not a.tx_sent() and a.remote is None and not b.rx
        with pytest.raises(TimeoutError):
            a.wait_remote(0.05)
        b.set_remote(*a.local_addr)
        assert a.wait_remote(2.0) == b.local_addr
        a.sleep_until(0.5)
    sent = a.tx_sent()
    assert sent and sent[0].marker and sent[0].dest == b.local_addr and len(b.rx) >= len(sent) - 2
    assert all(p.seq is None and p.dest is None for p in a.tx[: sent[0].tick])


def test_external_media_call_against_sipp_echo_uas(tmp_path):
    """uac_external_media.xml + RtpPeer against SIPp's -rtp_echo UAS: SDP address logged during the call, RTP flows both ways, BYE after hold_ms."""
    speech = audio.make_utterance(["hello-world"]).pcm
    with SippUas(trace_dir=tmp_path / "uas") as uas, RtpPeer() as peer:
        with ExternalMediaCall(uas.target, peer, hold_ms=2500, timeout=15, trace_dir=tmp_path / "uac") as call:
            sdp_addr = call.connect_peer(timeout=5)
            t_sdp = peer.elapsed()
            assert sdp_addr == ("127.0.0.1", uas.media_port)
            at_s = t_sdp + 0.1
            peer.play(speech, at_s)
            assert peer.wait_remote(2.0) == sdp_addr  # SIPp echoes from its media port: symmetric
            res = call.wait()
        uas_res = uas.stop()
    assert res.ok and res.final_code == 200, res.describe()
    assert "m=audio %d " % peer.local_port in next(t for d, t in res.messages if d == "S" and t.startswith("INVITE"))
    assert [m.method for m in uas_res.received] == ["INVITE", "ACK", "BYE"]
    assert "bye_sent" in call.log_lines() and "bye_received" not in call.log_lines()
    # SIPp bounced every packet verbatim, within a millisecond
    sent = {p.seq: p for p in peer.tx_sent()}
    rx = peer.rx_audio()
    assert len(rx) >= len(sent) - 2 and all(r.payload == sent[r.seq].payload for r in rx)
    rtt = np.array([r.arrival - sent[r.seq].time for r in rx])
    assert np.median(rtt) < 0.001, np.median(rtt)
    lag, corr = audio.align(peer.sent_source_pcm(), peer.received_pcm(timeline=True), max_lag_ms=50)
    assert corr > 0.99 and abs(lag) <= 8
    expected = peer.t0 + at_s + _onset(speech, -35) / RATE  # where the prompt's onset lies in the clip
    onset_tx, onset_rx = peer.first_time(-35, direction="tx"), peer.first_time(-35)
    # the rx onset on the sender's clock: minus the trip of the packet that carries it (its
    # scheduling on a busy machine is not what is checked here; the median RTT is, above)
    carrier = next(r for r in rx if r.arrival <= onset_rx < r.arrival + 0.020)
    onset_rx -= carrier.arrival - sent[carrier.seq].time
    # rx is the mu-law decoded copy: its samples cross the threshold up to a few samples apart
    assert abs(onset_tx - expected) <= 0.005 and abs(onset_rx - onset_tx) <= 0.002, (onset_tx - expected, onset_rx - onset_tx)


@pytest.mark.parametrize("hold_ms", [0, 6000])
def test_external_media_call_remote_hangup(tmp_path, hold_ms):
    """With hold_ms=0 the scenario waits for the far end's BYE; with a long hold_ms a far-end BYE during the pause also ends it cleanly."""
    with SippUas("uas_hangup", hold_ms=800, trace_dir=tmp_path / "uas") as uas, RtpPeer() as peer:
        with ExternalMediaCall(uas.target, peer, hold_ms=hold_ms, timeout=15, trace_dir=tmp_path / "uac") as call:
            call.connect_peer(timeout=5)
            res = call.wait()
            took = peer.elapsed()
        uas_res = uas.stop()
    assert res.ok, res.describe()
    assert [m.method for m in res.received if not m.is_response] == ["BYE"]
    assert res.sent[-1].code == 200 and res.sent[-1].method == "BYE"
    assert "bye_received" in call.log_lines() and uas_res.ok
    assert took < 3.0  # ended by the UAS's BYE after ~0.8 s, not by hold_ms
    assert peer.learned_remote == ("127.0.0.1", uas.media_port)


def test_first_time_with_a_span_skips_a_breath_before_the_first_word():
    """first_time(span_ms=60) finds the first 60 ms loud stretch; without a span a lone loud 20 ms counts."""
    breath = audio.noise(20, -35.0, seed=5)
    word = audio.sine(300.0, 400, -20.0)
    signal = np.concatenate([breath, audio.silence(120), word])
    with RtpPeer() as a, RtpPeer() as b:
        b.set_remote(*a.local_addr)
        b.play(signal, at_s=0.2)
        b.sleep_until(0.2 + len(signal) / RATE + 0.1)
    start = b.t0 + 0.2
    assert abs(b.first_time(-40, direction="tx") - start) <= 0.005
    assert abs(b.first_time(-40, direction="tx", span_ms=60) - (start + 0.140)) <= 0.005
