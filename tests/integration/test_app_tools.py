"""The app's own tools on the wire: an RtpPeer caller (SIPp signals), ``sipbridge run``, the
embedded model as its own process calling the app's function (``--call-tool lookup
--tool-args``), and a real aiohttp tools backend on 127.0.0.1 started by the test.

The embedded model speaks a function's output in the response that follows it: a 1 kHz beep
per answer (``{"beeps": n}``: n beeps), a 300 Hz buzz for an error output. Counting those tones
in the RTP the caller received shows that the app's answer went through the model to the caller.
"""

from __future__ import annotations

import json
import time

import numpy as np
from standardwebhooks import Webhook

from sipbridge.app import signing
from sipbridge.embedded.echo_core import BEEP_HZ, BEEP_MS, BUZZ_HZ, BUZZ_MS
from tests.support import audio
from tests.support.barge import reply_wav
from tests.support.bridge import Bridge, Upstream
from tests.support.rtp_peer import ExternalMediaCall, RtpPeer
from tests.support.tools_backend import Behaviour, ToolsBackend
from tests.unit.embedded.test_echo_tools import bursts

SECRET_ENV = "TOOLS_IT_SECRET"      # not SIPBRIDGE_*: tests/support/bridge.py drops those
LOOKUP = {"name": "lookup", "description": "Look an order up.",
          "parameters": {"type": "object", "properties": {"order": {"type": "string"}},
                         "required": ["order"]}}
ARGS = '{"order": "A-42"}'


def prompt(name: str) -> np.ndarray:
    return audio.trim_silence(audio.load_wav(audio.asterisk_prompt(name), rate=8000), rate=8000)


def quiet_wav(tmp_path):
    """The model's own first answer: 100 ms of silence, so every tone heard is a tool's answer."""
    return audio.write_wav(tmp_path / "quiet.wav", np.zeros(2400, dtype=np.int16), rate=24000)


def bridge_extra(backend: ToolsBackend, timeout_ms: int = 3000) -> dict:
    return {"realtime": {"tools": [LOOKUP], "tools_url": backend.url},
            "app": {"tool_timeout_ms": timeout_ms, "webhook_secret_env": SECRET_ENV},
            "api": {"listen": None}, "records": {"path": None}}


def tones(pcm: np.ndarray, freq: float, ms: int) -> list[tuple[int, float]]:
    """Bursts of ``freq`` lasting about ``ms`` in 8 kHz audio."""
    return [(d, f) for d, f in bursts(pcm, rate=8000) if round(f) == freq and abs(d - ms) <= 40]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.02)
    return value


def test_a_tool_round_trip_the_app_sees_the_signed_call_and_the_caller_hears_its_answer(
        tmp_path, monkeypatch):
    """The caller speaks; the model calls lookup: the backend gets one request that an independent
    Standard Webhooks verifier accepts, with the arguments and the bridge's call id; the reply
    reaches the model as the function's output before a new response.create, and its answer (three
    beeps) reaches the caller's RTP; tool_called is logged ok with its latency."""
    secret = signing.new_secret()
    monkeypatch.setenv(SECRET_ENV, secret)
    with ToolsBackend({"lookup": Behaviour(reply={"beeps": 3, "status": "shipped"})}) as backend, \
            Upstream(tmp_path, reply_wav=quiet_wav(tmp_path), call_tool="lookup",
                     tool_args=ARGS) as upstream, \
            Bridge(tmp_path, upstream.url, extra=bridge_extra(backend)) as bridge, RtpPeer() as peer:
        with ExternalMediaCall(bridge.target, peer, hold_ms=9000, timeout=30) as call:
            call.connect_peer(timeout=10)
            peer.play(prompt("hello-world"), at_s=1.0)
            res = call.wait()
        assert res.returncode == 0, res.stderr
        done = bridge.wait_log("tool_called")
        incoming = bridge.wait_log("call_incoming")
        assert done["outcome"] == "ok" and done["name"] == "lookup" and done["status"] == 200
        assert done["uid"] == incoming["uid"] and done["latency_ms"] < 3000
        assert bridge.stop() == 0

    (req,) = backend.requests
    body = Webhook(secret).verify(req["body"], req["headers"])
    assert body["arguments"] == {"order": "A-42"} and body["name"] == "lookup"
    assert body["call_id"] == incoming["uid"] and body["sip_call_id"] == incoming["call_id"]
    (output,) = [e for e in upstream.events("conversation.item.create")
                 if e["item"]["type"] == "function_call_output"]
    assert json.loads(output["item"]["output"]) == {"beeps": 3, "status": "shipped"}
    assert output["item"]["call_id"] == body["function_call_id"]
    creates = upstream.events("response.create")
    assert len(creates) == 2 and creates[1]["_recv_t"] > output["_recv_t"]
    heard = peer.received_pcm()
    assert len(tones(heard, BEEP_HZ, BEEP_MS)) == 3, bursts(heard, rate=8000)


