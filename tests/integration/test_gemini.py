"""provider gemini end to end: calls through ``sipbridge run`` to the strict local Gemini Live
server (tests/support/gemini_server.py), which echoes each caller turn back at 24 kHz.

The bridge must build the URL and key itself (``?key=`` from ``$GEMINI_API_KEY``), send
``setup`` first and wait for ``setupComplete``, send the caller as 16 kHz PCM, stop the model on
a barge-in (``activityStart`` with the bridge's turns; the server's ``interrupted`` with its own)
and survive a ``goAway`` by resuming the session; the server refuses (closes 1007) anything else.
"""

from __future__ import annotations

import base64

import numpy as np

from tests.support import audio
from tests.support.bridge import Bridge
from tests.support.capture import RtpCapture
from tests.support.gemini_barge import run_gemini_call
from tests.support.gemini_server import GeminiServer
from tests.support.ports import free_port_block
from tests.support.rtp_peer import ExternalMediaCall, RtpPeer
from tests.support.sipp import PCMU_SPEECH_PCAP, pcap_duration_ms, run_sipp
from tests.support.waiting import poll

KEY = "gm-test-key"
LOUD_DBFS = -45.0


def _gemini(server: GeminiServer, **turns) -> dict:
    extra = {"realtime": {"provider": "gemini", "url": server.url, "api_key_env": None}}
    if turns:
        extra["turn_detection"] = turns
    return extra


def _heard(server: GeminiServer, conn: int | None = None) -> np.ndarray:
    pcm = b"".join(base64.b64decode(m["realtimeInput"]["audio"]["data"])
                   for m in server.messages("realtimeInput", conn) if "audio" in m["realtimeInput"])
    return np.frombuffer(pcm, dtype="<i2")


def _wait(probe, timeout: float):
    return poll(probe, timeout, every=0.02)


def test_a_call_reaches_gemini_as_16khz_and_the_echo_comes_back(tmp_path):
    """A SIPp call's speech reaches the server as 16 kHz PCM inside activityStart/activityEnd (setup first, key in the query), and the model's 24 kHz answer plays to the caller."""
    with GeminiServer(tmp_path, KEY, pace=4.0) as server, \
            Bridge(tmp_path, None, extra=_gemini(server), env={"GEMINI_API_KEY": KEY}) as bridge:
        media = free_port_block(4)
        with RtpCapture(ports=[media], port_range=bridge.rtp_range) as cap:
            res = run_sipp("uac_pcmu", bridge.target, media_port=media, pcap=PCMU_SPEECH_PCAP,
                           hold_ms=pcap_duration_ms(PCMU_SPEECH_PCAP) + 6000, timeout=40)
        assert res.returncode == 0 and res.final_code == 200, res.stderr
        url = bridge.wait_log("upstream_connected")["url"]
        assert url == server.url and KEY not in bridge.output()
        bridge.wait_log("response.done", status="completed")
        assert not bridge.logs("upstream_error") and not bridge.logs("upstream_lost")
        assert bridge.stop() == 0
    assert server.refusals() == []
    assert list(server.messages()[0]) == ["setup"]
    setup = server.messages("setup")[0]["setup"]
    assert setup["realtimeInputConfig"]["automaticActivityDetection"] == {"disabled": True}
    heard = _heard(server)
    assert audio.dbfs(heard) > -35, "the caller's speech arrived as (near) silence"
    # 16 kHz: the server takes only audio/pcm;rate=16000, and the samples say so: the speech
    # (~pcap length) arrived as that many 16 kHz samples, not 24 kHz ones
    assert len(heard) <= 16000 * (pcap_duration_ms(PCMU_SPEECH_PCAP) + 2000) // 1000
    marks = [next(iter(m["realtimeInput"])) for m in server.messages("realtimeInput")
             if "audio" not in m["realtimeInput"]]
    assert marks[:2] == ["activityStart", "activityEnd"]
    lo, hi = bridge.rtp_range
    (down,) = [s for s in cap.streams().values() if lo <= s.src[1] <= hi]
    assert down.active_mask(-40.0).sum() * 20 >= 700, "the model's answer did not reach the caller"


