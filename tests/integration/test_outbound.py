"""Outbound calls placed through the API (``POST /v1/calls``), on 127.0.0.1.

One bridge (a trunk ``carrier`` on a Kamailio that digest-challenges every INVITE with 407,
a trunk ``stale`` on it with a wrong password, one call slot, ``realtime.greeting`` set)
serves the module. SIPp plays the called parties:
a UAS that answers and hangs up after 3 s (through the carrier, which stays in the dialog), one that answers 486 (through
the carrier), and one that rings for ever (dialled directly by ``sip:`` URI).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from sipbridge.kamailio import Kamailio
from tests.support.bridge import Bridge, Upstream
from tests.support.capture import RtpCapture
from tests.support.kamailio_carrier import carrier_config, carrier_lines
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.sipp import SippUas

PASSWORD = "carrier-Secret-5d1e"
GREETING = "Greet {called} and say who is calling."
FINAL = ("ended", "failed", "no-answer", "busy", "cancelled")


def api(port: int, method: str, path: str, body=None, raw: bytes | None = None):
    """(status, JSON body, headers) of one request to the bridge's API."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}"), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), dict(exc.headers)


def final_record(port: int, uid: str, timeout: float = 5.0) -> dict:
    """The call's record once it is closed (written off the call path, so polled)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body, _ = api(port, "GET", f"/v1/records/{uid}")
        if status == 200 and body["status"] != "in_progress" or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def wait_state(port: int, uid: str, states, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, body, _ = api(port, "GET", f"/v1/calls/{uid}/progress")
        assert status == 200, body
        if body["state"] in states or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    """Kamailio carrier (numbers 100 and 486 -> UAS ports), the embedded model, the bridge."""
    tmp = tmp_path_factory.mktemp("outbound")
    kport = free_udp_port()
    uas_ports = {"100": free_udp_port(), "486": free_udp_port()}
    kam = Kamailio(carrier_config("127.0.0.1", kport, PASSWORD, uas_ports), tmp / "kamailio",
                   sip=("127.0.0.1", kport)).start()
    pw = tmp / "carrier.pw"
    pw.write_text(PASSWORD + "\n")
    api_port = free_tcp_port()
    wrong = tmp / "wrong.pw"
    wrong.write_text("not-the-password\n")
    extra = {"trunks": [{"name": "carrier", "registrar": f"sip:127.0.0.1:{kport}",
                         "username": "acme", "password_file": str(pw), "expires": 60},
                        {"name": "stale", "registrar": f"sip:127.0.0.1:{kport}",
                         "username": "acme", "password_file": str(wrong), "expires": 60,
                         "retry_min_s": 30, "retry_max_s": 60}],
             "sip": {"max_calls": 1},
             "realtime": {"greeting": GREETING},
             "api": {"listen": f"127.0.0.1:{api_port}"},
             "records": {"path": str(tmp / "records.db")}}
    try:
        with Upstream(tmp) as upstream, Bridge(tmp, upstream.url, extra=extra) as bridge:
            bridge.wait_log("trunk_registered", timeout=10, trunk="carrier")
            yield kam, uas_ports, upstream, bridge, api_port
    finally:
        kam.stop()


def idle(bridge: Bridge, calls: int) -> None:
    """Wait until the bridge has closed the sessions of ``calls`` calls (its slot is free)."""
    deadline = time.monotonic() + 10
    while len(bridge.logs("session_closed")) < calls and time.monotonic() < deadline:
        time.sleep(0.05)


def test_no_free_slot_is_refused_at_once_and_ring_timeout_is_no_answer(cell, tmp_path):
    """With the one slot ringing, a second POST gets 503 JSON at once; the first ends no-answer at its ring timeout with a CANCEL."""
    _kam, _ports, _upstream, bridge, port = cell
    with SippUas("uas_no_answer", rtp_echo=False, trace_dir=tmp_path / "uas") as uas:
        t0 = time.monotonic()
        status, body, headers = api(port, "POST", "/v1/calls",
                                    {"to": f"sip:200@{uas.target}", "ring_timeout_s": 2})
        assert status == 201, body
        assert body["state"] in ("queued", "ringing") and body["uid"].startswith("c_")
        assert headers["Location"] == f"/v1/calls/{body['uid']}"
        ringing = wait_state(port, body["uid"], ("ringing",), 5)
        assert ringing["state"] == "ringing"

        t1 = time.monotonic()
        status2, refusal, headers2 = api(port, "POST", "/v1/calls", {"to": f"sip:201@{uas.target}"})
        refused_in = time.monotonic() - t1
        assert status2 == 503 and refusal["error"] == "unavailable", refusal
        assert "no free call slot" in refusal["message"] and headers2["Retry-After"] == "1"
        assert refused_in < 0.5, f"the refusal took {refused_in:.3f} s"

        final = wait_state(port, body["uid"], FINAL, 6)
        gave_up = time.monotonic() - t0
        result = uas.stop()
    assert (final["state"], final["status"], final["reason"]) == ("no-answer", 487, "ring_timeout")
    assert 2.0 <= final["times"]["no-answer"] - final["times"]["queued"] <= 3.0, final
    assert gave_up < 4.0
    assert [m.method for m in result.received] == ["INVITE", "CANCEL", "ACK"], result.describe()
    assert len(uas.result.received) == 3 and 487 in result.sent_codes
    states = [r["state"] for r in bridge.logs("outbound_progress") if r["uid"] == body["uid"]]
    assert states == ["queued", "ringing", "no-answer"]
    assert len(bridge.logs("outbound_refused")) == 1


def test_answered_through_the_carrier_with_digest_auth_and_the_greeting_reaches_the_callee(cell, tmp_path):
    """A number dialled via the trunk is challenged (407), re-sent with credentials, answered, and the agent's greeting audio reaches SIPp."""
    kam, ports, upstream, bridge, port = cell
    idle(bridge, 1)
    with SippUas("uas_proxied_hangup", port=ports["100"], rtp_echo=False, hold_ms=3000,
                 trace_dir=tmp_path / "uas") as uas, \
            RtpCapture(ports=[uas.media_port], port_range=bridge.rtp_range) as cap:
        status, body, _ = api(port, "POST", "/v1/calls", {
            "to": "100", "trunk": "carrier", "from": "+4930555", "from_name": "Acme Support",
            "headers": {"X-Campaign": "spring"}, "metadata": {"order": 42}})
        assert status == 201, body
        uid = body["uid"]
        answered = wait_state(port, uid, ("answered",) + FINAL, 10)
        assert answered["state"] == "answered", answered
        final = wait_state(port, uid, FINAL, 10)
        result = uas.stop()
    assert final["state"] == "ended", final
    times = final["times"]
    assert times["queued"] <= times["ringing"] <= times["answered"] < times["ended"]
    assert 2.5 <= times["ended"] - times["answered"] <= 5.0

    # digest auth: the carrier challenged the first INVITE, then took the bridge's credentials
    lines = [r for r in carrier_lines(kam.output()) if r.get("user") == "100"]
    assert [r["event"] for r in lines] == ["carrier_challenged", "carrier_authorized"], lines
    assert lines[1]["auth"] == "acme" and "+4930555" in lines[1]["from"]

    # the callee saw the caller id and the extra header
    invite = next(text for d, text in result.messages if d == "R" and text.startswith("INVITE"))
    assert '"Acme Support" <sip:+4930555@127.0.0.1>' in invite   # pjsip drops the port
    assert "X-Campaign: spring" in invite
    assert "Proxy-Authorization" not in invite   # consumed by the carrier
    # the dialog kept the carrier in its route: ACK and our BYE's 200 came through it
    ack = next(text for d, text in result.messages if d == "R" and text.startswith("ACK"))
    assert f"Via: SIP/2.0/UDP 127.0.0.1:{kam.sip[1]};" in ack

    # the agent spoke first: the greeting went upstream, its audio (the chime) reached SIPp
    creates = [e for e in upstream.events("response.create")
               if "Greet 100" in json.dumps(e)]
    assert creates, "no greeting response.create upstream"
    lo, hi = bridge.rtp_range
    down = [s for s in cap.streams().values() if lo <= s.src[1] <= hi and s.dst[1] == uas.media_port]
    assert len(down) == 1, list(cap.streams())
    assert down[0].active_mask(-40.0).sum() * 20 >= 300, "no agent audio reached the callee"
    states = [r["state"] for r in bridge.logs("outbound_progress") if r["uid"] == uid]
    assert states == ["queued", "ringing", "answered", "ended"]
    record = final_record(port, uid)      # the record: an outbound call, completed
    assert (record["direction"], record["status"], record["sip_status"]) == ("outbound", "completed", 200)
    assert (record["caller"], record["called"], record["trunk"]) == ("+4930555", "100", "carrier")
    assert record["invite_at"] <= record["answer_at"] < record["end_at"]


