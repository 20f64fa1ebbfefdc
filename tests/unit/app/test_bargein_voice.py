"""The barge-in policy: pause first for a voice, cancel on confirmation, resume when it was nothing."""

import numpy as np

from sipbridge.bargein import Action
from sipbridge.bargein_voice import VoiceBargeInPolicy as BargeInPolicy
from sipbridge.media.noisefloor import frame_power_dbfs
from sipbridge.turn.events import SpeechOnset, SpeechRejected, SpeechStarted, SpeechStopped

MS = 16      # samples per ms at 16 kHz
F = 320      # one 20 ms frame
VOICED, UNVOICED = 0.9, 0.2
BABBLE = 0.6  # a TV's four or five distant talkers at once: voiced, never as periodic as one


def onset(at):
    return SpeechOnset(audio_start_ms=0, audio_start_sample=0, at_sample=at)


def started(at):
    return SpeechStarted(0, 0, at)


def stopped(at):
    return SpeechStopped(audio_end_ms=0, audio_end_sample=0, at_sample=at)


def line(p, levels, start=0, talking=True, voicing=UNVOICED, prob=0.0):
    """Feed frames at ``levels`` (Silero scoring ``prob``); returns the last end sample and decisions."""
    t, decisions = start, []
    for level in levels:
        t += F
        p.on_prob(prob)
        d = p.on_frame(t, float(level), False, talking, voicing=voicing)
        if d is not None:
            decisions.append(d)
    return t, decisions


def quiet(p, seconds=1.0, talking=True):
    """A quiet line (-60 dBFS) the policy has learnt; returns the end sample."""
    return line(p, [-60.0] * int(seconds * 50), talking=talking)[0]


def music(seconds, center=-25.0, seed=0):
    n = int(seconds * 50)
    return center + 4.0 * np.sin(np.arange(n) / 5.0) + np.random.default_rng(seed).normal(0, 1.0, n)


def test_a_voiced_frame_far_over_a_quiet_line_pauses_then_confirmed_speech_cancels():
    """On a quiet line the first voiced loud frame pauses the agent; SpeechStarted after a gap between words cancels."""
    p = BargeInPolicy()
    t = quiet(p)
    d = p.on_frame(t + F, -20.0, False, True, voicing=VOICED)
    assert (d.action, d.source) == (Action.PAUSE, "energy")
    p.on_prob(0.9)
    assert p.on_turn(onset(t + 2 * F), agent_talking=True) is None
    line(p, [-20.0] * 3 + [-45.0] + [-20.0] * 5, t + F, voicing=VOICED, prob=0.9)
    d = p.on_turn(started(t + 10 * F), agent_talking=True)
    assert (d.action, d.source) == (Action.CANCEL, "local_vad")


def test_a_confirmed_new_sound_on_a_quiet_line_cancels_only_at_its_first_gap():
    """Silero confirming a new sound on a quiet line keeps the agent paused and cancels at the first frame 20 dB under its peak."""
    p = BargeInPolicy()
    t = quiet(p)
    assert p.on_frame(t + F, -20.0, False, True, voicing=VOICED).action is Action.PAUSE
    p.on_turn(onset(t + 2 * F), agent_talking=True)
    t, decisions = line(p, [-20.0, -18.0, -22.0] * 3, t + F, voicing=VOICED, prob=0.9)
    assert decisions == []
    assert p.on_turn(started(t), agent_talking=True) is None       # no gap yet: not a cancel
    t, decisions = line(p, [-24.0, -30.0, -37.0], t, voicing=VOICED, prob=0.9)
    assert decisions == []                                          # 19 dB under the peak
    t, decisions = line(p, [-39.0], t, voicing=UNVOICED, prob=0.9)
    assert [(d.action, d.source, d.at_sample) for d in decisions] == [(Action.CANCEL, "local_vad", t)]


def confirmed_new_sound(level_dbfs, voicing):
    """A new sound on a quiet line at ``level_dbfs`` (periodic ``voicing``) pauses the agent and
    Silero confirms it 300 ms in, with no dip yet: (policy, end sample, the pause's sample)."""
    p = BargeInPolicy(steady_ms=1200)
    t = quiet(p)
    paused = t + F
    assert p.on_frame(paused, level_dbfs, False, True, voicing=voicing).action is Action.PAUSE
    p.on_prob(0.9)
    p.on_turn(onset(t + 2 * F), agent_talking=True)
    t, decisions = line(p, music(0.3, level_dbfs, seed=1), paused, voicing=voicing, prob=0.9)
    assert decisions == [] and p.on_turn(started(t), agent_talking=True) is None
    return p, t, paused


