"""The agent speaks first and hangs up itself, on the wire: SIPp caller, ``sipbridge run``, the
embedded model as its own process (it greets with its chime and, with ``--call-tool end_call``,
ends every answer with a call of ``end_call``)."""

import json
import re

from sipbridge.embedded.echo_core import chime
from tests.support import audio
from tests.support.bridge import Bridge, Upstream
from tests.support.capture import RtpCapture
from tests.support.ports import free_port_block
from tests.support.sipp import make_audio_pcap, run_sipp

GREETING = "Greet {caller}, then end the call."


def test_the_agent_greets_a_silent_caller_then_hangs_up_after_the_greeting_was_heard(tmp_path):
    """The caller says nothing: the bridge asks for the greeting (naming the caller from the
    INVITE) as soon as the call is answered, the whole chime reaches the caller's RTP, then the
    bridge sends BYE (SIPp waits for it)."""
    pcap = tmp_path / "quiet.pcap"
    make_audio_pcap(audio.noise(8000, -65.0, seed=1), pcap)      # line noise, never speech
    media = free_port_block(4)
    with Upstream(tmp_path, call_tool="end_call") as upstream, Bridge(
            tmp_path, upstream.url,
            extra={"realtime": {"greeting": GREETING, "end_call_tool": True,
                                "instructions": "Caller {caller} dialled {called}."}}) as bridge:
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

    creates = upstream.events("response.create")      # the parties come from SIPp's INVITE
    assert creates and creates[0]["response"] == {"instructions": "Greet sipp, then end the call."}
    assert not upstream.events("input_audio_buffer.commit"), "the caller said nothing to commit"
    session = upstream.events("session.update")[0]["session"]
    assert [t["name"] for t in session["tools"]] == ["end_call"]
    assert session["instructions"] == "Caller sipp dialled sipbridge."

    lo, hi = bridge.rtp_range
    (down,) = [s for s in cap.streams().values() if lo <= s.src[1] <= hi]
    heard = down.pcm()
    expected = audio.resample(chime(), 24000, 8000)
    lag, corr = audio.align(expected, heard, rate=8000)
    assert corr > 0.9, f"the caller did not hear the whole greeting (corr {corr:.2f})"
    assert down.active_mask(-40.0).sum() * 20 >= 380, "the greeting was cut short by the BYE"


TARGET = "sip:agent-desk@127.0.0.1:5999"
TRANSFER = {"realtime": {"greeting": "Say you are transferring the caller.", "transfer_to": TARGET}}


def refer_to(res) -> str:
    """The Refer-To of the one REFER SIPp received."""
    (refer,) = [text for way, text in res.messages if way == "R" and text.startswith("REFER ")]
    (value,) = re.findall(r"^(?:Refer-To|r):\s*(.+?)\s*$", refer, flags=re.M | re.I)
    return value.strip("<>")


def quiet_pcap(tmp_path):
    pcap = tmp_path / "quiet.pcap"
    make_audio_pcap(audio.noise(6000, -65.0, seed=2), pcap)
    return pcap


def test_a_transfer_the_far_end_accepts_refers_the_caller_and_ends_our_leg(tmp_path):
    """The agent announces and calls transfer_call: REFER with Refer-To the target, and once
    the far end NOTIFYs that the new call was answered (sipfrag 200), our BYE."""
    with Upstream(tmp_path, call_tool="transfer_call") as upstream, \
            Bridge(tmp_path, upstream.url, extra=TRANSFER) as bridge:
        res = run_sipp("uac_refer_accept", bridge.target, pcap=quiet_pcap(tmp_path), timeout=20)
        assert res.returncode == 0, res.stderr               # REFER, NOTIFY, then our BYE
        assert refer_to(res) == TARGET
        assert bridge.wait_log("call_hangup")["reason"] == "transferred"
        assert bridge.wait_log("agent_transfers_call")["target"] == TARGET
        assert bridge.wait_log("call_transfer_status", final=True)["status"] == 200
        assert not bridge.logs("transfer_failed")
        assert bridge.stop() == 0
    session = upstream.events("session.update")[0]["session"]
    assert [t["name"] for t in session["tools"]] == ["transfer_call"]


def test_a_declined_transfer_goes_back_to_the_model_and_the_agent_carries_on(tmp_path):
    """603 to the REFER: the bridge does not hang up; the model gets transferred false with the
    status, and a new response so the agent can tell the caller (who hangs up later)."""
    with Upstream(tmp_path, call_tool="transfer_call") as upstream, \
            Bridge(tmp_path, upstream.url, extra=TRANSFER) as bridge:
        res = run_sipp("uac_refer_reject", bridge.target, pcap=quiet_pcap(tmp_path),
                       hold_ms=2500, timeout=20)
        assert res.returncode == 0, res.stderr               # the caller's own BYE was answered
        assert refer_to(res) == TARGET
        failed = bridge.wait_log("transfer_failed")
        assert failed["status"] == 603, failed
        bridge.wait_log("session_closed")
        assert not bridge.logs("call_hangup"), "the bridge hung up on a failed transfer"
        assert bridge.stop() == 0
    (output,) = [e for e in upstream.events("conversation.item.create")
                 if e["item"]["type"] == "function_call_output"]
    result = json.loads(output["item"]["output"])
    assert result["transferred"] is False and result["status"] == 603
    creates = upstream.events("response.create")
    assert len(creates) == 2, creates                  # the greeting, then the answer to the failure
    assert creates[1]["_recv_t"] > output["_recv_t"]