def test_a_busy_number_is_reported_busy(cell, tmp_path):
    """The carrier relays the callee's 486: the call ends busy with status 486 and no session audio."""
    _kam, ports, _upstream, bridge, port = cell
    idle(bridge, 2)
    with SippUas(reject=486, port=ports["486"], rtp_echo=False, trace_dir=tmp_path / "uas") as uas:
        status, body, _ = api(port, "POST", "/v1/calls", {"to": "486", "trunk": "carrier"})
        assert status == 201, body
        final = wait_state(port, body["uid"], FINAL, 10)
        result = uas.stop()
    assert (final["state"], final["status"]) == ("busy", 486), final
    assert 486 in result.sent_codes
    record = final_record(port, body["uid"])
    assert (record["direction"], record["status"], record["sip_status"]) == ("outbound", "busy", 486)
    assert record["ended_by"] == "callee" and record["answer_at"] is None


def test_bad_requests_are_refused_by_field_and_unknown_calls_are_404(cell):
    """A number with no trunk, an unknown trunk, a bad header and broken JSON are 400 naming the field; an unknown uid is 404."""
    *_, bridge, port = cell
    for body, field in (({"to": "100"}, "trunk"), ({"to": "100", "trunk": "x"}, "trunk"),
                        ({"to": "sip:a@127.0.0.1", "headers": {"Via": "x"}}, "headers.Via"),
                        ({"to": "sip:a@127.0.0.1", "ring_timeout_s": 0}, "ring_timeout_s")):
        status, reply, _ = api(port, "POST", "/v1/calls", body)
        assert (status, reply.get("field")) == (400, field), reply
    status, reply, _ = api(port, "POST", "/v1/calls", raw=b"{not json")
    assert (status, reply.get("field")) == (400, "body")
    status, reply, _ = api(port, "GET", "/v1/calls/c_0000000000000000/progress")
    assert status == 404
    assert bridge.proc.poll() is None


