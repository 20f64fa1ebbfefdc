"""INVITE floods at 200 INVITEs/s against one bridge process (SIPp ``-r 200 -rp 1000``).

pjsua opens an RTP/RTCP socket pair for every INVITE before ``onIncomingCall`` runs, and pjlib
frees a closed socket's handle only ~500 ms later, so without the early gate
(``sipbridge/sip/pjgate.py``) about 32 INVITEs within half a second abort the process. Here the
gate answers the excess statelessly before pjsua sees it: 503 + ``Retry-After`` past the
admission budget (10 INVITEs a second reach pjsua), 403 for sources outside ``sip.allow_from``.
The per-source token bucket is off (``invite_rate_per_s: null``) so the budget alone is tested;
its 503s are covered at 25 INVITEs/s in ``test_inbound_policy.py``.
"""

from __future__ import annotations

import collections
import re
import threading
import time

import pytest

from sipbridge.sip.gate import ADMIT_LIMIT, ADMIT_WINDOW_S
from tests.support.bridge import Bridge, Upstream
from tests.support.capture import RtpCapture
from tests.support.ports import free_port_block
from tests.support.sipp import run_sipp

RATE = 200            # INVITEs per second
FLOOD_S = 5           # seconds of flood while the long call is up
SPEECH_PACKETS = 280  # the 5.6 s PCMU speech pcap the long call plays


@pytest.fixture(scope="module")
def flood_bridge(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flood")
    with Upstream(tmp) as up, Bridge(tmp, up.url, extra={"sip": {
            "invite_rate_per_s": None, "numbers": ["bot"]}}) as b:
        yield b


def flood(bridge: Bridge, seconds: float, extra: tuple = ()):
    calls = int(RATE * seconds)
    start = time.time()
    res = run_sipp("uac_flood", bridge.target, service="flood", calls=calls, timeout=30,
                   extra_args=["-r", str(RATE), "-rp", "1000", "-l", str(RATE), *extra])
    return res, start, time.time(), calls


def finals(res) -> list[int]:
    return [c for c in res.invite_codes if c >= 200]


def test_flood_is_refused_early_and_the_call_in_progress_keeps_its_audio(flood_bridge):
    """At 200 INVITEs/s for 5 s the bridge stays up, answers the excess 503 + Retry-After, and an ongoing call's RTP never pauses."""
    b = flood_bridge
    assert b.wait_log("sip_gate_ready")["mode"] == "full"
    media = free_port_block(4, align=2)
    long_call: dict = {}
    with RtpCapture(ports=[media]) as cap:
        t = threading.Thread(target=lambda: long_call.setdefault("res", run_sipp(
            "uac_pcmu", b.target, service="bot", media_port=media, hold_ms=6500, timeout=30)))
        t.start()
        b.wait_log("call_answered", timeout=10)
        time.sleep(0.3)
        res, flood_start, flood_end, calls = flood(b, FLOOD_S)
        assert b.proc.poll() is None, "the bridge died under the flood:\n" + b.output()[-3000:]
        t.join(40)
    assert res.returncode == 0, res.describe()
    codes = collections.Counter(finals(res))
    assert sum(codes.values()) == calls, codes
    # what got past the gate went to the policy (404: "flood" is not in sip.numbers)
    admitted = codes[404] + codes[486]
    assert set(codes) <= {503, 404, 486}, codes
    budget = ADMIT_LIMIT * ((flood_end - flood_start) / ADMIT_WINDOW_S + 2)
    assert 0 < admitted <= budget, codes
    refused = [m for d, m in res.messages if d == "R" and m.startswith("SIP/2.0 503")]
    assert len(refused) >= codes[503] and codes[503] >= calls - budget, codes
    assert all(re.search(r"^Retry-After: [1-9]\d*\s*$", m, re.M) for m in refused)
    lr = long_call["res"]
    assert lr.returncode == 0 and lr.final_code == 200, lr.describe()
    ended = b.wait_log("call_ended", call_id=lr.shortmsgs[0].call_id)
    assert ended["rtp_rx_packets"] >= 0.97 * SPEECH_PACKETS and ended["rtp_rx_lost"] <= 3, ended
    back = cap.stream(dst_port=media)
    gaps = back.interarrival()
    at = back.packets[int(gaps.argmax())].arrival
    assert gaps.max() < 0.2, (f"the bridge's RTP to the ongoing call paused {gaps.max() * 1000:.0f} "
                              f"ms at {at - flood_start:+.2f} s from the flood's start")
    during = [p for p in back.packets if flood_start <= p.arrival <= flood_end]
    assert len(during) >= 0.8 * (flood_end - flood_start) / 0.02
    assert back.active_times(-40.0), "the agent never spoke to the caller"


def test_flood_from_a_disallowed_source_gets_403_and_a_normal_call_follows(flood_bridge):
    """200 INVITEs/s from outside sip.allow_from all get 403; afterwards a normal call is answered with audio."""
    b = flood_bridge
    res, _, _, calls = flood(b, 2, extra=("-i", "127.0.0.2"))
    assert res.returncode == 0, res.describe()
    assert finals(res) == [403] * calls
    assert b.proc.poll() is None
    rec = b.wait_log("call_rejected", status=403)
    assert rec["source"].startswith("127.0.0.2:") and rec["early"] is True
    time.sleep(ADMIT_WINDOW_S)   # the first flood's budget has expired by now anyway
    after = run_sipp("uac_pcmu", b.target, service="bot", hold_ms=1500, timeout=20)
    assert after.returncode == 0 and after.final_code == 200, after.describe()
    b.wait_log("media_active", call_id=after.shortmsgs[0].call_id)
    assert b.stop() == 0
    stopped = b.logs("stopped")[0]
    assert stopped["rejected_403"] >= calls
