"""The incoming-call webhook with real SIPp calls and a real aiohttp app on loopback.

The app (tests/support/webhook_app.py) verifies every request with the ``standardwebhooks``
library and answers by the called number: accept with overrides, reject 486, sleep past the
timeout, or garbage. Two bridges share it: one with ``on_webhook_failure: default_agent``, one
with ``reject``. "Nothing leaks": every call ends, no model socket stays open, and the
worker's counters (logged at exit) match the calls placed.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from sipbridge.app.signing import new_secret
from tests.support.bridge import Bridge, Upstream
from tests.support.sipp import SCENARIO_DIR, run_sipp
from tests.support.webhook_app import WebhookApp

SECRET = new_secret()
SECRET_ENV = "WEBHOOK_TEST_SECRET"   # not SIPBRIDGE_*: Bridge() strips those
TIMEOUT_MS = 400
CARRIER_HEADERS = ("P-Asserted-Identity: <sip:+15550001111@carrier.example>\n"
                   "      Diversion: <sip:+15559990000@carrier.example>;reason=no-answer\n"
                   "      X-Campaign: spring-42\n")


def answer(payload: dict):
    called = payload.get("called")
    if called == "vip":
        return 0, 200, {"action": "accept", "instructions": "VIP line for {caller}.",
                        "turn_detection": {"profile": "patient"}, "metadata": {"tier": "gold"}}
    if called == "busy":
        return 0, 200, {"action": "reject", "status": 486, "reason": "Busy Here"}
    if called == "slow":
        return 3 * TIMEOUT_MS / 1000, 200, {"action": "accept", "instructions": "Too late."}
    if called == "hold":
        return 1.5, 200, {"action": "accept", "instructions": "Held."}
    if called == "garbage":
        return 0, 200, b"<html>\x00not json"
    if called == "clash":  # valid alone, not over the bridge's commit_digit 5
        return 0, 200, {"action": "accept", "turn_detection": {"clear_digit": "5"}}
    if called == "error":
        return 0, 500, {"error": "boom"}
    return 0, 200, {"action": "accept"}


@pytest.fixture(scope="module")
def app():
    os.environ[SECRET_ENV] = SECRET
    try:
        with WebhookApp(SECRET, answer) as server:
            yield server
    finally:
        del os.environ[SECRET_ENV]


def start_bridge(tmp, up, app, policy, max_calls=None):
    return Bridge(tmp, up.url, extra={
        "sip": {"max_calls": max_calls},
        "realtime": {"instructions": "Default agent."},
        "turn_detection": {"commit_digit": "5"},
        "app": {"webhook_url": app.url, "webhook_secret_env": SECRET_ENV,
                "webhook_timeout_ms": TIMEOUT_MS, "on_webhook_failure": policy},
        "api": {"listen": None}, "records": {"path": None}})


@pytest.fixture(scope="module")
def lenient(tmp_path_factory, app):
    tmp = tmp_path_factory.mktemp("webhook-default")
    with Upstream(tmp) as up, start_bridge(tmp, up, app, "default_agent") as bridge:
        yield up, bridge


@pytest.fixture(scope="module")
def strict(tmp_path_factory, app):
    tmp = tmp_path_factory.mktemp("webhook-reject")
    with Upstream(tmp) as up, start_bridge(tmp, up, app, "reject", max_calls=1) as bridge:
        yield up, bridge


def carrier_scenario(tmp: Path) -> Path:
    """uac_pcmu.xml with the headers a carrier adds to the INVITE."""
    text = (SCENARIO_DIR / "uac_pcmu.xml").read_text()
    marker = "User-Agent: sipbridge-tests-sipp\n"
    assert text.count(marker) == 1
    out = tmp / "uac_carrier.xml"
    out.write_text(text.replace(marker, marker + "      " + CARRIER_HEADERS))
    return out


def answered(bridge, number: str, scenario="uac_pcmu"):
    res = run_sipp(scenario, bridge.target, service=number, hold_ms=300, timeout=20)
    assert res.returncode == 0 and res.final_code == 200, res.describe()
    call_id = res.shortmsgs[0].call_id
    bridge.wait_log("call_ended", call_id=call_id)
    return res, call_id


def refused(bridge, number: str, code: int):
    res = run_sipp("uac_expect_reject", bridge.target, service=number, timeout=15)
    assert res.returncode == 0 and res.final_code == code, res.describe()
    return res, res.shortmsgs[0].call_id


def request_for(app, called: str):
    return [r for r in app.requests if r.payload and r.payload["called"] == called][-1]


def test_signed_payload_and_overrides_reach_the_model(lenient, app, tmp_path):
    """The app verifies the signature independently, sees the call and its carrier headers, and
    its accept overrides become the instructions the model receives."""
    up, bridge = lenient
    before = len(up.events("session.update"))
    _, call_id = answered(bridge, "vip", carrier_scenario(tmp_path))
    req = request_for(app, "vip")
    assert req.verified and req.headers["webhook-signature"].startswith("v1,")
    p = req.payload
    incoming = bridge.wait_log("call_incoming", call_id=call_id)
    assert (p["type"], p["call_id"], p["sip_call_id"], p["caller"], p["called"], p["route"],
            p["trunk"]) == ("call.incoming", incoming["uid"], call_id, "+15550001111", "vip", None, None)
    assert p["source"].startswith("127.0.0.1:") and "vip@" in p["to"] and "sipp@" in p["from"]
    assert p["headers"] == {
        "p-asserted-identity": ["<sip:+15550001111@carrier.example>"],
        "diversion": ["<sip:+15559990000@carrier.example>;reason=no-answer"],
        "x-campaign": ["spring-42"]}
    update = up.wait_for("session.update", count=before + 1)[before]
    assert update["session"]["instructions"] == "VIP line for +15550001111."
    assert bridge.wait_log("webhook_answered", call_id=call_id)["action"] == "accept"


def test_webhook_rejects_with_486(lenient, app):
    """The app's reject reaches the caller as 486 with its reason; no model session is opened."""
    up, bridge = lenient
    before = len(up.events("session.update"))
    res, call_id = refused(bridge, "busy", 486)
    final = next(t for d, t in res.messages if d == "R" and t.startswith("SIP/2.0 486"))
    assert final.startswith("SIP/2.0 486 Busy Here")
    assert 180 in res.response_codes   # the caller heard ringing while the app decided
    rec = bridge.wait_log("call_rejected", call_id=call_id, status=486)
    assert rec["why"] == "webhook"
    assert len(up.events("session.update")) == before


