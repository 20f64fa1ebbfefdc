"""Metrics folded from scripted log events, read back through prometheus_client's own parser."""

from prometheus_client.parser import text_string_to_metric_families

from sipbridge.app.metrics import Metrics


def samples(m: Metrics) -> dict:
    """{(sample name, sorted labels): value} of the rendered text."""
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: Metrics, name: str, **labels) -> float:
    return samples(m).get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))), 0.0)


def call(m: Metrics, cid: str, t0: float, *, answered_after: float | None = 0.25, status=200,
         hangup: str | None = None) -> None:
    m.observe({"event": "call_incoming", "call_id": cid, "ts": t0})
    if answered_after is not None:
        m.observe({"event": "call_answered", "call_id": cid, "ts": t0 + answered_after})
    if hangup:
        m.observe({"event": "call_hangup", "call_id": cid, "reason": hangup, "ts": t0 + 5})
    m.observe({"event": "call_ended", "call_id": cid, "status": status, "ts": t0 + 6,
               "rtp_rx_packets": 250, "rtp_rx_lost": 2, "rtp_rx_jitter_ms": 3.5})


def test_calls_are_counted_by_outcome_and_status_with_their_setup_time():
    """Three answered calls (two caller hang-ups, one agent hang-up) and a rejected one end under their outcomes."""
    m = Metrics()
    call(m, "a", 100.0)
    call(m, "b", 200.0, answered_after=0.5)
    call(m, "c", 300.0, hangup="agent_ended_call")
    m.observe({"event": "call_rejected", "call_id": "d", "status": 486, "why": "at call capacity"})
    m.observe({"event": "call_ended", "call_id": "d", "status": 486})
    assert value(m, "sipbridge_calls_incoming_total") == 3
    assert value(m, "sipbridge_calls_answered_total") == 3
    assert value(m, "sipbridge_calls_ended_total", outcome="remote_hangup", status=200) == 2
    assert value(m, "sipbridge_calls_ended_total", outcome="agent_ended_call", status=200) == 1
    assert value(m, "sipbridge_calls_ended_total", outcome="rejected", status=486) == 1
    assert value(m, "sipbridge_call_setup_seconds_count") == 3
    assert abs(value(m, "sipbridge_call_setup_seconds_sum") - 1.0) < 1e-9
    assert value(m, "sipbridge_call_setup_seconds_bucket", le=0.25) == 2
    assert value(m, "sipbridge_rtp_received_packets_total") == 750
    assert value(m, "sipbridge_rtp_lost_packets_total") == 6
    assert value(m, "sipbridge_rtp_jitter_seconds_count") == 3


def test_barge_ins_by_source_with_onset_to_pause_and_end_of_utterance():
    """barge_in events count by source and fill the timing histograms; server speech_stopped is not local EOU."""
    m = Metrics()
    m.observe({"event": "barge_in", "source": "local_vad", "onset_to_pause_ms": 40, "onset_to_cancel_ms": 320})
    m.observe({"event": "barge_in", "source": "api"})
    m.observe({"event": "barge_in", "source": "dtmf", "onset_to_cancel_ms": 20})
    m.observe({"event": "speech_stopped", "eou_ms": 532})
    m.observe({"event": "speech_stopped", "source": "server", "audio_end_ms": 900})
    assert value(m, "sipbridge_barge_ins_total", source="local_vad") == 1
    assert value(m, "sipbridge_barge_ins_total", source="api") == 1
    assert value(m, "sipbridge_barge_in_onset_to_pause_seconds_count") == 1
    assert value(m, "sipbridge_barge_in_onset_to_pause_seconds_bucket", le=0.05) == 1
    assert value(m, "sipbridge_barge_in_onset_to_cancel_seconds_count") == 2
    assert value(m, "sipbridge_end_of_utterance_seconds_count") == 1
    assert abs(value(m, "sipbridge_end_of_utterance_seconds_sum") - 0.532) < 1e-9


