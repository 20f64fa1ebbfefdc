"""The barge-in policy with the provider's turn detection: its speech_started pauses, a confirmation cancels, a discarded turn resumes."""

import pytest

from sipbridge.bargein import Action, BargeInPolicy
from sipbridge.bargein_voice import VoiceBargeInPolicy
from sipbridge.turn.events import SpeechRejected, SpeechStarted

F = 320      # one 20 ms frame at 16 kHz

# both pause triggers hold for the provider the same way (sipbridge/bargein_server.py)
pytestmark = pytest.mark.parametrize("Policy", [BargeInPolicy, VoiceBargeInPolicy])


def quiet(p, start=0, frames=50, talking=True):
    """Quiet frames (-60 dBFS); returns the end sample and the decisions taken."""
    t, out = start, []
    for _ in range(frames):
        t += F
        d = p.on_frame(t, -60.0, False, talking, voicing=0.2)
        if d is not None:
            out.append(d)
    return t, out


def held(p):
    t = quiet(p)[0]
    d = p.on_server_speech(t, agent_talking=True)
    assert (d.action, d.source) == (Action.PAUSE, "server_vad")
    return t


def test_server_speech_started_pauses_and_does_not_cancel(Policy):
    """The provider's speech_started over the agent pauses it (a pause, never a cancel)."""
    p = Policy()
    held(p)
    assert p.paused_at is not None and p.server_at is not None


def test_server_speech_while_the_agent_is_silent_does_nothing(Policy):
    """With nothing playing and no pause, the provider's speech_started changes nothing."""
    p = Policy()
    t = quiet(p, talking=False)[0]
    assert p.on_server_speech(t, agent_talking=False) is None and p.paused_at is None


def test_a_discarded_server_turn_resumes_the_answer(Policy):
    """The provider's incomplete (noise) turn resumes the paused answer."""
    p = Policy()
    t = held(p)
    t, out = quiet(p, t, frames=10)          # 200 ms: inside the window, nothing yet
    assert out == []
    d = p.on_server_discard(t)
    assert (d.action, d.source) == (Action.RESUME, "server_discarded")
    assert p.paused_at is None and p.server_at is None


def test_no_confirmation_within_the_resume_window_resumes(Policy):
    """Without a confirmation the pause ends after resume_window_ms (no dead air)."""
    p = Policy(resume_window_ms=800)
    t = held(p)
    t2, out = quiet(p, t, frames=45)
    assert [(d.action, d.source) for d in out] == [(Action.RESUME, "server_timeout")]
    assert out[0].at_sample - t == 800 * 16


def test_local_rejections_and_quiet_do_not_resume_a_server_pause_early(Policy):
    """While the provider's pause holds, Silero's rejection and a quiet line do not resume it."""
    p = Policy(resume_window_ms=800)
    t = held(p)
    assert p.on_turn(SpeechRejected(0, 0, t + F), agent_talking=True) is None
    t, out = quiet(p, t, frames=30)          # 600 ms quiet: the local policy alone would resume
    assert out == [] and p.paused_at is not None


def test_the_servers_own_cancel_confirms(Policy):
    """The provider cancelling its response (or creating a new one) cancels the paused answer."""
    p = Policy()
    t = held(p)
    d = p.on_server_confirm(t + 5 * F, agent_talking=False)
    assert (d.action, d.source) == (Action.CANCEL, "server_vad")
    assert p.paused_at is None and p.server_at is None


def test_a_server_confirmation_with_nothing_playing_or_paused_does_nothing(Policy):
    """A confirmation when the agent is neither talking nor paused changes nothing."""
    p = Policy()
    assert p.on_server_confirm(100, agent_talking=False) is None


def test_local_confirmed_speech_confirms_a_server_pause(Policy):
    """Silero's confirmed speech during the provider's pause cancels (the local detector confirms)."""
    p = Policy()
    t = held(p)
    if Policy is VoiceBargeInPolicy:  # its turns cancel only with a foreground voice in them
        p.fg.frame(t, -60.0, None, 0.2)
        p.turn_voice_samples = F  # a foreground voice heard in Silero's candidate
    d = p.on_turn(SpeechStarted(0, 0, t + 15 * F), agent_talking=True)
    assert (d.action, d.source) == (Action.CANCEL, "local_vad")


def test_a_server_pause_over_a_local_pause_holds_it(Policy):
    """A speech_started while the local detector has paused keeps the pause and takes it over."""
    p = Policy()
    t = quiet(p)[0]
    p._pause("energy", t)
    assert p.on_server_speech(t + F, agent_talking=True) is None
    t, out = quiet(p, t, frames=20)          # the energy pause would have resumed after 80 ms
    assert out == [] and p.paused_at is not None
    d = p.on_server_discard(t)
    assert d.action is Action.RESUME


def test_barge_in_disabled_ignores_the_server_speech_but_not_its_cancel(Policy):
    """barge_in.enabled false: no pause on speech_started, yet the provider's own cancel still clears."""
    p = Policy(enabled=False)
    assert p.on_server_speech(100, agent_talking=True) is None
    d = p.on_server_confirm(200, agent_talking=True)
    assert d.action is Action.CANCEL


def test_a_caller_still_talking_keeps_the_server_pause_past_the_window(Policy):
    """Active caller frames keep the provider's pause (it confirms only with its answer); quiet then resumes."""
    p = Policy(resume_window_ms=800)
    t = held(p)
    for _ in range(75):                      # 1.5 s of a loud caller: beyond the window
        t += F
        assert p.on_frame(t, -20.0, False, True, voicing=0.2) is None
    t2, out = quiet(p, t, frames=39)
    assert out == []
    t2, out = quiet(p, t2, frames=1)
    assert [(d.action, d.source) for d in out] == [(Action.RESUME, "server_timeout")]


def test_the_servers_speech_stopped_restarts_the_window(Policy):
    """The provider ending the turn restarts the window: its answer has resume_window_ms to arrive."""
    p = Policy(resume_window_ms=800)
    t = held(p)
    t, out = quiet(p, t, frames=30)
    p.on_server_speech_stopped(t)
    t, out = quiet(p, t, frames=39)
    assert out == [] and p.paused_at is not None
    d = p.on_server_confirm(t, agent_talking=False)
    assert d.action is Action.CANCEL
