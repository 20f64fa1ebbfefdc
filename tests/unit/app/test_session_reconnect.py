"""CallSession when the model's socket fails mid-call: reconnect, restore, or hang up after the limit.

No pjsua2 here. The model is the embedded echo server wrapped by
``tests.support.flaky_upstream.flaky_model`` on an asyncio loop in a thread (as in the worker),
which the test breaks on command (drop sockets, close with a code, inject an ``error``, refuse
upgrades). Every client event it receives is recorded with ``_conn``, the connection number.
The test thread plays the media clock (``on_caller_frame`` / ``next_frame``).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from sipbridge.realtime.prompt import PROMPT_ITEM
from tests.support import audio
from tests.support.flaky_upstream import flaky_model
from tests.unit.app.harness import SessionHarness

FRAME = 320  # 20 ms at 16 kHz
FAST = {"reconnect_attempts": 3, "reconnect_backoff_min_ms": 20, "reconnect_backoff_max_ms": 40}
TONE = audio.sine(300, 400, -15.0, rate=16000)  # 400 ms of caller "speech"


class Call(SessionHarness):
    """One CallSession (no VAD model: turns are committed by the test) against a flaky model."""

    def __init__(self, loop, *, realtime=None, turn=None, reply: bytes | None = None, pace: float = 50.0):
        self.record: list[dict] = []
        super().__init__(loop, flaky_model(self.record.append, reply_pcm=reply, pace=pace), call_id="call-r",
                         realtime={**FAST, **(realtime or {})}, turn=turn)

    def command(self, line: str) -> int:
        return self.run(self.model.command(line))

    def sent(self, etype: str, conn: int | None = None) -> list[dict]:
        return [e for e in list(self.record) if e.get("type") == etype and (conn is None or e["_conn"] == conn)]

    def wait_sent(self, etype: str, conn: int, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while not (found := self.sent(etype, conn)):
            assert time.monotonic() < deadline, f"connection {conn} never received {etype}"
            time.sleep(0.002)
        return found

    def speak_and_commit(self) -> None:
        """The caller's tone goes upstream and the turn is committed (as silero would at its end)."""
        for i in range(0, len(TONE), FRAME):
            self.session.on_caller_frame(TONE[i:i + FRAME].tobytes())
        self.session.flush_audio()
        self.loop.call_soon_threadsafe(self.session._commit_turn)


@pytest.fixture
def call_factory(loop):
    calls = []

    def make(**kw) -> Call:
        calls.append(Call(loop, **kw))
        return calls[-1]
    yield make
    for c in calls:
        c.close()


def test_drop_reconnects_with_the_same_session_and_audio_goes_to_the_new_socket(call_factory):
    """After an abrupt drop the session reconnects, sends the same session.update, and the caller's
    next words reach the new connection only."""
    call = call_factory()
    first = call.wait_sent("session.update", 1)[0]
    old_client = call.session.client
    assert call.command("drop") == 1
    lost = call.wait_log("upstream_lost")
    assert lost["code"] == 1006
    restored = call.wait_log("upstream_restored")
    assert restored["attempt"] == 1 and restored["outage_ms"] >= 20
    first_try = call.log_events("upstream_reconnecting")[0]
    assert (first_try["attempt"], first_try["delay_ms"]) == (1, 20)
    again = call.wait_sent("session.update", 2)[0]
    assert again["session"] == first["session"]
    assert call.session.client is not old_client and call.ended == []
    appends_before = len(call.sent("input_audio_buffer.append", 1))
    call.speak_and_commit()
    call.wait_sent("input_audio_buffer.commit", 2)
    assert call.sent("input_audio_buffer.append", 2)
    assert len(call.sent("input_audio_buffer.append", 1)) == appends_before, "audio went to the old socket"


