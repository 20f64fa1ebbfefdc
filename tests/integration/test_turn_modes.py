"""Who ends the caller's turn, on real calls: DTMF (type none) or the model server's VAD (server_vad).

The bridge runs as ``sipbridge run``; the model server is the embedded model in its own process,
recording every client event. The caller is SIPp playing ``pcmu_speech.pcap`` (speech at
300-1570 and 2370-5090 ms: an 800 ms pause that would end a turn under the default silero
settings). Changing a call's turn settings mid-call has no outside entry point yet (no operator
API), so ``CallSession.update_turn_detection`` is covered by tests/unit/app/test_session.py.
"""


import numpy as np

from tests.support.bridge import Bridge
from tests.support.capture import RtpCapture
from tests.support.model_audio import caller_audio
from tests.support.ports import free_port_block
from tests.support.sipp import PCMU_SPEECH_PCAP, pcap_duration_ms, run_sipp

SPEECH_MS = pcap_duration_ms(PCMU_SPEECH_PCAP)


def streams(cap: RtpCapture, bridge: Bridge, media: int):
    """(caller -> bridge, bridge -> caller) RTP streams of the one call."""
    lo, hi = bridge.rtp_range
    found = cap.streams().values()
    up = [s for s in found if s.src[1] == media and lo <= s.dst[1] <= hi]
    down = [s for s in found if lo <= s.src[1] <= hi and s.dst[1] == media]
    assert len(up) == 1 and len(down) == 1, f"expected one stream each way, got {[s.src for s in found]}"
    return up[0], down[0]


def test_type_none_commits_the_turn_on_dtmf_pound_only(tmp_path, upstream):
    """type none: a pause ends nothing; RFC 2833 '#' sends commit + response.create, and the answer is heard."""
    media = free_port_block(4)
    with Bridge(tmp_path, upstream.url, extra={"turn_detection": {"type": "none"}}) as bridge, \
            RtpCapture(ports=[media], port_range=bridge.rtp_range) as cap:
        res = run_sipp("uac_dtmf", bridge.target, media_port=media, hold_ms=4000, timeout=40)
        assert res.returncode == 0 and res.final_code == 200, res.stderr
        assert bridge.wait_log("dtmf", digit="#")
        bridge.wait_log("session_closed")

    commits, creates = upstream.events("input_audio_buffer.commit"), upstream.events("response.create")
    assert len(commits) == 1 and len(creates) == 1, "exactly one turn, ended by the '#'"
    types = [e["type"] for e in upstream.events()]
    assert types.index("input_audio_buffer.commit") < types.index("response.create")
    first_append = upstream.events("input_audio_buffer.append")[0]["_recv_t"]
    assert commits[0]["_recv_t"] - first_append >= SPEECH_MS / 1000, "committed before the speech ended"
    update = upstream.events("session.update")[0]
    assert update["session"]["audio"]["input"]["turn_detection"] is None

    up, down = streams(cap, bridge, media)
    assert up.dtmf_digits() == "#"
    pound_at = up.dtmf_events()[0][0]
    answer = down.active_times(-40.0, t0=0.0)
    assert len(answer) * 20 >= 1000, "less than a second of the answer reached the caller"
    assert min(answer) > pound_at, "the caller heard an answer before pressing '#'"


def test_server_vad_leaves_the_turns_to_the_model_server(tmp_path, upstream):
    """server_vad: the model gets the configured VAD, the bridge never commits, the server answers, it is heard."""
    turn = {"type": "server_vad", "threshold": 0.55, "prefix_padding_ms": 150, "silence_threshold_ms": 550}
    media = free_port_block(4)
    with Bridge(tmp_path, upstream.url, extra={"turn_detection": turn}) as bridge, \
            RtpCapture(ports=[media], port_range=bridge.rtp_range) as cap:
        res = run_sipp("uac_pcmu", bridge.target, media_port=media, hold_ms=SPEECH_MS + 4000, timeout=40)
        assert res.returncode == 0 and res.final_code == 200, res.stderr
        bridge.wait_log("session_closed")
        server_turns = [r for r in bridge.logs("speech_started") if r.get("source") == "server"]
        server_ends = [r for r in bridge.logs("speech_stopped") if r.get("source") == "server"]
        barge_ins = bridge.logs("barge_in")
        created = bridge.logs("response.created")

    update = upstream.events("session.update")[0]
    assert update["session"]["audio"]["input"]["turn_detection"] == {
        "type": "server_vad", "threshold": 0.55, "prefix_padding_ms": 150, "silence_duration_ms": 550,
        "create_response": True, "interrupt_response": False}
    assert upstream.events("input_audio_buffer.commit") == [], "the bridge committed a turn itself"
    assert upstream.events("response.create") == [], "the bridge asked for a response itself"
    appended, rate = caller_audio(update["session"], upstream.events("input_audio_buffer.append"))
    assert len(appended) / rate * 1000 >= SPEECH_MS

    # the server heard two turns (the 800 ms pause is over its 550 ms) and answered each; its times
    # (audio sample counts) put the turns where the speech is, with the configured prefix and silence
    assert len(server_turns) == 2 and len(server_ends) == 2 and len(created) == 2
    t0 = server_turns[0]["audio_start_ms"] - (300 - 150)  # where the pcap began in the model's audio
    assert abs(server_turns[1]["audio_start_ms"] - t0 - (2370 - 150)) <= 100, (t0, server_turns)
    assert abs(server_ends[0]["audio_end_ms"] - t0 - (1570 + 550)) <= 100, (t0, server_ends)
    # the second turn began while the first answer was playing: the bridge's server_vad path cut it
    assert [b["source"] for b in barge_ins] == ["server_vad"]
    assert upstream.events("conversation.item.truncate") or upstream.events("conversation.item.delete")

    _, down = streams(cap, bridge, media)
    assert np.count_nonzero(down.active_mask(-40.0)) * 20 >= 1000, "the caller heard less than a second of answer"
