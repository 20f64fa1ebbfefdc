"""Client event builders and SessionConfig: GA and beta wire shapes."""

from __future__ import annotations

import base64
import json

import pytest

from sipbridge.errors import ConfigError
from sipbridge.realtime import protocol as p

VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}


def test_ga_session_update_shape():
    """A GA session.update nests pcm format, turn detection and voice under session.audio."""
    cfg = p.SessionConfig(model="m", instructions="be brief", voice="marin", input_rate=24000,
                          output_rate=24000, turn_detection=VAD)
    ev = p.session_update(cfg)
    assert ev["type"] == "session.update"
    s = ev["session"]
    assert s["type"] == "realtime"
    assert s["output_modalities"] == ["audio"]
    assert s["instructions"] == "be brief"
    assert s["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert s["audio"]["input"]["turn_detection"] == VAD
    assert s["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert s["audio"]["output"]["voice"] == "marin"
    assert "modalities" not in s and "input_audio_format" not in s
    json.dumps(ev)


def test_ga_session_update_sends_explicit_null_turn_detection():
    """With turn_detection None the GA update carries an explicit null (server VAD off), not an absent key."""
    s = p.session_update(p.SessionConfig(model="m"))["session"]
    assert "turn_detection" in s["audio"]["input"] and s["audio"]["input"]["turn_detection"] is None
    assert "instructions" not in s and "voice" not in s["audio"]["output"]


def test_ga_session_update_copies_turn_detection():
    """The builder copies the turn_detection dict so later edits to the event cannot alter the config."""
    td = dict(VAD)
    cfg = p.SessionConfig(model="m", turn_detection=td)
    p.session_update(cfg)["session"]["audio"]["input"]["turn_detection"]["threshold"] = 0.9
    assert cfg.turn_detection["threshold"] == 0.5


def test_beta_session_update_shape():
    """A beta session.update is flat: modalities audio+text, pcm16 formats, top-level turn_detection and voice."""
    cfg = p.SessionConfig(model="m", api="beta", voice="alloy", instructions="hi", turn_detection=VAD)
    s = p.session_update(cfg)["session"]
    assert s == {"modalities": ["audio", "text"], "input_audio_format": "pcm16", "output_audio_format": "pcm16",
                 "turn_detection": VAD, "voice": "alloy", "instructions": "hi"}


def test_beta_session_update_null_turn_detection():
    """A beta update with client-decided turns sends turn_detection null."""
    s = p.session_update(p.SessionConfig(model="m", api="beta"))["session"]
    assert s["turn_detection"] is None and "type" not in s


@pytest.mark.parametrize("kwargs", [
    {"api": "v2"},
    {"input_rate": 0},
    {"output_rate": -8000},
    {"input_rate": True},
    {"api": "beta", "input_rate": 16000},
    {"turn_detection": {"threshold": 0.5}},
    {"turn_detection": "server_vad"},
])
def test_session_config_rejects_bad_values(kwargs):
    """SessionConfig refuses an unknown api, non-positive rates, non-24k beta rates and typeless turn detection."""
    with pytest.raises(ConfigError):
        p.SessionConfig(model="m", **kwargs)


def test_every_builder_has_unique_event_id():
    """Each built event carries an event_id and no two are equal."""
    events = [p.session_update(p.SessionConfig(model="m")), p.input_audio_append(b"\x00\x01"),
              p.input_audio_commit(), p.input_audio_clear(), p.response_create(), p.response_cancel(),
              p.item_truncate("i", 5), p.item_delete("i")]
    ids = [e["event_id"] for e in events]
    assert all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == len(ids)
    assert len({p.response_create()["event_id"] for _ in range(500)}) == 500


def test_input_audio_append_is_base64_of_pcm():
    """input_audio_buffer.append carries the exact pcm bytes base64-encoded in 'audio'."""
    pcm = bytes(range(256)) * 3
    ev = p.input_audio_append(pcm)
    assert ev["type"] == "input_audio_buffer.append"
    assert base64.b64decode(ev["audio"]) == pcm


def test_input_audio_append_rejects_half_samples():
    """An odd byte count is not pcm16 and is refused with ValueError."""
    with pytest.raises(ValueError):
        p.input_audio_append(b"\x00\x01\x02")


def test_simple_builders():
    """commit, clear, response.create and delete have the documented types and fields."""
    assert p.input_audio_commit()["type"] == "input_audio_buffer.commit"
    assert p.input_audio_clear()["type"] == "input_audio_buffer.clear"
    assert p.response_create()["type"] == "response.create"
    d = p.item_delete("item_7")
    assert (d["type"], d["item_id"]) == ("conversation.item.delete", "item_7")


def test_response_cancel_with_and_without_id():
    """response.cancel omits response_id unless one is given."""
    assert "response_id" not in p.response_cancel()
    ev = p.response_cancel("resp_1")
    assert (ev["type"], ev["response_id"]) == ("response.cancel", "resp_1")


def test_item_truncate_fields_and_validation():
    """conversation.item.truncate carries item_id, content_index and audio_end_ms, refusing negative or non-int ends."""
    ev = p.item_truncate("item_1", 1234)
    assert ev["type"] == "conversation.item.truncate"
    assert (ev["item_id"], ev["content_index"], ev["audio_end_ms"]) == ("item_1", 0, 1234)
    assert p.item_truncate("x", 0, content_index=2)["content_index"] == 2
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ValueError):
            p.item_truncate("x", bad)