def test_a_tool_that_never_answers_gives_the_model_an_error_and_the_call_goes_on(tmp_path, monkeypatch):
    """The backend takes the request and never replies: after app.tool_timeout_ms the model gets
    {"error": "tool_timeout"} and a response.create, and the caller hears the agent again (the
    buzz) while the call stays up until the caller hangs up."""
    monkeypatch.setenv(SECRET_ENV, signing.new_secret())
    with ToolsBackend({"lookup": Behaviour(hang=True)}) as backend, \
            Upstream(tmp_path, reply_wav=quiet_wav(tmp_path), call_tool="lookup",
                     tool_args=ARGS) as upstream, \
            Bridge(tmp_path, upstream.url, extra=bridge_extra(backend, timeout_ms=1000)) as bridge, \
            RtpPeer() as peer:
        with ExternalMediaCall(bridge.target, peer, hold_ms=9000, timeout=30) as call:
            call.connect_peer(timeout=10)
            peer.play(prompt("hello-world"), at_s=1.0)
            res = call.wait()
        assert res.returncode == 0, res.stderr        # the caller's own BYE: the call went on
        done = bridge.wait_log("tool_called")
        assert done["outcome"] == "tool_timeout" and 950 <= done["latency_ms"] < 3000, done
        assert not bridge.logs("call_hangup")
        assert bridge.stop() == 0
    assert len(backend.requests) == 1
    (output,) = [e for e in upstream.events("conversation.item.create")
                 if e["item"]["type"] == "function_call_output"]
    assert json.loads(output["item"]["output"])["error"] == "tool_timeout"
    assert len(upstream.events("response.create")) == 2
    heard = peer.received_pcm()
    assert len(tones(heard, BUZZ_HZ, BUZZ_MS)) == 1, bursts(heard, rate=8000)


def test_barging_in_while_a_tool_runs_gives_the_caller_the_turn_and_the_answer_follows_it(
        tmp_path, monkeypatch):
    """The agent is still talking while the tool runs and the caller speaks over it: the one
    cancel path silences and cancels the agent; the tool's late answer reaches the model without
    a response of its own (the caller has the turn); the caller's committed turn gets the only
    new response.create, and that answer carries the tool's output to the caller (two beeps)."""
    monkeypatch.setenv(SECRET_ENV, signing.new_secret())
    with ToolsBackend({"lookup": Behaviour(reply={"beeps": 2}, hold=True)}) as backend, \
            Upstream(tmp_path, reply_wav=reply_wav(tmp_path / "reply.wav"), pace=4.0,
                     call_tool="lookup", tool_args=ARGS) as upstream, \
            Bridge(tmp_path, upstream.url, extra=bridge_extra(backend)) as bridge, RtpPeer() as peer:
        with ExternalMediaCall(bridge.target, peer, hold_ms=0, timeout=40) as call:
            call.connect_peer(timeout=10)
            peer.play(prompt("hello-world"), at_s=1.0)
            backend.wait_requests(1, timeout=15)        # the agent's answer streams; the tool runs
            assert bridge.logs("barge_in") == []
            barge_at = peer.elapsed() + 0.3
            peer.play(prompt("vm-goodbye"), at_s=barge_at)
            barge = bridge.wait_log("barge_in", timeout=10)
            backend.release("lookup")
            bridge.wait_log("tool_output_held", timeout=10)
            bridge.wait_log("response.done", timeout=15, status="completed")
            wait_until(lambda: len(bridge.logs("response.done")) >= 2, 15, "no answer to the turn")
            peer.sleep_until(peer.elapsed() + 1.5)       # the answer plays out
            assert bridge.stop() == 0                    # SIGTERM: BYE to the caller
            assert call.wait(20).returncode == 0
        assert barge["source"] in ("local_vad", "energy"), barge
        assert bridge.wait_log("tool_called")["outcome"] == "ok"

    events = upstream.events()
    kinds = [e.get("type") for e in events]
    output_at = next(i for i, e in enumerate(events) if e.get("type") == "conversation.item.create"
                     and e["item"]["type"] == "function_call_output")
    # the answer had all streamed before the barge-in: the cancel path truncates what was heard
    cancel_at = min(kinds.index(k) for k in ("response.cancel", "conversation.item.truncate")
                    if k in kinds)
    creates = [i for i, k in enumerate(kinds) if k == "response.create"]
    assert len(creates) == 2, kinds                       # the first turn, then the caller's
    assert cancel_at < creates[1] and output_at < creates[1]
    assert kinds[creates[1] - 1] == "input_audio_buffer.commit"   # asked for by the caller's turn
    after = peer.received_pcm(timeline=True)[int((barge_at + 0.5) * 8000):]
    assert len(tones(after, BEEP_HZ, BEEP_MS)) == 2, bursts(after, rate=8000)
