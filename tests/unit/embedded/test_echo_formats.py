"""The embedded model (EchoCore) in each audio format: it reads the format from session.update
(GA or beta spelling) and answers in it; millisecond bounds count the format's samples."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from sipcodecs import StreamResampler

from sipbridge.realtime import protocol as p
from sipbridge.realtime.audio_format import G711_ALAW, G711_ULAW, PCM16
from sipbridge.embedded.echo_core import EchoCore

from tests.unit.realtime.helpers import pcm_ramp


def types(events):
    return [e["type"] for e in events]


def configured(audio_format: str, api: str = "ga", **core) -> EchoCore:
    c = EchoCore(**core)
    (ev,) = c.handle(p.session_update(p.SessionConfig(model="m", api=api, audio_format=audio_format)))
    assert ev["type"] == "session.updated", ev
    return c


def respond(core: EchoCore) -> tuple[str, list[dict]]:
    events = core.handle(p.response_create())
    rid = events[0]["response"]["id"]
    out = []
    while chunk := core.next_chunk(rid):
        out += chunk
    return rid, out


def deltas(events) -> list[bytes]:
    return [base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"]


def g711_speech(ms: int, fmt=G711_ULAW) -> bytes:
    return fmt.encode(np.frombuffer(pcm_ramp(ms, rate=8000), dtype="<i2") // 4)


@pytest.mark.parametrize("api", ["ga", "beta"])
@pytest.mark.parametrize("fmt", [G711_ULAW, G711_ALAW], ids=lambda f: f.name)
def test_a_g711_session_echoes_the_callers_g711_back_in_100ms_deltas_of_800_bytes(api, fmt):
    """session.update (either spelling) sets G.711 both ways; the echo is the same codes, 8 bytes/ms."""
    core = configured(fmt.name, api)
    assert core.session["audio"]["input"]["format"] == {"type": fmt.ga_type}
    assert core.session["audio"]["output"]["format"] == {"type": fmt.ga_type}
    assert "input_audio_format" not in core.session  # beta is stored at the GA path
    said = g711_speech(250, fmt)
    assert core.handle(p.input_audio_append(said, sample_bytes=1)) == []
    assert types(core.handle(p.input_audio_commit()))[0] == "input_audio_buffer.committed"
    _, events = respond(core)
    chunks = deltas(events)
    assert [len(c) for c in chunks] == [800, 800, 400]
    assert b"".join(chunks) == said  # decode + encode at one rate is lossless for G.711 codes
    assert types(events)[-1] == "response.done"


def test_the_commit_minimum_is_100ms_of_g711_not_4800_bytes():
    """99 ms of G.711 (792 bytes) is too little to commit; 100 ms (800 bytes) is enough."""
    core = configured("g711_ulaw")
    core.handle(p.input_audio_append(g711_speech(99), sample_bytes=1))
    (err,) = core.handle(p.input_audio_commit())
    assert err["error"]["code"] == "input_audio_buffer_commit_empty" and "99.00ms" in err["error"]["message"]
    core.handle(p.input_audio_append(g711_speech(1), sample_bytes=1))
    assert types(core.handle(p.input_audio_commit()))[0] == "input_audio_buffer.committed"


def test_truncate_bounds_are_in_ms_of_the_g711_audio_sent():
    """After 200 ms of G.711 was sent, truncate at 200 is accepted and 201 refused; then 150 sticks."""
    core = configured("g711_ulaw")
    core.handle(p.input_audio_append(g711_speech(500), sample_bytes=1))
    core.handle(p.input_audio_commit())
    rid = core.handle(p.response_create())[0]["response"]["id"]
    core.next_chunk(rid)
    item = core.next_chunk(rid)[0]["item_id"]
    (err,) = core.handle(p.item_truncate(item, 201))
    assert err["type"] == "error" and "200ms" in err["error"]["message"]
    assert core.handle(p.item_truncate(item, 200))[0]["type"] == "conversation.item.truncated"
    assert core.handle(p.item_truncate(item, 150))[0]["audio_end_ms"] == 150
    assert core.handle(p.item_truncate(item, 151))[0]["type"] == "error"


def test_a_fixed_24k_reply_is_sent_resampled_to_8k_g711():
    """reply_pcm (24 kHz pcm16) goes out as G.711 at 8 kHz: a third of the samples, the same tone."""
    t = np.arange(24000) / 24000
    reply = np.round(8000 * np.sin(2 * np.pi * 500 * t)).astype("<i2")
    core = configured("g711_alaw", reply_pcm=reply.tobytes())
    _, events = respond(core)
    got = G711_ALAW.decode(b"".join(deltas(events)))
    want = StreamResampler(24000, 8000).process_array(reply.astype(np.int16))
    assert len(got) == len(want) == 8000
    assert np.corrcoef(got[100:], want[100:])[0, 1] > 0.999


def test_pcm16_in_and_g711_out_echo_across_the_two_rates():
    """Formats may differ per direction (GA): 24 kHz pcm16 in, µ-law out at 8 kHz."""
    core = EchoCore()
    update = p.session_update(p.SessionConfig(model="m"))
    update["session"]["audio"]["output"]["format"] = {"type": "audio/pcmu"}
    assert core.handle(update)[0]["type"] == "session.updated"
    core.handle(p.input_audio_append(pcm_ramp(300)))
    core.handle(p.input_audio_commit())
    _, events = respond(core)
    assert sum(len(c) for c in deltas(events)) == 300 * 8  # 300 ms at 8 bytes/ms


def test_unsupported_formats_and_rates_are_refused_and_change_nothing():
    """audio/opus, pcmu at 16 kHz, beta 'g722' are refused with the reason; the session stays pcm16."""
    core = EchoCore()
    for session, needle in [({"audio": {"input": {"format": {"type": "audio/opus"}}}}, "audio/opus"),
                            ({"audio": {"output": {"format": {"type": "audio/pcmu", "rate": 16000}}}}, "16000"),
                            ({"input_audio_format": "g722"}, "g722")]:
        (err,) = core.handle({"type": "session.update", "session": session})
        assert err["type"] == "error" and needle in err["error"]["message"]
    assert core.session["audio"]["input"]["format"] == PCM16.ga()
    assert core.session["audio"]["output"]["format"] == PCM16.ga()


def test_switching_the_input_format_drops_the_buffer_in_the_old_one():
    """Uncommitted pcm16 is not read as G.711 after a switch: the buffer starts empty."""
    core = EchoCore()
    core.handle(p.input_audio_append(pcm_ramp(300)))
    core.handle(p.session_update(p.SessionConfig(model="m", audio_format="g711_ulaw")))
    (err,) = core.handle(p.input_audio_commit())
    assert err["error"]["code"] == "input_audio_buffer_commit_empty"


def test_server_vad_times_g711_audio_in_ms():
    """With server_vad on a G.711 session, speech_started/stopped report ms of the 8 kHz audio."""
    vad = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 0, "silence_duration_ms": 200}
    core = EchoCore()
    core.handle(p.session_update(p.SessionConfig(model="m", audio_format="g711_ulaw", turn_detection=vad)))
    t = np.arange(8000 * 300 // 1000) / 8000
    loud = G711_ULAW.encode(np.round(6000 * np.sin(2 * np.pi * 400 * t)).astype(np.int16))
    quiet = G711_ULAW.encode(np.zeros(8000 * 400 // 1000, dtype=np.int16))
    events = []
    for chunk in (quiet[:800], loud, quiet):
        events += core.handle(p.input_audio_append(chunk, sample_bytes=1))
    started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
    assert started["audio_start_ms"] == 100
    assert stopped["audio_end_ms"] == 100 + 300 + 200
