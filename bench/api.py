"""The HTTP API's own cost: /metrics scrape time and request latency (prints one JSON object).

    python bench/api.py [--calls 4] [--requests 300]

Part 1, a real worker: ``sipbridge run`` (embedded model server as a subprocess) with
``--calls`` calls up (SIPp signalling, an RtpPeer per caller, media flowing both ways), then
``--requests`` requests per endpoint over one keep-alive loopback connection, timed at the
client: ``GET /metrics``, ``/healthz``, ``/v1/calls``, ``/v1/calls/{uid}`` and
``POST /v1/calls/{uid}/interrupt``. One worker holds at most 4 calls (pjsua2's compiled
capacity), so this is the most a single worker can show.

Part 2, in process: the same :class:`~sipbridge.app.metrics.Metrics` registry fed the log
events of 32 calls (setup, barge-ins, turns, RTP counters) with a scrape-time state function
walking 32 calls, rendered ``--requests`` times: the text-format cost of a 32-call scrape, the
target being < 20 ms. (32 calls in one HTTP scrape need a cell-wide endpoint, not built yet.)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def stats(ms: list[float]) -> dict:
    xs = np.array(ms)
    return {"p50": round(float(np.percentile(xs, 50)), 2), "p95": round(float(np.percentile(xs, 95)), 2),
            "max": round(float(xs.max()), 2), "n": len(ms)}


def timed(conn: http.client.HTTPConnection, method: str, path: str, n: int, body: bytes | None = None) -> dict:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        resp = conn.getresponse()
        resp.read()
        out.append((time.perf_counter() - t) * 1000)
        assert resp.status < 300, (path, resp.status)
    return stats(out)


def real_worker(calls: int, requests: int) -> dict:
    from tests.support.bridge import Bridge, Upstream
    from tests.support.rtp_peer import ExternalMediaCall, RtpPeer

    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    extra = {"api": {"rate_per_s": 100000}}
    with Upstream(tmp) as up, Bridge(tmp, up.url, extra=extra) as bridge:
        peers, sipp = [], []
        for i in range(calls):
            peer = RtpPeer().start()
            call = ExternalMediaCall(bridge.target, peer, hold_ms=0, timeout=120,
                                     trace_dir=tmp / f"sipp{i}").start()
            call.connect_peer()
            peers.append(peer)
            sipp.append(call)
        host, port = bridge.api_url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        deadline = time.monotonic() + 10
        while True:
            conn.request("GET", "/v1/calls")
            listed = json.loads(conn.getresponse().read())["calls"]
            if len(listed) == calls or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        uid = listed[0]["uid"]
        out = {"calls_up": len(listed),
               "metrics_scrape_ms": timed(conn, "GET", "/metrics", requests),
               "healthz_ms": timed(conn, "GET", "/healthz", requests),
               "list_calls_ms": timed(conn, "GET", "/v1/calls", requests),
               "get_call_ms": timed(conn, "GET", f"/v1/calls/{uid}", requests),
               "interrupt_ms": timed(conn, "POST", f"/v1/calls/{uid}/interrupt", requests, b"{}")}
        conn.request("GET", "/metrics")
        out["metrics_bytes"] = len(conn.getresponse().read())
        for call in listed:
            conn.request("POST", f"/v1/calls/{call['uid']}/hangup", body=b"{}")
            conn.getresponse().read()
        for call, peer in zip(sipp, peers):
            call.wait()
            peer.stop()
    return out


def in_process(n_calls: int, requests: int) -> dict:
    from sipbridge.app.health import worker_state
    from sipbridge.app.metrics import Metrics

    calls = {i: SimpleNamespace(session=object(), disconnected=False) for i in range(n_calls)}
    worker = SimpleNamespace(calls=calls, _calls_lock=threading.Lock(), ready=True, _stopping=False,
                             stack=SimpleNamespace(capacity=n_calls), vad_batch=None,
                             counters={"rejected_486": 3, "rejected_503": 1})
    m = Metrics(lambda: worker_state(worker))
    for i in range(n_calls):
        cid, t = f"call-{i}", 1000.0 + i
        m.observe({"event": "call_incoming", "call_id": cid, "ts": t})
        m.observe({"event": "upstream_connected", "call_id": cid, "connect_ms": 40 + i})
        m.observe({"event": "call_answered", "call_id": cid, "ts": t + 0.3})
        for k in range(10):
            m.observe({"event": "speech_stopped", "call_id": cid, "eou_ms": 510 + k})
            m.observe({"event": "barge_in", "source": ("local_vad", "dtmf", "api")[k % 3],
                       "onset_to_pause_ms": 30 + k, "onset_to_cancel_ms": 300 + k})
            m.observe({"event": "tool_called", "latency_ms": 50 + k, "ok": k % 4 != 0, "outcome": "timeout"})
        m.observe({"event": "call_ended", "call_id": cid, "status": 200, "rtp_rx_packets": 3000,
                   "rtp_rx_lost": 1, "rtp_rx_jitter_ms": 2.5})
    out = []
    for _ in range(requests):
        t = time.perf_counter()
        text = m.render()
        out.append((time.perf_counter() - t) * 1000)
    return {"calls": n_calls, "render_ms": stats(out), "bytes": len(text)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=4)
    p.add_argument("--requests", type=int, default=300)
    args = p.parse_args()
    result = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_1min": round(os.getloadavg()[0], 2)},
              "worker": real_worker(args.calls, args.requests),
              "metrics_render_32_calls": in_process(32, args.requests)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
