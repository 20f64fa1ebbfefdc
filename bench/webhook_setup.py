#!/usr/bin/env python3
"""Call setup time with and without the incoming-call webhook: what does asking the app cost?

Run: ``python bench/webhook_setup.py [--calls N] [--delays 0,50]``. Prints one JSON object on
stdout (progress on stderr).

Two ``sipbridge run`` subprocesses on loopback share one embedded model server: ``plain`` (no
webhook) and ``webhook`` (``app.webhook_url`` pointing at a real aiohttp app in this process,
tests/support/webhook_app.py, which verifies each signature and answers ``accept`` after the
delay chosen by the called number, ``d<ms>``). SIPp places ``--calls`` calls per variant,
interleaved (plain, d0, d50, plain, ...) so that load drift on the machine hits each alike.

``setup_ms`` is INVITE sent -> 200 OK received, both from SIPp's own message trace (the time
the caller waits); ``ring_ms`` is INVITE -> 180. ``added_ms`` = median setup with the webhook -
median setup without - the app's own delay: what the bridge adds around the app's answer
(signing, the HTTP round trip on loopback, thread hops). The target is ``added_ms <= 5``.
``webhook_latency_ms`` is the bridge's own measure (its ``webhook_answered`` log line).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sipbridge.app.signing import new_secret  # noqa: E402
from tests.support.bridge import Bridge, Upstream  # noqa: E402
from tests.support.sipp import run_sipp  # noqa: E402
from tests.support.webhook_app import WebhookApp  # noqa: E402

SECRET_ENV = "BENCH_WEBHOOK_SECRET"


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def answer(payload: dict):
    called = payload.get("called", "")
    delay_ms = int(called[1:]) if called.startswith("d") and called[1:].isdigit() else 0
    return delay_ms / 1000, 200, {"action": "accept"}


def one_call(bridge: Bridge, number: str) -> tuple[float, float, str]:
    res = run_sipp("uac_pcmu", bridge.target, service=number, hold_ms=100, timeout=20)
    if res.returncode != 0 or res.final_code != 200:
        raise RuntimeError(res.describe() + "\nbridge log tail:\n" + bridge.output()[-3000:])
    invite = next(m for m in res.shortmsgs if m.direction == "S" and m.method == "INVITE")
    ring = next(m for m in res.shortmsgs if m.direction == "R" and m.code == 180)
    ok = next(m for m in res.shortmsgs if m.direction == "R" and m.code == 200 and "INVITE" in m.cseq)
    return (ok.time - invite.time) * 1000, (ring.time - invite.time) * 1000, invite.call_id


def summary(values: list[float]) -> dict:
    values = sorted(values)
    return {"median": round(statistics.median(values), 2),
            "p95": round(values[min(len(values) - 1, int(0.95 * len(values)))], 2),
            "min": round(values[0], 2), "max": round(values[-1], 2), "n": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20, help="calls per variant")
    ap.add_argument("--delays", default="0,50", help="the app's answer delays (ms), comma-separated")
    args = ap.parse_args()
    delays = [int(d) for d in args.delays.split(",")]
    secret = new_secret()
    os.environ[SECRET_ENV] = secret
    quiet = {"api": {"listen": None}, "records": {"path": None}, "log": {"level": "info"}}
    with tempfile.TemporaryDirectory() as tmp, Upstream(Path(tmp)) as up, \
            WebhookApp(secret, answer) as app, \
            Bridge(Path(tmp), up.url, extra=quiet) as plain, \
            Bridge(Path(tmp), up.url, extra={**quiet, "app": {
                "webhook_url": app.url, "webhook_secret_env": SECRET_ENV,
                "webhook_timeout_ms": 2000}}) as hooked:
        variants = ["plain"] + [f"d{d}" for d in delays]
        setup: dict[str, list[float]] = {v: [] for v in variants}
        ring: dict[str, list[float]] = {v: [] for v in variants}
        latency: dict[str, list[float]] = {v: [] for v in variants[1:]}
        for v in variants:  # one warm-up call each (imports, first connections), not counted
            one_call(plain if v == "plain" else hooked, v)
        for i in range(args.calls):
            for v in variants:
                bridge = plain if v == "plain" else hooked
                s, r, call_id = one_call(bridge, v)
                setup[v].append(s)
                ring[v].append(r)
                if v != "plain":
                    latency[v].append(bridge.wait_log("webhook_answered", call_id=call_id)["latency_ms"])
            log(f"round {i + 1}/{args.calls}: " + ", ".join(f"{v} {setup[v][-1]:.1f} ms" for v in variants))
        unverified = sum(1 for r in app.requests if not r.verified)
    base = statistics.median(setup["plain"])
    out = {
        "calls_per_variant": args.calls,
        "setup_ms": {v: summary(setup[v]) for v in variants},
        "ring_ms": {v: summary(ring[v]) for v in variants},
        "webhook_latency_ms": {v: summary(latency[v]) for v in latency},
        "added_ms": {f"d{d}": round(statistics.median(setup[f"d{d}"]) - base - d, 2) for d in delays},
        "target_added_ms": 5,
        "unverified_requests": unverified,
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
