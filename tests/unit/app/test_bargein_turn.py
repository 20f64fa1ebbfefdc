"""The turn judge: whether a turn Silero ended held the caller, and the caller's end inside a TV's turn.

Driven alone, with the line's tracker fed as the voice policy feeds it while the agent is silent
(never paused: the tracker sees the same frames), Silero's turn events and scores scripted."""

from sipbridge.bargein_trigger import ForegroundTracker
from sipbridge.bargein_turn import TurnJudge
from tests.unit.app.test_bargein_voice import (BABBLE, F, MS, SILENT, UNVOICED, VOICED, music,
                                               onset, started, stopped)


def judge() -> TurnJudge:
    """A judge on a fresh tracker with the voice policy's defaults (16 kHz)."""
    return TurnJudge(ForegroundTracker())


def line(j, levels, start=0, voicing=UNVOICED, prob=0.0):
    """Feed frames at ``levels`` (Silero scoring ``prob``) to the tracker, then the judge; a voice
    frame is foreground and scored 0.5 (the policy's ``voice_prob``). Returns the last end sample."""
    fg, t = j.fg, start
    for level in levels:
        t += F
        fg.on_prob(prob)
        fg.frame(t, float(level), None, voicing, hold_mean=j.holds_mean, paused=False, masked=False)
        j.frame(t, float(level), fg.foreground and fg.prob >= 0.5)
    return t


def quiet(j, seconds=1.0):
    """A quiet line (-60 dBFS) the tracker has learnt; returns the end sample."""
    return line(j, [-60.0] * int(seconds * 50))


def test_a_turn_on_the_background_alone_is_not_foreground_and_a_callers_turn_is():
    """turn_was_foreground is False for a turn only a TV held, True for one with 100 ms of the caller in it."""
    j = judge()
    t = line(j, music(3.0, center=-30.0), voicing=VOICED, prob=0.9)
    j.follow(onset(t))
    j.follow(started(t + 10 * F))
    t = line(j, music(2.0, center=-30.0, seed=4), t, voicing=VOICED, prob=0.9)
    j.follow(stopped(t))
    assert j.turn_was_foreground is False
    t = line(j, music(1.0, center=-30.0, seed=5), t, voicing=VOICED, prob=0.9)
    j.follow(onset(t))
    t = line(j, [-14.0] * 8, t, voicing=VOICED, prob=0.9)
    j.follow(started(t))
    j.follow(stopped(t + 30 * F))
    assert j.turn_was_foreground is True


def done_frames(j, levels, t, silence=500 * MS):
    """Feed frames of a TV's talk (Silero at 0.9) taking the caller's end after each; the end samples it answered at, and what."""
    answers = []
    for level in levels:
        t = line(j, [level], t, voicing=BABBLE, prob=0.9)
        last = j.take_caller_end(t, silence)
        if last is not None:
            answers.append((t, last))
    return t, answers


def test_over_a_tv_the_callers_turn_ends_500_ms_after_their_voice_inside_silero_s_endless_turn():
    """Silero's turn on a TV never ends: 800 ms (500 + the faded end of a phrase) after the caller's last foreground voice frame take_caller_end says their turn is over, once."""
    j = judge()
    t = line(j, music(3.0, center=-30.0), voicing=BABBLE, prob=0.9)
    j.follow(onset(t))
    j.follow(started(t + 10 * F))
    t, answers = done_frames(j, music(2.0, center=-30.0, seed=4), t)
    assert answers == []                                   # the TV alone: no caller's turn
    t = line(j, [-14.0, -12.0, -16.0, -13.0] * 10, t, voicing=VOICED, prob=0.9)
    voice_end = t
    t, answers = done_frames(j, music(2.0, center=-30.0, seed=5), t)
    assert answers == [(voice_end + 40 * F, voice_end)]    # 500 + 300 ms on, the voice's end
    j.follow(stopped(voice_end + 40 * F))
    assert j.turn_was_foreground is True


def test_on_a_quiet_line_or_with_only_a_tv_silero_s_own_end_of_turn_stands():
    """take_caller_end never answers where Silero scores the background low (its turns end), nor for a TV's talk alone."""
    j = judge()
    t = quiet(j, seconds=2.0)
    j.follow(onset(t))
    t = line(j, [-15.0] * 40, t, voicing=VOICED, prob=0.9)
    j.follow(started(t))
    t, answers = done_frames(j, [-60.0] * 50, t)
    assert answers == []
    k = judge()
    t = line(k, music(3.0, center=-30.0), voicing=BABBLE, prob=0.9)
    k.follow(onset(t))
    k.follow(started(t + 10 * F))
    t, answers = done_frames(k, music(8.0, center=-30.0, seed=6), t)
    assert answers == []


