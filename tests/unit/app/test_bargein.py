"""The barge-in policy: pause first, cancel on confirmation, resume when it was nothing."""

from sipbridge.bargein import Action, BargeInPolicy
from sipbridge.turn.events import SpeechOnset, SpeechRejected, SpeechStarted

MS = 16  # samples per ms at 16 kHz


def onset(at):
    return SpeechOnset(audio_start_ms=0, audio_start_sample=0, at_sample=at)


def test_loud_frame_over_the_agent_pauses_then_confirmed_speech_cancels():
    """A loud caller frame while the agent talks pauses it; SpeechStarted then cancels."""
    p = BargeInPolicy()
    assert p.on_frame(320, -20.0, False, agent_talking=True).action is Action.PAUSE
    assert p.on_turn(onset(640), agent_talking=True) is None
    d = p.on_turn(SpeechStarted(0, 0, 5000), agent_talking=True)
    assert (d.action, d.source) == (Action.CANCEL, "local_vad")


def test_a_pause_says_what_paused_it():
    """The evidence logged with a pause is the pausing frame's level and its height over the line's noise floor."""
    p = BargeInPolicy()
    for k in range(50):
        p.on_frame(320 * (k + 1), -60.0, False, agent_talking=False)
    assert p.on_frame(320 * 51, -20.0, False, agent_talking=True).action is Action.PAUSE
    evidence = p.evidence()
    assert evidence["level_dbfs"] == -20.0 and 38.0 <= evidence["over_floor_db"] <= 45.0   # (floor ~-62)


def test_nothing_happens_while_the_agent_is_silent_or_for_echo_or_quiet_frames():
    """No pause when the agent is silent, when the frame is judged echo, or when it is under the margin."""
    p = BargeInPolicy(floor_dbfs=-45.0)
    assert p.on_frame(320, -10.0, False, agent_talking=False) is None
    assert p.on_frame(640, -10.0, True, agent_talking=True) is None
    assert p.on_frame(960, -36.0, False, agent_talking=True) is None
    assert p.on_turn(onset(1000), agent_talking=False) is None


def test_energy_pause_without_a_speech_onset_resumes_after_the_hold():
    """An energy pause that Silero never confirms as an onset resumes after energy_hold_ms."""
    p = BargeInPolicy(energy_hold_ms=160)
    p.on_frame(320, -20.0, False, True)
    assert p.on_frame(320 + 150 * MS, -60.0, False, True) is None
    d = p.on_frame(320 + 160 * MS, -60.0, False, True)
    assert (d.action, d.source) == (Action.RESUME, "no_speech")


def test_rejected_candidate_resumes_and_onset_pause_waits_for_the_verdict():
    """A Silero onset pause waits past the energy hold for Started or Rejected; Rejected resumes."""
    p = BargeInPolicy(energy_hold_ms=160, resume_window_ms=800)
    assert p.on_turn(onset(1000), agent_talking=True).action is Action.PAUSE
    assert p.on_frame(1000 + 300 * MS, -60.0, False, True) is None   # past the energy hold
    d = p.on_turn(SpeechRejected(0, 0, 1000 + 320 * MS), agent_talking=True)
    assert (d.action, d.source) == (Action.RESUME, "rejected")


def test_a_pause_never_outlives_the_resume_window():
    """A paused candidate with no verdict resumes after resume_window_ms."""
    p = BargeInPolicy(resume_window_ms=500)
    p.on_turn(onset(0), agent_talking=True)
    assert p.on_frame(499 * MS, -20.0, False, True) is None
    assert p.on_frame(500 * MS, -20.0, False, True).source == "timeout"


def test_dtmf_cancels_only_while_the_agent_talks_and_only_when_enabled():
    """A digit over the agent cancels it; while idle, or with dtmf off, nothing."""
    assert BargeInPolicy().on_dtmf(100, agent_talking=True).source == "dtmf"
    assert BargeInPolicy().on_dtmf(100, agent_talking=False) is None
    assert BargeInPolicy(dtmf=False).on_dtmf(100, agent_talking=True) is None


def test_disabled_policy_never_acts():
    """With barge-in disabled the agent is never paused or cancelled by the caller."""
    p = BargeInPolicy(enabled=False)
    assert p.on_frame(320, 0.0, False, True) is None
    assert p.on_turn(SpeechStarted(0, 0, 5000), agent_talking=True) is None


def test_steady_line_noise_raises_the_trigger_so_it_never_pauses_the_agent():
    """After seconds of -38 dBFS line noise, the same noise over the agent does not pause it; speech does."""
    p = BargeInPolicy(floor_dbfs=-45.0)
    for i in range(150):                      # 3 s of noise before the agent talks
        p.on_frame(320 * (i + 1), -38.0, False, agent_talking=False)
    for i in range(150, 200):
        assert p.on_frame(320 * (i + 1), -38.0, False, agent_talking=True) is None
    assert p.on_frame(320 * 201, -18.0, False, agent_talking=True).action is Action.PAUSE