def test_per_call_turn_detection_is_restored(call_factory):
    """A turn-detection update made during the call is part of the session.update after a reconnect."""
    call = call_factory()
    call.session.update_turn_detection({"type": "server_vad", "threshold": 0.7, "silence_threshold_ms": 650})
    deadline = time.monotonic() + 5
    while len(call.sent("session.update", 1)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    current = call.sent("session.update", 1)[-1]["session"]
    assert current["audio"]["input"]["turn_detection"]["threshold"] == 0.7
    call.command("drop")
    assert call.wait_sent("session.update", 2)[0]["session"] == current


def test_update_during_the_outage_reaches_the_new_session(call_factory):
    """Settings changed while the model is unreachable are in force on the new connection."""
    call = call_factory(realtime={"reconnect_attempts": 20, "reconnect_backoff_min_ms": 30,
                                  "reconnect_backoff_max_ms": 30})
    call.command("refuse -1")
    call.command("drop")
    call.wait_log("upstream_reconnect_failed")
    call.session.update_turn_detection({"type": "server_vad", "threshold": 0.8})
    call.command("accept")
    call.wait_sent("session.update", 2)
    call.wait_log("upstream_restored")
    time.sleep(0.1)  # a re-send, if one was due, has been written by now
    td = call.sent("session.update", 2)[-1]["session"]["audio"]["input"]["turn_detection"]
    assert td["type"] == "server_vad" and td["threshold"] == 0.8


def test_in_flight_response_is_cancelled_and_the_next_one_plays(call_factory):
    """A drop while the agent talks clears its audio (generation bumped, logged as a cut), and a
    response of the new session, even one reusing the old response id, plays normally."""
    reply = audio.sine(500, 3000, -12.0, rate=24000).astype("<i2").tobytes()
    call = call_factory(reply=reply, pace=1.0)
    call.speak_and_commit()
    deadline = time.monotonic() + 5
    while call.session.playout.queued_ms < 100:
        assert time.monotonic() < deadline, "no reply audio arrived"
        time.sleep(0.002)
    old_response = call.session.response_id
    generation = call.session.playout.generation
    call.command("drop")
    call.wait_log("upstream_restored")
    cut = [r for r in call.log_events("barge_in") if r["source"] == "upstream_lost"]
    assert cut and cut[0]["response_id"] == old_response and cut[0]["dropped_ms"] > 0
    assert call.session.playout.generation > generation
    assert call.session.playout.queued_ms == 0 and call.session.next_frame() == bytes(2 * FRAME)
    assert call.session.response_id is None
    call.speak_and_commit()
    call.wait_sent("response.create", 2)
    deadline = time.monotonic() + 5
    while call.session.playout.queued_ms < 100:
        assert time.monotonic() < deadline, "the new session's reply never reached the playout"
        time.sleep(0.002)
    assert call.session.response_id == old_response, "the echo server restarts its ids per connection"
    assert audio.dbfs(np.frombuffer(call.session.next_frame(), "<i2")) > -20


def test_prompt_is_played_once_per_outage(call_factory, tmp_path):
    """With reconnect_prompt set, the caller's playout gets the prompt once when the socket drops."""
    tone = audio.sine(1000, 300, -12.0, rate=16000)
    path = audio.write_wav(tmp_path / "prompt.wav", tone, rate=16000)
    call = call_factory(realtime={"reconnect_prompt": str(path), "reconnect_attempts": 4})
    call.command("refuse 2")
    call.command("drop")
    call.wait_log("upstream_restored")
    assert len(call.log_events("upstream_reconnect_failed")) == 2
    assert call.session.playout.queued_ms == 300, "the prompt was queued more or less than once"
    played = b"".join(call.session.next_frame() for _ in range(15))
    assert played == tone.astype("<i2").tobytes()
    assert call.session.next_frame() == bytes(2 * FRAME)
    assert not [r for r in call.log_events("barge_in") if r.get("item_id") == PROMPT_ITEM]


def test_gives_up_after_the_limit_and_ends_the_call(call_factory):
    """When every reconnect fails, the session logs each try, gives up and asks for the hang-up."""
    call = call_factory()
    call.command("refuse -1")
    call.command("drop")
    gave_up = call.wait_log("upstream_gave_up")
    assert gave_up["attempts"] == 3
    assert [r["attempt"] for r in call.log_events("upstream_reconnecting")] == [1, 2, 3]
    d1, d2, d3 = (r["delay_ms"] for r in call.log_events("upstream_reconnecting"))
    assert d1 == 20 and 30 <= d2 <= 40 and 30 <= d3 <= 40, "capped exponential, up to 25 % jitter"
    assert all(r["status"] == 503 for r in call.log_events("upstream_reconnect_failed"))
    deadline = time.monotonic() + 2
    while not call.ended:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    assert call.ended == ["upstream_lost"]


def test_zero_attempts_hangs_up_at_once(call_factory):
    """reconnect_attempts 0 ends the call right after the drop, without a reconnect."""
    call = call_factory(realtime={"reconnect_attempts": 0})
    call.command("drop")
    call.wait_log("upstream_gave_up")
    assert call.log_events("upstream_reconnecting") == []
    deadline = time.monotonic() + 2
    while not call.ended:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    assert call.ended == ["upstream_lost"] and call.model.accepted == 1


@pytest.mark.parametrize("code,reconnects", [(1000, False), (1001, True), (1011, True), (4000, True)])
def test_close_code_decides(call_factory, code, reconnects):
    """A close with 1000 ends the call (upstream_closed); 1001, 1011 or any other code reconnects."""
    call = call_factory()
    call.command(f"close {code}")
    if reconnects:
        call.wait_log("upstream_restored")
        assert call.wait_log("upstream_lost")["code"] == code and call.ended == []
    else:
        call.wait_log("upstream_closed")
        deadline = time.monotonic() + 2
        while not call.ended:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        assert call.ended == ["upstream_closed"] and call.log_events("upstream_lost") == []


def test_fatal_error_event_reconnects_and_an_ordinary_one_does_not(call_factory):
    """An error whose code ends the server session triggers a reconnect; a request error does not."""
    call = call_factory()
    call.command("error response_cancel_not_active")
    call.wait_log("upstream_error")
    time.sleep(0.2)
    assert call.log_events("upstream_lost") == [] and call.model.accepted == 1
    call.command("error session_expired")
    assert "session_expired" in call.wait_log("upstream_lost")["reason"]
    call.wait_log("upstream_restored")
    assert call.ended == [] and call.model.accepted == 2


def test_a_server_error_with_a_null_code_reconnects_by_its_type(call_factory):
    """error.type server_error with code null (as the real server sends it) drops the session and reconnects."""
    call = call_factory()
    call.command("error null server_error")
    lost = call.wait_log("upstream_lost")
    assert "server_error" in lost["reason"]
    call.wait_log("upstream_restored")
    assert call.log_events("upstream_error")[0]["type"] == "server_error"
    assert call.ended == [] and call.model.accepted == 2


def test_hang_up_during_the_outage_stops_retrying(call_factory):
    """Closing the session (the caller hung up) while reconnecting ends the retries silently."""
    call = call_factory(realtime={"reconnect_attempts": 50, "reconnect_backoff_min_ms": 30,
                                  "reconnect_backoff_max_ms": 30})
    call.command("refuse -1")
    call.command("drop")
    call.wait_log("upstream_reconnect_failed")
    call.run(call.session.close())
    tries = len(call.log_events("upstream_reconnecting"))
    time.sleep(0.3)
    assert len(call.log_events("upstream_reconnecting")) == tries
    assert call.ended == [] and call.log_events("upstream_gave_up") == []