def test_a_voice_end_is_taken_once():
    """take_caller_end is a step: the ask that answers the caller's voice end clears it, so the next frame's ask answers None though nothing new was heard."""
    j = judge()
    t = line(j, music(3.0, center=-30.0), voicing=BABBLE, prob=0.9)
    j.follow(onset(t))
    j.follow(started(t + 10 * F))
    t = line(j, [-14.0, -12.0, -16.0, -13.0] * 10, t, voicing=VOICED, prob=0.9)
    voice_end = t
    assert j.take_caller_end(voice_end + 39 * F, 500 * MS) is None and j.last_voice == voice_end
    assert j.take_caller_end(voice_end + 40 * F, 500 * MS) == voice_end
    assert j.last_voice is None
    assert j.take_caller_end(voice_end + 41 * F, 500 * MS) is None


def test_over_known_music_a_callers_long_turn_stands_out_though_the_floor_climbs_under_it():
    """A caller talking 2.4 s without a gap 13 dB over learnt music lifts the floor's minimum statistics to their own level; judged against the turn's first floor, the turn is still theirs."""
    j = judge()
    t = line(j, music(6.0), voicing=VOICED, prob=0.01)
    assert j.fg.settled
    j.follow(onset(t))
    t = line(j, [-12.0] * 15, t, voicing=VOICED, prob=0.9)
    j.follow(started(t))
    t = line(j, [-12.0] * 105, t, voicing=VOICED, prob=0.9)
    assert j.fg.floor_dbfs > -20.0                       # the floor climbed under the voice
    j.follow(stopped(t + 25 * F))
    assert j.turn_was_foreground is True


def test_a_tv_on_from_the_first_frame_is_not_a_callers_turn_looked_back_at():
    """A TV (-30 dBFS, Silero at 0.9) from the line's first frame is foreground at first, but its turn never stood 15 dB over the turn's floor: not the caller's; a caller's -15 dBFS words on a quiet line are."""
    j = judge()
    j.follow(onset(2 * F))
    t = line(j, music(0.4, center=-30.0), voicing=VOICED, prob=0.9)
    assert j.turn_voice_samples > 0                      # taken for a voice while nothing is known
    j.follow(started(t))
    t = line(j, music(4.0, center=-30.0, seed=2), t, voicing=VOICED, prob=0.9)
    j.follow(stopped(t))
    assert j.turn_was_foreground is False
    k = judge()
    t = quiet(k)
    k.follow(onset(t))
    t = line(k, [-15.0] * 10 + [-60.0] * 5 + [-15.0] * 10, t, voicing=VOICED, prob=0.9)
    k.follow(started(t))
    k.follow(stopped(t + 20 * F))
    assert k.turn_was_foreground is True


def test_a_caller_talking_from_the_first_frame_is_not_learnt_as_the_background():
    """The caller speaks from the call's first frame and Silero stays under 0.5 for 400 ms: the turn is still the caller's."""
    j = judge()
    t = line(j, [SILENT] * 2)
    words = [-23.0, -23.0, -21.0, -20.0, -17.0, -13.0, -11.0, -12.0, -14.0, -15.0, -14.0, -12.0,
             -11.0, -11.0, -17.0, -33.0, -43.0, -42.0, -26.0, -17.0, -15.0, -16.0, -18.0, -20.0] * 3
    probs = [0.0, 0.05, 0.05, 0.33, 0.07, 0.07, 0.23, 0.23, 0.23, 0.19, 0.19, 0.16, 0.1, 0.1,
             0.06, 0.2, 0.2, 0.16, 0.16, 0.1] + [0.9] * (len(words) - 20)
    j.follow(onset(t + F))                               # the caller's turn, the agent silent
    for level, prob in zip(words, probs):
        t = line(j, [level], t, voicing=VOICED, prob=prob)
    j.follow(started(t))
    t = line(j, [SILENT] * 30, t)
    j.follow(stopped(t))
    assert j.turn_was_foreground
