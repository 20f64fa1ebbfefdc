"""Server VAD of the embedded model: EnergyVad (pure) and EchoCore taking turns on its own."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest

from sipbridge.realtime import protocol as p
from sipbridge.realtime.client import RealtimeClient
from sipbridge.embedded.echo_core import EchoCore, EnergyVad, VadEvent, threshold_dbfs
from sipbridge.embedded import EmbeddedModel
from sipbridge.realtime.events import AudioDelta, InputCommitted, ResponseCreated, SpeechStarted, SpeechStopped
from tests.support import audio

from tests.unit.realtime.helpers import arun, wait_until

RATE = 24000
VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 200, "silence_duration_ms": 500}


def pcm(*parts: np.ndarray) -> bytes:
    return np.concatenate(parts).astype("<i2").tobytes()


def quiet(ms: int) -> np.ndarray:
    return audio.noise(ms, -65.0, seed=ms, rate=RATE)  # line noise, under any threshold in use here


def tone(ms: int, dbfs: float = -20.0) -> np.ndarray:
    return audio.sine(300, ms, dbfs, rate=RATE)


def types(events):
    return [e["type"] for e in events]


def vad_core(td: dict | None = None, api: str = "ga", **kwargs) -> EchoCore:
    core = EchoCore(**kwargs)
    cfg = p.SessionConfig(model="m", api=api, turn_detection=dict(td or VAD))
    (ev,) = core.handle(p.session_update(cfg))
    assert ev["type"] == "session.updated", ev
    return core


def append(core: EchoCore, data: bytes, step_ms: int = 20) -> list[dict]:
    """Append ``data`` as the bridge does, ``step_ms`` at a time; returns every event answered."""
    step = step_ms * RATE // 1000 * 2
    out = []
    for i in range(0, len(data), step):
        out += core.handle(p.input_audio_append(data[i:i + step]))
    return out


def drain(core: EchoCore) -> bytes:
    rid, got = core.active.response_id, b""
    while events := core.next_chunk(rid):
        got += b"".join(base64.b64decode(e["delta"]) for e in events if "delta" in e)
    return got


# -- EnergyVad: the pure detector ---------------------------------------------------------------

def test_threshold_maps_linearly_to_a_level():
    """threshold 0 / 0.5 / 1 mean frame levels of -70 / -40 / -10 dBFS."""
    assert (threshold_dbfs(0.0), threshold_dbfs(0.5), threshold_dbfs(1.0)) == (-70.0, -40.0, -10.0)


def test_energy_vad_reports_prefix_and_silence_in_samples():
    """Speech at 500-800 ms gives started at 300 ms (200 ms prefix) and stopped at 1300 ms (500 ms silence)."""
    vad = EnergyVad(0.5, 200, 500)
    events = vad.feed(pcm(quiet(500), tone(300), quiet(1000)))
    assert events == [VadEvent("started", 300 * 24), VadEvent("stopped", 1300 * 24)]
    assert not vad.speaking and vad.at_sample == 1800 * 24


def test_energy_vad_is_independent_of_how_audio_is_chunked():
    """Feeding the same audio in 7 ms pieces or in one piece gives the same events: time is samples, not calls."""
    data = pcm(quiet(300), tone(200), quiet(200), tone(400), quiet(900))
    whole = EnergyVad(0.5, 100, 300).feed(data)
    vad, pieces = EnergyVad(0.5, 100, 300), []
    for i in range(0, len(data), 7 * 48):
        pieces += vad.feed(data[i:i + 7 * 48])
    assert pieces == whole == [VadEvent("started", 200 * 24), VadEvent("stopped", 1400 * 24)]


def test_energy_vad_pause_shorter_than_silence_duration_keeps_the_turn():
    """A 400 ms pause inside a turn does not end it when silence_duration_ms is 500."""
    events = EnergyVad(0.5, 0, 500).feed(pcm(tone(200), quiet(400), tone(200), quiet(600)))
    assert [e.kind for e in events] == ["started", "stopped"]
    assert events[1].sample == (800 + 500) * 24


def test_energy_vad_honours_threshold():
    """A -45 dBFS voice is speech at threshold 0.3 (-52 dBFS) but not at 0.5 (-40 dBFS)."""
    data = pcm(quiet(100), tone(300, -45.0), quiet(700))
    assert EnergyVad(0.5, 0, 500).feed(data) == []
    assert [e.kind for e in EnergyVad(0.3, 0, 500).feed(data)] == ["started", "stopped"]


def test_energy_vad_prefix_never_reaches_before_the_floor():
    """audio_start is clamped at the start of the stream and at the last reset (committed audio is gone)."""
    vad = EnergyVad(0.5, 300, 200)
    assert vad.feed(pcm(quiet(100), tone(100)))[0] == VadEvent("started", 0)
    vad.reset(floor_sample=vad.at_sample)
    floor = vad.at_sample
    (started,) = vad.feed(pcm(quiet(100), tone(100)))
    assert started == VadEvent("started", floor)


# -- EchoCore: committing and answering on its own ----------------------------------------------

def test_server_vad_commits_and_answers_on_its_own():
    """With server_vad the core emits speech_started/stopped, commits up to audio_end and streams the echo."""
    core = vad_core()
    data = pcm(quiet(500), tone(400), quiet(700))
    events = append(core, data, step_ms=1600)  # one append running 200 ms past the end of the turn
    assert types(events) == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                             "input_audio_buffer.committed", "conversation.item.created",
                             "response.created", "response.output_item.added", "response.content_part.added"]
    started, stopped, committed = events[:3]
    assert started["audio_start_ms"] == 300 and stopped["audio_end_ms"] == 900 + 500
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert drain(core) == data[:1400 * 48], "the echo is the buffer up to audio_end_ms"
    # what came after audio_end stays buffered for the next turn
    rest = core.handle(p.input_audio_commit())
    assert rest[0]["type"] == "input_audio_buffer.committed"
    core.handle(p.response_create())
    assert drain(core) == data[1400 * 48:]


def test_server_vad_times_run_on_across_turns_and_reply_to_real_speech():
    """Two spoken turns: audio_start/end are session sample times near the true speech bounds, each answered."""
    speech = audio.trim_silence(audio.load_wav(audio.asterisk_prompt("vm-goodbye"), rate=RATE), rate=RATE)
    speech_ms = len(speech) * 1000 // RATE
    lead = 400
    turn = pcm(quiet(lead), speech, quiet(800))
    turn_ms = lead + speech_ms + 800
    core = vad_core()
    first = append(core, turn)
    drain(core)
    second = append(core, turn)
    drain(core)
    for k, events in enumerate((first, second)):
        (started,) = [e for e in events if e["type"] == "input_audio_buffer.speech_started"]
        (stopped,) = [e for e in events if e["type"] == "input_audio_buffer.speech_stopped"]
        offset = k * turn_ms
        assert abs(started["audio_start_ms"] - (offset + lead - 200)) <= 40
        assert abs(stopped["audio_end_ms"] - (offset + lead + speech_ms + 500)) <= 60
        assert "response.created" in types(events)


def test_server_vad_from_beta_update_is_stored_at_the_ga_path_with_defaults():
    """A beta top-level turn_detection is honoured; session.updated shows it with the defaults filled in."""
    core = EchoCore()
    (ev,) = core.handle(p.session_update(p.SessionConfig(model="m", api="beta",
                                                         turn_detection={"type": "server_vad"})))
    td = ev["session"]["audio"]["input"]["turn_detection"]
    assert td == {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500,
                  "create_response": True, "interrupt_response": False}
    assert "turn_detection" not in ev["session"]
    assert "input_audio_buffer.speech_started" in types(append(core, pcm(quiet(400), tone(300), quiet(700))))


@pytest.mark.parametrize("td", [
    {"type": "semantic_vad"},
    {"type": "server_vad", "threshold": 1.5},
    {"type": "server_vad", "silence_duration_ms": -1},
    {"type": "server_vad", "prefix_padding_ms": 1.5},
    {"type": "server_vad", "create_response": "yes"},
    {"type": "server_vad", "eagerness": "high"},
])
def test_bad_turn_detection_is_refused_and_changes_nothing(td):
    """An unsupported or out-of-range turn_detection is an error event and the session keeps its VAD off."""
    core = EchoCore()
    (err,) = core.handle(p.session_update(p.SessionConfig(model="m", turn_detection=td)))
    assert err["type"] == "error" and "turn_detection" in err["error"]["message"]
    assert core.session["audio"]["input"]["turn_detection"] is None and core.vad is None
    assert append(core, pcm(quiet(200), tone(300), quiet(800))) == []


def test_turn_detection_null_turns_the_vad_off():
    """Without turn detection (the bridge's default) appends never produce events; null switches it off again."""
    assert append(EchoCore(), pcm(quiet(200), tone(300), quiet(800))) == []
    core = vad_core()
    core.handle(p.session_update(p.SessionConfig(model="m", turn_detection=None)))
    assert core.vad is None and append(core, pcm(quiet(200), tone(300), quiet(800))) == []


def test_create_response_false_commits_without_answering():
    """create_response false: the turn is committed but no response starts."""
    core = vad_core({**VAD, "create_response": False})
    events = append(core, pcm(quiet(200), tone(300), quiet(800)))
    assert types(events)[-2:] == ["input_audio_buffer.committed", "conversation.item.created"]
    assert core.active is None


def test_speech_during_a_response_is_reported_and_left_to_the_client():
    """By default speech over a response only emits speech_started; the client cancels, the next turn is answered."""
    core = vad_core(reply_pcm=bytes(48 * 3000))
    append(core, pcm(quiet(200), tone(300), quiet(600)))
    rid = core.active.response_id
    core.next_chunk(rid)
    events = append(core, pcm(tone(300)))
    assert types(events) == ["input_audio_buffer.speech_started"] and core.active.response_id == rid
    assert core.handle(p.response_cancel(rid))[-1]["response"]["status"] == "cancelled"
    events = append(core, pcm(quiet(600)))
    assert "response.created" in types(events) and core.active.response_id != rid


def test_interrupt_response_true_cancels_on_speech():
    """interrupt_response true: speech over an active response ends it (cancelled, turn_detected)."""
    core = vad_core({**VAD, "interrupt_response": True}, reply_pcm=bytes(48 * 3000))
    append(core, pcm(quiet(200), tone(300), quiet(600)))
    rid = core.active.response_id
    events = append(core, pcm(tone(100)))
    assert types(events)[0] == "input_audio_buffer.speech_started"
    done = events[-1]
    assert done["type"] == "response.done" and done["response"]["id"] == rid
    assert done["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert core.active is None and core.next_chunk(rid) == []


def test_clear_forgets_the_turn_in_progress():
    """input_audio_buffer.clear mid-turn drops the audio and the turn: the silence after it commits nothing."""
    core = vad_core()
    append(core, pcm(quiet(200), tone(300)))
    core.handle(p.input_audio_clear())
    assert append(core, pcm(quiet(800))) == []


def test_embedded_server_vad_over_websocket():
    """A client that only appends audio gets speech_started/stopped, a commit and the echo from the server's VAD."""
    record: list[dict] = []
    events: list = []
    data = pcm(quiet(300), tone(400), quiet(700))

    async def body():
        model = EmbeddedModel(record=record, pace=20)
        url = await model.start()
        cfg = p.SessionConfig(model="m", turn_detection=dict(VAD))
        client = RealtimeClient(url, "m", None, cfg, events.append)
        await client.connect()
        reader = asyncio.create_task(client.run())
        try:
            for i in range(0, len(data), 960):
                client.send_audio(data[i:i + 960])
            await wait_until(lambda: any(isinstance(e, AudioDelta) for e in events)
                             and sum(len(e.pcm) for e in events if isinstance(e, AudioDelta)) >= 1200 * 48)
        finally:
            await client.close()
            await asyncio.gather(reader, return_exceptions=True)
            await model.stop()

    arun(body())
    kinds = [type(e) for e in events if isinstance(e, (SpeechStarted, SpeechStopped, InputCommitted,
                                                         ResponseCreated))]
    assert kinds == [SpeechStarted, SpeechStopped, InputCommitted, ResponseCreated]
    assert {r["type"] for r in record} == {"session.update", "input_audio_buffer.append"}
    echo = b"".join(e.pcm for e in events if isinstance(e, AudioDelta))
    assert echo == data[:1200 * 48]
