"""routes: with real SIPp calls: two numbers reach two agents, a third the defaults, a fourth is refused.

The model server (the embedded model, recording what it receives) sees each call's own
``session.update`` instructions; the calls are placed one after the other so the n-th
``session.update`` belongs to the n-th call.
"""

from __future__ import annotations

import pytest

from sipbridge.app.signing import new_secret
from tests.support.bridge import Bridge, Upstream
from tests.support.sipp import run_sipp

ROUTES = [
    {"name": "sales", "match": {"number": "+1555*"}, "instructions": "You sell to {caller}.",
     "voice": "marin", "metadata": {"team": "sales"},
     "tools": [{"name": "lookup_order", "description": "Find an order by its number.",
                "parameters": {"type": "object", "properties": {"order": {"type": "string"}}}}],
     "tools_url": "http://127.0.0.1:9/tools"},
    {"name": "support", "match": {"number": "2000"}, "turn_detection": "patient"},
    {"name": "premium", "match": {"number": "+1900*"}, "reject": 403, "reason": "Premium Blocked"},
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("routing")
    prompt = tmp / "support.txt"
    prompt.write_text("You are the support desk; the caller dialled {called}.")
    routes = [dict(r) for r in ROUTES]
    routes[1]["instructions_file"] = str(prompt)
    with Upstream(tmp) as up, Bridge(tmp, up.url, extra={
            "realtime": {"instructions": "You are the default agent."},
            "api": {"listen": None}, "records": {"path": None}, "routes": routes},
            env={"SIPBRIDGE_WEBHOOK_SECRET": new_secret()}) as bridge:  # sales' tools_url signs
        yield up, bridge


def call(bridge, number: str):
    res = run_sipp("uac_pcmu", bridge.target, service=number, hold_ms=300, timeout=20)
    assert res.returncode == 0 and res.final_code == 200, res.describe()
    call_id = res.shortmsgs[0].call_id
    bridge.wait_log("call_ended", call_id=call_id)
    return call_id


def test_each_number_reaches_its_own_agent(env):
    """Calls to +1555..., 2000 and 999 get the sales, support and default instructions (and only
    sales its tool), in that order."""
    up, bridge = env
    ids = [call(bridge, "+15551234567"), call(bridge, "2000"), call(bridge, "999")]
    updates = up.wait_for("session.update", count=3)
    assert [u["session"]["instructions"] for u in updates[:3]] == [
        "You sell to sipp.", "You are the support desk; the caller dialled 2000.",
        "You are the default agent."]
    tools = [[t["name"] for t in u["session"].get("tools", [])] for u in updates[:3]]
    assert tools == [["lookup_order"], [], []]
    routes = [bridge.wait_log("call_incoming", call_id=i)["route"] for i in ids]
    assert routes == ["sales", "support", None]


def test_a_reject_route_refuses_with_its_status(env):
    """A number matching a reject route gets that status and reason; no model session is opened."""
    up, bridge = env
    before = len(up.events("session.update"))
    res = run_sipp("uac_expect_reject", bridge.target, service="+19005550000", timeout=15)
    assert res.returncode == 0 and res.final_code == 403, res.describe()
    final = next(t for d, t in res.messages if d == "R" and t.startswith("SIP/2.0 403"))
    assert final.startswith("SIP/2.0 403 Premium Blocked")
    rec = bridge.wait_log("call_rejected", call_id=res.shortmsgs[0].call_id)
    assert rec["status"] == 403 and rec["why"] == "route premium"
    assert len(up.events("session.update")) == before
