#!/usr/bin/env python3
"""Capacity benchmark: how many concurrent calls, and how many new calls per second, one machine
carries with clean media.

Run: ``python bench/capacity.py [--steps 32,48,56,64] [--hold-s 60] [--quick]
[--bridge sipbridge|floor-native|floor-python] [--set section.key=value ...]``.
Prints one JSON object on stdout (progress on stderr); ``--json-out FILE`` also writes it there.
You need root (tcpdump) and ``sipp``. Everything runs on 127.0.0.1.

Set-up: ``W`` workers, each a plain ``sipbridge run`` subprocess on its own SIP port and RTP
range (at most 4 calls each, the pjsua2 wheel's limit; ``--workers-per-step auto`` is
``ceil(calls / 4)``), kept across steps. The model server is one separate
``python -m sipbridge.embedded`` process shared by every worker (``--upstream
separate``, so the workers' CPU is the bridge's alone) or each worker's own embedded model
(``--upstream embedded``). It answers every turn with the caller's utterance, streamed at 4x
real time. One SIPp per worker places that worker's calls (``uac_pcmu.xml``), the SIPps
started in turn so calls arrive at ``--ramp-cps``.

Each caller plays a conversation pcap: ``pcmu_speech.pcap`` (two utterances 800 ms apart, so
the answer to the first is interrupted by the second: barge-in load) then 8 s of -65 dBFS line
noise while the second answer plays out, repeated for the whole call. Every call lasts the ramp
plus ``--hold-s`` plus a margin, so all of a step's calls are up together for ``--hold-s``: the
measurement window.

Per step, over the window: worker CPU (``/proc``, percent of one core) per call, worker RSS and
PSS per call (``/proc/PID/smaps_rollup`` at the window's end, summed over the workers, over the
calls), machine CPU, SIPp/tcpdump/model-server CPU; bridge-to-caller RTP packet intervals
(tcpdump on ``lo``, headers only, pooled over all calls: ``p99_ms`` is what a caller's jitter
buffer has to absorb); calls answered and failed (SIPp); playout underruns (frames where the
agent's queue ran dry mid-answer, from each call's ``session_closed`` log line). A step is
*sustained* when every call was answered, none failed and the p99 interval is <= 25 ms;
``max_sustained_calls`` is the largest one. Steps stop at the first that is not sustained
(``--keep-going`` runs them all).

Floor (``--bridge floor-native|floor-python|floor-cport``): the workers are
``bench/floor_worker.py`` instead, which answer every call and loop its audio back, natively in
pjmedia's conference bridge, through the two per-frame Python callbacks of a ``CallPort``, or
through the C port of ``sip.media_port: native`` and its per-tick pump; no model server is
started. What pjsua2 and SIPp cost per call on this machine, below any bridge work.

Setup rate: for each ``--rates`` value r, ``--rate-calls`` short calls (speech pcap, 1 s hold)
at r calls/s spread over enough workers; ``max_rate_cps`` is the largest r with 0 failures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from capacity_rig import (BRIDGES, CALLS_PER_WORKER, ModelServer, Pool, Tcpdump,  # noqa: E402
                          config_overrides, conversation_pcap, progress, spread, worker_command)
from loadstats import (children_named, cpu_percent, interval_stats, machine_busy,  # noqa: E402
                       memory, proc_sample, send_times, step_sustained)
from machine import machine  # noqa: E402

from tests.support.bridge import Bridge  # noqa: E402
from tests.support.capture import capture_available  # noqa: E402
from tests.support.ports import free_port_block  # noqa: E402
from tests.support.sipp import run_sipp, sipp_available  # noqa: E402


def place_calls(workers: list[Bridge], counts: list[int], cps: float, hold_ms: int, pcap_path: Path,
                trace_root: Path, timeout: float) -> tuple[list[threading.Thread], list[dict]]:
    """One SIPp per worker, started in turn so that calls arrive at ``cps`` overall."""
    results: list[dict] = []
    threads = []
    t0 = time.monotonic()
    offset = 0.0
    for i, (worker, n) in enumerate(zip(workers, counts)):
        if n == 0:
            continue
        start_at = t0 + offset
        offset += n / cps
        # -r n per (n / cps) s: this SIPp's calls arrive at cps too
        period_ms = max(1, int(round(1000 * n / cps)))

        def run(worker=worker, n=n, start_at=start_at, period_ms=period_ms, i=i) -> None:
            time.sleep(max(0.0, start_at - time.monotonic()))
            media = free_port_block(4 * n + 8, align=2)
            res = run_sipp("uac_pcmu", worker.target, media_port=media, calls=n, pcap=pcap_path,
                           hold_ms=hold_ms, timeout=timeout, trace_dir=trace_root / f"w{i}",
                           extra_args=["-l", str(CALLS_PER_WORKER), "-r", str(n),
                                       "-rp", str(period_ms)])
            invite_ok = {m.call_id for m in res.received
                         if m.method == "INVITE" and m.code is not None and 200 <= m.code < 300}
            finals = [m for m in res.received if m.method == "INVITE" and m.code and m.code >= 300]
            sends = [m.time for m in res.sent if m.method == "INVITE" and not m.is_response]
            answers = [m.time for m in res.received
                       if m.method == "INVITE" and m.code is not None and 200 <= m.code < 300]
            results.append({"worker": i, "calls": n, "answered": len(invite_ok),
                            "successful": res.successful_calls, "failed": res.failed_calls,
                            "rejected": [m.code for m in finals], "rc": res.returncode,
                            "timed_out": res.timed_out, "first_invite": min(sends, default=None),
                            "last_answer": max(answers, default=None),
                            "stderr": res.stderr[-300:] if not res.ok else ""})
        th = threading.Thread(target=run, daemon=True)
        th.start()
        threads.append(th)
    return threads, results


def native_port_totals(released: list[dict]) -> dict | None:
    """``sip.media_port: native``: the C ports' counters summed over the calls released (None
    with the pjsua2 port). ``underruns``: ticks the pump had not refilled in time (silence sent)."""
    if not released:
        return None
    keys = ("frames_in", "frames_out", "underruns", "stale_dropped", "in_dropped", "paused_frames")
    out = {k: int(sum(r.get(k) or 0 for r in released)) for k in keys}
    out["calls"] = len(released)
    out["calls_with_underruns_over_1"] = sum(1 for r in released if (r.get("underruns") or 0) > 1)
    return out


def count_logs(workers: list[Bridge], event: str, marks: list[int] | None = None) -> list[dict]:
    out = []
    for k, w in enumerate(workers):
        recs = w.logs()
        out += [r for r in recs[(marks[k] if marks else 0):] if r.get("event") == event]
    return out


def sipp_failures(results: list[dict], calls: int) -> int:
    failed = 0
    placed = 0
    for r in results:
        placed += r["calls"]
        if r["failed"] is not None:
            failed += r["failed"]
        elif r["successful"] is not None:
            failed += r["calls"] - r["successful"]
        else:
            failed += r["calls"] - r["answered"]
        if r["successful"] is not None and r["failed"] is not None:
            failed += max(0, r["calls"] - r["successful"] - r["failed"])  # never completed
    return failed + (calls - placed)


def run_step(pool: Pool, calls: int, workers_n: int, args, tmp: Path, pcap_path: Path,
             upstream: ModelServer | None) -> dict:
    workers = pool.ensure(workers_n)
    counts = spread(calls, workers_n)
    marks = [len(w.logs()) for w in workers]
    ramp_s = calls / args.ramp_cps
    hold_ms = int((ramp_s + args.hold_s + 8) * 1000)
    step_dir = tmp / f"step{calls}"
    step_dir.mkdir()
    cap = Tcpdump(step_dir / "out.pcap", [w.rtp_range for w in workers])
    progress(f"step {calls} calls on {workers_n} workers: ramp {ramp_s:.1f} s, window {args.hold_s} s")
    threads, results = place_calls(workers, counts, args.ramp_cps, hold_ms, pcap_path, step_dir,
                                   timeout=hold_ms / 1000 + 60)
    deadline = time.monotonic() + ramp_s + 15
    while time.monotonic() < deadline:
        if len(count_logs(workers, "call_answered", marks)) >= calls:
            break
        time.sleep(0.25)
    time.sleep(1.0)  # the last call's first answer settles
    answered_at_window = len(count_logs(workers, "call_answered", marks))
    wpids = [w.proc.pid for w in workers]
    others = {"sipp": children_named("sipp"), "tcpdump": [cap.proc.pid],
              "upstream": [upstream.proc.pid] if upstream else []}
    before = {p: proc_sample(p) for p in wpids + sum(others.values(), [])}
    busy0, total0 = machine_busy()
    t0w, t0 = time.monotonic(), time.time()
    time.sleep(args.hold_s)
    t1w, t1 = time.monotonic(), time.time()
    busy1, total1 = machine_busy()
    after = {p: proc_sample(p) for p in before}
    wall = t1w - t0w
    worker_cpu = [cpu_percent(before[p], after[p], wall) for p in wpids]
    rss = [after[p].rss_bytes for p in wpids]
    mem = [memory(p) for p in wpids]   # smaps_rollup, with every call of the step still up
    other_cpu = {k: round(sum(cpu_percent(before[p], after[p], wall) for p in v), 1)
                 for k, v in others.items()}
    progress(f"step {calls}: window over; waiting for the calls to end")
    for th in threads:
        th.join(hold_ms / 1000 + 90)
    time.sleep(1.5)
    tcpdump_stats = cap.stop()
    # RTP leaves the even ports (RTCP, every few seconds, the odd one after each)
    streams = {k: v for k, v in send_times(cap.path).items() if k[0] % 2 == 0 and len(v) >= 50}
    closed = count_logs(workers, "session_closed", marks)
    underruns = [int(r.get("underruns") or 0) for r in closed]
    failed = sipp_failures(results, calls)
    answered = sum(r["answered"] for r in results)
    step = {
        "calls": calls, "workers": workers_n, "answered": answered, "failed": failed,
        "answered_when_window_opened": answered_at_window,
        "rejected_codes": sorted(c for r in results for c in r["rejected"]),
        "window_s": round(wall, 1),
        "cpu_pct_per_call": round(sum(worker_cpu) / calls, 2),
        "worker_cpu_pct": {"sum": round(sum(worker_cpu), 1), "max": round(max(worker_cpu), 1)},
        "rss_mb_per_call": round(sum(rss) / calls / 2**20, 1),
        "rss_mb_per_worker": round(float(np.median(rss)) / 2**20, 1),
        # PSS counts a page shared by several workers (libraries, the model file) once in all:
        # the memory a call really costs next to the others
        "pss_mb_per_call": round(sum(m["pss"] for m in mem) / calls / 2**20, 1),
        "pss_mb_per_worker": round(float(np.median([m["pss"] for m in mem])) / 2**20, 1),
        "machine_cpu_pct": round(100.0 * (busy1 - busy0) / max(1.0, total1 - total0), 1),
        "other_cpu_pct": other_cpu,
        "rtp_out_interval": interval_stats(streams, t0, t1),
        "underruns": {"total": int(sum(underruns)), "calls_with_any": sum(1 for u in underruns if u),
                      "max_per_call": max(underruns, default=0), "calls_reported": len(closed)},
        "media_callback_errors": len(count_logs(workers, "media_callback_failed", marks)),
        "native_port": native_port_totals(count_logs(workers, "native_port_released", marks)),
        "upstream_lost": len(count_logs(workers, "upstream_lost", marks)),
        "barge_ins": len(count_logs(workers, "barge_in", marks)),
        "tcpdump": tcpdump_stats,
        "sipp_errors": [r["stderr"] for r in results if r["stderr"]][:3],
    }
    # machine CPU that no process of the run explains (kernel networking, other jobs): a
    # disturbed step shows here first
    step["unaccounted_cpu_pct"] = round(step["machine_cpu_pct"] * (os.cpu_count() or 1)
                                        - sum(worker_cpu) - sum(other_cpu.values()), 1)
    step["sustained"] = step_sustained(step, args.p99_limit_ms)
    if not args.keep:
        shutil.rmtree(step_dir, ignore_errors=True)
    return step


def run_rate(pool: Pool, rate: float, count: int, args, tmp: Path) -> dict:
    hold_ms = 1000
    # concurrent calls ~ rate x (hold + setup and teardown); 1.5x head room
    workers_n = max(1, min(math.ceil(rate * (hold_ms / 1000 + 1.0) * 1.5 / CALLS_PER_WORKER),
                           count))
    workers = pool.ensure(workers_n)
    marks = [len(w.logs()) for w in workers]
    base, extra = divmod(count, workers_n)
    counts = [base + (1 if i < extra else 0) for i in range(workers_n)]
    step_dir = tmp / f"rate{rate:g}"
    step_dir.mkdir()
    progress(f"rate {rate:g} cps: {count} calls of {hold_ms} ms on {workers_n} workers")
    t0 = time.monotonic()
    results: list[dict] = []
    threads = []
    for i, (w, n) in enumerate(zip(workers, counts)):
        if n == 0:
            continue

        def run(w=w, n=n, i=i) -> None:
            # every SIPp at rate / workers_n, started i / rate apart: arrivals interleave evenly
            time.sleep(i / rate)
            media = free_port_block(4 * n + 8, align=2)
            period_ms = max(1, int(round(1000 * workers_n / rate)))
            res = run_sipp("uac_pcmu", w.target, media_port=media, calls=n, hold_ms=hold_ms,
                           timeout=count / rate + 60, trace_dir=step_dir / f"w{i}",
                           extra_args=["-l", str(CALLS_PER_WORKER), "-r", "1", "-rp", str(period_ms)])
            sends = [m.time for m in res.sent if m.method == "INVITE" and not m.is_response]
            answers = [m.time for m in res.received
                       if m.method == "INVITE" and m.code is not None and 200 <= m.code < 300]
            results.append({"calls": n, "answered": len({m.call_id for m in res.received
                                                         if m.method == "INVITE" and m.code == 200}),
                            "successful": res.successful_calls, "failed": res.failed_calls,
                            "rejected": [m.code for m in res.received if m.method == "INVITE"
                                         and m.code and m.code >= 300],
                            "first_invite": min(sends, default=None),
                            "last_answer": max(answers, default=None),
                            "setup_ms": [], "stderr": res.stderr[-300:] if not res.ok else ""})
        th = threading.Thread(target=run, daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join(count / rate + 120)
    firsts = [r["first_invite"] for r in results if r["first_invite"]]
    lasts = [r["last_answer"] for r in results if r["last_answer"]]
    span = (max(lasts) - min(firsts)) if firsts and lasts else None
    failed = sipp_failures(results, count)
    out = {"rate_cps": rate, "calls": count, "workers": workers_n,
           "answered": sum(r["answered"] for r in results), "failed": failed,
           "rejected_codes": sorted(c for r in results for c in r["rejected"]),
           "achieved_cps": round((count - 1) / span, 1) if span else None,
           "elapsed_s": round(time.monotonic() - t0, 1),
           "upstream_lost": len(count_logs(workers, "upstream_lost", marks)),
           "sipp_errors": [r["stderr"] for r in results if r["stderr"]][:3]}
    if not args.keep:
        shutil.rmtree(step_dir, ignore_errors=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", default="32,48,56,64", help="concurrent calls per step")
    p.add_argument("--hold-s", type=float, default=60.0, help="measurement window per step (s)")
    p.add_argument("--workers-per-step", default="auto", help="'auto' (ceil(calls/4)) or a number")
    p.add_argument("--ramp-cps", type=float, default=10.0, help="arrival rate while a step ramps up")
    p.add_argument("--rates", default="10,20,30", help="setup rates to try (calls/s); '' skips")
    p.add_argument("--rate-calls", type=int, default=150, help="short calls per setup rate")
    p.add_argument("--upstream", choices=("separate", "embedded"), default="separate")
    p.add_argument("--bridge", choices=BRIDGES, default="sipbridge",
                   help="workers: sipbridge run, or bench/floor_worker.py (no model server)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="worker config override, e.g. realtime.audio_format=g711_ulaw (repeatable)")
    p.add_argument("--p99-limit-ms", type=float, default=25.0)
    p.add_argument("--keep-going", action="store_true", help="run every step even after a failure")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: one step of 4 calls for 10 s, 4 calls at 2 cps")
    p.add_argument("--json-out", help="also write the JSON here")
    p.add_argument("--keep", action="store_true", help="keep captures and SIPp traces")
    args = p.parse_args()
    if args.quick:
        args.steps, args.hold_s, args.rates, args.rate_calls = "4", 10.0, "2", 4
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    try:
        overrides = config_overrides(args.set)
    except ValueError as exc:
        p.error(str(exc))
    rates = [float(r) for r in args.rates.split(",") if r.strip()]

    result: dict = {"bench": "capacity", "machine": machine("pjsua2-python", "numpy", "onnxruntime", "websockets"),
                    "settings": {"steps": steps, "hold_s": args.hold_s, "ramp_cps": args.ramp_cps,
                                 "workers_per_step": args.workers_per_step, "rates": rates,
                                 "rate_calls": args.rate_calls, "upstream": args.upstream,
                                 "bridge": args.bridge, "config": overrides,
                                 "calls_per_worker": CALLS_PER_WORKER,
                                 "p99_limit_ms": args.p99_limit_ms}}
    errors: list[str] = []
    if not capture_available():
        errors.append("tcpdump cannot capture here (needs root or cap_net_raw)")
    if not sipp_available():
        errors.append("sipp is not installed")
    t_start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    upstream = None
    pool = None
    result["steps"], result["rates"] = [], []
    try:
        if not errors:
            floor = args.bridge != "sipbridge"
            if args.upstream == "separate" and not floor:
                upstream = ModelServer(pace=4.0)
            pool = Pool(tmp, upstream.url if upstream else None, worker_command(args.bridge),
                        overrides)
            longest = max(steps, default=0) / args.ramp_cps + args.hold_s + 10
            pcap_path = conversation_pcap(tmp / "conversation.pcap", longest)
            for calls in steps:
                wn = (math.ceil(calls / CALLS_PER_WORKER) if args.workers_per_step == "auto"
                      else int(args.workers_per_step))
                try:
                    step = run_step(pool, calls, wn, args, tmp, pcap_path, upstream)
                except Exception as exc:  # noqa: BLE001 - report, stop ramping
                    errors.append(f"step {calls}: {type(exc).__name__}: {exc}")
                    break
                progress(f"step {calls}: " + json.dumps({k: step[k] for k in (
                    "answered", "failed", "cpu_pct_per_call", "rtp_out_interval", "sustained")}))
                result["steps"].append(step)
                if not step["sustained"] and not args.keep_going:
                    break
            for rate in rates:
                try:
                    r = run_rate(pool, rate, args.rate_calls, args, tmp)
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"rate {rate:g}: {type(exc).__name__}: {exc}")
                    break
                progress(f"rate {rate:g}: " + json.dumps({k: r[k] for k in (
                    "answered", "failed", "achieved_cps")}))
                result["rates"].append(r)
                if r["failed"] and not args.keep_going:
                    break
    finally:
        if pool is not None:
            pool.stop()
        if upstream is not None:
            upstream.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    ok_steps = [s["calls"] for s in result["steps"] if s["sustained"]]
    result["max_sustained_calls"] = max(ok_steps, default=0)
    ok_rates = [r["rate_cps"] for r in result["rates"] if r["failed"] == 0]
    result["max_rate_cps"] = max(ok_rates, default=0)
    result["max_achieved_cps"] = max((r["achieved_cps"] or 0 for r in result["rates"]
                                      if r["failed"] == 0), default=0)
    result["elapsed_s"] = round(time.monotonic() - t_start, 1)
    result["command"] = " ".join(["python bench/capacity.py", *sys.argv[1:]])
    if args.keep:
        result["artifacts"] = str(tmp)
    if errors:
        result["errors"] = errors
    text = json.dumps(result)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    print(text, flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
