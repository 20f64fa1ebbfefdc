"""Trunk registration against a real Kamailio registrar (digest auth) on 127.0.0.1.

One registrar and one bridge are shared by most tests: the bridge has two trunks on it, ``good``
(user alice, the right password) and ``bad`` (user bob, a wrong one). The restart test runs
its own pair, since it stops its registrar.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from sipbridge.kamailio import Kamailio
from tests.support.bridge import Bridge, Upstream
from tests.support.capture import RtpCapture
from tests.support.kamailio_registrar import (options_to_user, registrar_config, relayed,
                                              saved_bindings)
from tests.support.ports import free_port_block, free_udp_port
from tests.support.sipp import PCMU_SPEECH_PCAP, pcap_duration_ms, run_sipp
from tests.support.waiting import poll

PASSWORD = "kam-Secret-7f3a"
WRONG = "not-the-Password-91c2"
EXPIRES = 10         # pjsua refreshes 5 s after each registration
RETRY_MIN, RETRY_MAX = 0.5, 2.0


def trunk(name: str, port: int, user: str, password_file: Path, **extra) -> dict:
    return {"name": name, "registrar": f"sip:127.0.0.1:{port}", "username": user,
            "password_file": str(password_file), "expires": EXPIRES,
            "retry_min_s": RETRY_MIN, "retry_max_s": RETRY_MAX, **extra}


def secret_file(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text + "\n")
    return path


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    """A Kamailio registrar, the embedded model server and a bridge with trunks good and bad."""
    tmp = tmp_path_factory.mktemp("trunks")
    port = free_udp_port()
    kam = Kamailio(registrar_config("127.0.0.1", port, PASSWORD), tmp / "kamailio",
                   sip=("127.0.0.1", port)).start()
    trunks = [trunk("good", port, "alice", secret_file(tmp, "good.pw", PASSWORD)),
              trunk("bad", port, "bob", secret_file(tmp, "bad.pw", WRONG))]
    try:
        with Upstream(tmp) as upstream, \
                Bridge(tmp, upstream.url, extra={"trunks": trunks}) as bridge:
            yield kam, port, upstream, bridge
    finally:
        kam.stop()


def test_trunk_registers_refreshes_and_the_registrar_routes_to_it(cell):
    """The trunk registers with digest auth, refreshes before expiry, and the registrar's lookup reaches the bridge."""
    kam, port, _upstream, bridge = cell
    rec = bridge.wait_log("trunk_registered", timeout=10, trunk="good")
    assert rec["expires"] == EXPIRES
    assert rec["contact"].startswith(f"sip:alice@127.0.0.1:{bridge.sip_port}")
    first = poll(lambda: [b for b in saved_bindings(kam.output()) if b["user"] == "alice"],
                 timeout=2, every=0.05)
    assert first and first[0]["contact"].startswith(f"<{rec['contact']}")

    # a request for alice, routed by lookup("location"), is answered by the bridge; bob is unknown
    assert options_to_user("127.0.0.1", port, "alice") == "SIP/2.0 200 OK"
    assert any(r["method"] == "OPTIONS" and f":{bridge.sip_port}" in r["to"]
               for r in relayed(kam.output()))
    assert options_to_user("127.0.0.1", port, "bob").startswith("SIP/2.0 404")

    # pjsua refreshes the binding before it lapses (every 5 s with expires 10)
    seen = len(first)
    t0 = time.monotonic()
    refreshed = poll(lambda: len([b for b in saved_bindings(kam.output())
                                  if b["user"] == "alice" and b["expires"] != "0"]) > seen,
                     timeout=EXPIRES, every=0.05)
    assert refreshed, "no refresh REGISTER within the expiry"
    assert time.monotonic() - t0 < EXPIRES
    assert len(bridge.logs("trunk_registered")) == 1, "a refresh is not a state change"
    assert not [r for r in bridge.logs("trunk_registration_failed") if r["trunk"] == "good"]


def test_wrong_password_is_reported_and_retried_with_capped_backoff(cell):
    """A wrong password logs 'authentication failed' and is retried with growing waits capped at retry_max_s."""
    kam, _port, _upstream, bridge = cell
    poll(lambda: len([r for r in bridge.logs("trunk_registration_failed")
                      if r["trunk"] == "bad"]) >= 5, timeout=12, every=0.05)
    fails = [r for r in bridge.logs("trunk_registration_failed") if r["trunk"] == "bad"]
    assert len(fails) >= 5, fails
    for r in fails:
        assert r["status"] == 401
        assert r["reason"] == "authentication failed: check the password"
        assert RETRY_MIN <= r["retry_in_s"] <= RETRY_MAX
    waits = [r["retry_in_s"] for r in fails]
    assert waits[0] == RETRY_MIN
    assert waits[-1] >= 0.9 * RETRY_MAX, f"never reached the cap: {waits}"
    assert [r["attempt"] for r in fails] == list(range(1, len(fails) + 1))
    # each retry happened when the backoff said, not sooner (and not much later)
    stamps = [_seconds(r["timestamp"]) for r in fails]
    for (wait, a, b) in zip(waits, stamps, stamps[1:]):
        assert wait - 0.05 <= b - a <= wait + 1.0, (waits, stamps)
    # every attempt reached the registrar, and the right trunk on the same bridge is unaffected
    assert kam.output().count("registrar_bad_password user=bob") >= len(fails)
    assert not bridge.logs("trunk_registered") or all(
        r["trunk"] == "good" for r in bridge.logs("trunk_registered"))
    # the passwords never reach the log
    assert PASSWORD not in bridge.output() and WRONG not in bridge.output()