@pytest.mark.parametrize("number, reason", [("slow", "timeout"), ("garbage", "malformed"),
                                            ("error", "status"), ("clash", "malformed")])
def test_failure_falls_back_to_the_default_agent(lenient, app, number, reason):
    """A webhook past its timeout, answering garbage, 500 or overrides the config refuses: the call
    is answered by the default agent."""
    up, bridge = lenient
    before = len(up.events("session.update"))
    started = time.monotonic()
    res, call_id = answered(bridge, number)
    rec = bridge.wait_log("webhook_failed", call_id=call_id)
    assert (rec["reason"], rec["then"]) == (reason, "accept") and rec["detail"]
    if number == "clash":
        assert "reply.turn_detection.clear_digit" in rec["detail"]
    if reason == "timeout":
        assert TIMEOUT_MS <= rec["latency_ms"] < TIMEOUT_MS + 300, rec
        assert time.monotonic() - started >= TIMEOUT_MS / 1000
    update = up.wait_for("session.update", count=before + 1)[before]
    assert update["session"]["instructions"] == "Default agent."


@pytest.mark.parametrize("number, reason", [("slow", "timeout"), ("garbage", "malformed")])
def test_failure_rejects_with_503_when_so_configured(strict, app, number, reason):
    """With on_webhook_failure: reject, a timeout or garbage refuses the call with 503."""
    up, bridge = strict
    before = len(up.events("session.update"))
    _, call_id = refused(bridge, number, 503)
    rec = bridge.wait_log("webhook_failed", call_id=call_id)
    assert (rec["reason"], rec["then"]) == (reason, "reject")
    assert bridge.wait_log("call_rejected", call_id=call_id)["status"] == 503
    assert len(up.events("session.update")) == before


def test_a_call_asking_the_webhook_holds_its_slot(strict, app):
    """With max_calls 1, a second INVITE while the first still waits for the webhook gets 486
    (from pjsua's call limit, which the worker sets to max_calls) and the webhook is not asked."""
    up, bridge = strict
    first: dict = {}
    caller = threading.Thread(target=lambda: first.update(res=refused(bridge, "slow", 503)))
    seen = len(app.requests)
    caller.start()
    try:
        app.wait(seen + 1)  # the first call is now waiting for the app (which answers too late)
        refused(bridge, "busy", 486)
        assert len(app.requests) == seen + 1   # refused before the webhook was asked
    finally:
        caller.join(20)
    assert "res" in first


def test_cancel_while_the_webhook_is_pending(lenient, app):
    """A CANCEL while the app is still deciding ends the call (487); its late answer opens nothing."""
    up, bridge = lenient
    before = len(up.events("session.update"))
    res = run_sipp("uac_cancel", bridge.target, service="hold", timeout=15)
    assert res.returncode == 0 and res.final_code == 487, res.describe()
    call_id = res.shortmsgs[0].call_id
    assert bridge.wait_log("call_ended", call_id=call_id)["status"] == 487
    req = request_for(app, "hold")
    time.sleep(max(0.0, req.received_at + 2.0 - time.monotonic()))  # past the app's 1.5 s answer
    assert not [r for r in bridge.logs() if r.get("call_id") == call_id and r.get("event") in
                ("webhook_answered", "webhook_failed", "upstream_connected", "call_answered")]
    assert len(up.events("session.update")) == before


def test_nothing_leaks(lenient, strict, app):
    """After all the calls: no model socket is open and the counters at exit match the calls placed
    (this test runs last and counts every call of this module)."""
    for up, bridge in (lenient, strict):
        deadline = time.monotonic() + 5
        while bridge.tcp_connections_to(up.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bridge.tcp_connections_to(up.port) == 0
        assert bridge.stop() == 0
    lenient_stats = lenient[1].wait_log("stopped")
    assert (lenient_stats["webhook_ok"], lenient_stats["webhook_failed_timeout"],
            lenient_stats["webhook_failed_malformed"], lenient_stats["webhook_failed_status"],
            lenient_stats["rejected_486"], lenient_stats["accepted"]) == (2, 1, 2, 1, 1, 5)
    strict_stats = strict[1].wait_log("stopped")
    assert (strict_stats["webhook_failed_timeout"], strict_stats["webhook_failed_malformed"],
            strict_stats["rejected_503"], strict_stats["accepted"]) == (2, 1, 3, 0)
