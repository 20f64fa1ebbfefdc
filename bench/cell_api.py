"""The cell's one API: what the supervisor's hop costs (prints one JSON object).

    python bench/cell_api.py [--workers 3] [--requests 200]

A real cell (``sipbridge run --workers N --front kamailio``, embedded model) with 4 calls up per
worker (SIPp ``uac_proxy`` through Kamailio, media echoed), then ``--requests`` requests per
endpoint over one keep-alive loopback connection, timed at the client: at the cell
(``api.listen``) ``GET /metrics`` (every worker scraped and summed), ``/v1/calls`` (merged),
``/readyz`` (every worker asked), ``/v1/calls/{uid}`` of a call on the last worker; and the
same ``/v1/calls/{uid}`` and ``/metrics`` straight on that worker's control socket (its
internal token read from ``/proc/<pid>/environ``), the difference being the front's hop.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def stats(ms: list[float]) -> dict:
    xs = np.array(ms)
    return {"p50": round(float(np.percentile(xs, 50)), 2),
            "p95": round(float(np.percentile(xs, 95)), 2), "max": round(float(xs.max()), 2),
            "n": len(ms)}


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("worker", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


def timed(conn, path: str, n: int, headers=None) -> dict:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        out.append((time.perf_counter() - t) * 1000)
        assert resp.status < 300 or path == "/readyz", (path, resp.status)
    return stats(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    from tests.integration.test_cell import CellProcess
    from tests.support.sipp import run_sipp

    tmp = Path(tempfile.mkdtemp(prefix="bench-cell-api-"))
    cell = CellProcess(tmp, extra={"api": {"rate_per_s": 100000}}, workers=args.workers)
    calls = 4 * args.workers
    try:
        cell.wait("cell_ready", timeout=90)
        sipp = threading.Thread(target=run_sipp, args=("uac_proxy", f"127.0.0.1:{cell.sip_port}"),
                                kwargs=dict(calls=calls, rtp_echo=True, hold_ms=30000, timeout=60,
                                            trace_dir=tmp / "sipp",
                                            extra_args=["-l", str(calls), "-r", "20"]))
        sipp.start()
        host, port = cell.api_url[len("http://"):].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        deadline = time.monotonic() + 40
        while True:
            conn.request("GET", "/v1/calls")
            listed = json.loads(conn.getresponse().read())["calls"]
            if sum(c["state"] == "answered" for c in listed) >= calls:
                break
            assert time.monotonic() < deadline, f"only {len(listed)} calls up"
            time.sleep(0.2)
        last = args.workers - 1
        uid = next(c["uid"] for c in listed if c["worker"] == last)
        out = {"workers": args.workers, "calls_up": len(listed), "requests": args.requests,
               "machine": f"{platform.machine()}, {os.cpu_count()} cpus"}
        for name, path in (("metrics", "/metrics"), ("calls", "/v1/calls"),
                           ("readyz", "/readyz"), ("call", f"/v1/calls/{uid}")):
            out[f"cell_{name}_ms"] = timed(conn, path, args.requests)
        pid = [r["pid"] for r in cell.events("worker_started") if r["worker"] == last][-1]
        env = dict(v.split("=", 1) for v in Path(f"/proc/{pid}/environ").read_bytes()
                   .decode().split("\0") if "=" in v)
        direct = UnixHTTPConnection(env["SIPBRIDGE_CELL_CONTROL_SOCKET"])
        auth = {"Authorization": f"Bearer {env['SIPBRIDGE_CELL_CONTROL_TOKEN']}"}
        out["worker_call_ms"] = timed(direct, f"/v1/calls/{uid}", args.requests, auth)
        out["worker_metrics_ms"] = timed(direct, "/metrics", args.requests, auth)
        print(json.dumps(out))
    finally:
        cell.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