def test_a_confirmed_sound_that_never_dips_resumes_the_agent_and_cannot_pause_it_again():
    """A TV switched on (Silero calls its babble speech, never one clear voice) is held steady_ms, then resumed, and neither its level nor its turns pause or cancel again."""
    p, t, paused = confirmed_new_sound(-25.0, BABBLE)
    t, decisions = line(p, music(1.5, -25.0, seed=2), t, voicing=BABBLE, prob=0.9)
    assert [(d.action, d.source) for d in decisions] == [(Action.RESUME, "steady")]
    assert decisions[0].at_sample - paused == 1200 * MS
    p.on_turn(stopped(t), agent_talking=True)
    p.on_turn(onset(t + F), agent_talking=True)
    t, decisions = line(p, music(2.0, -25.0, seed=3), t, voicing=BABBLE, prob=0.9)
    assert decisions == []
    assert p.on_turn(started(t), agent_talking=True) is None   # its turn is not a barge-in


def test_one_clear_voice_that_never_dips_cancels_at_steady_ms_instead_of_resuming():
    """A caller talking on without a 20 dB gap (breaths fill the gaps) is one periodic voice: at steady_ms the agent is cancelled, not resumed over them."""
    p, t, paused = confirmed_new_sound(-20.0, VOICED)
    # the gaps between its words only 15 dB down, and less periodic: the loud frames decide
    levels = [-35.0 if k % 10 == 9 else lv for k, lv in enumerate(music(1.5, -20.0, seed=2))]
    decisions = []
    for k, level in enumerate(levels):
        t += F
        p.on_prob(0.9)
        d = p.on_frame(t, float(level), False, True, voicing=0.3 if k % 10 == 9 else VOICED)
        if d is not None:
            decisions.append(d)
            break   # (the session stops the agent's audio: no longer talking)
    assert [(d.action, d.source) for d in decisions] == [(Action.CANCEL, "local_vad")]
    assert decisions[0].at_sample - paused == 1200 * MS


def test_nothing_happens_while_the_agent_is_silent_for_echo_or_quiet_frames():
    """No pause when the agent is silent, when the frame is judged echo, or when it is under -35 dBFS."""
    p = BargeInPolicy(floor_dbfs=-45.0)
    t = quiet(p)
    assert p.on_frame(t + F, -10.0, False, agent_talking=False, voicing=VOICED) is None
    assert p.on_frame(t + 2 * F, -10.0, True, agent_talking=True, voicing=VOICED) is None
    assert p.on_frame(t + 3 * F, -36.0, False, agent_talking=True, voicing=VOICED) is None


def test_clicks_and_breaths_far_over_the_floor_do_not_pause_the_agent():
    """Loud but unvoiced frames (a keyboard click, a breath) never pause the agent on their level."""
    p = BargeInPolicy()
    t = quiet(p)
    for level in (-10.0, -25.0, -30.0):
        t, decisions = line(p, [level] * 3 + [-60.0] * 20, t, voicing=UNVOICED)
        assert decisions == []


def test_over_music_a_voice_needs_silero_before_the_agent_pauses():
    """On a line busy with music, a voiced frame 13 dB over it pauses only once Silero scores 0.3."""
    p = BargeInPolicy()
    t, _ = line(p, music(3.0), talking=False, voicing=VOICED, prob=0.01)   # learnt before the answer
    t, decisions = line(p, music(3.0, seed=7), t, voicing=VOICED, prob=0.01)
    assert decisions == []                                 # the music itself never pauses
    p.on_prob(0.1)
    assert p.on_frame(t + F, -12.0, False, True, voicing=VOICED) is None
    p.on_prob(0.4)
    assert p.on_frame(t + 2 * F, -12.0, False, True, voicing=VOICED).action is Action.PAUSE


def test_over_music_silero_hears_a_quiet_caller_only_5_db_over_it():
    """Over music Silero scores near 0, a voiced frame 7 dB over the music that Silero scores 0.8 pauses the agent."""
    p = BargeInPolicy()
    t, _ = line(p, music(3.0), talking=False, voicing=VOICED, prob=0.01)
    t, decisions = line(p, music(3.0, seed=7), t, voicing=VOICED, prob=0.01)
    assert decisions == []
    p.on_prob(0.2)
    assert p.on_frame(t + F, -17.0, False, True, voicing=VOICED) is None     # Silero unsure
    p.on_prob(0.8)
    assert p.on_frame(t + 2 * F, -17.0, False, True, voicing=VOICED).action is Action.PAUSE


def paused_over_music(p, level_dbfs):
    """6 s of learnt music Silero scores 0.01, then a voiced frame at ``level_dbfs`` that it
    scores 0.8 pauses the agent; returns that frame's end sample."""
    t, _ = line(p, music(3.0), talking=False, voicing=VOICED, prob=0.01)
    t, _ = line(p, music(3.0, seed=7), t, voicing=VOICED, prob=0.01)
    p.on_prob(0.8)
    assert p.on_frame(t + F, level_dbfs, False, True, voicing=VOICED).action is Action.PAUSE
    return t + F


