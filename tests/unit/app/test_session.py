"""CallSession in-process: the media clock's two entry points driven by hand, a real model socket.

No pjsua2 here. An asyncio loop runs in a thread (as in the worker) with an EmbeddedModel on it
that records every client event; the test plays the media clock: each tick hands the session
20 ms of caller audio (``on_caller_frame``) and then takes 20 ms of agent audio (``next_frame``),
as ``CallPort`` does. The clock never waits; the model's audio arrives asynchronously, so when a
tick needs agent audio to be there, the test waits for it first (bounded) instead of counting
an underrun. Caller audio is Asterisk's recorded prompts at 16 kHz, judged by the real Silero
model. Anything the session queues to the loop before a :meth:`Call.barrier` reaches the model
before the barrier does, which is how "nothing was sent" is checked without sleeping.
"""

from __future__ import annotations

import base64
import threading
import time

import numpy as np
import pytest
from sipcodecs import StreamResampler

from sipbridge.errors import ConfigError
from sipbridge.realtime import protocol as rt
from sipbridge.embedded import EmbeddedModel
from tests.support import audio
from tests.unit.app.harness import SessionHarness

RATE = 16000
FRAME = 320                 # samples per 20 ms tick
SILENT = bytes(2 * FRAME)
TURN_EVENTS = ("input_audio_buffer.commit", "response.create", "response.cancel",
               "conversation.item.truncate", "conversation.item.delete", "input_audio_buffer.clear")


def prompt(name: str, rate: int = RATE) -> np.ndarray:
    """An Asterisk prompt at ``rate``, trimmed to its speech."""
    return audio.trim_silence(audio.load_wav(audio.asterisk_prompt(name), rate=rate), rate=rate)


def quiet(ms: int) -> np.ndarray:
    """Line noise at -65 dBFS: under the silence floor, never speech."""
    return audio.noise(ms, -65.0, seed=ms, rate=RATE)


HELLO = prompt("hello-world")           # 1270 ms
GOODBYE = prompt("vm-goodbye")          # 740 ms
COUGH = GOODBYE[1600:4160]             # 160 ms of a word: an onset, rejected (< min_speech_ms)
REPLY = prompt("tt-weasels", 24000).astype("<i2").tobytes()   # the model's fixed answer, 2.7 s at 24 kHz
REPLY_16K = StreamResampler(24000, RATE).process(REPLY)        # what the session must play of it