def test_call_routed_by_the_registrar_is_answered_with_audio_both_ways(cell):
    """A SIPp call to alice at the registrar reaches the bridge's trunk account, is answered, and carries audio both ways."""
    kam, port, upstream, bridge = cell
    bridge.wait_log("trunk_registered", timeout=10, trunk="good")
    media = free_port_block(4)
    speech_ms = pcap_duration_ms(PCMU_SPEECH_PCAP)
    with RtpCapture(ports=[media], port_range=bridge.rtp_range) as cap:
        res = run_sipp("uac_proxy", f"127.0.0.1:{port}", media_port=media, service="alice",
                       pcap=PCMU_SPEECH_PCAP, hold_ms=speech_ms + 2500, timeout=30)
    assert res.returncode == 0 and res.final_code == 200, res.describe()
    incoming = bridge.wait_log("call_incoming", timeout=5)
    assert incoming["trunk"] == "good", "the call did not arrive on the trunk's account"
    call_id = incoming["call_id"]
    assert bridge.wait_log("media_active", call_id=call_id)["codec"] == "PCMU/8000"
    bridge.wait_log("call_answered", call_id=call_id)
    bridge.wait_log("call_ended", call_id=call_id, timeout=10)
    # INVITE, ACK and BYE all went through the registrar (record-routed)
    methods = [r["method"] for r in relayed(kam.output())]
    assert {"INVITE", "ACK", "BYE"} <= set(methods), methods

    # caller -> bridge -> model: the speech arrived upstream
    lo, hi = bridge.rtp_range
    up = [s for s in cap.streams().values() if lo <= s.dst[1] <= hi]
    down = [s for s in cap.streams().values() if lo <= s.src[1] <= hi]
    assert len(up) == 1 and len(down) == 1, list(cap.streams())
    assert up[0].active_mask(-40.0).sum() * 20 >= 1500
    assert upstream.events("input_audio_buffer.append")
    # model -> bridge -> caller: the embedded model's answer (the caller's words) came back
    assert set(down[0].payload_types) == {0}
    assert down[0].active_mask(-40.0).sum() * 20 >= 700, "no agent audio reached the caller"


def test_registrar_restart_is_recovered_within_the_backoff_bound(tmp_path):
    """A registrar stopped (the lapse is logged) and started again gets the trunk back within max(T2, retry_max_s)."""
    port = free_udp_port()
    cfg = registrar_config("127.0.0.1", port, PASSWORD)
    kam = Kamailio(cfg, tmp_path / "kam1", sip=("127.0.0.1", port)).start()
    trunks = [trunk("good", port, "alice", secret_file(tmp_path, "pw", PASSWORD))]
    restarted = None
    try:
        with Upstream(tmp_path) as upstream, \
                Bridge(tmp_path, upstream.url, extra={"trunks": trunks}) as bridge:
            bridge.wait_log("trunk_registered", timeout=10, trunk="good")
            registered_at = time.monotonic()
            kam.stop()
            # the refresh (5 s after registering) meets a dead registrar; at expiry (10 s) the
            # bridge says the trunk is down, while pjsua still retransmits the refresh
            lapsed = bridge.wait_log("trunk_registration_failed", timeout=EXPIRES + 3,
                                     trunk="good")
            assert time.monotonic() - registered_at >= EXPIRES
            assert lapsed["status"] == 408 and "expired" in lapsed["reason"]
            restarted = Kamailio(cfg, tmp_path / "kam2", sip=("127.0.0.1", port)).start()
            back_at = time.monotonic()
            # a retransmission of the pending REGISTER reaches it within T2 (4 s), a retry
            # scheduled by the backoff within retry_max_s
            bound = max(4.0, RETRY_MAX) + 1.5
            saved = poll(lambda: [b for b in saved_bindings(restarted.output())
                                  if b["user"] == "alice" and b["expires"] != "0"],
                         timeout=bound, every=0.05)
            assert saved, f"not re-registered within {bound} s:\n" + bridge.output()[-3000:]
            assert time.monotonic() - back_at <= bound
            assert options_to_user("127.0.0.1", port, "alice") == "SIP/2.0 200 OK"
            assert bridge.wait_log("trunk_registered", timeout=2, trunk="good") and \
                len(bridge.logs("trunk_registered")) == 2, "the recovery was not logged"
            assert bridge.proc.poll() is None
            # SIGTERM: the binding is removed (REGISTER with expires 0) before the bridge exits
            assert bridge.stop() == 0
            unreg = bridge.wait_log("trunk_unregistered", trunk="good")
            assert unreg["ok"] is True and unreg["status"] == 200
            assert poll(lambda: saved_bindings(restarted.output())[-1]["expires"] == "0",
                        timeout=2, every=0.05), "the registrar never saw the REGISTER with expires 0"
    finally:
        kam.stop()
        if restarted is not None:
            restarted.stop()


def _seconds(stamp: str) -> float:
    """Seconds of the day from an ISO timestamp (the log's ``timestamp``)."""
    h, m, s = re.match(r".*T(\d+):(\d+):([\d.]+)", stamp).groups()
    return int(h) * 3600 + int(m) * 60 + float(s)
