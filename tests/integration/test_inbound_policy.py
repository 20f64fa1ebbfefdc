"""Inbound call policy with real SIPp calls: digest auth (401/403), accepted numbers (404), INVITE floods (503).

A source outside ``sip.allow_from`` getting 403 (logged with its source) is covered by
``test_call_path.py::test_disallowed_source_gets_403``.

The flood here runs at 25 INVITEs/s to test the per-source token bucket; floods at 200
INVITEs/s (the early gate that keeps pjsua from opening sockets for refused INVITEs, and its
admission budget) are in ``test_invite_flood.py``; see README "Inbound call policy".
"""

from __future__ import annotations

import os
import re
import threading
import time

import pytest

from tests.support.bridge import Bridge, Upstream
from tests.support.capture import RtpCapture
from tests.support.ports import free_port_block
from tests.support.sipp import run_sipp

PASSWORD = "tr0ub4dor-and-3"
PASSWORD_ENV = "INBOUND_TEST_PASSWORD"   # not SIPBRIDGE_*: Bridge() strips those


@pytest.fixture(scope="module")
def auth_bridge(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inbound")
    os.environ[PASSWORD_ENV] = PASSWORD
    try:
        with Upstream(tmp) as up, Bridge(tmp, up.url, extra={"sip": {
                "auth_user": "bot", "auth_password_env": PASSWORD_ENV,
                "numbers": ["bot", "+15551234567"]}}) as b:
            yield b
    finally:
        del os.environ[PASSWORD_ENV]


def auth_call(bridge, password: str, service: str = "bot", hold_ms: int = 500):
    return run_sipp("uac_auth_pcmu", bridge.target, service=service, hold_ms=hold_ms, timeout=20,
                    extra_args=["-au", "bot", "-ap", password])


def finals(res) -> list[int]:
    return [c for c in res.invite_codes if c >= 200]


def test_invite_without_credentials_gets_a_digest_challenge(auth_bridge):
    """An INVITE with no Authorization gets 401 with an MD5, qop=auth challenge, logged with its source."""
    res = run_sipp("uac_expect_reject", auth_bridge.target, service="bot", timeout=15)
    assert res.returncode == 0 and res.final_code == 401, res.describe()
    challenge = next(t for d, t in res.messages if d == "R" and t.startswith("SIP/2.0 401"))
    header = re.search(r"^WWW-Authenticate: (.*)$", challenge, re.M | re.I).group(1)
    assert 'Digest realm="sipbridge"' in header and 'qop="auth"' in header and "algorithm=MD5" in header
    assert re.search(r'nonce="[0-9a-f.]+"', header)
    rec = auth_bridge.wait_log("call_rejected", status=401, call_id=res.shortmsgs[0].call_id)
    assert rec["source"].startswith("127.0.0.1:")


def test_right_password_is_answered_with_audio(auth_bridge):
    """The INVITE retried with the right digest is answered and carries the caller's speech."""
    res = auth_call(auth_bridge, PASSWORD, hold_ms=2500)
    assert res.returncode == 0 and finals(res) == [401, 200], res.describe()
    call_id = res.shortmsgs[0].call_id
    auth_bridge.wait_log("media_active", call_id=call_id)
    auth_bridge.wait_log("speech_started", call_id=call_id)
    auth_bridge.wait_log("call_ended", call_id=call_id, status=200)  # the 401 ended one too
    assert PASSWORD not in auth_bridge.output()


def test_wrong_password_gets_403(auth_bridge):
    """A retried INVITE with a wrong password is refused with 403 and the reason is logged."""
    res = auth_call(auth_bridge, "not-" + PASSWORD)
    assert res.returncode == 0 and finals(res) == [401, 403], res.describe()
    rec = auth_bridge.wait_log("call_rejected", status=403, call_id=res.shortmsgs[0].call_id)
    assert "wrong response" in rec["why"]
    assert PASSWORD not in auth_bridge.output()


def test_unlisted_number_gets_404_after_auth(auth_bridge):
    """With sip.numbers set, an authenticated INVITE to another user gets 404, logged with the number."""
    res = auth_call(auth_bridge, PASSWORD, service="alice")
    assert res.returncode == 0 and finals(res) == [401, 404], res.describe()
    rec = auth_bridge.wait_log("call_rejected", status=404, call_id=res.shortmsgs[0].call_id)
    assert "'alice'" in rec["why"]


def test_listed_e164_number_is_answered(auth_bridge):
    """A number in sip.numbers (+15551234567 in the Request-URI) is answered."""
    res = auth_call(auth_bridge, PASSWORD, service="+15551234567")
    assert res.returncode == 0 and finals(res) == [401, 200], res.describe()


def test_invite_flood_gets_503_while_the_call_in_progress_keeps_its_audio(tmp_path, upstream):
    """Past the per-source burst INVITEs get 503 + Retry-After (counted) and an ongoing call's RTP never stops."""
    rate, burst, flood, per_s = 2, 2, 25, 25
    # pjsua takes an RTP port pair for every INVITE, refused ones too: give the flood enough
    # ports that the range does not wrap onto the call in progress (see the module docstring)
    rtp = free_port_block(200)
    with Bridge(tmp_path, upstream.url, extra={"sip": {
            "invite_rate_per_s": rate, "invite_burst": burst,
            "rtp_port": rtp, "rtp_port_range": 200}}) as b:
        media = free_port_block(4, align=2)
        long_call: dict = {}
        with RtpCapture(ports=[media]) as cap:
            t = threading.Thread(target=lambda: long_call.setdefault("res", run_sipp(
                "uac_pcmu", b.target, media_port=media, hold_ms=6500, timeout=30)))
            t.start()
            b.wait_log("call_answered", timeout=10)
            time.sleep(0.3)
            flood_start = time.time()
            res = run_sipp("uac_flood", b.target, calls=flood, timeout=20,
                           extra_args=["-r", str(per_s), "-l", str(flood)])
            flood_end = time.time()
            t.join(40)
        assert res.returncode == 0, res.describe()
        codes = [c for c in res.invite_codes if c >= 200]
        refused = [t for d, t in res.messages if d == "R" and t.startswith("SIP/2.0 503")]
        # the long call took 1 token; the others are the burst left plus what refilled meanwhile
        assert codes.count(503) >= flood - burst - rate * (flood_end - flood_start + 1), codes
        assert refused and all(re.search(r"^Retry-After: [1-9]\d*\s*$", t, re.M) for t in refused)
        lr = long_call["res"]
        assert lr.returncode == 0 and lr.final_code == 200, lr.describe()
        limited = [r for r in b.logs("call_rejected") if r["status"] == 503]
        assert len(limited) == codes.count(503) and all("rate limit" in r["why"] for r in limited)
        back = cap.stream(dst_port=media)
        gaps = back.interarrival()
        worst = int(gaps.argmax())
        at = back.packets[worst].arrival
        assert gaps.max() < 0.2, (f"the bridge's RTP to the ongoing call paused {gaps.max() * 1000:.0f} ms "
                                  f"at {at - flood_start:+.2f} s from the flood's start "
                                  f"(flood lasted {flood_end - flood_start:.2f} s)")
        during = [p for p in back.packets if flood_start <= p.arrival <= flood_end + 0.5]
        assert len(during) >= 0.8 * (flood_end + 0.5 - flood_start) / 0.02
        assert [x for x in back.active_times(-40.0, t0=flood_end) if x > 0], "no agent audio after the flood"
        assert b.stop() == 0
        assert b.logs("stopped")[0]["rate_limited"] == codes.count(503)
