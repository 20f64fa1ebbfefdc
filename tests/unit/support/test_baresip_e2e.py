"""End-to-end tests of the baresip handset helper against a SIPp echo UAS on 127.0.0.1."""

import pytest

from tests.support import audio
from tests.support.baresip import Baresip
from tests.support.capture import RtpCapture
from tests.support.sipp import SippUas

pytestmark = [
    pytest.mark.integration,
]


def test_handset_hears_its_speech_echoed(tmp_path):
    """baresip dials a SIPp RTP-echo UAS and its recorded WAV holds the speech it sent, in place."""
    utt = audio.make_utterance(["hello-world", "tt-weasels"], 800, lead_ms=300)
    bs = Baresip(tmp_path / "handset")
    with SippUas(trace_dir=tmp_path / "uas") as uas:
        with RtpCapture(ports=[uas.media_port], path=tmp_path / "rtp.pcap") as cap:
            res = bs.call(f"sip:echo@{uas.target}", duration_s=utt.duration_ms / 1000 + 0.6, mic=utt.pcm)
        uas_res = uas.stop()
    assert res.established, res.log[-3000:]
    assert res.close_reason and "reset by user" in res.close_reason  # we hung up
    assert uas_res.ok and [m.method for m in uas_res.received] == ["INVITE", "ACK", "BYE"]
    heard = res.recorded_pcm()
    assert len(heard) >= len(utt.pcm)
    lag, corr = audio.align(utt.pcm, heard, max_lag_ms=500)
    assert corr > 0.95, (lag, corr)
    found = audio.speech_segments(heard, min_gap_ms=500)
    shift = audio.samples_to_ms(lag)
    assert len(found) == 2
    for (ts, te), (fs, fe) in zip(utt.segments, found):
        assert abs(ts + shift - fs) <= 40 and abs(te + shift - fe) <= 40
    up = cap.stream(dst_port=uas.media_port)
    assert up.payload_types == [0] and len(up) >= len(utt.pcm) // 160


def test_rejected_call_reports_reason(tmp_path):
    """A call the UAS rejects with 486 is not established and the close reason names the code."""
    with SippUas(reject=486, trace_dir=tmp_path / "uas") as uas:
        res = Baresip(tmp_path / "handset").call(f"sip:busy@{uas.target}", duration_s=2)
        uas.stop()
    assert not res.established
    assert "486" in (res.close_reason or ""), res.event_types
    assert res.returncode == 0 and res.recorded_wav is None
