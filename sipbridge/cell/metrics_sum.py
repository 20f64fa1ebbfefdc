"""The cell's ``/metrics``: each worker's metrics, added up (pure: data in, text out).

The supervisor scrapes every worker over the control channel when it is itself scraped and adds
samples with the same name and labels. A worker answers its registry's families as JSON
(:func:`families_of`, served at ``GET /v1/cell/metrics`` on the channel only, see
:func:`routes`), read back by :func:`from_json`: about a sixth of the cost of parsing the Prometheus
text (:func:`parse`, kept for any text scrape) for each worker at each scrape. Sums:
counters and histogram buckets/sums/counts add up to the cell's, gauges (calls up, slots,
draining) to the cell's current total. A worker that died leaves the counters of its last
scrape behind (:meth:`CellMetrics.update` moves them into a "retired" sum when the worker's pid
changes or it is gone), so the cell's counters do not step back at a restart; what it counted
after that last scrape is lost with it. The supervisor's own numbers (worker restarts, workers
up) are added by the caller as families of its own and replace the workers' placeholders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

KEPT_AFTER_EXIT = ("counter", "histogram", "summary")   # monotonic: a dead worker's last values
SUPERVISOR_OWNS = frozenset({"sipbridge_worker_restarts"})

Key = tuple[str, tuple[tuple[str, str], ...]]


class Family:
    """One metric family's samples, keyed by (sample name, sorted labels)."""

    __slots__ = ("name", "type", "doc", "samples")

    def __init__(self, name: str, typ: str, doc: str):
        self.name, self.type, self.doc = name, typ, doc
        self.samples: dict[Key, float] = {}

    def add(self, key: Key, value: float) -> None:
        self.samples[key] = self.samples.get(key, 0.0) + value


def parse(text: str) -> dict[str, Family]:
    """A worker's scrape as families; ``*_created`` samples are left out (not additive).
    Raises ValueError on text that is not the Prometheus format."""
    out: dict[str, Family] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name in SUPERVISOR_OWNS:
            continue
        f = out.setdefault(fam.name, Family(fam.name, fam.type, fam.documentation))
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            f.add((s.name, tuple(sorted(s.labels.items()))), float(s.value))
    return out


def families_of(registry) -> list[dict]:
    """A registry's families now, as JSON-ready data (the worker's side of the channel)."""
    return [{"name": fam.name, "type": fam.type, "doc": fam.documentation,
             "samples": [[s.name, s.labels, s.value] for s in fam.samples
                         if not s.name.endswith("_created")]}
            for fam in registry.collect() if fam.name not in SUPERVISOR_OWNS]


def from_json(data) -> dict[str, Family]:
    """:func:`families_of`'s output read back; ValueError for anything else."""
    out: dict[str, Family] = {}
    try:
        for fam in data:
            name, typ, doc = fam["name"], fam["type"], fam["doc"]
            if not all(isinstance(x, str) for x in (name, typ, doc)):
                raise ValueError("family name, type and doc are strings")
            f = out.setdefault(name, Family(name, typ, doc))
            for sname, labels, value in fam["samples"]:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                        not isinstance(sname, str) or not isinstance(labels, dict):
                    raise ValueError(f"bad sample in {name}")
                f.add((sname, tuple(sorted((str(k), str(v)) for k, v in labels.items()))),
                      float(value))
    except (TypeError, KeyError) as exc:
        raise ValueError(f"not a worker's metrics: {exc!r}") from None
    return out


def routes(ctx) -> list:
    """The worker's ``GET /v1/cell/metrics`` (on its control channel only)."""
    from aiohttp import web

    async def metrics(_request):
        if ctx.metrics is None:
            raise web.HTTPNotFound(reason="metrics are off")
        return web.json_response(families_of(ctx.metrics.registry))
    return [web.get("/v1/cell/metrics", metrics)]


def add_into(total: dict[str, Family], part: Mapping[str, Family],
             types: Iterable[str] | None = None) -> None:
    """Add ``part``'s samples into ``total`` (only families of ``types`` when given)."""
    for name, fam in part.items():
        if types is not None and fam.type not in types:
            continue
        t = total.setdefault(name, Family(name, fam.type, fam.doc))
        for key, value in fam.samples.items():
            t.add(key, value)


class CellMetrics:
    """The workers' last scrapes and the retired counters of their earlier processes."""

    def __init__(self):
        self._last: dict[int, tuple[int, dict[str, Family]]] = {}   # index -> (pid, families)
        self._retired: dict[str, Family] = {}

    def update(self, index: int, pid: int | None, families: dict[str, Family] | None) -> None:
        """Worker ``index`` (process ``pid``, None when none runs) answered ``families``
        (None: it did not answer). A new pid or no process retires the earlier one's counters."""
        prev = self._last.get(index)
        if prev is not None and prev[0] != pid:
            add_into(self._retired, prev[1], KEPT_AFTER_EXIT)
            del self._last[index]
        if families is not None and pid is not None:
            self._last[index] = (pid, families)

    def total(self, fresh: Iterable[int]) -> dict[str, Family]:
        """The cell's sum: retired counters, every worker's last counters, and the gauges of
        the workers in ``fresh`` (those that answered this scrape)."""
        fresh = set(fresh)
        out: dict[str, Family] = {}
        add_into(out, self._retired)
        for index in sorted(self._last):
            add_into(out, self._last[index][1], None if index in fresh else KEPT_AFTER_EXIT)
        return out


def render(families: Mapping[str, Family], extra: Iterable[Metric] = ()) -> bytes:
    """Prometheus text of ``families`` plus ``extra`` families, by ``prometheus_client``."""
    metrics = []
    for fam in families.values():
        m = Metric(fam.name, fam.doc, fam.type)
        for (name, labels), value in fam.samples.items():
            m.add_sample(name, dict(labels), value)
        metrics.append(m)
    metrics += list(extra)

    class _Collector:
        def collect(self):
            return metrics

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return generate_latest(registry)
