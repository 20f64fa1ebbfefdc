"""Call records end to end: real SIPp calls through ``sipbridge run``, the SQLite file read
directly and through the HTTP API, and a worker killed with SIGKILL mid-call."""

import json
import sqlite3
import threading
import time
import urllib.request

from tests.support.bridge import Bridge, Upstream
from tests.support.sipp import PCMU_SPEECH_PCAP, pcap_duration_ms, run_sipp


def sqlite_records(path) -> dict:
    conn = sqlite3.connect(path)
    try:
        return {uid: json.loads(body) for uid, body in
                conn.execute("SELECT uid, record FROM records")}
    finally:
        conn.close()


def api_get(bridge: Bridge, path: str):
    with urllib.request.urlopen(bridge.api_url + path, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


def test_a_call_leaves_a_complete_record_in_sqlite_and_through_the_api(tmp_path):
    """A SIPp caller speaks, the embedded model answers, the caller hangs up: the record has the
    parties, the times, the caller as the one who ended it, turns with end-of-utterance
    latencies and RTP counters, in the file and at GET /v1/records/{uid}."""
    speech_ms = pcap_duration_ms(PCMU_SPEECH_PCAP)
    with Upstream(tmp_path) as upstream, Bridge(tmp_path, upstream.url) as bridge:
        res = run_sipp("uac_pcmu", bridge.target, pcap=PCMU_SPEECH_PCAP,
                       hold_ms=speech_ms + 3000, timeout=40)
        assert res.returncode == 0 and res.final_code == 200, res.stderr
        uid = bridge.wait_log("call_incoming")["uid"]
        bridge.wait_log("session_closed", timeout=10)
        rec = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:       # written by the records thread, off the call
            status, rec = api_get(bridge, f"/v1/records/{uid}")
            if rec["session"]:
                break
            time.sleep(0.1)
        status, page = api_get(bridge, "/v1/records?number=sipp&status=completed")
        assert bridge.stop() == 0
    assert status == 200 and [r["uid"] for r in page["records"]] == [uid]
    assert rec["uid"] == uid and rec["direction"] == "inbound"
    assert (rec["caller"], rec["called"]) == ("sipp", "sipbridge")
    assert rec["status"] == "completed" and rec["sip_status"] == 200
    assert rec["ended_by"] == "caller"
    assert rec["invite_at"] < rec["answer_at"] < rec["end_at"]
    assert 0 < rec["setup_ms"] < 5000
    assert rec["talk_s"] >= (speech_ms + 3000) / 1000 * 0.9
    assert rec["turns"] >= 1 and rec["eou_p50_ms"] is not None and rec["eou_p95_ms"] >= rec["eou_p50_ms"]
    assert rec["responses"].get("completed", 0) >= 1
    assert rec["rtp"]["rx_packets"] >= speech_ms // 20 * 0.9 and rec["rtp"]["tx_packets"] > 0
    assert rec["session"]["frames_out"] > 0
    assert sqlite_records(bridge.records_path) == {uid: rec}     # the file holds the same record


def test_a_worker_killed_mid_call_leaves_the_call_closed_as_lost_after_restart(tmp_path):
    """SIGKILL while a call is up leaves its row in_progress; the next bridge on the same file
    closes it as lost at start-up (and says how many)."""
    sipp: list = []   # the caller's process: its call never ends (no BYE comes from a dead
    # worker), so it is stopped when the test is done with it rather than waited out (15 s)
    with Upstream(tmp_path) as upstream:
        first = Bridge(tmp_path, upstream.url)
        caller = threading.Thread(target=run_sipp, args=("uac_wait_bye", first.target),
                                  kwargs={"timeout": 15, "on_start": sipp.append}, daemon=True)
        caller.start()
        try:
            uid = first.wait_log("call_answered", timeout=15) and first.wait_log("call_incoming")["uid"]
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                row = sqlite_records(first.records_path).get(uid)
                if row is not None and row["answer_at"] is not None:
                    break
                time.sleep(0.05)
            assert row["status"] == "in_progress" and row["answer_at"] is not None
            first.proc.kill()
            first.proc.wait(10)
        finally:
            first.stop()
        assert sqlite_records(first.records_path)[uid]["status"] == "in_progress"
        with Bridge(tmp_path, upstream.url,
                    extra={"records": {"path": first.records_path}}) as second:
            opened = second.wait_log("records_opened")
            status, rec = api_get(second, f"/v1/records/{uid}")
            status_lost, page = api_get(second, "/v1/records?status=lost")
    assert opened["lost"] == 1
    assert status == 200 and rec["status"] == "lost" and rec["end_reason"] == "worker_restarted"
    assert rec["end_at"] >= rec["answer_at"] and rec["ended_by"] == "bridge"
    assert [r["uid"] for r in page["records"]] == [uid]
    for proc in sipp:
        proc.terminate()
    caller.join(20)
