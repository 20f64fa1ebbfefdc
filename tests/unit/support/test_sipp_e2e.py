"""End-to-end smoke tests: SIPp UAC scenarios against a SIPp UAS on 127.0.0.1, with RTP capture."""


import numpy as np
import pytest

from tests.support import audio
from tests.support.capture import RtpCapture
from tests.support.ports import free_port_block
from tests.support.sipp import PCMU_SPEECH_PCAP, SippUas, make_audio_pcap, pcap_duration_ms, run_sipp

pytestmark = [
    pytest.mark.integration,
]


def test_uac_pcmu_against_echo_uas_rtp_both_ways(tmp_path):
    """uac_pcmu.xml plays the committed speech pcap; capture sees it sent and echoed back intact."""
    uac_media = free_port_block(4)
    with SippUas(trace_dir=tmp_path / "uas") as uas:
        with RtpCapture(ports=[uac_media, uas.media_port], path=tmp_path / "rtp.pcap") as cap:
            res = run_sipp(
                "uac_pcmu", uas.target, media_port=uac_media, hold_ms=pcap_duration_ms(PCMU_SPEECH_PCAP) + 300,
                trace_dir=tmp_path / "uac",
            )
        uas_res = uas.stop()
    assert res.ok and res.final_code == 200, res.describe()
    assert res.invite_codes[-1] == 200 and "m=audio" in res.answer_sdp
    assert uas_res.ok and [m.method for m in uas_res.received] == ["INVITE", "ACK", "BYE"]

    up = cap.stream(src_port=uac_media, dst_port=uas.media_port)
    down = cap.stream(src_port=uas.media_port, dst_port=uac_media)
    assert len(up) == 280 and up.payload_types == [0] and up.seq_gaps() == 0
    assert abs(np.median(up.interarrival()) - 0.020) < 0.002
    assert len(down) == len(up)
    # the echo carries the same speech: same activity pattern, same decoded audio
    assert (up.active_mask() == down.active_mask()).all()
    assert np.array_equal(up.pcm(), down.pcm())
    spans = up.speech_spans(min_gap_s=0.5)
    assert len(spans) == 2 and abs(spans[0][0] - 0.30) < 0.03 and abs(spans[1][0] - 2.37) < 0.03


@pytest.mark.parametrize("code", [486, 503])
def test_expect_reject_reports_final_code(tmp_path, code):
    """uac_expect_reject.xml succeeds on a rejection and SippResult.final_code names the code."""
    with SippUas(reject=code, trace_dir=tmp_path / "uas") as uas:
        res = run_sipp("uac_expect_reject", uas.target, timeout=10, trace_dir=tmp_path / "uac")
        uas_res = uas.stop()
    assert res.ok and res.final_code == code, res.describe()
    assert res.invite_codes == [100, code]
    assert res.sent[-1].method == "ACK"
    assert uas_res.ok and uas_res.sent_codes == [100, code]


def test_expect_reject_answered_call_fails_cleanly(tmp_path):
    """If the UAS answers instead of rejecting, the scenario hangs up (ACK+BYE) and exits non-zero."""
    with SippUas(trace_dir=tmp_path / "uas") as uas:
        res = run_sipp("uac_expect_reject", uas.target, timeout=10, trace_dir=tmp_path / "uac")
        uas_res = uas.stop()
    assert not res.ok and res.final_code == 200
    assert [m.method for m in res.sent] == ["INVITE", "ACK", "BYE"]
    assert uas_res.ok  # the UAS saw a complete, cleanly ended call


def test_uac_dtmf_sends_pound_after_speech(tmp_path):
    """uac_dtmf.xml sends the speech pcap, then RFC 4733 '#' events, from the same media port."""
    speech = tmp_path / "tone.pcap"
    make_audio_pcap(np.concatenate([audio.sine(500, 600, -20), audio.silence(100)]), speech)
    uac_media = free_port_block(4)
    with SippUas(trace_dir=tmp_path / "uas") as uas:
        with RtpCapture(ports=[uac_media], path=tmp_path / "rtp.pcap") as cap:
            res = run_sipp("uac_dtmf", uas.target, media_port=uac_media, pcap=speech, hold_ms=400, trace_dir=tmp_path / "uac")
        uas.stop()
    assert res.ok, res.describe()
    up = cap.stream(src_port=uac_media, dst_port=uas.media_port)
    assert up.payload_types == [0, 101]
    assert up.dtmf_digits() == "#"
    last_audio = up.audio_packets()[-1].arrival
    first_event = up.dtmf_events()[0][0]
    assert first_event > last_audio
    assert len(up.active_times()) == 30  # 600 ms of tone


def test_uac_pcma_and_remote_hangup(tmp_path):
    """uac_wait_bye.xml ends when the UAS hangs up; uac_pcma.xml sends PT 8 audio."""
    with SippUas("uas_hangup", hold_ms=300, trace_dir=tmp_path / "uas1") as uas:
        res = run_sipp("uac_wait_bye", uas.target, timeout=10, trace_dir=tmp_path / "uac1")
        uas.stop()
    assert res.ok and res.received[-1].method == "BYE", res.describe()

    short = tmp_path / "a.pcap"
    make_audio_pcap(audio.sine(700, 400, -20), short, law="alaw")
    uac_media = free_port_block(4)
    with SippUas(codec="PCMA", trace_dir=tmp_path / "uas2") as uas:
        with RtpCapture(ports=[uac_media], path=tmp_path / "rtp.pcap") as cap:
            res = run_sipp("uac_pcma", uas.target, media_port=uac_media, pcap=short, hold_ms=600, trace_dir=tmp_path / "uac2")
        uas.stop()
    assert res.ok, res.describe()
    assert "PCMA/8000" in res.answer_sdp
    up = cap.stream(src_port=uac_media)
    assert up.payload_types == [8] and len(up) == 20 and up.active_mask().all()