class Call(SessionHarness):
    """One CallSession against its own EmbeddedModel; the test thread is the media clock."""

    def __init__(self, loop, vad_model, *, turn=None, realtime=None, reply: bytes | None = None,
                 pace: float = 50.0, vad_batch=None, call_tool: str | None = None, parties=None,
                 barge_in=None):
        self.record: list[dict] = []
        super().__init__(loop, EmbeddedModel(record=self.record, reply_pcm=reply, pace=pace,
                                             call_tool=call_tool),
                         turn=turn, realtime=realtime, vad_model=vad_model, vad_batch=vad_batch,
                         parties=parties, barge_in=barge_in)
        self.ticks = 0

    # -- what the model server received --------------------------------------------------------
    def sent(self, *etypes: str) -> list[dict]:
        return [e for e in list(self.record) if not etypes or e.get("type") in etypes]

    def turn_events(self) -> list[str]:
        """Types of the turn events received, in order (no appends, session updates or barriers)."""
        return [e["type"] for e in self.sent(*TURN_EVENTS)]

    def wait_for(self, etype: str, count: int = 1, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(found := self.sent(etype)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"model never received {count} x {etype}; got {self.turn_events()}")
            time.sleep(0.002)
        return found

    def barrier(self) -> None:
        """Wait until everything the session queued so far has reached the model server (caller
        audio still held for the next ``input_audio_buffer.append`` batch is flushed first)."""
        self.session.flush_audio()
        marker = f"evt_barrier_{len(self.record)}_{time.monotonic_ns()}"
        self.loop.call_soon_threadsafe(self.session.client.send, {"type": "test.barrier", "event_id": marker})
        deadline = time.monotonic() + 5
        while not any(e.get("event_id") == marker for e in list(self.record)):
            assert time.monotonic() < deadline, "barrier never reached the model"
            time.sleep(0.002)

    def appended_ms(self) -> float:
        pcm = b"".join(base64.b64decode(e["audio"]) for e in self.sent("input_audio_buffer.append"))
        return len(pcm) / 2 / 24000 * 1000

    # -- the media clock ----------------------------------------------------------------------
    def feed(self, pcm: np.ndarray) -> None:
        """Caller audio only: ``on_caller_frame`` per 20 ms, no agent frames taken (nothing of a
        reply is played, so a test's first :meth:`tick` hears the reply's first frame)."""
        for i in range(0, len(pcm) // FRAME * FRAME, FRAME):
            self.session.on_caller_frame(pcm[i:i + FRAME].tobytes())
            self.ticks += 1

    def agent_frame(self, timeout: float = 5.0) -> bytes:
        """``next_frame()``, after waiting until a whole frame of the response has arrived."""
        s = self.session
        deadline = time.monotonic() + timeout
        while s.playout.queued_ms < 20 and s.response_id is not None and not s.playout.paused:
            assert time.monotonic() < deadline, "the model's audio stopped arriving"
            time.sleep(0.001)
        return s.next_frame()

    def tick(self, caller: np.ndarray | None = None) -> bytes:
        """One 20 ms tick: caller frame in (silence if None), agent frame out."""
        frame = quiet(20) if caller is None else caller
        assert len(frame) == FRAME
        self.session.on_caller_frame(frame.tobytes())
        self.ticks += 1
        return self.agent_frame()

    def play_out(self, caller: list[np.ndarray] | None = None, limit_ms: int = 15000) -> list[bytes]:
        """Tick until the response is over and fully played (``caller`` frames first, then quiet)."""
        caller = list(caller or [])
        out: list[bytes] = []
        while self.session.response_id is not None or self.session.playout.playing:
            assert len(out) * 20 < limit_ms, "the reply never finished playing"
            out.append(self.tick(caller.pop(0) if caller else None))
        return out

    def take_turn(self, speech: np.ndarray = GOODBYE, silence_ms: int = 800) -> None:
        """The caller says ``speech`` and falls silent; returns once response.create reached the model."""
        creates = len(self.sent("response.create"))
        self.feed(np.concatenate([quiet(300), speech, quiet(silence_ms)]))
        self.wait_for("response.create", creates + 1)

    def wait_playing(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.session.playout.playing:
            assert time.monotonic() < deadline, "no reply audio arrived"
            time.sleep(0.001)

    def wait_response_done(self, timeout: float = 10.0) -> None:
        self.wait_log("response.done", timeout)


def frames_of(pcm: np.ndarray) -> list[np.ndarray]:
    return [pcm[i:i + FRAME] for i in range(0, len(pcm) // FRAME * FRAME, FRAME)]


# -- turns --------------------------------------------------------------------------------------

def test_utterance_then_silence_commits_then_asks_for_a_response_and_the_reply_plays(make_call):
    """Speech then silence_threshold_ms of silence sends commit then response.create, and the reply plays."""
    call = make_call(pace=20)
    call.feed(np.concatenate([quiet(300), HELLO, quiet(400)]))
    call.barrier()
    assert call.turn_events() == [], "the turn ended before silence_threshold_ms of silence"
    call.feed(quiet(300))
    call.wait_for("response.create")
    assert call.turn_events() == ["input_audio_buffer.commit", "response.create"]
    types = [e["type"] for e in call.sent()]
    before = call.sent()[: types.index("input_audio_buffer.commit")]
    ms_before = sum(len(base64.b64decode(e["audio"])) for e in before
                    if e["type"] == "input_audio_buffer.append") / 2 / 24000 * 1000
    assert ms_before >= 300 + len(HELLO) * 1000 // RATE + 500

    call.wait_playing()
    out = call.play_out()
    heard = np.frombuffer(b"".join(out), dtype="<i2")
    assert sum(f != SILENT for f in out) * 20 >= len(HELLO) * 1000 // RATE
    lag, corr = audio.align(HELLO, heard, rate=RATE)
    assert corr > 0.9, f"the reply is not the echo of the caller's words (corr {corr:.2f})"
    assert call.ended == []


def test_update_turn_detection_lengthens_the_pause_that_ends_a_turn(make_call):
    """With silence_threshold_ms raised to 1200 mid-call an 800 ms pause no longer ends the turn; before, it did."""
    call = make_call(reply=b"")
    call.feed(np.concatenate([quiet(300), GOODBYE, quiet(800)]))
    call.barrier()
    assert call.turn_events() == ["input_audio_buffer.commit", "response.create"]

    new = call.session.update_turn_detection({"silence_threshold_ms": 1200})
    assert new.silence_threshold_ms == 1200 and call.session.engine.settings == new
    call.feed(np.concatenate([GOODBYE, quiet(800)]))
    call.barrier()
    assert len(call.sent("input_audio_buffer.commit")) == 1, "an 800 ms pause still ended the turn"
    call.feed(quiet(500))
    call.wait_for("input_audio_buffer.commit", 2)
    call.barrier()
    assert len(call.sent("session.update")) == 1, "a silero-only change needs no session.update"


@pytest.mark.parametrize("bad", [{"silence_threshold_ms": -5}, {"bogus": 1}, {"type": "telepathy"},
                                 {"profile": "sleepy"}, {"threshold": 0.3, "release_threshold": 0.4}])
def test_a_bad_turn_detection_update_raises_and_changes_nothing(make_call, bad):
    """A bad key or value raises ConfigError and leaves the call's settings and the model session untouched."""
    call = make_call(reply=b"")
    before = call.session.settings
    with pytest.raises(ConfigError):
        call.session.update_turn_detection(bad)
    assert call.session.settings is before and call.session.engine.settings is before
    call.barrier()
    assert len(call.sent("session.update")) == 1


def test_switching_to_server_vad_reconfigures_the_model_and_stops_local_commits(make_call):
    """Switching to server_vad sends session.update with threshold/prefix/silence; the bridge then never commits."""
    call = make_call(reply=b"", turn={"threshold": 0.6, "prefix_padding_ms": 250})
    call.session.update_turn_detection({"type": "server_vad", "silence_threshold_ms": 700})
    update = call.wait_for("session.update", 2)[-1]
    assert update["session"]["audio"]["input"]["turn_detection"] == {
        "type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 250, "silence_duration_ms": 700,
        "create_response": True, "interrupt_response": False}
    call.feed(np.concatenate([quiet(300), GOODBYE, quiet(1000)]))
    call.wait_log("response.created")  # the model's VAD took the turn and answered
    call.barrier()
    assert "input_audio_buffer.commit" not in call.turn_events()
    assert "response.create" not in call.turn_events()
    assert [r.get("source") for r in call.log_events("speech_started")] == ["server"]
    call.session.update_turn_detection({"type": "silero"})
    assert call.wait_for("session.update", 3)[-1]["session"]["audio"]["input"]["turn_detection"] is None


# -- the one cancel path ------------------------------------------------------------------------

def test_interrupt_while_playing_silences_the_next_frame_and_truncates_at_what_was_played(make_call):
    """interrupt() mid-reply: next frame silent, cancel then truncate at exactly the audio handed out, then silence."""
    call = make_call(reply=REPLY, pace=2)
    call.take_turn()
    call.wait_playing()
    played = [call.tick() for _ in range(12)]
    assert all(f != SILENT for f in played)
    s = call.session
    response_id = s.response_id
    assert response_id is not None and s.playout.queued_ms > 0, "the reply must still be going"

    s.interrupt()
    assert s.next_frame() == SILENT
    (truncate,) = call.wait_for("conversation.item.truncate")
    assert call.turn_events()[-2:] == ["response.cancel", "conversation.item.truncate"]
    assert call.sent("response.cancel")[0]["response_id"] == response_id
    assert truncate["audio_end_ms"] == s.playout.played_ms(truncate["item_id"]) == 12 * 20

    # the model keeps streaming until it sees the cancel: nothing more is played
    after = []
    for _ in range(25):
        time.sleep(0.004)
        after.append(s.next_frame())
    assert all(f == SILENT for f in after)
    assert s.playout.played_ms(truncate["item_id"]) == 240 and s.barge_ins == 1
    assert call.log_events("barge_in")[0]["source"] == "api"


def test_deltas_in_flight_at_an_interrupt_are_never_played(make_call):
    """Deltas of the cancelled response that arrive before or after the cancel is sent are refused, not played."""
    call = make_call(reply=REPLY, pace=2)
    call.take_turn()
    call.wait_playing()
    s = call.session
    assert call.tick() != SILENT
    response_id, item_id = s.response_id, s.playout._queue[0][0]  # the item now playing
    late = rt.AudioDelta(response_id, item_id, 0, REPLY[:48000])
    release = threading.Event()

    def before_cancel():  # holds the loop so this delta lands between clear() and the cancel
        release.wait(5)
        s._on_event(late)

    call.loop.call_soon_threadsafe(before_cancel)
    s.interrupt()
    release.set()
    call.loop.call_soon_threadsafe(s._on_event, late)  # after the cancel was queued
    call.wait_for("conversation.item.truncate")
    call.barrier()
    assert not s.playout.playing and s.playout.dropped_late >= 1
    assert all(s.next_frame() == SILENT for _ in range(50))
    assert s.playout.played_ms(item_id) == 20


def test_interrupt_before_anything_was_played_deletes_the_item(make_call):
    """interrupt() after the reply started arriving but before a sample was played sends cancel then item.delete."""
    call = make_call(reply=REPLY, pace=2)
    call.take_turn()
    call.wait_playing()
    call.session.interrupt()
    assert call.session.next_frame() == SILENT
    call.wait_for("conversation.item.delete")
    assert call.turn_events()[-2:] == ["response.cancel", "conversation.item.delete"]
    assert not call.sent("conversation.item.truncate")


def test_interrupt_while_idle_sends_nothing(make_call):
    """interrupt() with no response and nothing queued (before any turn, and after a reply finished) is a no-op."""
    call = make_call(reply=REPLY[:24000], pace=50)
    call.session.interrupt()
    call.barrier()
    assert call.turn_events() == []
    call.take_turn()
    call.wait_response_done()
    call.play_out()
    call.session.interrupt()
    call.barrier()
    assert call.turn_events() == ["input_audio_buffer.commit", "response.create"]
    assert call.session.barge_ins == 0


# -- barge-in by the caller's voice -------------------------------------------------------------

def test_caller_speech_pauses_at_onset_then_cancels_once_confirmed(make_call):
    """Speech over the reply pauses output at its first loud frame and, once confirmed, clears and cancels."""
    # the timing bounds below are the level trigger's (energy hold, min_speech_ms); the voice
    # trigger waits for a new sound's first 20 dB dip before cancelling (test_bargein_voice.py)
    call = make_call(reply=REPLY, pace=2, barge_in={"trigger": "level"})
    call.take_turn()
    call.wait_playing()
    s = call.session
    out, paused_at, cleared_at = [], None, None
    for i, frame in enumerate(frames_of(np.concatenate([quiet(200), HELLO]))):
        out.append(call.tick(frame))
        if paused_at is None and s.playout.paused:
            paused_at = i
        if not s.playout.playing:
            cleared_at = i
            break
    assert paused_at is not None and cleared_at is not None
    assert all(f != SILENT for f in out[:paused_at]), "the agent was audible until the onset"
    assert all(f == SILENT for f in out[paused_at:]), "output must stop on the very tick of the onset"
    # the pause comes at the first loud frame, up to ~150 ms before Silero's first speech chunk
    # (at most the 250 ms energy hold); SpeechStarted comes once the candidate spans
    # min_speech_ms from the start of that chunk, decided at a chunk's end
    confirm_ms = (cleared_at - paused_at) * 20
    assert 300 - 32 - 20 <= confirm_ms <= 250 + 300 + 32, confirm_ms
    (truncate,) = call.wait_for("conversation.item.truncate")
    assert call.turn_events()[-2:] == ["response.cancel", "conversation.item.truncate"]
    assert truncate["audio_end_ms"] == paused_at * 20 == s.playout.played_ms(truncate["item_id"])
    (barge_in,) = call.log_events("barge_in")
    assert barge_in["source"] == "local_vad" and barge_in["audio_end_ms"] == paused_at * 20
    for _ in range(10):
        assert call.tick() == SILENT


def test_a_cough_pauses_the_reply_then_resumes_it_without_losing_a_sample(make_call):
    """A 160 ms cough over the reply pauses it at onset, and on rejection playback resumes at the next sample."""
    call = make_call(reply=REPLY, pace=50)
    call.take_turn()
    call.wait_response_done()  # everything queued: any silence below is the pause, never an underrun
    s = call.session
    caller = frames_of(np.concatenate([quiet(300), COUGH]))
    kept, paused_ticks = [], 0
    while s.playout.playing:
        assert call.ticks < 2000, "the reply never finished playing"
        frame = call.tick(caller.pop(0) if caller else None)
        if s.playout.paused:
            paused_ticks += 1
            assert frame == SILENT
        else:
            kept.append(frame)
    # paused from the cough's first loud frame until Silero rejects it, or at most the energy
    # hold (250 ms) when Silero never sees an onset in it
    assert 1 <= paused_ticks <= 15, "the cough should pause the reply briefly"
    heard = b"".join(kept)
    assert heard[:len(REPLY_16K)] == REPLY_16K, "the reply did not resume exactly where it paused"
    assert heard[len(REPLY_16K):] == bytes(len(heard) - len(REPLY_16K))
    call.barrier()
    assert call.turn_events() == ["input_audio_buffer.commit", "response.create"] and s.barge_ins == 0


# -- DTMF turns ---------------------------------------------------------------------------------

def test_type_none_turns_are_ended_and_discarded_by_dtmf(make_call):
    """type none: silence ends nothing, '#' sends commit + response.create, '*' sends clear, other digits nothing."""
    call = make_call(reply=b"", turn={"type": "none"})
    call.feed(np.concatenate([quiet(300), HELLO, quiet(1500)]))
    call.session.on_dtmf("5")
    call.barrier()
    assert call.turn_events() == []
    call.session.on_dtmf("#")
    call.wait_for("response.create")
    assert call.turn_events() == ["input_audio_buffer.commit", "response.create"]
    call.session.on_dtmf("*")
    call.wait_for("input_audio_buffer.clear")
    for digit in "0179ABD":
        call.session.on_dtmf(digit)
    call.barrier()
    assert call.turn_events() == ["input_audio_buffer.commit", "response.create", "input_audio_buffer.clear"]
    assert [r["digit"] for r in call.log_events("dtmf")] == list("5#*0179ABD")


# -- send_silence: false ------------------------------------------------------------------------

def test_without_send_silence_only_the_padded_speech_goes_upstream(make_call):
    """send_silence false: silence sends nothing; a turn sends from prefix_padding_ms before it to its end."""
    call = make_call(reply=b"", realtime={"send_silence": False})
    call.feed(quiet(3000))
    call.barrier()
    assert call.sent("input_audio_buffer.append") == []
    call.feed(np.concatenate([GOODBYE, quiet(1000)]))
    call.wait_for("response.create")
    speech_ms = len(GOODBYE) * 1000 // RATE
    expected = speech_ms + 200 + 500  # prefix_padding_ms + silence_threshold_ms (the defaults)
    assert abs(call.appended_ms() - expected) <= 100, (call.appended_ms(), expected)
    # exactly: from the turn's audio_start (onset - prefix) to the tick that ended it
    (started,), (stopped,) = call.log_events("speech_started"), call.log_events("speech_stopped")
    span = stopped["audio_end_ms"] + 500 - started["audio_start_ms"]
    assert span - 20 <= call.appended_ms() <= span + 32 + 20, (call.appended_ms(), span)
    types = [e["type"] for e in call.sent()]
    assert "input_audio_buffer.append" not in types[types.index("input_audio_buffer.commit"):]
    sent = call.appended_ms()
    call.feed(quiet(1000))
    call.barrier()
    assert call.appended_ms() == sent, "audio went upstream after the turn ended"


def test_without_send_silence_a_rejected_cough_is_cleared_upstream(make_call):
    """send_silence false: a cough opens the gate at its onset, and its rejection sends input_audio_buffer.clear."""
    call = make_call(reply=b"", realtime={"send_silence": False})
    call.feed(np.concatenate([quiet(500), COUGH, quiet(500)]))
    call.barrier()
    assert call.turn_events() == ["input_audio_buffer.clear"]
    types = [e["type"] for e in call.sent()]
    assert "input_audio_buffer.append" in types[: types.index("input_audio_buffer.clear")]
    assert call.appended_ms() <= 160 + 200 + 100


def test_without_send_silence_switching_to_server_vad_streams_everything(make_call):
    """send_silence false gates only while silero decides: after a switch to server_vad the model hears all."""
    call = make_call(reply=b"", realtime={"send_silence": False})
    call.session.update_turn_detection({"type": "server_vad"})
    call.feed(np.concatenate([quiet(300), GOODBYE, quiet(1000)]))
    call.wait_log("response.created")  # the model's VAD heard the turn and answered
    call.barrier()
    assert call.appended_ms() >= 300 + len(GOODBYE) * 1000 // RATE + 1000 - 40
    assert call.turn_events() == [], "the bridge must neither commit nor clear the server's buffer"


def test_a_switch_away_from_silero_mid_candidate_never_clears_the_servers_buffer(make_call):
    """send_silence false: a candidate cut short by a switch to server_vad sends no input_audio_buffer.clear."""
    call = make_call(reply=b"", realtime={"send_silence": False})
    call.feed(quiet(500))
    for frame in frames_of(COUGH):
        call.feed(frame)
        if call.session.engine.state.value == "candidate":
            break
    assert call.session.engine.state.value == "candidate"
    call.session.update_turn_detection({"type": "server_vad"})
    call.feed(quiet(1000))
    call.barrier()
    assert call.turn_events() == []
    assert call.appended_ms() >= 1000 - 20, "after the switch every frame goes upstream"


def test_a_switch_to_server_vad_mid_turn_leaves_the_commit_to_the_server(make_call):
    """A turn in progress when the call switches to server_vad is not committed by the bridge when it ends."""
    call = make_call(reply=b"")
    call.feed(np.concatenate([quiet(300), GOODBYE]))
    assert call.session.engine.state.value in ("speaking", "trailing")
    call.session.update_turn_detection({"type": "server_vad"})
    call.feed(quiet(1000))
    call.barrier()
    assert call.session.engine.state.value == "idle"
    assert call.turn_events() == []


# -- a worker's calls scored together ------------------------------------------------------------

def test_calls_sharing_a_tick_batch_each_commit_their_own_turn(make_call, vad_model):
    """Two calls scored through one TickBatch (as a worker does) each commit their turn, as alone."""
    from sipbridge.turn.batch import TickBatch
    batch = TickBatch()
    a, b = make_call(reply=b"", vad_batch=batch), make_call(reply=b"", vad_batch=batch)
    one = np.concatenate([quiet(300), HELLO, quiet(800)])
    two = np.concatenate([quiet(900), GOODBYE, quiet(800)])
    n = min(len(one), len(two)) // FRAME * FRAME
    for i in range(0, n, FRAME):
        a.session.next_frame(), b.session.next_frame()   # the tick: agent frames out, then in
        a.feed(one[i:i + FRAME])
        b.feed(two[i:i + FRAME])
    for call in (a, b):
        call.wait_for("response.create")
        assert call.turn_events() == ["input_audio_buffer.commit", "response.create"]
    assert batch.rounds >= n // FRAME and batch.late_rounds <= 1