def test_a_pause_says_what_paused_it():
    """The evidence logged with a pause over music: the frame's level, its height over the music's mean and floor, Silero's score, its voicing, a busy line."""
    p = BargeInPolicy()
    paused_over_music(p, -12.0)
    e = p.evidence()
    assert (e["level_dbfs"], e["prob"], e["voicing"], e["busy"]) == (-12.0, 0.8, 0.9, True)
    assert 9.0 <= e["over_background_db"] < e["over_floor_db"] < 20.0


def test_over_music_the_gap_after_a_callers_first_word_does_not_resume_the_agent():
    """A caller's short first word Silero rejects ("which"), then 260 ms of music before the next: the agent stays paused until Silero has rejected both."""
    p = BargeInPolicy()
    t = paused_over_music(p, -10.0)
    p.on_turn(onset(t), agent_talking=True)
    t, decisions = line(p, [-10.0], t, voicing=VOICED, prob=0.9)             # one frame of voice
    p.on_turn(SpeechRejected(0, 0, t), agent_talking=True)
    t, more = line(p, music(0.26, seed=9), t, voicing=VOICED, prob=0.1)      # between the words
    decisions += more
    p.on_turn(onset(t + F), agent_talking=True)                              # "folder"
    t, more = line(p, [-10.0] * 5, t, voicing=VOICED, prob=0.9)
    decisions += more
    p.on_turn(SpeechRejected(0, 0, t), agent_talking=True)
    assert decisions == []
    rejected = t
    t, more = line(p, music(0.3, seed=10), t, voicing=VOICED, prob=0.1)
    assert [(d.action, d.source, d.at_sample - rejected) for d in more] == [(Action.RESUME, "rejected", 200 * MS)]


def test_over_music_a_silero_blip_that_paused_the_agent_resumes_it_within_100_ms():
    """Over music Silero scoring one chunk 0.8 pauses the agent; once its last three scores are low again the agent resumes (gap <= 100 ms), not after the 800 ms window."""
    p = BargeInPolicy()
    paused = paused_over_music(p, -17.0)
    t, decisions = line(p, [-24.0], paused, voicing=VOICED, prob=0.4)        # the music goes on
    t, more = line(p, music(1.0, seed=8), t, voicing=VOICED, prob=0.02)
    decisions += more
    assert [(d.action, d.source) for d in decisions] == [(Action.RESUME, "no_speech")]
    assert decisions[0].at_sample - paused <= 100 * MS


def test_over_music_a_caller_silero_keeps_scoring_holds_the_pause():
    """Over music a caller Silero scores 0.35-0.45 chunk after chunk (never 0.5 twice) keeps the agent paused."""
    p = BargeInPolicy()
    t = paused_over_music(p, -17.0)
    t, decisions = line(p, [-15.0, -17.0] * 10, t, voicing=UNVOICED, prob=0.4)   # 400 ms
    assert decisions == []


def test_over_music_a_callers_next_word_after_a_resume_pauses_the_agent_again():
    """Over music a first word (one voiced frame 17 dB over it that Silero scores 0.8) paused the agent and a gap resumed it: the caller's next word is no false alarm's sound and pauses again."""
    p = BargeInPolicy()
    t = paused_over_music(p, -8.0)
    t, decisions = line(p, [-8.0], t, voicing=VOICED, prob=0.8)
    t, more = line(p, music(0.4, seed=9), t, voicing=UNVOICED, prob=0.1)   # "save" | gap
    assert [(d.action, d.source) for d in decisions + more] == [(Action.RESUME, "no_speech")]
    t, decisions = line(p, [-8.0, -9.0], t, voicing=VOICED, prob=0.4)       # "to folder"
    assert [d.action for d in decisions] == [Action.PAUSE]


def test_over_a_tv_silero_scores_a_voice_5_db_over_it_needs_the_full_margin():
    """Over distant voices Silero scores high, a frame 7 dB over them is not a caller; 13 dB over it is."""
    p = BargeInPolicy()
    t, _ = line(p, music(3.0), talking=False, voicing=VOICED, prob=0.9)    # (a TV: Silero at 0.9)
    t, decisions = line(p, music(3.0, seed=7), t, voicing=VOICED, prob=0.9)
    assert decisions == []
    assert p.on_frame(t + F, -17.0, False, True, voicing=VOICED) is None
    assert p.on_frame(t + 2 * F, -12.0, False, True, voicing=VOICED).action is Action.PAUSE


