"""The agent speaks first and hangs up itself, on the wire: SIPp caller, ``sipbridge run``, the
embedded model as its own process (it greets with its chime and, with ``--call-tool end_call``,
ends every answer with a call of ``end_call``)."""

from sipbridge.realtime.echo_core import chime
from tests.support import audio
from tests.support.bridge import Bridge, Upstream
from tests.support.capture import RtpCapture
from tests.support.ports import free_port_block
from tests.support.sipp import make_audio_pcap, run_sipp

GREETING = "Greet the caller, then end the call."


def test_the_agent_greets_a_silent_caller_then_hangs_up_after_the_greeting_was_heard(tmp_path):
    """The caller says nothing: the bridge asks for the greeting as soon as the call is answered,
    the whole chime reaches the caller's RTP, then the bridge sends BYE (SIPp waits for it)."""
    pcap = tmp_path / "quiet.pcap"
    make_audio_pcap(audio.noise(8000, -65.0, seed=1), pcap)      # line noise, never speech
    media = free_port_block(4)
    with Upstream(tmp_path, call_tool="end_call") as upstream, Bridge(
            tmp_path, upstream.url,
            extra={"realtime": {"greeting": GREETING, "end_call_tool": True}}) as bridge:
        with RtpCapture(ports=[media], port_range=bridge.rtp_range) as cap:
            res = run_sipp("uac_wait_bye", bridge.target, media_port=media, pcap=pcap, timeout=20)
        assert res.returncode == 0, res.stderr          # the BYE came, from the bridge
        hangup = bridge.wait_log("call_hangup")
        assert hangup["reason"] == "agent_ended_call", hangup
        ended = bridge.wait_log("agent_ended_call")
        assert ended.get("timed_out") is None, ended
        bridge.wait_log("session_closed")
        assert not bridge.logs("barge_in") and not bridge.logs("upstream_error")
        assert bridge.stop() == 0

    creates = upstream.events("response.create")
    assert creates and creates[0]["response"] == {"instructions": GREETING}
    assert not upstream.events("input_audio_buffer.commit"), "the caller said nothing to commit"
    session = upstream.events("session.update")[0]["session"]
    assert [t["name"] for t in session["tools"]] == ["end_call"]

    lo, hi = bridge.rtp_range
    (down,) = [s for s in cap.streams().values() if lo <= s.src[1] <= hi]
    heard = down.pcm()
    expected = audio.resample(chime(), 24000, 8000)
    lag, corr = audio.align(expected, heard, rate=8000)
    assert corr > 0.9, f"the caller did not hear the whole greeting (corr {corr:.2f})"
    assert down.active_mask(-40.0).sum() * 20 >= 380, "the greeting was cut short by the BYE"