def test_an_api_hangup_while_it_rings_cancels_the_call(cell, tmp_path):
    """POST /v1/calls/{uid}/hangup before the answer sends CANCEL and the call ends cancelled, not no-answer."""
    *_, bridge, port = cell
    idle(bridge, 3)
    with SippUas("uas_no_answer", rtp_echo=False, trace_dir=tmp_path / "uas") as uas:
        status, body, _ = api(port, "POST", "/v1/calls",
                              {"to": f"sip:300@{uas.target}", "ring_timeout_s": 20})
        assert status == 201, body
        uid = body["uid"]
        assert wait_state(port, uid, ("ringing",), 5)["state"] == "ringing"
        status, reply, _ = api(port, "GET", f"/v1/calls/{uid}")
        assert status == 200 and reply["direction"] == "outbound", reply
        status, reply, _ = api(port, "POST", f"/v1/calls/{uid}/hangup", {})
        assert status == 202, reply
        final = wait_state(port, uid, FINAL, 5)
        result = uas.stop()
    assert (final["state"], final["reason"]) == ("cancelled", "cancel"), final
    assert final["times"]["cancelled"] - final["times"]["ringing"] < 2.0
    assert [m.method for m in result.received] == ["INVITE", "CANCEL", "ACK"], result.describe()


def test_wrong_trunk_credentials_fail_with_the_carriers_407(cell, tmp_path):
    """A trunk whose password the carrier refuses: the INVITE is challenged twice and the call is reported failed 407, nothing reaches the callee."""
    kam, ports, _upstream, bridge, port = cell
    idle(bridge, 4)
    before = len(carrier_lines(kam.output()))
    with SippUas("uas_proxied_hangup", port=ports["100"], rtp_echo=False, hold_ms=1000,
                 timeout=5, trace_dir=tmp_path / "uas") as uas:
        status, body, _ = api(port, "POST", "/v1/calls", {"to": "100", "trunk": "stale"})
        assert status == 201, body
        final = wait_state(port, body["uid"], FINAL, 10)
        result = uas.stop(timeout=0.5)
    assert (final["state"], final["status"]) == ("failed", 407), final
    lines = carrier_lines(kam.output())[before:]
    assert [r["event"] for r in lines] == ["carrier_challenged", "carrier_challenged"], lines
    # pv_proxy_authenticate: -5 no credentials yet, -2 the password is wrong
    assert [r["reason"] for r in lines] == ["-5", "-2"], lines
    assert not result.received, result.describe()


def test_an_unreachable_model_cancels_the_ringing_call_as_failed(tmp_path):
    """With the model unreachable the session fails while the far end rings: the bridge CANCELs and reports failed (upstream_unavailable), long before the ring timeout."""
    dead = f"ws://127.0.0.1:{free_tcp_port()}/v1/realtime"   # nothing listens there
    api_port = free_tcp_port()
    extra = {"api": {"listen": f"127.0.0.1:{api_port}"},
             "records": {"path": str(tmp_path / "records.db")}}
    with Bridge(tmp_path, dead, extra=extra) as bridge, \
            SippUas("uas_no_answer", rtp_echo=False, trace_dir=tmp_path / "uas") as uas:
        status, body, _ = api(api_port, "POST", "/v1/calls",
                              {"to": f"sip:400@{uas.target}", "ring_timeout_s": 20})
        assert status == 201, body
        final = wait_state(api_port, body["uid"], FINAL, 10)
        result = uas.stop()
        assert bridge.wait_log("upstream_unavailable", uid=body["uid"])
    assert (final["state"], final["reason"]) == ("failed", "upstream_unavailable"), final
    assert final["times"]["failed"] - final["times"]["queued"] < 5.0
    assert [m.method for m in result.received] == ["INVITE", "CANCEL", "ACK"], result.describe()