def test_over_a_tv_one_word_standing_out_resumes_the_agent_within_100_ms_though_silero_hears_voices():
    """Over a TV Silero scores 0.9 all along: one of its words 13 dB over it pauses the agent, and the TV going on under the bar resumes it within 100 ms, not after the 800 ms window; a caller's voice standing out holds it."""
    p = BargeInPolicy()
    t, _ = line(p, music(3.0), talking=False, voicing=VOICED, prob=0.9)
    t, _ = line(p, music(3.0, seed=7), t, voicing=VOICED, prob=0.9)
    t, decisions = line(p, [-12.0], t, voicing=VOICED, prob=0.9)
    t, more = line(p, music(1.0, seed=8), t, voicing=VOICED, prob=0.9)
    assert [(d.action, d.source) for d in decisions + more] == [
        (Action.PAUSE, "energy"), (Action.RESUME, "no_speech")]
    assert more[0].at_sample - decisions[0].at_sample <= 100 * MS
    q = BargeInPolicy()
    t, _ = line(q, music(3.0), talking=False, voicing=VOICED, prob=0.9)
    t, _ = line(q, music(3.0, seed=7), t, voicing=VOICED, prob=0.9)
    t, decisions = line(q, [-12.0, -11.0, -13.0, -12.0] * 5, t, voicing=VOICED, prob=0.9)   # a caller
    assert [d.action for d in decisions] == [Action.PAUSE]


