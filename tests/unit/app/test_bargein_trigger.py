"""The barge-in evidence per caller frame: margin over the tracked background, voicing, suppression."""

import numpy as np

from sipbridge.bargein_trigger import ForegroundTracker

F = 320  # samples per 20 ms frame at 16 kHz


def feed(fg: ForegroundTracker, levels, start: int = 0) -> int:
    t = start
    for level in levels:
        t += F
        fg.frame(t, float(level), voicing_=0.2)
    return t


def music(seconds: float, center: float = -25.0, seed: int = 0) -> np.ndarray:
    n = int(seconds * 50)
    rng = np.random.default_rng(seed)
    return center + 4.0 * np.sin(np.arange(n) / 5.0) + rng.normal(0, 1.0, n)


def test_a_voice_on_a_quiet_line_is_foreground_and_far():
    """After a second of -60 dBFS line noise, a -20 dBFS frame is foreground, far, and the line is not busy."""
    fg = ForegroundTracker()
    t = feed(fg, [-60.0] * 50)
    fg.frame(t + F, -20.0, voicing_=0.9)
    assert fg.active and fg.foreground and fg.far and not fg.busy
    assert fg.voiced()


def test_music_once_learnt_is_never_foreground_and_makes_the_line_busy():
    """Three seconds of music at -25 dBFS (+-5 dB): then none of its frames is foreground, and the line is busy."""
    fg = ForegroundTracker()
    t = feed(fg, music(3.0))
    for level in music(3.0, seed=1):
        t += F
        fg.frame(t, float(level), voicing_=0.95)
        assert not fg.foreground
        assert fg.busy
    fg.frame(t + F, -12.0, voicing_=0.9)        # a caller 13 dB over the music
    assert fg.foreground and not fg.far         # not far: Silero must agree before a pause


def test_a_background_back_after_a_gap_is_judged_against_its_mean_not_the_floor():
    """Babble at -30 dBFS that stops for 600 ms and comes back is not foreground, though 30 dB over the fallen floor."""
    fg = ForegroundTracker()
    t = feed(fg, music(4.0, center=-30.0))
    t = feed(fg, [-62.0] * 30, t)                # a gap in the TV's sound: the floor falls
    assert fg.floor_dbfs < -55.0
    fg.frame(t + F, -28.0, voicing_=0.8)
    assert fg.margin > 25.0 and not fg.foreground


def test_a_caller_talking_leaves_the_mean_but_a_new_steady_sound_is_learnt():
    """A caller's turn (hold_mean) leaves the background mean where it was; the same level outside a turn is learnt within seconds."""
    fg = ForegroundTracker()
    t = feed(fg, [-60.0] * 150)                  # 3 s: the mean has settled
    before = fg.mean_dbfs
    for _ in range(100):                         # 2 s of the caller, inside Silero's turn
        t += F
        fg.frame(t, -18.0, voicing_=0.9, hold_mean=True)
    assert abs(fg.mean_dbfs - before) < 1.0 and fg.foreground
    for _ in range(250):                         # the same level, nobody's turn: a background
        t += F
        fg.frame(t, -18.0, voicing_=0.9)
    assert not fg.foreground and fg.mean_dbfs > -22.0


def test_unvoiced_frames_are_not_voiced_and_real_samples_are_measured():
    """A scripted voicing of 0.2 is unvoiced; a frame of white noise is measured unvoiced too."""
    fg = ForegroundTracker()
    fg.frame(F, -20.0, voicing_=0.2)
    assert not fg.voiced()
    noise = (np.random.default_rng(0).standard_normal(F) * 3000).astype(np.int16)
    fg.frame(2 * F, -20.0, noise)
    fg.frame(3 * F, -20.0, noise[::-1].copy())
    assert not fg.voiced()


