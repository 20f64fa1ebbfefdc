"""``/healthz`` (the process answers), ``/readyz`` (it should be sent calls) and ``/metrics``.

:func:`readiness` is the pure rule: ready only when SIP is bound, the worker is not draining,
a call slot is free, and the model is reachable (or embedded); otherwise it lists why not, and
``/readyz`` answers 503 with those reasons, so Kamailio, Docker and Kubernetes probes (and a
person with curl) see the same thing. "Reachable" for a remote model is a TCP connection to
its host and port, made at most every :data:`PROBE_INTERVAL_S` (cached between probes): a probe
must not open a billable model session.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from aiohttp import web

from ..config import EMBEDDED
from .metrics import CONTENT_TYPE
from .server import ApiContext

PROBE_INTERVAL_S = 5.0
PROBE_TIMEOUT_S = 1.0


def readiness(*, sip_bound: bool, draining: bool, active: int, capacity: int,
              model_ok: bool, model_why: str = "") -> list[str]:
    """Why the worker should not be sent a call now; empty when it is ready."""
    reasons = []
    if not sip_bound:
        reasons.append("sip: not listening yet")
    if draining:
        reasons.append("draining: shutting down, calls in progress finish")
    if active >= capacity:
        reasons.append(f"capacity: all {capacity} call slots are taken")
    if not model_ok:
        reasons.append(f"model: {model_why or 'unreachable'}")
    return reasons


def model_address(url: str) -> tuple[str, int] | None:
    """(host, port) of a ``ws://`` / ``wss://`` model URL; None for the embedded model."""
    if url in ("", EMBEDDED):
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or (443 if parts.scheme == "wss" else 80)


class ModelProbe:
    """Is the model's host reachable? A cached TCP connect, on the loop."""

    def __init__(self, url: str, interval_s: float = PROBE_INTERVAL_S):
        self.address = model_address(url)
        self.interval_s = interval_s
        self._checked: float | None = None
        self._result: tuple[bool, str] = (True, "embedded")
        self._lock = asyncio.Lock()

    async def check(self, now: float) -> tuple[bool, str]:
        if self.address is None:
            return True, "embedded"
        async with self._lock:
            if self._checked is None or now - self._checked >= self.interval_s:
                self._result = await self._connect()
                self._checked = now
        return self._result

    async def _connect(self) -> tuple[bool, str]:
        host, port = self.address
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                     PROBE_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as exc:
            return False, f"cannot connect to {host}:{port}: {exc.__class__.__name__} {exc}".strip()
        writer.close()
        return True, f"{host}:{port} reachable"


def worker_state(worker) -> dict:
    """The numbers readiness and the scrape-time metrics need (plain reads, any thread)."""
    from .control import live_calls
    batch = getattr(worker, "vad_batch", None)
    counters = getattr(worker, "counters", {})
    return {
        "sip_bound": getattr(worker, "ready", False),
        "draining": bool(getattr(worker, "_stopping", False)),
        "active": len(live_calls(worker)),
        "capacity": worker.stack.capacity,
        "tick_overruns": getattr(batch, "late_rounds", 0),
        "restarts": 0,
        "refused": {k.split("_", 1)[1]: v for k, v in counters.items()
                    if k.startswith("rejected_") and v},
    }


def routes(ctx: ApiContext) -> list[web.RouteDef]:
    worker = ctx.worker
    probe = ModelProbe("" if getattr(worker, "embedded", None) is not None
                       else getattr(worker, "upstream_url", ""))

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_request: web.Request) -> web.Response:
        state = worker_state(ctx.worker)
        model_ok, model_why = await probe.check(ctx.now())
        reasons = readiness(sip_bound=state["sip_bound"], draining=state["draining"],
                            active=state["active"], capacity=state["capacity"],
                            model_ok=model_ok, model_why=model_why)
        body = {"ready": not reasons, "reasons": reasons, "calls": state["active"],
                "slots": state["capacity"], "model": model_why}
        return web.json_response(body, status=503 if reasons else 200)

    async def metrics(_request: web.Request) -> web.Response:
        if ctx.metrics is None:
            raise web.HTTPNotFound(reason="metrics are off")
        return web.Response(body=ctx.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]
