"""A provider that clears the playout itself (a Media Streams bot): the session's held pause.

A confirmed local barge-in only pauses the line and waits ``clear_wait_ms`` for the provider's
clear; when none comes the agent resumes and the rest of *that* caller turn pauses it no more.
``ClearingToy`` is a made-up adapter with ``provider_clears`` (registered for the test as
``clearing_toy``); the test plays the media clock with Asterisk's prompts judged by the real
Silero model, and the provider's side by handing the session neutral events.
"""

from __future__ import annotations

import numpy as np
import pytest

from sipbridge.realtime import providers
from sipbridge.realtime.events import AudioDelta, ResponseCreated
from sipbridge.realtime.upstream import Capabilities
from tests.unit.app.harness import SessionHarness
from tests.unit.app.test_session import FRAME, HELLO, SILENT, frames_of, quiet
from tests.unit.app.test_session_adapter import ToyModel, ToyUpstream, wait

CLEAR_WAIT_MS = 300


class ClearingToy(ToyUpstream):
    """ToyUpstream whose provider decides interruptions and clears the playout itself."""

    capabilities = Capabilities(local_turns=False, server_turns=True, truncate=False,
                                server_cancels_on_speech=True, audio_formats=("pcm16",),
                                provider_clears=True)
    clear_wait_ms = CLEAR_WAIT_MS


@pytest.fixture
def held(loop, vad_model, monkeypatch):
    monkeypatch.setitem(providers.ADAPTERS, "clearing_toy", ClearingToy)
    harness = SessionHarness(loop, ToyModel(), vad_model=vad_model,
                             realtime={"provider": "clearing_toy", "greeting": None})
    yield harness
    harness.close()


def say(session, pcm: np.ndarray) -> list[bytes]:
    """Play ``pcm`` as the caller, one tick at a time; returns the agent's frames of those ticks."""
    out = []
    for frame in frames_of(pcm):
        session.on_caller_frame(frame.astype("<i2").tobytes())
        out.append(session.next_frame())
    return out


def test_a_kept_talking_hold_that_outlives_its_turn_does_not_swallow_the_next_turns_pause(held):
    """The caller's turn ends (speech_stopped) before the provider's clear wait runs out: after the
    agent resumes, the caller's next sentence over it pauses it again and is held again."""
    s = held.session
    held.on_loop(s.client.on_event, ResponseCreated("r1"))
    held.on_loop(s.client.on_event, AudioDelta("r1", "i1", 0, (np.full(24 * 20000, 4000, "<i2")).tobytes()))
    wait(lambda: s.playout.playing)
    assert SILENT not in say(s, quiet(300))
    say(s, HELLO)                                       # over the agent: paused, confirmed, held
    held.wait_log("barge_in_held")
    say(s, quiet(700))                                  # the turn ends before the wait does
    held.wait_log("speech_stopped")
    assert held.log_events("barge_in_resumed") == []    # (the wait still runs)
    held.wait_log("barge_in_resumed", why="provider_kept_talking")
    assert SILENT not in say(s, quiet(100))             # the agent talks again
    again = say(s, HELLO)                               # a new turn over it
    silent = again.count(SILENT)
    assert silent >= len(again) - 10, f"the caller's next sentence paused the agent for {silent} of {len(again)} frames"
    wait(lambda: len(held.log_events("barge_in_held")) == 2)
    assert len(held.log_events("speech_started")) == 2
