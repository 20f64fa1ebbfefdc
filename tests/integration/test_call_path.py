"""The call path end to end: real SIPp/baresip callers, the real bridge, a real WebSocket model."""

import time

import numpy as np
import pytest

from tests.support import audio, system
from tests.support.baresip import Baresip
from tests.support.bridge import Bridge, Upstream
from tests.support.capture import RtpCapture
from tests.support.model_audio import caller_audio
from tests.support.ports import free_port_block, free_tcp_port
from tests.support.sipp import PCMU_SPEECH_PCAP, pcap_duration_ms, run_sipp

G711A_PCAP = str(system.SIPP_SHARE / "g711a.pcap")


def appended_pcm(upstream: Upstream) -> tuple[np.ndarray, int]:
    """All caller audio the model server received, in order, decoded from the session's format
    (µ-law at 8 kHz by default, 24 kHz pcm16 at a 16 kHz port), and its rate."""
    session = upstream.events("session.update")[0]["session"]
    return caller_audio(session, upstream.events("input_audio_buffer.append"))


def bridge_to_caller(cap: RtpCapture, bridge: Bridge):
    """The RTP stream the bridge sent to the caller (source port in the bridge's RTP range)."""
    lo, hi = bridge.rtp_range
    streams = [s for s in cap.streams().values() if lo <= s.src[1] <= hi]
    assert len(streams) == 1, f"expected one bridge->caller stream, got {list(cap.streams())}"
    return streams[0]


def bridge_from_caller(cap: RtpCapture, bridge: Bridge):
    """The caller's RTP stream towards the bridge (destination port in the bridge's RTP range)."""
    lo, hi = bridge.rtp_range
    streams = [s for s in cap.streams().values() if lo <= s.dst[1] <= hi]
    assert len(streams) == 1, f"expected one caller->bridge stream, got {list(cap.streams())}"
    return streams[0]


def call_waiting_for_bye(bridge: Bridge):
    """A SIPp call (uac_wait_bye) running in the background, answered and settled; ``.result()``."""
    from concurrent.futures import ThreadPoolExecutor
    pool = ThreadPoolExecutor(1)
    future = pool.submit(run_sipp, "uac_wait_bye", bridge.target, timeout=25)
    pool.shutdown(wait=False)
    bridge.wait_log("call_answered", timeout=15)
    time.sleep(0.5)  # SIPp failed the call once (of ~15 runs) on a BYE right after its ACK
    return future


