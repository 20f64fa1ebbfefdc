"""With the provider's turn detection, its speech_started pauses the agent and only a confirmation clears.

The provider is played by the toy adapter of tests/unit/app/test_session_adapter.py (neutral events
in, neutral commands recorded); the test thread is the media clock.
"""

from __future__ import annotations

import numpy as np
import pytest

from sipbridge.realtime import providers
from sipbridge.realtime.events import (AudioDelta, ResponseCreated, ResponseDone, SpeechStarted,
                                       TurnDiscarded)
from tests.unit.app.harness import SessionHarness
from tests.unit.app.test_session_adapter import INSTANCES, SILENT, ToyModel, ToyUpstream, emit, wait


@pytest.fixture
def toy(loop, monkeypatch):
    monkeypatch.setitem(providers.ADAPTERS, "toy", ToyUpstream)
    INSTANCES.clear()
    harness = SessionHarness(loop, ToyModel(), turn={"type": "server_vad"},
                             realtime={"provider": "toy"})
    yield harness
    harness.close()


def ramp(ms: int, start: int = 0) -> bytes:
    """pcm16 at 24 kHz whose every sample says where in the answer it is (not silent)."""
    return (1000 + (np.arange(start * 24, (start + ms) * 24) % 20000)).astype("<i2").tobytes()


def answering(toy, rid="r1", item="i1", ms=1000):
    emit(toy, ResponseCreated(rid))
    emit(toy, AudioDelta(rid, item, 0, ramp(ms)))


def play(toy, frames: int) -> list[bytes]:
    return [toy.session.next_frame() for _ in range(frames)]


def test_a_noise_turn_pauses_then_resumes_exactly_where_it_paused(toy):
    """speech_started silences the next frame; the provider's discarded turn resumes the same answer where it paused."""
    answering(toy)
    before = play(toy, 10)
    emit(toy, SpeechStarted("u1", 2000))
    assert play(toy, 5) == [SILENT] * 5
    emit(toy, TurnDiscarded("u1"))
    after = play(toy, 10)
    up = INSTANCES[0]
    assert all(f != SILENT for f in after)
    # the 10 frames after the pause are the next 200 ms of the answer: nothing skipped, nothing cleared
    whole = play_reference(1000)
    assert b"".join(before + after) == whole[: len(b"".join(before + after))]
    assert not any(c[0] in ("cancel", "truncate") for c in up.commands)
    assert toy.wait_log("barge_in_resumed")["why"] == "server_discarded"


def play_reference(ms: int) -> bytes:
    """What the session's playout makes of ``ramp(ms)`` (the same downlink, played straight)."""
    from sipbridge.realtime.audio_format import by_name
    from sipbridge.realtime.transcode import Downlink
    return Downlink(by_name("pcm16"), 16000).process(ramp(ms))


def test_no_confirmation_within_the_resume_window_resumes(toy):
    """Without the provider's decision the answer resumes after barge_in.resume_window_ms of caller frames."""
    answering(toy)
    play(toy, 5)
    emit(toy, SpeechStarted("u1", 2000))
    for _ in range(39):                  # 780 ms of caller audio: still held
        toy.session.on_caller_frame(bytes(640))
        assert toy.session.next_frame() == SILENT
    toy.session.on_caller_frame(bytes(640))
    assert toy.session.next_frame() != SILENT
    assert toy.wait_log("barge_in_resumed")["why"] == "server_timeout"


def test_the_providers_own_cancel_clears_the_queued_answer(toy):
    """response.done cancelled by the provider (its barge-in) clears the paused answer for good: truncate at what was heard."""
    answering(toy)
    play(toy, 10)                        # 200 ms heard
    emit(toy, SpeechStarted("u1", 2000))
    emit(toy, ResponseDone("r1", "cancelled", "interrupted"))
    assert play(toy, 20) == [SILENT] * 20
    up = INSTANCES[0]
    wait(lambda: any(c[0] == "truncate" for c in up.commands))
    assert [c for c in up.commands if c[0] == "truncate"] == [("truncate", "i1", 200)]
    assert not any(c[0] == "cancel" and c[1] is not None for c in up.commands)  # already cancelled
    assert toy.wait_log("barge_in")["source"] == "server_vad"


def test_a_new_response_confirms_and_only_its_audio_plays(toy):
    """A new response.created during the pause drops the old answer's queued audio; the new answer plays."""
    answering(toy, ms=2000)
    play(toy, 10)
    emit(toy, SpeechStarted("u1", 2000))
    emit(toy, ResponseCreated("r2"))
    emit(toy, AudioDelta("r1", "i1", 0, ramp(200, 2000)))   # the old one, late
    emit(toy, AudioDelta("r2", "i2", 0, np.full(24 * 200, -3000, "<i2").tobytes()))
    frames = play(toy, 10)
    assert all(np.all(np.frombuffer(f, "<i2")[40:] < 0) for f in frames[1:]), "old audio played"
    up = INSTANCES[0]
    wait(lambda: any(c[0] == "truncate" for c in up.commands))
    assert ("cancel", "r2") not in up.commands
    assert ("cancel", "r1") in up.commands    # still generating: told to stop
