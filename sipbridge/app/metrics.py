"""Prometheus metrics of one worker, folded from the events the bridge already logs.

:meth:`Metrics.observe` takes one log event (a dict from the log tap, :mod:`sipbridge.app.tap`,
with ``ts`` in epoch seconds) and updates the registry: pure, no clock of its own, no I/O, so
tests feed scripted events. What a log line cannot say (calls up now, slots, media-tick
overruns, events the tap dropped) is read at scrape time from ``read_state()``, a function
the worker passes in. :meth:`Metrics.render` is the Prometheus text format, by
``prometheus_client`` (its own :class:`CollectorRegistry`, never the global one).

Events used (name: fields):
``call_incoming`` / ``call_answered`` / ``call_rejected`` / ``upstream_unavailable`` /
``call_hangup`` (reason) / ``call_ended`` (status, ``rtp_*``): calls by outcome and final SIP
status, setup time (incoming -> answered); refusals by status are the worker's own counters
(read at scrape time: the early gate logs only a sample of a flood's refusals); ``barge_in`` (source, onset_to_pause_ms,
onset_to_cancel_ms); ``speech_stopped`` (eou_ms, local detector only); ``upstream_connected``
(connect_ms), ``upstream_lost``, ``upstream_restored``, ``upstream_gave_up``;
``session_closed`` (underruns); ``tool_called`` (latency_ms, outcome, ok); any
``webhook_*`` event with ``latency_ms`` (latency) and ``ok: false`` or a ``*_failed`` name
(failure, by ``outcome``/``why``); ``trunk_registered`` / ``trunk_refreshed`` /
``trunk_registration_failed`` / ``trunk_unregistered`` (trunk).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics, generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NS = "sipbridge"
MAX_PENDING = 4096          # calls whose outcome is not known yet (bounded: a lost event ages out)

FAST = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)          # barge-in, media
TURN = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.5, 2.0, 3.0)            # end of utterance
NET = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)     # HTTP, WebSocket
SETUP = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)


def _s(ms: Any) -> float | None:
    """Milliseconds (any number) -> seconds; None for anything else."""
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms != ms or ms < 0:
        return None
    return ms / 1000.0


def _num(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class _State:
    """Scrape-time gauges and counters: ``read()`` returns the worker's numbers now."""

    def __init__(self, read: Callable[[], dict]):
        self.read = read

    def collect(self):
        now = self.read() or {}
        yield GaugeMetricFamily(f"{NS}_calls_active", "Calls in progress (with a model session)",
                                value=now.get("active", 0))
        yield GaugeMetricFamily(f"{NS}_call_slots", "Calls this worker can hold at once",
                                value=now.get("capacity", 0))
        yield GaugeMetricFamily(f"{NS}_draining", "1 while the worker drains for shutdown",
                                value=1 if now.get("draining") else 0)
        yield CounterMetricFamily(f"{NS}_media_tick_overruns", "Media ticks whose turn scoring "
                                  "ran late (scored only when the next tick began)",
                                  value=now.get("tick_overruns", 0))
        refused = CounterMetricFamily(f"{NS}_calls_rejected", "INVITEs refused (the early gate's "
                                      "included), by SIP status", labels=["status"])
        for status, count in sorted((now.get("refused") or {}).items()):
            refused.add_metric([str(status)], count)
        yield refused
        yield CounterMetricFamily(f"{NS}_worker_restarts", "Worker processes restarted by the "
                                  "cell supervisor (0 for a single process)",
                                  value=now.get("restarts", 0))
        yield CounterMetricFamily(f"{NS}_log_events_dropped", "Log events the tap dropped "
                                  "(queue full): metrics, records and events miss them",
                                  value=now.get("tap_dropped", 0))