def test_a_barge_in_with_local_turns_silences_the_agent_and_sends_activity_start(tmp_path):
    """Bridge turns: speech over the answer silences the line on the bridge's barge-in path with no agent packet leaking, and the server receives activityStart mid-answer (it says interrupted): the model was stopped."""
    r = run_gemini_call(tmp_path)
    assert r.onset_s is not None and r.refusals == []
    assert r.onset_to_silence_ms is not None, "the agent went on talking over the caller"
    assert r.onset_to_silence_ms <= 300, f"onset -> silent took {r.onset_to_silence_ms:.0f} ms"
    assert r.leaked_packets == 0
    barge = [e for e in r.bridge_log if e.get("event") == "barge_in"]
    assert len(barge) == 1 and barge[0]["response_id"] == "gemini_resp_1"
    assert r.stop_signals and r.stop_signals[0]["_t"] < r.quiet_from, "no activityStart after the onset"
    (cut,) = r.interrupted
    assert cut["_t"] >= r.stop_signals[0]["_t"]


def test_a_barge_in_with_server_turns_follows_geminis_interrupted(tmp_path):
    """server_vad: audio streams with detection on (no activity markers); Gemini's interrupted on the caller's speech silences the line through the one cancel path."""
    r = run_gemini_call(tmp_path, turns={"type": "server_vad"})
    assert r.onset_s is not None and r.refusals == []
    aad = r.setups[0]["setup"]["realtimeInputConfig"]["automaticActivityDetection"]
    assert aad["disabled"] is False
    assert not [x for x in r.realtime_inputs if "audio" not in x["msg"]["realtimeInput"]]
    (cut,) = r.interrupted
    assert r.onset_s < cut["_t"] < r.quiet_from
    assert r.onset_to_silence_ms is not None, "the agent went on talking over the caller"
    assert r.onset_to_silence_ms <= 300, f"onset -> silent took {r.onset_to_silence_ms:.0f} ms"
    assert r.leaked_packets == 0
    barge = [e for e in r.bridge_log if e.get("event") == "barge_in"]
    assert barge and barge[0]["source"] == "server_vad" and barge[0]["reason"] == "interrupted"
    done = [e for e in r.bridge_log if e.get("event") == "response.done"]
    assert {"response_id": "gemini_resp_1", "status": "cancelled"}.items() <= done[0].items()


def test_a_go_away_mid_call_resumes_with_the_handle_and_the_call_goes_on(tmp_path):
    """goAway during a call: the bridge resumes on a new connection with the latest handle before the server closes the old one; the caller's next turn is answered there, and the call never noticed (no upstream_lost)."""
    first = audio.trim_silence(audio.load_wav(audio.asterisk_prompt("hello-world")))
    second = audio.trim_silence(audio.load_wav(audio.asterisk_prompt("vm-goodbye")))
    with GeminiServer(tmp_path, KEY, pace=4.0) as server, \
            Bridge(tmp_path, None, extra=_gemini(server), env={"GEMINI_API_KEY": KEY}) as bridge, \
            RtpPeer() as peer:
        call = ExternalMediaCall(bridge.target, peer, hold_ms=0, timeout=40,
                                 trace_dir=tmp_path / "sipp").start()
        call.connect_peer()
        peer.play(first, at_s=0.5)
        said_end = peer.t0 + 0.5 + len(first) / 8000
        agent = _wait(lambda: peer.first_time(LOUD_DBFS, after=said_end), 10.0)
        assert agent is not None, "the agent never answered:\n" + bridge.output()[-3000:]
        bridge.wait_log("response.done", status="completed")
        assert server.goaway(1500) == "ok goaway 1"
        bridge.wait_log("realtime.resumed", timeout=5)
        assert poll(lambda: server.goaway_closed() == [1], 5), "the server never closed the old connection"
        at_s = peer.elapsed() + 0.2
        peer.play(second, at_s=at_s)
        again = _wait(lambda: peer.first_time(LOUD_DBFS, after=peer.t0 + at_s + len(second) / 8000), 10.0)
        assert again is not None, "the turn after the goAway was not answered:\n" + bridge.output()[-3000:]
        assert not bridge.logs("upstream_lost") and not bridge.logs("upstream_closed")
        bridge.stop()
        call.wait()
    assert server.refusals() == []
    setups = server.messages("setup")
    assert len(setups) == 2 and setups[1]["setup"]["sessionResumption"]["handle"].startswith("h1-")
    assert audio.dbfs(_heard(server, conn=2)) > -35, "the second turn did not reach the resumed session"