def test_a_rejected_candidate_while_the_caller_is_still_loud_waits_for_quiet_before_resuming():
    """Rejection mid-word does not resume at once: the caller must be quiet for a moment, or speak on."""
    p = BargeInPolicy(quiet_before_resume_ms=120)
    assert p.on_frame(320, -20.0, False, True).action is Action.PAUSE
    p.on_turn(onset(640), agent_talking=True)
    p.on_frame(960, -20.0, False, True)                      # still loud
    assert p.on_turn(SpeechRejected(0, 0, 960), agent_talking=True) is None
    assert p.on_frame(1280, -60.0, False, True) is None      # quiet for 20 ms only
    p.on_turn(onset(1600), agent_talking=True)               # the word goes on: stay paused
    assert p.on_frame(960 + 200 * MS, -60.0, False, True) is None
    q = BargeInPolicy(quiet_before_resume_ms=120)
    q.on_frame(320, -20.0, False, True)
    q.on_turn(onset(640), agent_talking=True)
    q.on_turn(SpeechRejected(0, 0, 960), agent_talking=True)
    assert q.on_frame(320 + 100 * MS, -60.0, False, True) is None   # 100 ms after the last loud frame
    assert q.on_frame(320 + 120 * MS, -60.0, False, True).source == "rejected"


def test_after_a_false_alarm_loudness_alone_does_not_pause_again_for_a_second():
    """Music that paused the agent once (no speech followed) cannot pause it again for 4 energy holds."""
    p = BargeInPolicy(energy_hold_ms=250)
    p.on_frame(320, -20.0, False, True)
    resumed = p.on_frame(320 + 250 * MS, -20.0, False, True)
    assert resumed.source == "no_speech"
    assert p.on_frame(320 + 500 * MS, -20.0, False, True) is None
    assert p.on_turn(onset(320 + 520 * MS), agent_talking=True).action is Action.PAUSE  # speech still does
    q = BargeInPolicy(energy_hold_ms=250)
    q.on_frame(320, -20.0, False, True)
    q.on_frame(320 + 250 * MS, -20.0, False, True)
    assert q.on_frame(320 + 1250 * MS, -20.0, False, True).action is Action.PAUSE


def test_an_energy_pause_holds_past_the_hold_while_the_caller_is_loud_and_silero_doubts():
    """A loud caller whom Silero scores 0.2+ (but not yet 0.5) keeps the agent paused past the hold."""
    p = BargeInPolicy(energy_hold_ms=250, quiet_before_resume_ms=200)
    assert p.on_frame(320, -15.0, False, True).action is Action.PAUSE
    p.on_prob(0.14)
    p.on_prob(0.44)                                        # "thank you" opens like this
    for t in range(1, 20):                                 # 380 ms more of loud speech
        assert p.on_frame(320 + 20 * t * MS, -18.0, False, True) is None
    assert p.on_turn(onset(320 + 400 * MS), agent_talking=True) is None   # then Silero is sure
    d = p.on_turn(SpeechStarted(0, 0, 320 + 500 * MS), agent_talking=True)
    assert d.action is Action.CANCEL


def test_a_doubted_energy_pause_resumes_once_the_caller_is_quiet():
    """The extended hold ends as soon as the caller has been quiet for quiet_before_resume_ms."""
    p = BargeInPolicy(energy_hold_ms=250, quiet_before_resume_ms=200)
    p.on_frame(320, -15.0, False, True)
    p.on_prob(0.3)
    assert p.on_frame(320 + 260 * MS, -18.0, False, True) is None      # loud at the hold: stays
    assert p.on_frame(320 + 440 * MS, -60.0, False, True) is None      # quiet 180 ms
    d = p.on_frame(320 + 460 * MS, -60.0, False, True)                 # quiet 200 ms
    assert (d.action, d.source) == (Action.RESUME, "no_speech")


def test_music_that_silero_scores_low_resumes_at_the_hold_although_it_stays_loud():
    """A loud sound Silero never scores 0.2 (music, noise) resumes after energy_hold_ms as before."""
    p = BargeInPolicy(energy_hold_ms=250)
    p.on_frame(320, -25.0, False, True)
    p.on_prob(0.05)
    p.on_prob(0.12)
    d = p.on_frame(320 + 250 * MS, -25.0, False, True)
    assert (d.action, d.source) == (Action.RESUME, "no_speech")


def test_a_stop_consonant_gap_does_not_resume_a_rejected_candidate():
    """By default the caller must be quiet 200 ms before a rejected candidate resumes the agent."""
    p = BargeInPolicy()
    p.on_frame(320, -15.0, False, True)
    p.on_turn(onset(640), agent_talking=True)
    p.on_turn(SpeechRejected(0, 0, 960), agent_talking=True)
    assert p.on_frame(320 + 160 * MS, -60.0, False, True) is None      # the gap in "ac-ti-vated"
    assert p.on_frame(320 + 200 * MS, -60.0, False, True).source == "rejected"


def test_probabilities_before_a_pause_do_not_extend_it():
    """Silero scores seen while not paused are forgotten: only those since the pause count."""
    p = BargeInPolicy(energy_hold_ms=250)
    p.on_prob(0.9)
    p.on_frame(320, -25.0, False, True)
    assert p.on_frame(320 + 250 * MS, -25.0, False, True).source == "no_speech"