def hiss(level_dbfs, frames=1, seed=0, rate=16000):
    """``frames`` 20 ms frames of an /s/: noise at 2.6-3.8 kHz at ``level_dbfs``."""
    n = rate // 50 * frames
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / rate)
    x = np.fft.irfft(spec * ((f >= 2600) & (f <= 3800)), n)
    x = x / x.std() * 32768 * 10 ** (level_dbfs / 20)
    return [x[k: k + rate // 50].astype(np.int16) for k in range(0, n, rate // 50)]


def hum(level_dbfs, frames, seed=1, rate=16000):
    """``frames`` 20 ms frames of a quiet line's white noise at ``level_dbfs``."""
    x = np.random.default_rng(seed).standard_normal(rate // 50 * frames) * 32768 * 10 ** (level_dbfs / 20)
    return [x[k: k + rate // 50].astype(np.int16) for k in range(0, len(x), rate // 50)]


def feed(p, frames, t, talking=True):
    """Feed real frames (level and voicing from their samples); returns the end sample and decisions."""
    decisions = []
    for frame in frames:
        t += F
        d = p.on_frame(t, frame_power_dbfs(frame), False, talking, frame=frame)
        if d is not None:
            decisions.append(d)
    return t, decisions


def test_an_s_starting_a_word_pauses_on_its_third_frame_and_holds_for_the_vowel():
    """Three frames of /s/ over a quiet line pause the agent; the pause holds over the hiss and 120 ms after it for the vowel, which Silero confirms and the next gap cancels."""
    p = BargeInPolicy()
    t, _ = feed(p, hum(-60.0, 50), 0)
    t, decisions = feed(p, hiss(-30.0, 5), t)
    assert [(d.action, d.at_sample) for d in decisions] == [(Action.PAUSE, t - 2 * F)]
    t, decisions = line(p, [-40.0] * 4, t, voicing=UNVOICED, prob=0.02)   # the gap before the vowel
    assert decisions == []
    t, decisions = line(p, [-15.0] * 3, t, voicing=VOICED, prob=0.9)
    assert decisions == []
    assert p.on_turn(started(t), agent_talking=True) is None   # a new sound: cancelled at its first gap
    t, decisions = line(p, [-40.0], t, voicing=UNVOICED, prob=0.9)
    assert [d.action for d in decisions] == [Action.CANCEL]


def test_a_hiss_no_vowel_follows_resumes_the_agent_and_a_click_never_pauses_it():
    """Hiss with no voice after it resumes the agent 120 ms after it ends; one or two hiss frames (a click) never pause."""
    p = BargeInPolicy()
    t, _ = feed(p, hum(-60.0, 50), 0)
    for seed in range(3):
        t, decisions = feed(p, hiss(-25.0, 2, seed=seed), t)
        assert decisions == []
        t = feed(p, hum(-60.0, 10, seed=seed), t)[0]
    t, decisions = feed(p, hiss(-30.0, 4, seed=9), t)
    assert [d.action for d in decisions] == [Action.PAUSE]
    last_hiss = t
    p.on_prob(0.01)
    t, decisions = feed(p, hum(-60.0, 10), t)
    assert [d.action for d in decisions] == [Action.RESUME]
    assert decisions[0].at_sample - last_hiss <= 140 * MS


def test_steady_line_noise_never_pauses_the_agent_but_speech_does():
    """After seconds of -38 dBFS noise, the same noise over the agent does not pause it; a voice does."""
    p = BargeInPolicy()
    t, decisions = line(p, [-38.0] * 150, talking=False)
    t, decisions = line(p, [-38.0] * 50, t, voicing=VOICED)
    assert decisions == []
    p.on_prob(0.8)
    assert p.on_frame(t + F, -18.0, False, True, voicing=VOICED).action is Action.PAUSE


def test_an_energy_pause_silero_does_not_support_resumes_within_100_ms():
    """A pause Silero never scores 0.05, whose sound then turns unvoiced (no voice), resumes after energy_hold_ms (80)."""
    p = BargeInPolicy()
    t = quiet(p)
    assert p.on_frame(t + F, -25.0, False, True, voicing=VOICED).action is Action.PAUSE
    _t, decisions = line(p, [-25.0] * 3, t + F, voicing=UNVOICED, prob=0.01)
    assert decisions == []
    _t, decisions = line(p, [-25.0], t + 4 * F, voicing=UNVOICED, prob=0.01)
    assert [(d.action, d.source, d.at_sample - (t + F)) for d in decisions] == [
        (Action.RESUME, "no_speech", 80 * MS)]


def test_a_voice_far_over_a_quiet_line_waits_doubt_hold_ms_for_silero():
    """Three voiced frames far over a quiet line hold an energy pause Silero has not scored for doubt_hold_ms (300), not 80."""
    p = BargeInPolicy()
    t = quiet(p)
    assert p.on_frame(t + F, -25.0, False, True, voicing=VOICED).action is Action.PAUSE
    _t, decisions = line(p, [-25.0] * 14, t + F, voicing=VOICED, prob=0.01)    # to 300 ms
    assert decisions == []
    _t, decisions = line(p, [-25.0], t + 15 * F, voicing=VOICED, prob=0.01)
    assert [(d.action, d.source, d.at_sample - (t + F)) for d in decisions] == [
        (Action.RESUME, "no_speech", 300 * MS)]


def test_silero_doubt_holds_an_energy_pause_at_most_doubt_hold_ms():
    """A loud caller Silero scores 0.1-0.3 (a word it doubts) keeps the pause, but no longer than 300 ms."""
    p = BargeInPolicy()
    t = quiet(p)
    p.on_frame(t + F, -20.0, False, True, voicing=VOICED)
    _t, decisions = line(p, [-20.0] * 14, t + F, voicing=UNVOICED, prob=0.15)   # to 280 ms
    assert decisions == []
    _t, decisions = line(p, [-20.0], t + 15 * F, voicing=UNVOICED, prob=0.15)   # 300 ms
    assert [(d.action, d.source) for d in decisions] == [(Action.RESUME, "no_speech")]


def test_after_a_false_pause_the_same_sound_does_not_pause_again_but_a_voice_does():
    """Music that paused the agent once cannot pause it again on its level or by Silero's onset; a louder voice still can."""
    p = BargeInPolicy()
    t = quiet(p)
    p.on_frame(t + F, -25.0, False, True, voicing=VOICED)
    t, decisions = line(p, [-25.0] * 4, t + F, voicing=UNVOICED)     # not held as a far voice
    assert decisions[-1].source == "no_speech"
    t, decisions = line(p, [-25.0, -23.0, -20.0] * 10, t, voicing=VOICED)
    assert decisions == []                                  # within 6 dB of what paused it
    p.on_prob(0.8)
    assert p.on_turn(onset(t), agent_talking=True) is None   # nor Silero's onset on the same sound
    t, decisions = line(p, [-14.0], t, voicing=VOICED, prob=0.8)
    assert [(d.action, d.source) for d in decisions] == [(Action.PAUSE, "energy")]   # a voice over it


def test_a_voice_keeps_the_agent_silent_until_it_stops_whatever_the_resume_window():
    """Once a voice paused the agent, neither the resume window, a rejection nor a 280 ms gap resumes it; 300 ms of quiet does."""
    p = BargeInPolicy(resume_window_ms=500)
    t = quiet(p)
    p.on_prob(0.9)
    assert p.on_frame(t + F, -18.0, False, True, voicing=VOICED).action is Action.PAUSE
    p.on_turn(onset(t + 2 * F), agent_talking=True)
    t, decisions = line(p, [-18.0] * 50, t + F, voicing=VOICED, prob=0.9)   # 1 s, past the window
    assert decisions == []
    assert p.on_turn(SpeechRejected(0, 0, t), agent_talking=True) is None   # a stop consonant
    t, decisions = line(p, [-18.0] * 4, t, voicing=VOICED, prob=0.9)
    assert p.on_turn(onset(t), agent_talking=True) is None                  # the word goes on
    t, decisions = line(p, [-18.0] * 10 + [-60.0] * 14, t, voicing=VOICED, prob=0.9)
    assert decisions == []                 # quiet for 280 ms only: a gap between words
    p.on_turn(SpeechRejected(0, 0, t), agent_talking=True)
    t, decisions = line(p, [-60.0], t)
    assert [(d.action, d.source) for d in decisions] == [(Action.RESUME, "voice_stopped")]


def test_a_voice_silero_rejected_and_never_takes_up_again_resumes_the_agent():
    """Music switched on that Silero scored as a voice, then rejected with no new onset, resumes the agent though loud: 600 ms after the rejection on a quiet line (it could be the caller's next word), 200 ms over music."""
    p = BargeInPolicy()
    t = quiet(p)
    p.on_prob(0.9)
    p.on_frame(t + F, -18.0, False, True, voicing=VOICED)
    p.on_turn(onset(t + 2 * F), agent_talking=True)
    t, _ = line(p, [-18.0] * 5, t + F, voicing=VOICED, prob=0.9)
    p.on_turn(SpeechRejected(0, 0, t), agent_talking=True)
    t, decisions = line(p, [-18.0] * 29, t, voicing=VOICED, prob=0.4)
    assert decisions == []
    t, decisions = line(p, [-18.0], t, voicing=VOICED, prob=0.4)
    assert [(d.action, d.source) for d in decisions] == [(Action.RESUME, "rejected")]
    q = BargeInPolicy()
    t = paused_over_music(q, -12.0)
    q.on_turn(onset(t), agent_talking=True)
    t, _ = line(q, [-12.0] * 5, t, voicing=VOICED, prob=0.9)
    q.on_turn(SpeechRejected(0, 0, t), agent_talking=True)
    rejected = t
    t, decisions = line(q, [-12.0] * 15, t, voicing=VOICED, prob=0.2)
    assert [(d.action, d.source, d.at_sample - rejected) for d in decisions] == [(Action.RESUME, "rejected", 200 * MS)]


def test_on_a_quiet_line_the_word_after_a_rejected_one_keeps_the_agent_paused():
    """A caller's first word Silero rejects ("check"), 160 ms of quiet, then a next word Silero is slow on: the agent stays paused until Silero's onset of it."""
    p = BargeInPolicy()
    t = quiet(p)
    p.on_prob(0.6)
    assert p.on_frame(t + F, -22.0, False, True, voicing=VOICED).action is Action.PAUSE
    p.on_turn(onset(t + 2 * F), agent_talking=True)
    t, decisions = line(p, [-22.0] * 8, t + F, voicing=VOICED, prob=0.6)
    p.on_turn(SpeechRejected(0, 0, t), agent_talking=True)                  # "check"
    t, more = line(p, [-24.0, -27.0] + [-60.0] * 8, t, voicing=VOICED, prob=0.1)
    decisions += more
    t, more = line(p, [-30.0, -22.0, -21.0, -22.0, -24.0, -22.0], t, voicing=VOICED, prob=0.35)
    decisions += more                                                        # "num-", Silero slow
    p.on_turn(onset(t), agent_talking=True)
    t, more = line(p, [-22.0] * 10, t, voicing=VOICED, prob=0.8)
    assert decisions + more == []


def test_a_voice_inside_a_turn_silero_began_on_the_background_cancels_after_confirm_ms():
    """Silero's turn on a TV is ignored; a caller then speaking inside it is paused for, and cancels after 300 ms."""
    p = BargeInPolicy(confirm_ms=300)
    t, _ = line(p, music(3.0, center=-30.0), voicing=VOICED, prob=0.9)     # babble Silero loves
    assert p.on_turn(onset(t), agent_talking=True) is None                   # not foreground
    assert p.on_turn(started(t + 10 * F), agent_talking=True) is None        # no cancel for a TV
    t, decisions = line(p, music(0.4, center=-30.0, seed=2), t, voicing=VOICED, prob=0.9)
    assert decisions == []
    t, decisions = line(p, [-15.0] * 15, t, voicing=VOICED, prob=0.9)       # the caller, 300 ms
    assert [d.action for d in decisions] == [Action.PAUSE]
    t, decisions = line(p, [-15.0], t, voicing=VOICED, prob=0.9)
    assert [(d.action, d.source) for d in decisions] == [(Action.CANCEL, "local_vad")]


def test_a_silero_onset_pauses_only_with_a_recent_foreground_frame():
    """SpeechOnset pauses the agent when a frame of the last 60 ms stood out of the background, not otherwise."""
    p = BargeInPolicy()
    t, _ = line(p, music(3.0, center=-30.0), voicing=VOICED, prob=0.9)
    assert p.on_turn(onset(t), agent_talking=True) is None
    q = BargeInPolicy()
    t = quiet(q)
    q.on_frame(t + F, -22.0, False, True, voicing=UNVOICED)   # a breathy start: not paused on level
    d = q.on_turn(onset(t + F + 40 * MS), agent_talking=True)
    assert (d.action, d.source) == (Action.PAUSE, "local_vad")


def test_a_rejected_candidate_waits_for_quiet_before_resuming():
    """Rejection mid-word (no voice held yet) resumes only once the caller has been quiet for 200 ms."""
    p = BargeInPolicy()
    t = quiet(p)
    p.on_frame(t + F, -22.0, False, True, voicing=UNVOICED)
    assert p.on_turn(onset(t + 2 * F), agent_talking=True).action is Action.PAUSE
    t, _ = line(p, [-22.0] * 2, t + F, voicing=UNVOICED, prob=0.3)
    assert p.on_turn(SpeechRejected(0, 0, t), agent_talking=True) is None
    t, decisions = line(p, [-60.0] * 9, t)                # the gap in "ac-ti-vated": 180 ms
    assert decisions == []
    t, decisions = line(p, [-60.0], t)
    assert [(d.action, d.source) for d in decisions] == [(Action.RESUME, "rejected")]


def test_a_pause_without_a_verdict_never_outlives_the_resume_window():
    """A Silero-onset pause with no voice held, no Started and no Rejected resumes after resume_window_ms."""
    p = BargeInPolicy(resume_window_ms=500)
    t = quiet(p)
    p.on_frame(t + F, -22.0, False, True, voicing=UNVOICED)
    p.on_turn(onset(t + F), agent_talking=True)
    _t, decisions = line(p, [-22.0] * 24, t + F, voicing=UNVOICED, prob=0.3)
    assert decisions == []
    _t, decisions = line(p, [-22.0], t + 25 * F, voicing=UNVOICED, prob=0.3)
    assert [(d.action, d.source) for d in decisions] == [(Action.RESUME, "timeout")]


def test_probabilities_before_a_pause_do_not_extend_it():
    """Silero scores seen while not paused are forgotten: only those since the pause hold it."""
    p = BargeInPolicy()
    t = quiet(p)
    p.on_prob(0.9)
    p.on_prob(0.0)
    p.on_frame(t + F, -25.0, False, True, voicing=VOICED)
    _t, decisions = line(p, [-25.0] * 4, t + F, voicing=UNVOICED)
    assert [d.source for d in decisions] == ["no_speech"]


def test_dtmf_cancels_only_while_the_agent_talks_and_only_when_enabled():
    """A digit over the agent cancels it; while idle, or with dtmf off, nothing."""
    assert BargeInPolicy().on_dtmf(100, agent_talking=True).source == "dtmf"
    assert BargeInPolicy().on_dtmf(100, agent_talking=False) is None
    assert BargeInPolicy(dtmf=False).on_dtmf(100, agent_talking=True) is None


def test_disabled_policy_never_acts_but_still_judges_turns():
    """With barge-in disabled the agent is never paused or cancelled; turns are still judged foreground."""
    p = BargeInPolicy(enabled=False)
    t = quiet(p)
    assert p.on_frame(t + F, 0.0, False, True, voicing=VOICED) is None
    assert p.on_turn(onset(t + F), agent_talking=True) is None
    line(p, [-15.0] * 10, t, voicing=VOICED, prob=0.9)
    assert p.on_turn(started(t + 10 * F), agent_talking=True) is None
    p.on_turn(stopped(t + 40 * F), agent_talking=True)
    assert p.turn_was_foreground is True


SILENT = float("-inf")   # digital silence: the level of a frame of zeros


def a_turn(p, t, levels, probs):
    """A caller's turn (Silero's onset, started and stopped around ``levels``), the agent silent."""
    p.on_turn(onset(t + F), agent_talking=False)
    for level, prob in zip(levels, probs):
        t += F
        p.on_prob(prob)
        p.on_frame(t, level, False, False, voicing=VOICED)
    p.on_turn(started(t), agent_talking=False)
    t, _ = line(p, [SILENT] * 30, t, talking=False)
    p.on_turn(stopped(t), agent_talking=False)
    return t


WORDS = [-15.0] * 10 + [-60.0] * 5 + [-15.0] * 10


def test_a_noise_burst_then_digital_silence_does_not_stand_over_the_callers_voice():
    """300 ms of -12 dBFS noise, then 3 s of digital silence: the background is forgotten, the caller's next turn is foreground and pauses the agent."""
    p = BargeInPolicy()
    t, _ = line(p, [SILENT] * 50, talking=False)
    t, _ = line(p, [-12.0] * 15 + [-35.0], t, talking=False, voicing=UNVOICED)   # foreign RTP, a slam
    t, _ = line(p, [SILENT] * 150, t, talking=False)
    t = a_turn(p, t, WORDS, [0.9] * len(WORDS))
    assert p.turn_was_foreground
    t, decisions = line(p, WORDS, t, voicing=VOICED, prob=0.9)
    assert [d.action for d in decisions][:1] == [Action.PAUSE]


def over_music_unscored(p):
    """6 s of learnt music, then a voiced frame 8 dB over its loud end whose own chunk is not
    scored yet (Silero's newest score, of the chunk before, is 0.01): no pause on it."""
    t, _ = line(p, music(3.0), talking=False, voicing=VOICED, prob=0.01)
    t, _ = line(p, music(3.0, seed=7), t, voicing=VOICED, prob=0.01)
    assert p.on_frame(t + F, -17.0, False, True, voicing=VOICED) is None
    return t + F


def test_a_foreground_frame_pauses_in_its_own_tick_once_its_chunk_scores_as_speech():
    """Over music a voiced foreground frame judged on the last chunk's score (0.01) pauses as soon as its own chunk scores 0.8, not a frame later."""
    p = BargeInPolicy()
    t = over_music_unscored(p)
    p.on_prob(0.8)
    d = p.on_scored(t, agent_talking=True)
    assert (d.action, d.source, d.at_sample) == (Action.PAUSE, "energy", t)


def test_the_second_look_needs_a_foreground_frame_a_speech_score_and_a_talking_agent():
    """No pause from on_scored when the chunk scores low, when the agent stopped, or for a frame under the background's margin."""
    p = BargeInPolicy()
    t = over_music_unscored(p)
    p.on_prob(0.1)
    assert p.on_scored(t, agent_talking=True) is None
    p.on_frame(t + F, -17.0, False, True, voicing=VOICED)
    p.on_prob(0.8)
    assert p.on_scored(t + F, agent_talking=False) is None
    p.on_prob(0.01)
    p.on_frame(t + 2 * F, -24.0, False, True, voicing=VOICED)   # the music's own level
    p.on_prob(0.8)
    assert p.on_scored(t + 2 * F, agent_talking=True) is None


def test_the_probes_score_pauses_and_holds_on_a_busy_line_but_the_turn_streams_rules_the_rest():
    """Over music the probe's 0.6 (turn stream 0.1) pauses on a voiced foreground frame, and keeps holding while it stays high; once both are low the agent resumes."""
    p = BargeInPolicy()
    t = over_music_unscored(p)
    p.on_prob(0.1, pause_prob=0.6)
    d = p.on_scored(t, agent_talking=True)
    assert d.action is Action.PAUSE and p.max_prob == 0.0   # (the quiet-line hold judges the turn stream)
    decisions = []
    for _ in range(6):                                       # 120 ms of the probe at 0.6
        t += F
        p.on_prob(0.1, pause_prob=0.6)
        decisions.append(p.on_frame(t, -17.0, False, True, voicing=VOICED))
    assert decisions == [None] * 6
    for _ in range(6):
        t += F
        p.on_prob(0.02, pause_prob=0.02)
        decisions.append(p.on_frame(t, -24.0, False, True, voicing=VOICED))
    assert [d.action for d in decisions if d] == [Action.RESUME]


def test_the_probes_score_alone_does_not_pause_where_the_turn_stream_has_no_doubt():
    """Over music the probe's 0.6 while the turn stream scores 0.02 (a note's attack, seen half a chunk later) pauses nothing."""
    p = BargeInPolicy()
    t = over_music_unscored(p)
    p.on_prob(0.02, pause_prob=0.6)
    assert p.on_scored(t, agent_talking=True) is None
    p.on_prob(0.02, pause_prob=0.6)
    assert p.on_frame(t + F, -17.0, False, True, voicing=VOICED) is None


def test_the_score_that_paused_on_the_second_look_is_not_a_second_frame_of_voice():
    """Over music a frame whose own chunk scores 0.72 pauses; the next frame, judged on that same score, is no second voice frame: once Silero falls the agent resumes within 200 ms instead of being held until the voice 'stops'."""
    p = BargeInPolicy()
    t, _ = line(p, music(3.0), talking=False, voicing=VOICED, prob=0.01)
    t, _ = line(p, music(3.0, seed=7), t, voicing=VOICED, prob=0.01)
    t += F
    assert p.on_frame(t, -16.5, False, True, voicing=VOICED) is None and p.fg.soft
    p.on_prob(0.72)
    paused = p.on_scored(t, agent_talking=True)
    assert paused.action is Action.PAUSE
    decisions = [p.on_frame(t + F, -16.5, False, True, voicing=VOICED)]   # still Silero's 0.72
    p.on_prob(0.51)
    decisions.append(p.on_frame(t + 2 * F, -24.0, False, True, voicing=VOICED))
    decisions.append(p.on_frame(t + 3 * F, -16.5, False, True, voicing=VOICED))   # soft, on 0.51
    assert p.voice_frames == 1 and not p.voice_held
    t, more = line(p, music(1.0, seed=9), t + 3 * F, voicing=VOICED, prob=0.02)
    resumed = [d for d in decisions + more if d]
    assert resumed[0].action is Action.RESUME and resumed[0].at_sample - paused.at_sample <= 200 * MS


def test_on_a_quiet_line_the_second_look_leaves_the_frame_to_the_next_one():
    """On a quiet line a voiced frame 27 dB over the floor (not far) whose own chunk scores 0.8 is not paused on the second look (an echo residual did that on the wire), but the next frame pauses on that score."""
    p = BargeInPolicy()
    t = quiet(p)
    assert p.on_frame(t + F, -33.0, False, True, voicing=VOICED) is None
    assert p.fg.foreground and not p.fg.far and not p.fg.busy
    p.on_prob(0.8)
    assert p.on_scored(t + F, agent_talking=True) is None
    d = p.on_frame(t + 2 * F, -33.0, False, True, voicing=VOICED)
    assert (d.action, d.source) == (Action.PAUSE, "energy")
