"""The cell's /metrics: workers' scrapes added up, a dead worker's counters kept, one text out."""

from prometheus_client.core import CounterMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from sipbridge.app.metrics import Metrics
import json

from sipbridge.cell.metrics_sum import CellMetrics, families_of, from_json, parse, render


def scrape(incoming: int, active: int, ended: dict | None = None, setup=()) -> dict:
    """One worker's real metrics (app/metrics.py) as it answers the supervisor (JSON), read back."""
    m = Metrics(lambda: {"active": active, "capacity": 4, "restarts": 0})
    for i in range(incoming):
        m.observe({"event": "call_incoming", "call_id": f"c{i}", "ts": 100.0})
    for i, s in enumerate(setup):
        m.observe({"event": "call_answered", "call_id": f"c{i}", "ts": 100.0 + s})
    for status, n in (ended or {}).items():
        for _ in range(n):
            m.observe({"event": "call_ended", "call_id": "x", "status": status})
    return from_json(json.loads(json.dumps(families_of(m.registry))))


def samples(text: bytes) -> dict:
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_gauges_and_histograms_add_up_across_workers():
    """Two workers' counters, gauges and histogram buckets sum; labels stay apart."""
    cm = CellMetrics()
    cm.update(0, 100, scrape(3, 2, {200: 2}, setup=(0.2,)))
    cm.update(1, 101, scrape(2, 1, {200: 1, 486: 1}, setup=(0.2, 4.0)))
    got = samples(render(cm.total(fresh=[0, 1])))
    assert got[("sipbridge_calls_incoming_total", ())] == 5
    assert got[("sipbridge_calls_active", ())] == 3
    assert got[("sipbridge_call_slots", ())] == 8
    assert got[("sipbridge_calls_ended_total",
                (("outcome", "not_answered"), ("status", "200")))] == 3
    assert got[("sipbridge_calls_ended_total",
                (("outcome", "not_answered"), ("status", "486")))] == 1
    assert got[("sipbridge_call_setup_seconds_count", ())] == 3
    assert got[("sipbridge_call_setup_seconds_bucket", (("le", "0.25"),))] == 2
    assert got[("sipbridge_call_setup_seconds_bucket", (("le", "+Inf"),))] == 3


def test_a_restarted_workers_old_counters_stay_and_its_gauges_go():
    """A new pid retires the old process's counters into the sum; its gauges are not kept."""
    cm = CellMetrics()
    cm.update(0, 100, scrape(4, 4))
    cm.update(0, 200, scrape(1, 1))            # killed and restarted
    got = samples(render(cm.total(fresh=[0])))
    assert got[("sipbridge_calls_incoming_total", ())] == 5
    assert got[("sipbridge_calls_active", ())] == 1


def test_a_worker_that_is_gone_or_silent_keeps_counters_only():
    """No process (pid None): counters retired; running but silent: last counters, no gauges."""
    cm = CellMetrics()
    cm.update(0, 100, scrape(2, 2))
    cm.update(1, 101, scrape(3, 3))
    cm.update(0, None, None)                   # down
    cm.update(1, 101, None)                    # did not answer this time
    got = samples(render(cm.total(fresh=[])))
    assert got[("sipbridge_calls_incoming_total", ())] == 5
    assert ("sipbridge_calls_active", ()) not in got


def test_the_supervisors_families_replace_the_workers_placeholders():
    """worker_restarts comes from the supervisor, once, not as the workers' zeros summed."""
    cm = CellMetrics()
    cm.update(0, 1, scrape(0, 0))
    cm.update(1, 2, scrape(0, 0))
    own = CounterMetricFamily("sipbridge_worker_restarts", "restarts", value=2)
    text = render(cm.total([0, 1]), [own]).decode()
    assert text.count("# TYPE sipbridge_worker_restarts") == 1
    assert samples(text.encode())[("sipbridge_worker_restarts_total", ())] == 2


def test_a_garbled_answer_is_refused():
    """Garbled JSON or text raises ValueError (the cell API then counts the worker as silent)."""
    for bad in ({"name": 1}, [{"name": "x", "type": "counter", "doc": "", "samples": [["x", {}, "1"]]}],
                [{"name": "x", "type": "counter"}], [[1, 2]], [{"name": "x", "type": "gauge",
                                                               "doc": "", "samples": [["x", []]]}]):
        try:
            from_json(bad)
        except ValueError:
            continue
        raise AssertionError(f"read garbage {bad}")
    try:
        parse("sipbridge_calls_active{oops 1\n")
    except ValueError:
        return
    raise AssertionError("parsed garbage")


def test_the_text_scrape_and_the_json_answer_sum_the_same():
    """parse() of a worker's /metrics text and from_json() of its JSON answer give equal sums."""
    from sipbridge.app.metrics import Metrics
    m = Metrics(lambda: {"active": 2, "capacity": 4, "refused": {"486": 1}})
    m.observe({"event": "call_incoming", "call_id": "a", "ts": 1.0})
    m.observe({"event": "barge_in", "source": "api", "onset_to_pause_ms": 30})
    by_text, by_json = CellMetrics(), CellMetrics()
    by_text.update(0, 1, parse(m.render().decode()))
    by_json.update(0, 1, from_json(json.loads(json.dumps(families_of(m.registry)))))
    assert samples(render(by_text.total([0]))) == samples(render(by_json.total([0])))