class Metrics:
    """The registry and the fold of log events into it."""

    def __init__(self, read_state: Callable[[], dict] | None = None):
        disable_created_metrics()   # no *_created series: half the text, nothing lost here
        r = self.registry = CollectorRegistry()
        self.incoming = Counter(f"{NS}_calls_incoming", "INVITEs that passed the inbound policy",
                                registry=r)
        self.answered = Counter(f"{NS}_calls_answered", "Calls answered (ACK received)",
                                registry=r)
        self.ended = Counter(f"{NS}_calls_ended", "Calls over, by outcome and final SIP status",
                             ["outcome", "status"], registry=r)
        self.setup = Histogram(f"{NS}_call_setup_seconds", "INVITE accepted -> call answered",
                               buckets=SETUP, registry=r)
        self.barge = Counter(f"{NS}_barge_ins", "Agent speech cancelled, by source",
                             ["source"], registry=r)
        self.onset_to_pause = Histogram(f"{NS}_barge_in_onset_to_pause_seconds",
                                        "Caller speech onset -> agent paused", buckets=FAST,
                                        registry=r)
        self.onset_to_cancel = Histogram(f"{NS}_barge_in_onset_to_cancel_seconds",
                                         "Caller speech onset -> cancel queued", buckets=FAST,
                                         registry=r)
        self.eou = Histogram(f"{NS}_end_of_utterance_seconds", "Caller's last speech -> turn "
                             "ended by the on-box detector", buckets=TURN, registry=r)
        self.connect = Histogram(f"{NS}_upstream_connect_seconds", "Model session set-up "
                                 "(WebSocket + session.update)", buckets=NET, registry=r)
        self.outages = Counter(f"{NS}_upstream_outages", "Model sockets lost mid-call", registry=r)
        self.reconnects = Counter(f"{NS}_upstream_reconnects", "Model sessions restored",
                                  registry=r)
        self.upstream_failed = Counter(f"{NS}_upstream_failures", "Model sessions that could not "
                                       "be opened or restored", ["stage"], registry=r)
        self.webhook = Histogram(f"{NS}_webhook_seconds", "Incoming-call webhook round trip",
                                 buckets=NET, registry=r)
        self.webhook_failed = Counter(f"{NS}_webhook_failures", "Webhook calls that failed",
                                      ["reason"], registry=r)
        self.tool = Histogram(f"{NS}_tool_seconds", "App tool round trip", buckets=NET,
                              registry=r)
        self.tool_failed = Counter(f"{NS}_tool_failures", "App tool calls that failed",
                                   ["reason"], registry=r)
        self.rtp_rx = Counter(f"{NS}_rtp_received_packets", "RTP packets received (ended calls)",
                              registry=r)
        self.rtp_lost = Counter(f"{NS}_rtp_lost_packets", "RTP packets lost (ended calls)",
                                registry=r)
        self.jitter = Histogram(f"{NS}_rtp_jitter_seconds", "Mean interarrival jitter per call",
                                buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16),
                                registry=r)
        self.underruns = Counter(f"{NS}_playout_underruns", "Agent audio ran dry mid-answer",
                                 registry=r)
        self.trunk = Gauge(f"{NS}_trunk_registered", "1 while the trunk's registration holds",
                           ["trunk"], registry=r)
        if read_state is not None:
            r.register(_State(read_state))
        self._calls: OrderedDict[str, dict] = OrderedDict()   # call_id -> what we know so far
        self.ignored = 0                                      # events with unusable fields

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # -- the fold -----------------------------------------------------------------------------
    def observe(self, event: dict) -> None:
        """Update the metrics from one log event; unknown events are ignored, bad fields skipped."""
        name = event.get("event")
        handler = _HANDLERS.get(name) if isinstance(name, str) else None
        if handler is not None:
            handler(self, event)
        elif isinstance(name, str) and name.startswith("webhook"):
            self._webhook(event)

    def _call(self, event: dict) -> dict | None:
        cid = event.get("call_id")
        if not isinstance(cid, str):
            return None
        entry = self._calls.get(cid)
        if entry is None:
            entry = self._calls[cid] = {}
            while len(self._calls) > MAX_PENDING:
                self._calls.popitem(last=False)
        return entry

    def _incoming(self, e: dict) -> None:
        self.incoming.inc()
        c = self._call(e)
        if c is not None and isinstance(e.get("ts"), (int, float)):
            c["incoming"] = e["ts"]

    def _answered(self, e: dict) -> None:
        self.answered.inc()
        c = self._call(e)
        if c is None:
            return
        c["answered"] = True
        t0, t1 = c.get("incoming"), e.get("ts")
        if isinstance(t0, (int, float)) and isinstance(t1, (int, float)) and t1 >= t0:
            self.setup.observe(t1 - t0)

    def _rejected(self, e: dict) -> None:
        c = self._call(e)
        if c is not None:
            c["outcome"] = "rejected"

    def _unavailable(self, e: dict) -> None:
        self.upstream_failed.labels(stage="connect").inc()
        self._rejected(e)

    def _hangup(self, e: dict) -> None:
        c = self._call(e)
        if c is not None and "outcome" not in c and isinstance(e.get("reason"), str):
            c["outcome"] = e["reason"]

    def _ended(self, e: dict) -> None:
        cid = e.get("call_id")
        c = self._calls.pop(cid, {}) if isinstance(cid, str) else {}
        outcome = c.get("outcome") or ("remote_hangup" if c.get("answered") else "not_answered")
        self.ended.labels(outcome=outcome, status=str(e.get("status"))).inc()
        self.rtp_rx.inc(_num(e.get("rtp_rx_packets")))
        self.rtp_lost.inc(_num(e.get("rtp_rx_lost")))
        jitter = _s(e.get("rtp_rx_jitter_ms"))
        if jitter is not None:
            self.jitter.observe(jitter)

    def _barge_in(self, e: dict) -> None:
        self.barge.labels(source=str(e.get("source"))).inc()
        for key, hist in (("onset_to_pause_ms", self.onset_to_pause),
                          ("onset_to_cancel_ms", self.onset_to_cancel)):
            value = _s(e.get(key))
            if value is not None:
                hist.observe(value)

    def _speech_stopped(self, e: dict) -> None:
        value = _s(e.get("eou_ms"))
        if value is not None and e.get("source") != "server":
            self.eou.observe(value)

    def _connected(self, e: dict) -> None:
        value = _s(e.get("connect_ms"))
        if value is not None:
            self.connect.observe(value)

    def _tool(self, e: dict) -> None:
        value = _s(e.get("latency_ms"))
        if value is not None:
            self.tool.observe(value)
        if e.get("ok") is False:
            self.tool_failed.labels(reason=str(e.get("outcome"))).inc()

    def _webhook(self, e: dict) -> None:
        value = _s(e.get("latency_ms"))
        if value is not None:
            self.webhook.observe(value)
        if e.get("ok") is False or str(e.get("event")).endswith("_failed"):
            self.webhook_failed.labels(reason=str(e.get("reason") or e.get("outcome") or "error")).inc()

    def _trunk(self, e: dict) -> None:
        trunk = e.get("trunk")
        if isinstance(trunk, str):
            up = e.get("event") in ("trunk_registered", "trunk_refreshed")
            self.trunk.labels(trunk=trunk).set(1 if up else 0)


_HANDLERS: dict[str, Callable[[Metrics, dict], None]] = {
    "call_incoming": Metrics._incoming,
    "call_answered": Metrics._answered,
    "call_rejected": Metrics._rejected,
    "upstream_unavailable": Metrics._unavailable,
    "call_hangup": Metrics._hangup,
    "call_ended": Metrics._ended,
    "barge_in": Metrics._barge_in,
    "speech_stopped": Metrics._speech_stopped,
    "upstream_connected": Metrics._connected,
    "upstream_lost": lambda m, e: m.outages.inc(),
    "upstream_restored": lambda m, e: m.reconnects.inc(),
    "upstream_gave_up": lambda m, e: m.upstream_failed.labels(stage="reconnect").inc(),
    "session_closed": lambda m, e: m.underruns.inc(_num(e.get("underruns"))),
    "tool_called": Metrics._tool,
    "trunk_registered": Metrics._trunk,
    "trunk_refreshed": Metrics._trunk,
    "trunk_registration_failed": Metrics._trunk,
    "trunk_unregistered": Metrics._trunk,
}
