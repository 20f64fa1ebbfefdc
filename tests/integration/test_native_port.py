"""The media ports on real calls: the native C port (the default) proven to carry a call, and
one smoke test of the pjsua2 fallback (``sip.media_port: python``).

Every barge-in, turn and call-path test (test_barge_in.py, test_call_path.py,
test_turn_modes.py, ...) runs on the default, hence on the native port; the churn test of the
native port is tests/integration/test_call_churn.py. What stays here is what only this port
shows (its start-up layout check, the C side's own counters) and the fallback's one call.
"""

from tests.support.barge import run_call


def _events(r, name: str) -> list[dict]:
    return [e for e in r.bridge_log if e.get("event") == name]


def test_a_default_call_runs_on_the_native_port_at_8khz_and_barges_in_exactly(tmp_path):
    """With no media settings the call runs on the C port at 8 kHz (layout verified at start): caller speech over the agent silences it on the wire, cancels and truncates at what was sent, and the C side counted the call's frames both ways."""
    r = run_call(tmp_path)
    assert [e["layout"] for e in _events(r, "native_media_port")] == ["verified"]
    assert [e["media_rate"] for e in _events(r, "ready")] == [8000]
    assert len(r.barge_ins) == 1 and r.barge_ins[0]["source"] == "local_vad", r.barge_ins
    assert r.loud_onset_to_silence_ms is not None and r.loud_onset_to_silence_ms <= 150
    assert r.onset_to_silence_ms <= 300, r.onset_to_silence_ms
    assert r.leaked_packets == 0 and r.cancels <= 1
    assert r.truncate_error_ms is not None and abs(r.truncate_error_ms) <= 20, (
        r.audio_end_ms, r.wire_ms)
    (released,) = _events(r, "native_port_released")
    assert released["frames_in"] > 100 and released["frames_out"] > 100, released
    assert released["in_dropped"] == 0, released
    assert not _events(r, "media_callback_failed")


def test_the_python_port_fallback_carries_audio_both_ways_and_a_barge_in(tmp_path):
    """With sip.media_port: python (pjsua2's AudioMediaPort, no C port) the caller's speech reaches the model as a turn, the answer is heard on the wire, and speech over it silences it, cancels and truncates at what was sent."""
    r = run_call(tmp_path, bridge_extra={"sip": {"media_port": "python"}})
    assert not _events(r, "native_media_port") and not _events(r, "native_port_released")
    commits = [e for e in r.upstream_events if e.get("type") == "input_audio_buffer.commit"]
    assert commits, "the caller's first utterance never reached the model as a turn"
    assert r.agent_ms_heard >= 200, r.agent_ms_heard   # the answer, on the wire
    assert len(r.barge_ins) == 1 and r.barge_ins[0]["source"] == "local_vad", r.barge_ins
    assert r.onset_to_silence_ms is not None and r.onset_to_silence_ms <= 300
    assert r.leaked_packets == 0
    assert r.truncate_error_ms is not None and abs(r.truncate_error_ms) <= 20, (
        r.audio_end_ms, r.wire_ms)
    assert not _events(r, "media_callback_failed")
