"""Drain on SIGTERM: new INVITEs get 503, calls in progress run on until they end or the deadline.

Each test stops its own bridge. The harness's Bridge defaults to ``drain_timeout_s: 0`` (hang up
at once); these tests set a deadline and signal the process themselves, then wait for it to
exit on its own (``Bridge.stop()`` would send a second SIGTERM, which forces the hang-up).
"""

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from tests.support import audio
from tests.support.bridge import Bridge, Upstream
from tests.support.capture import RtpCapture
from tests.support.ports import free_port_block
from tests.support.sipp import PCMU_SPEECH_PCAP, run_sipp


def in_background(fn, *args, **kwargs):
    pool = ThreadPoolExecutor(1)
    future = pool.submit(fn, *args, **kwargs)
    pool.shutdown(wait=False)
    return future


def log_time(record: dict) -> float:
    """A bridge log line's timestamp (ISO 8601, UTC) as epoch seconds."""
    return datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()


def wait_exit(bridge: Bridge, timeout: float) -> int:
    """Wait for the bridge to exit by itself (no further signal); its exit code."""
    try:
        code = bridge.proc.wait(timeout)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: show why
        raise AssertionError("the bridge did not exit:\n" + bridge.output()[-4000:]) from None
    bridge.stop()  # joins the log reader
    return code


def test_a_call_in_progress_runs_to_its_end_while_new_invites_get_503(tmp_path):
    """After SIGTERM the call keeps its audio until the caller's BYE; a new INVITE gets 503."""
    # the model answers the caller's first utterance (which ends after the SIGTERM) with a tone
    # loud from its first sample, so its packets on the wire show the agent still talking
    reply = audio.write_wav(tmp_path / "reply.wav", audio.sine(440, 800, -12.0, rate=24000),
                            rate=24000)
    with Upstream(tmp_path, reply_wav=reply) as upstream, \
            Bridge(tmp_path, upstream.url, extra={"sip": {"drain_timeout_s": 20}}) as bridge:
        media = free_port_block(4)
        with RtpCapture(ports=[media], port_range=bridge.rtp_range) as cap:
            call = in_background(run_sipp, "uac_pcmu", bridge.target, media_port=media,
                                 pcap=PCMU_SPEECH_PCAP, hold_ms=5000, timeout=30)
            bridge.wait_log("call_answered", timeout=15)
            t_term, m_term = time.time(), time.monotonic()
            bridge.proc.send_signal(signal.SIGTERM)
            draining = bridge.wait_log("draining")
            assert (draining["calls"], draining["deadline_s"]) == (1, 20)

            refused = run_sipp("uac_expect_reject", bridge.target, timeout=15)
            assert refused.returncode == 0 and refused.final_code == 503, refused.stderr
            reply = next(text for d, text in refused.messages if d == "R" and " 503 " in text)
            assert "Retry-After: 30" in reply, reply

            res = call.result()
            code = wait_exit(bridge, 15)
    # the caller hung up itself (uac_pcmu sends BYE after hold_ms and fails on a BYE it gets)
    assert res.returncode == 0 and res.final_code == 200, res.stderr
    assert code == 0, bridge.output()[-4000:]
    assert bridge.logs("call_hangup") == [], "the bridge hung up a call it should have drained"
    ended = bridge.wait_log("call_ended", status=200)  # (the refused INVITE ended with 503)
    drained = bridge.wait_log("drained")
    assert drained["hung_up"] == 0 and drained["left"] == 0
    assert log_time(drained) - log_time(ended) < 1.0, "the bridge lingered after the last call"
    assert log_time(ended) - t_term > 3.0, "the call did not outlive the SIGTERM"
    assert "Assertion" not in bridge.output()

    # audio kept flowing both ways after the signal: the agent's answer reached the caller,
    # and the caller's audio reached the model
    lo, hi = bridge.rtp_range
    back = [s for s in cap.streams().values() if lo <= s.src[1] <= hi]
    assert len(back) == 1
    assert [t for t in back[0].active_times(-40.0, t0=t_term) if t > 0.5], \
        "no agent audio reached the caller after SIGTERM"
    assert back[0].last_arrival > t_term + 3.0
    late = [e for e in upstream.events("input_audio_buffer.append") if e["_recv_t"] > m_term + 1.0]
    assert late, "no caller audio reached the model after SIGTERM"


def test_calls_left_at_the_deadline_get_bye_and_the_bridge_exits_0(tmp_path, upstream):
    """With drain_timeout_s 2, a call still up 2 s after SIGTERM gets BYE; the bridge exits 0."""
    with Bridge(tmp_path, upstream.url, extra={"sip": {"drain_timeout_s": 2}}) as bridge:
        call = in_background(run_sipp, "uac_wait_bye", bridge.target, timeout=25)
        bridge.wait_log("call_answered", timeout=15)
        time.sleep(0.5)  # as in test_call_path: let SIPp settle after its ACK
        bridge.proc.send_signal(signal.SIGTERM)
        code = wait_exit(bridge, 15)
        res = call.result()
    assert code == 0, bridge.output()[-4000:]
    assert res.returncode == 0, "the caller never got a BYE:\n" + res.describe()
    hangup = bridge.wait_log("call_hangup")
    assert hangup["reason"] == "drain_timeout"
    waited = log_time(hangup) - log_time(bridge.wait_log("stop_requested"))
    assert 1.9 <= waited <= 3.0, f"BYE {waited:.2f} s after SIGTERM, deadline 2 s"
    assert bridge.wait_log("drained")["hung_up"] == 1
    assert bridge.logs("stopped") and "Assertion" not in bridge.output()


def test_a_second_signal_during_the_drain_hangs_up_at_once(tmp_path, upstream):
    """A second SIGTERM while draining sends BYE right away, and the bridge still exits 0."""
    with Bridge(tmp_path, upstream.url, extra={"sip": {"drain_timeout_s": 30}}) as bridge:
        call = in_background(run_sipp, "uac_wait_bye", bridge.target, timeout=25)
        bridge.wait_log("call_answered", timeout=15)
        time.sleep(0.5)
        bridge.proc.send_signal(signal.SIGTERM)
        bridge.wait_log("draining")
        time.sleep(0.5)
        assert bridge.proc.poll() is None and not bridge.logs("call_hangup")
        t_second = time.time()
        bridge.proc.send_signal(signal.SIGINT)
        code = wait_exit(bridge, 10)
        res = call.result()
    assert code == 0, bridge.output()[-4000:]
    assert res.returncode == 0, "the caller never got a BYE:\n" + res.describe()
    assert bridge.wait_log("stop_forced")["signal"] == "SIGINT"
    hangup = bridge.wait_log("call_hangup")
    assert hangup["reason"] == "shutdown"
    assert log_time(hangup) - t_second < 1.0
    assert bridge.logs("stopped") and "Assertion" not in bridge.output()