def test_upstream_webhook_tool_playout_and_trunk_events():
    """Connect times, outages, reconnects, webhook and tool latencies/failures, underruns and trunk state."""
    m = Metrics()
    m.observe({"event": "upstream_connected", "connect_ms": 42.5})
    m.observe({"event": "upstream_lost"})
    m.observe({"event": "upstream_restored"})
    m.observe({"event": "upstream_unavailable", "call_id": "x", "reason": "refused"})
    m.observe({"event": "webhook_answered", "latency_ms": 12.0})
    m.observe({"event": "webhook_failed", "reason": "timeout", "latency_ms": 1500.0})
    m.observe({"event": "tool_called", "latency_ms": 80, "ok": True, "outcome": "ok"})
    m.observe({"event": "tool_called", "latency_ms": 5000, "ok": False, "outcome": "timeout"})
    m.observe({"event": "session_closed", "underruns": 3})
    m.observe({"event": "trunk_registered", "trunk": "carrier"})
    m.observe({"event": "trunk_registered", "trunk": "backup"})
    m.observe({"event": "trunk_registration_failed", "trunk": "backup"})
    assert value(m, "sipbridge_upstream_connect_seconds_count") == 1
    assert value(m, "sipbridge_upstream_outages_total") == 1
    assert value(m, "sipbridge_upstream_reconnects_total") == 1
    assert value(m, "sipbridge_upstream_failures_total", stage="connect") == 1
    assert value(m, "sipbridge_webhook_seconds_count") == 2
    assert value(m, "sipbridge_webhook_failures_total", reason="timeout") == 1
    assert value(m, "sipbridge_tool_seconds_count") == 2
    assert value(m, "sipbridge_tool_failures_total", reason="timeout") == 1
    assert value(m, "sipbridge_playout_underruns_total") == 3
    assert value(m, "sipbridge_trunk_registered", trunk="carrier") == 1
    assert value(m, "sipbridge_trunk_registered", trunk="backup") == 0


def test_scrape_time_state_is_read_when_rendered():
    """Active calls, slots, overruns, restarts and refusals come from read_state at each scrape."""
    state = {"active": 2, "capacity": 4, "tick_overruns": 7, "restarts": 0, "tap_dropped": 1,
             "refused": {"503": 4}}
    m = Metrics(lambda: state)
    assert value(m, "sipbridge_calls_active") == 2 and value(m, "sipbridge_call_slots") == 4
    assert value(m, "sipbridge_media_tick_overruns_total") == 7
    assert value(m, "sipbridge_worker_restarts_total") == 0
    assert value(m, "sipbridge_log_events_dropped_total") == 1
    assert value(m, "sipbridge_calls_rejected_total", status=503) == 4
    state["active"] = 3
    assert value(m, "sipbridge_calls_active") == 3


def test_unusable_fields_and_unknown_events_never_raise():
    """Wrong types, negative or NaN times, missing ids and unknown events are skipped, not fatal."""
    m = Metrics()
    for e in ({"event": "barge_in", "onset_to_pause_ms": "fast"}, {"event": "speech_stopped", "eou_ms": -1},
              {"event": "speech_stopped", "eou_ms": float("nan")}, {"event": "call_answered"},
              {"event": "call_ended", "call_id": 5, "rtp_rx_packets": "many"}, {"event": None},
              {"event": "tool_called", "latency_ms": True}, {"event": "trunk_registered"}, {},
              {"event": "call_incoming", "call_id": "z", "ts": "now"},
              {"event": "call_answered", "call_id": "z", "ts": 1.0}):
        m.observe(e)
    assert value(m, "sipbridge_end_of_utterance_seconds_count") == 0
    assert value(m, "sipbridge_call_setup_seconds_count") == 0


def test_calls_whose_end_is_never_seen_are_forgotten_beyond_a_bound():
    """Pending per-call state is bounded: a flood of calls that never end cannot grow memory."""
    from sipbridge.app import metrics as mod
    m = Metrics()
    for i in range(mod.MAX_PENDING + 500):
        m.observe({"event": "call_incoming", "call_id": f"c{i}", "ts": float(i)})
    assert len(m._calls) == mod.MAX_PENDING