def test_a_false_alarm_suppresses_its_level_and_the_bar_fades():
    """After suppress(-25), frames up to -19 dBFS are suppressed; 4 s later (1.5 dB/s) -22 dBFS is not."""
    fg = ForegroundTracker()
    t = feed(fg, [-60.0] * 50)
    fg.suppress(-25.0, t)
    fg.frame(t + F, -20.0, voicing_=0.9)
    assert fg.suppressed
    fg.frame(t + 2 * F, -18.0, voicing_=0.9)
    assert not fg.suppressed
    t = feed(fg, [-60.0] * 200, t + 2 * F)
    fg.frame(t + F, -22.0, voicing_=0.9)
    assert not fg.suppressed


def test_the_callers_first_words_after_digital_silence_are_never_learnt_as_background():
    """Digital silence, then a -20 dBFS voice whose first 4 frames Silero has not scored yet: none of it is learnt, the same voice later is still far."""
    fg = ForegroundTracker()
    t = 0
    for _ in range(25):                          # 500 ms of no media
        t += F
        fg.frame(t, float("-inf"))
    for k in range(40):                          # hello: Silero sure from the 5th frame
        fg.on_prob(0.0 if k < 4 else 0.9)
        t += F
        fg.frame(t, -20.0, voicing_=0.9)
    assert fg.mean_dbfs <= -89.0
    fg.on_prob(0.0)
    for _ in range(100):                         # 2 s of digital silence again
        t += F
        fg.frame(t, float("-inf"))
    fg.frame(t + F, -20.0, voicing_=0.9)
    assert fg.foreground and fg.far


def test_music_from_the_first_frame_is_learnt_within_half_a_second():
    """Music at -25 dBFS from the line's first frame (Silero unconvinced): learnt as the background after learn_delay_ms, then not foreground."""
    fg = ForegroundTracker()
    fg.on_prob(0.05)
    t = feed(fg, music(0.2))
    assert fg.mean_dbfs == -90.0                 # nothing learnt yet: frames wait 240 ms
    t = feed(fg, music(0.6, seed=3), t)
    assert -30.0 < fg.mean_dbfs < -20.0
    for level in music(1.0, seed=4):
        t += F
        fg.frame(t, float(level), voicing_=0.95)
        assert not fg.foreground


def test_a_background_back_after_a_quiet_passage_is_known_by_its_recent_levels():
    """Music, 2 s of quiet (the mean falls), the music again: under the loud end (80th percentile) of the last 8 s of background it is not foreground."""
    fg = ForegroundTracker(margin_db=3.0)
    fg.on_prob(0.05)
    t = feed(fg, music(4.0))
    t = feed(fg, [-65.0] * 100, t)
    assert fg.recent_dbfs > -24.0 and fg.mean_dbfs < -27.0
    fg.frame(t + F, -24.5, voicing_=0.95)
    assert fg.level_dbfs - fg.mean_dbfs >= fg.margin_db and not fg.foreground
    fg.frame(t + 2 * F, -12.0, voicing_=0.9)     # a caller over it still is
    assert fg.foreground


def test_frames_the_echo_canceller_masked_neither_teach_nor_erase_the_background():
    """Music learnt, then 1 s of frames the echo canceller took for echo and sank to -90 dBFS: the floor, mean and busy line stand, and the music back is not foreground."""
    fg = ForegroundTracker()
    fg.on_prob(0.02)
    t = feed(fg, music(3.0))
    floor, mean = fg.floor_dbfs, fg.mean_dbfs
    assert fg.busy and mean > -30.0
    for _ in range(50):                          # the agent's first second: all taken for echo
        t += F
        fg.frame(t, -90.0, voicing_=0.2, masked=True)
        assert not (fg.active or fg.foreground or fg.far)
    assert fg.floor_dbfs == floor and abs(fg.mean_dbfs - mean) < 0.5 and fg.busy
    for level in music(1.0, seed=5):
        t += F
        fg.frame(t, float(level), voicing_=0.95)
        assert not fg.foreground and not fg.far
    unmasked = ForegroundTracker()               # the same frames taken as the line's own
    unmasked.on_prob(0.02)
    t = feed(unmasked, music(3.0))
    t = feed(unmasked, [-90.0] * 50, t)
    unmasked.frame(t + F, -22.0, voicing_=0.95)
    assert unmasked.far                          # (what paused the agent for 300-800 ms)