def wait_no_upstream_sockets(bridge: Bridge, upstream: Upstream, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = bridge.tcp_connections_to(upstream.port)
        if n == 0:
            return 0
        time.sleep(0.1)
    return n


@pytest.mark.parametrize("law,pcap,codec", [
    ("alaw", G711A_PCAP, "PCMA/8000"),
    ("ulaw", str(PCMU_SPEECH_PCAP), "PCMU/8000"),
])
def test_sipp_call_speech_reaches_model_and_model_audio_reaches_caller(tmp_path, law, pcap, codec):
    """A SIPp call is answered, its speech streams upstream, the answer comes back on RTP, BYE cleans up."""
    # the model answers every turn with a tone that is loud from its first sample, so the
    # first agent packet on the wire marks when the answer started
    reply = audio.write_wav(tmp_path / "reply.wav", audio.sine(440, 800, -12.0, rate=24000), rate=24000)
    with Upstream(tmp_path, reply_wav=reply) as upstream, Bridge(tmp_path, upstream.url) as bridge:
        _check_call(upstream, bridge, law, pcap, codec)


def _check_call(upstream: Upstream, bridge: Bridge, law: str, pcap: str, codec: str) -> None:
    media = free_port_block(4)
    speech_ms = pcap_duration_ms(pcap)
    scenario = "uac_pcma" if law == "alaw" else "uac_pcmu"
    with RtpCapture(ports=[media], port_range=bridge.rtp_range) as cap:
        res = run_sipp(scenario, bridge.target, media_port=media, pcap=pcap,
                       hold_ms=speech_ms + 2 * 3000, timeout=40)
    assert res.returncode == 0 and res.final_code == 200, res.stderr
    assert bridge.wait_log("media_active")["codec"] == codec

    # the model server was configured for client-side turns and got the caller's speech
    update = upstream.events("session.update")[0]
    assert update["session"]["audio"]["input"]["turn_detection"] is None
    pcm, rate = appended_pcm(upstream)
    assert len(pcm) / rate >= (speech_ms / 1000) * 0.9
    assert audio.dbfs(pcm) > -35, "caller speech arrived upstream as (near) silence"
    assert upstream.events("input_audio_buffer.commit") and upstream.events("response.create")

    # the model's answer reached the caller on RTP
    back = bridge_to_caller(cap, bridge)
    assert set(back.payload_types) == {0 if law == "ulaw" else 8}
    active = back.active_mask(-40.0)
    assert active.sum() * 20 >= 700, "the agent's answer did not reach the caller"
    assert back.seq_gaps() == 0

    # BYE from the caller ends the call and closes the upstream session
    bridge.wait_log("call_ended")
    bridge.wait_log("session_closed")
    assert wait_no_upstream_sockets(bridge, upstream) == 0
    assert bridge.stop() == 0
    assert "Assertion" not in bridge.output()

    if law == "alaw":
        return  # SIPp's own g711a.pcap is not a designed corpus: its pauses are unknown
    # the answer came after the caller finished, not before, and promptly: 500 ms of silence ends the turn,
    # plus Silero's release (~100 ms), a 32 ms chunk, the jitter buffer and one 20 ms tick.
    # pcmu_speech.pcap's first utterance ends at 1570 ms, then 800 ms of silence.
    caller = bridge_from_caller(cap, bridge)
    agent_start = back.active_times(-40.0)[0]
    caller_before = [t for t in caller.active_times(-40.0) if t < agent_start]
    assert caller_before, "the agent spoke before the caller said anything"
    gap = agent_start - caller_before[-1]
    assert 0.5 <= gap <= 0.8, f"agent answered {gap * 1000:.0f} ms after the caller's last sound"


def test_disallowed_source_gets_403(tmp_path, upstream):
    """An INVITE from outside sip.allow_from is refused with 403 and logged with its source."""
    with Bridge(tmp_path, upstream.url, extra={"sip": {"allow_from": ["10.0.0.0/8"]}}) as b:
        res = run_sipp("uac_expect_reject", b.target, timeout=15)
        assert res.returncode == 0 and res.final_code == 403
        rec = b.wait_log("call_rejected", status=403)
        assert rec["source"].startswith("127.0.0.1:")
        assert not upstream.events("session.update"), "a refused call must not open a model session"
    # nothing of ours to retransmit (a refusal is no hangup): the stop skips pjsua's 1 s wait
    assert b.wait_log("sip_stopped")["linger"] is False, "an idle bridge waited for replies at exit"


def test_invites_beyond_capacity_get_486(tmp_path, upstream, bridge):
    """With every call slot busy (4 with this pjsua2 wheel), the next INVITE gets 486."""
    assert bridge.wait_log("sip_listening")["call_capacity"] == 4
    import threading
    busy = {}
    t = threading.Thread(target=lambda: busy.setdefault("res", run_sipp(
        "uac_pcmu", bridge.target, calls=4, hold_ms=8000, timeout=40,
        extra_args=["-r", "20", "-l", "4"])))
    t.start()
    deadline = time.monotonic() + 20
    while len(bridge.logs("call_answered")) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(bridge.logs("call_answered")) == 4
    res = run_sipp("uac_expect_reject", bridge.target, timeout=15)
    t.join(60)
    assert res.returncode == 0 and res.final_code == 486
    assert busy["res"].returncode == 0 and busy["res"].successful_calls == 4


@pytest.mark.parametrize("case", ["unreachable", "wrong_key"])
def test_upstream_unavailable_gets_503(tmp_path, case):
    """When the model server cannot be reached (or refuses us), the INVITE gets 503 and the reason is logged."""
    if case == "unreachable":
        url, server, key = f"ws://127.0.0.1:{free_tcp_port()}", None, None
    else:
        server = Upstream(tmp_path, api_key="sk-right")
        url, key = server.url, "sk-wrong"
    try:
        with Bridge(tmp_path, url, api_key=key) as b:
            res = run_sipp("uac_expect_reject", b.target, timeout=20)
            assert res.returncode == 0 and res.final_code == 503
            reason = b.wait_log("upstream_unavailable")["reason"]
            assert ("401" in reason) if case == "wrong_key" else reason
    finally:
        if server:
            server.stop()


def test_api_key_is_sent_to_the_model_server(tmp_path):
    """With the key in the configured variable, the model server's auth check passes and the call is answered."""
    with Upstream(tmp_path, api_key="sk-right") as server, \
            Bridge(tmp_path, server.url, api_key="sk-right") as b:
        res = run_sipp("uac_pcmu", b.target, hold_ms=1000, timeout=20)
        assert res.returncode == 0 and res.final_code == 200
        assert server.events("session.update")


def test_upstream_close_ends_the_call_with_bye(tmp_path, upstream):
    """When the model server goes away mid-call and stays away, the bridge retries
    reconnect_attempts times, then hangs up with BYE and says why."""
    retry = {"reconnect_attempts": 2, "reconnect_backoff_min_ms": 100, "reconnect_backoff_max_ms": 200}
    with Bridge(tmp_path, upstream.url, extra={"realtime": retry}) as bridge:
        call = call_waiting_for_bye(bridge)
        upstream.stop()  # closes with 1001 (going away), then refuses connections
        res = call.result()
        assert res.returncode == 0, "the caller never got a BYE:\n" + res.describe()
        assert bridge.wait_log("call_hangup")["reason"] == "upstream_lost"
        assert bridge.wait_log("upstream_lost")["code"] == 1001
        assert [r["attempt"] for r in bridge.logs("upstream_reconnect_failed")] == [1, 2]
        assert bridge.logs("upstream_gave_up") and not bridge.logs("upstream_restored")


def test_sigterm_ends_calls_with_bye_and_exits_0(tmp_path, upstream, bridge):
    """SIGTERM during a call sends BYE to the caller, and the process exits 0 with no assertion."""
    call = call_waiting_for_bye(bridge)
    code = bridge.stop()
    assert code == 0, f"exit {code}:\n" + bridge.output()[-4000:]
    res = call.result()
    assert res.returncode == 0, "the caller never got a BYE:\n" + res.describe()
    assert "Assertion" not in bridge.output()
    assert bridge.logs("stopped")
    # the BYE just sent may need a retransmission: the stop keeps pjsua's wait for replies
    assert bridge.wait_log("sip_stopped")["linger"] is True, "stopped without waiting after a BYE"


def test_bad_config_exits_2_naming_the_key(tmp_path):
    """`sipbridge run` with an invalid value names the key and exits 2 before binding anything."""
    import subprocess
    import sys
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("turn_detection:\n  silence_threshold_ms: -5\n")
    r = subprocess.run([sys.executable, "-m", "sipbridge", "run", "-c", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "turn_detection.silence_threshold_ms" in r.stderr


@pytest.mark.parametrize("media_rate", [16000, 8000])
def test_baresip_hears_its_sentence_back_from_the_embedded_model(tmp_path, media_rate):
    """With no model configured, a baresip handset that says a sentence hears that sentence back,
    as one turn, all of it, in order, after it finished speaking (at either ``sip.media_rate``)."""
    prompt = audio.trim_silence(audio.load_wav(audio.asterisk_prompt("tt-weasels")))
    with Bridge(tmp_path, upstream_url=None, extra={"sip": {"media_rate": media_rate}}) as b:
        assert b.wait_log("embedded_model_started")
        assert b.wait_log("ready")["media_rate"] == media_rate
        handset = Baresip(tmp_path / "handset")
        duration = 2 * len(prompt) / 8000 + 4
        res = handset.call(f"sip:bot@{b.target}", duration_s=duration, mic=prompt)
        assert res.established, res.log[-2000:]
        heard = res.recorded_pcm()
        ended = b.wait_log("call_ended")
    assert len(b.logs("speech_started")) == 1 and not b.logs("barge_in"), b.output()[-4000:]
    pieces = audio.assert_heard_back(prompt, heard, f"call stats {ended}")
    assert pieces[0][0] >= len(prompt), f"the answer started before the caller finished: {pieces}"
