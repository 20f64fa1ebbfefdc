#!/usr/bin/env python3
"""Outbound call setup overhead: the API request on the wire -> the INVITE on the wire.

Run: ``python bench/outbound.py [--calls N] [--warmup N] [--cell N] [--keep]``. Prints one JSON
object on stdout (progress on stderr). Needs root (tcpdump) and ``sipp``; everything is on
127.0.0.1.

``--cell N`` measures the same through a cell instead (``sipbridge run --workers N --front
kamailio``, tests/integration/test_cell.CellProcess): the request goes to the supervisor's API,
which forwards it to a worker over its unix socket, and the worker sends the INVITE. The JSON
then also has ``workers`` (calls placed per worker).

``sipbridge run`` (a subprocess, tests/support/bridge.Bridge, the embedded model in its own
process) places ``--calls`` calls one after another through ``POST /v1/calls`` to a SIPp UAS
(``uas_hangup.xml``: 100, 180, 200 at once, BYE 300 ms after the ACK), dialled by ``sip:`` URI.
tcpdump on ``lo`` captures the HTTP request segments to the API port and the UDP datagrams to
the UAS. Per call:

* ``wire_ms``: kernel capture time of the INVITE minus that of the TCP segment carrying
  ``POST /v1/calls`` (one segment: the client sends headers and body in one write). This is
  everything the bridge adds: HTTP parsing, validation, the hop to the control thread, the
  capacity check, ``makeCall``. The target is p95 <= 20 ms.
* ``in_bridge_ms``: the same span on the bridge's own clock (``outbound_requested``'s
  ``received_at`` -> ``invite_sent_at``: handler entry to ``makeCall`` returned).
* ``outside_ms``: per call, ``wire_ms`` less ``in_bridge_ms``: the kernel and HTTP parsing
  before the handler, and in a cell the front's part (its handler, the worker's choice, the
  hop over the unix socket).
* ``connect_ms``: the model session's connect time (``upstream_connected``), which runs while
  the far end rings; ``invite_to_answer_ms``: INVITE sent -> 200 (SIPp answers at once: the
  worst case for the agent being ready); ``ready_at_answer``: calls whose model session was
  connected before the answer; ``answer_to_agent_ready_ms``: how long after the answer it
  was (0 when ready before; the log line's time). Opening the session *before* the INVITE would add
  ``connect_ms`` to every setup; opening it at the answer would leave the callee that long in
  dead air: both are reported so the choice can be checked.

The first ``--warmup`` calls (default 2: first-use imports, pjsua's first call) are placed
but not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import struct
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

# stdout is for the JSON only: keep the real one aside, point fd 1 at stderr for everyone else.
_STDOUT = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from sipbridge.cell.uids import worker_of  # noqa: E402
from tests.support.bridge import Bridge, Upstream  # noqa: E402
from tests.support.capture import RtpCapture  # noqa: E402
from tests.support.pcap import _network_layer, iter_records  # noqa: E402
from tests.support.ports import free_tcp_port  # noqa: E402
from tests.support.sipp import SippUas  # noqa: E402

TARGET_P95_MS = 20.0
FINAL = ("ended", "failed", "no-answer", "busy", "cancelled")


def stats(values: list[float], digits: int = 2) -> dict:
    if not values:
        return {"n": 0}
    v = np.asarray(values, dtype=float)
    return {"n": len(v), "p50": round(float(np.percentile(v, 50)), digits),
            "p95": round(float(np.percentile(v, 95)), digits),
            "max": round(float(v.max()), digits), "min": round(float(v.min()), digits)}


def segments(pcap: Path, api_port: int, uas_port: int) -> tuple[list[float], list[tuple[float, str]]]:
    """(times of TCP segments starting ``POST /v1/calls`` to the API, [(time, Call-ID)] of
    INVITEs to the UAS), from an IPv4 capture."""
    posts, invites = [], []
    for ts, linktype, frame in iter_records(pcap.read_bytes()):
        layer = _network_layer(linktype, frame)
        if layer is None or layer[0] != 0x0800:
            continue
        pkt = layer[1]
        ihl, proto = (pkt[0] & 0x0F) * 4, pkt[9]
        if proto == 6:
            dport = struct.unpack_from("!H", pkt, ihl + 2)[0]
            payload = pkt[ihl + (pkt[ihl + 12] >> 4) * 4:]
            if dport == api_port and payload.startswith(b"POST /v1/calls "):
                posts.append(ts)
        elif proto == 17:
            dport = struct.unpack_from("!H", pkt, ihl + 2)[0]
            payload = pkt[ihl + 8:]
            if dport == uas_port and payload.startswith(b"INVITE "):
                text = payload.decode(errors="replace")
                call_id = next((line.split(":", 1)[1].strip() for line in text.split("\r\n")
                                if line.lower().startswith(("call-id:", "i:"))), "")
                if not any(c == call_id for _, c in invites):   # retransmissions: first only
                    invites.append((ts, call_id))
    return posts, invites


def post(port: int, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/calls", method="POST",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def progress(port: int, uid: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/calls/{uid}/progress",
                                timeout=10) as resp:
        return json.loads(resp.read())


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@contextlib.contextmanager
def single(work: Path, upstream_url: str, api_port: int):
    """One ``sipbridge run`` process serving ``api_port``: (its log lines, reader)."""
    extra = {"api": {"listen": f"127.0.0.1:{api_port}"},
             "records": {"path": str(work / "records.db")}, "log": {"level": "info"}}
    with Bridge(work, upstream_url, extra=extra) as bridge:
        yield bridge.logs


@contextlib.contextmanager
def cell(work: Path, workers: int, api_port: int):
    """A cell of ``workers`` (Kamailio front, embedded model) whose API serves ``api_port``."""
    from tests.integration.test_cell import CellProcess
    proc = CellProcess(work, extra={"api": {"listen": f"127.0.0.1:{api_port}"}}, workers=workers)
    try:
        proc.wait("cell_ready", timeout=90)
        yield lambda event=None: [r for r in list(proc.out.records)
                                  if event is None or r.get("event") == event]
    except BaseException:
        print(proc.tail(), file=sys.stderr)   # what the cell said before it went wrong
        raise
    finally:
        proc.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=24)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--cell", type=int, default=0, metavar="N",
                    help="through a cell of N workers (its supervisor's API) instead")
    ap.add_argument("--keep", action="store_true", help="keep the capture and the traces")
    args = ap.parse_args()
    if shutil.which("sipp") is None or os.geteuid() != 0:
        print("needs sipp and root (tcpdump)", file=sys.stderr)
        return 2
    total = args.calls + args.warmup
    work = Path(tempfile.mkdtemp(prefix="bench-outbound-"))
    api_port = free_tcp_port()
    rows: list[dict] = []
    with contextlib.ExitStack() as stack:
        if args.cell:
            logs_of = stack.enter_context(cell(work, args.cell, api_port))
        else:
            upstream = stack.enter_context(Upstream(work))
            logs_of = stack.enter_context(single(work, upstream.url, api_port))
        uas = stack.enter_context(SippUas("uas_hangup", rtp_echo=False, calls=total, hold_ms=300,
                                          timeout=600, trace_dir=work / "uas"))
        bpf = (f"(tcp dst port {api_port} and (tcp[tcpflags] & tcp-push != 0)) or "
               f"(udp dst port {uas.port})")
        with RtpCapture(bpf=bpf, path=work / "capture.pcap") as cap:
            for i in range(total):
                body = post(api_port, {"to": f"sip:100@{uas.target}", "ring_timeout_s": 10})
                uid = body["uid"]
                deadline = time.monotonic() + 15
                while True:
                    state = progress(api_port, uid)
                    if state["state"] in FINAL or time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                rows.append({"uid": uid, **state})
                print(f"call {i + 1}/{total}: {state['state']}", file=sys.stderr)
                # the slot is free once the session is closed: wait for it, not a fixed sleep
                while len(logs_of("session_closed")) < i + 1 and time.monotonic() < deadline:
                    time.sleep(0.01)
        posts, invites = segments(cap.path, api_port, uas.port)
        logs = logs_of()
    requested = {r["uid"]: r for r in logs if r.get("event") == "outbound_requested"}
    queued = {r["uid"]: r["call_id"] for r in logs
              if r.get("event") == "outbound_progress" and r.get("state") == "queued"}
    connected = {r["call_id"]: r for r in logs if r.get("event") == "upstream_connected"}
    if len(posts) != total or len(invites) != total:
        print(f"capture: {len(posts)} requests, {len(invites)} INVITEs for {total} calls",
              file=sys.stderr)
    wire, in_bridge, outside, connect, to_answer, wait, ready = [], [], [], [], [], [], 0
    for i, row in enumerate(rows):
        if i < args.warmup:
            continue
        call_id = queued.get(row["uid"])
        w = b = None
        if i < len(posts) and i < len(invites) and invites[i][1] == call_id:
            wire.append(w := (invites[i][0] - posts[i]) * 1000)
        req = requested.get(row["uid"])
        if req is not None and req.get("invite_sent_at"):
            in_bridge.append(b := (req["invite_sent_at"] - req["received_at"]) * 1000)
        if w is not None and b is not None:
            outside.append(w - b)
        conn = connected.get(call_id)
        answered = row["times"].get("answered")
        if conn is not None:
            connect.append(float(conn.get("connect_ms", 0.0)))
            if answered is not None:
                late = (_epoch(conn["timestamp"]) - answered) * 1000
                wait.append(max(0.0, late))
                ready += late <= 0
        if answered is not None and row.get("invite_sent_at"):
            to_answer.append((answered - row["invite_sent_at"]) * 1000)
    counted = len(rows) - args.warmup
    out = {
        "calls": counted, "warmup": args.warmup,
        "outcomes": {s: sum(1 for r in rows[args.warmup:] if r["state"] == s)
                     for s in sorted({r["state"] for r in rows})},
        "cell_workers": args.cell or None,
        "workers": ({str(w): sum(1 for r in rows if worker_of(r["uid"]) == w)
                     for w in range(args.cell)} if args.cell else None),
        "wire_ms": stats(wire), "in_bridge_ms": stats(in_bridge), "outside_ms": stats(outside),
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": bool(wire) and len(wire) == counted and
                        float(np.percentile(wire, 95)) <= TARGET_P95_MS,
        "connect_ms": stats(connect), "invite_to_answer_ms": stats(to_answer),
        "ready_at_answer": f"{ready}/{counted}",
        "answer_to_agent_ready_ms": stats(wait),
        "load_1m": round(os.getloadavg()[0], 2),
        "artifacts": str(work) if args.keep else None,
    }
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    _STDOUT.write(json.dumps(out, indent=2) + "\n")
    _STDOUT.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
