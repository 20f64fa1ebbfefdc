"""Is the caller's frame a voice standing out of the line's background? The barge-in evidence.

Pure and per call, fed once per 20 ms caller frame (after echo cancellation) and once per
Silero score, time in samples. It keeps the line's background level
(:class:`~sipbridge.media.noisefloor.NoiseFloor`, minimum statistics) and says of the newest
frame:

* ``active``: at least ``energy_dbfs`` (the silence floor plus its margin) and
  ``noise_margin_db`` above the background: someone may be talking (the caller counts as
  quiet when no frame has been active for a while);
* ``foreground``: also ``margin_db`` (9 dB) above the background's recent mean power (a
  2 s average), and not under the loud end (80th percentile) of the background's levels of
  the last 8 s (a background back after a quiet passage is not a voice). The floor alone is
  not enough: it falls into every gap of a TV's babble, and the babble coming back is then
  30 dB "over" it. Measured on the noise corpus (bench/noise_corpus.py, tuning part): music
  and babble stay within 8 dB of their mean, road noise within 12 dB (unvoiced, and Silero
  never scores it); a caller 10 dB over any of them passes within 40-100 ms of the first word.
  The background is learnt only from frames that are not a voice, ``learn_delay_ms`` (240)
  after they were heard: a voice far over the floor that Silero scores ``voice_prob`` drops
  the frames still waiting (they were its first syllable, before Silero was sure), the
  caller's turns and the pauses made for them are not learnt, digital silence never is
  (lasting ``silence_forget_ms``, 300, it forgets the background: a burst of noise before it
  must not stand over the caller for the rest of the call). The first frame learnt is taken
  as the background as it is (music from the call's first frame is known
  ``first_learn_delay_ms``, 600, in: longer than the 240 ms after, because a caller talking
  from the first frame gets Silero's ``voice_prob`` only 300-400 ms in, and must not become
  the background); after that, frames that stand out move the mean only as if they were
  ``margin_db`` over it (a TV switched on is learnt at up to ~14 dB/s, clicks hardly at all);
* ``voiced()``: periodic at a pitch (:func:`~sipbridge.media.noisefloor.voicing` at least
  ``voiced_min``, 0.45: breaths score up to 0.4, the /h/-to-vowel frame of "hello" 0.47),
  computed only when asked. Breaths, clicks and most road noise are not;
* ``far``: foreground, ``far_margin_db`` (30 dB) above the floor, on a line that is not
  ``busy`` (neither its floor nor, once it has 1 s of sound behind it and ``busy_db`` over
  the floor, its mean reaches the silence floor, -45 dBFS: no music, babble, traffic or
  hiss): a caller
  on a quiet line, who can be paused for on the first voiced frame without waiting for
  Silero (a new background starting on a quiet line gets there too, once: see
  :meth:`suppress`);
* ``soft``: active, not foreground, but ``soft_margin_db`` (4 dB) over the background's mean
  and over the loud end of its recent levels, on a busy line whose background Silero does not
  score (``bg_prob``, its mean score over the learnt background frames, at most
  ``quiet_bg_prob``): music and road noise, not a TV. A frame there that Silero scores as
  speech is a caller, however softly over the background;
* ``hiss()`` and ``sibilant()``: unvoiced frames with ``sibilant_min`` (42 %) of their energy
  at the top of the band (:func:`~sipbridge.media.noisefloor.sibilance`), like an /s/;
* ``prob``: Silero's newest score (it lags the frame by up to one 32 ms chunk).

:meth:`suppress` is the memory of a false alarm: a sound that paused the agent and turned
out not to be speech sets a level (its loudest frame plus 6 dB, fading by 1.5 dB/s) under
which frames are ``suppressed``: the same background, not yet learnt by the floor and the
mean, cannot pause the agent on its level again while they catch up (Silero still can).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from .media.noisefloor import NoiseFloor, sibilance, voicing

SILENT_DBFS = -85.0  # under this a frame is digital silence, not a background


class ForegroundTracker:
    """The per-frame evidence the barge-in policy decides on (see the module docstring)."""

    def __init__(self, *, rate: int = 16000, floor_dbfs: float = -45.0,
                 energy_margin_db: float = 10.0, noise_margin_db: float = 12.0,
                 margin_db: float = 9.0, far_margin_db: float = 30.0, voiced_min: float = 0.45,
                 mean_ms: int = 2000, busy_db: float = 3.0,
                 suppress_fade_db_per_s: float = 1.5, suppress_db: float = 6.0,
                 voice_prob: float = 0.5, learn_delay_ms: int = 240, recent_ms: int = 8000,
                 recent_margin_db: float = 0.0, soft_margin_db: float = 4.0,
                 quiet_bg_prob: float = 0.1, sibilant_min: float = 0.5,
                 first_learn_delay_ms: int = 600, silence_forget_ms: int = 300):
        self.rate = rate
        self.noise = NoiseFloor(rate=rate, start_dbfs=floor_dbfs - 20.0)
        self.energy_dbfs = floor_dbfs + energy_margin_db
        self.noise_margin_db = noise_margin_db
        self.margin_db = margin_db
        self.far_margin_db = far_margin_db
        self.voiced_min = voiced_min
        self.soft_margin_db = soft_margin_db
        self.quiet_bg_prob = quiet_bg_prob
        self.sibilant_min = sibilant_min
        self.bg_prob = 1.0        # Silero's mean score of the background (1: none learnt yet)
        self.fade_per_sample = suppress_fade_db_per_s / rate
        self.suppress_db = suppress_db
        self.mean_samples = mean_ms * rate // 1000
        self.busy_dbfs = floor_dbfs
        self.busy_db = busy_db
        self._settled = False                    # the mean has 2 s of sound behind it
        self._mean: float | None = None          # background power (linear)
        self._start: int | None = None           # end sample before the first frame
        self.mean_dbfs = -math.inf
        self.busy = False
        self.prob = 0.0
        self.level_dbfs = -math.inf
        self.floor_dbfs = self.noise.floor_dbfs
        self.margin = -math.inf
        self.active = self.foreground = self.far = self.suppressed = self.soft = False
        self._suppress_dbfs = -math.inf
        self._suppress_at = 0
        self._end = 0
        self._frame: np.ndarray | None = None
        self._previous: np.ndarray | None = None
        self._voicing: float | None = None
        self.voice_prob = voice_prob
        self.learn_delay = learn_delay_ms * rate // 1000
        self.first_learn_delay = first_learn_delay_ms * rate // 1000
        self.silence_forget = silence_forget_ms * rate // 1000
        self._silent_since: int | None = None    # start of the current run of digital silence
        self._pending: deque[tuple[int, int, float, bool, float]] = deque()   # not yet learnt
        self.recent_samples = recent_ms * rate // 1000
        self.recent_margin_db = recent_margin_db
        self._recent: deque[tuple[int, float]] = deque()   # (end sample, dBFS) learnt
        self._learnt = 0
        self.recent_dbfs = -math.inf   # the 80th percentile of the background's recent levels

    def set_floor(self, floor_dbfs: float, energy_margin_db: float = 10.0) -> None:
        self.energy_dbfs = floor_dbfs + energy_margin_db

    def frame(self, end_sample: int, level_dbfs: float, pcm: np.ndarray | None = None,
              voicing_: float | None = None, hold_mean: bool = False,
              paused: bool = False, masked: bool = False) -> None:
        """The newest caller frame: its level, and its samples (or its voicing, scripted).

        ``hold_mean``: the caller is talking (a turn with a foreground voice in it): the
        background mean is left as it is (once it has 2 s of sound behind it; before, see
        :meth:`restore_mean`); ``paused``: the
        agent is paused for this sound, which is not learnt as background meanwhile either;
        ``masked``: the echo canceller took the frame for echo, or attenuated it by more than
        6 dB (by up to 40 dB; while it has not found the echo yet, everything under the agent's
        level is taken for echo): what is left is neither the line's background nor digital
        silence, so the floor, the mean and the silence watch skip it. Without that, music under the
        agent's first seconds sank the floor to -90 dBFS, 300 ms of it "forgot" the background,
        and the music then came back as a new sound on a quiet line and paused the agent for
        300-800 ms (2-6 % of music calls, bench/barge_sim.py ``--long-calls``).
        """
        dt = max(end_sample - self._end, 1)
        self._end = end_sample
        self.level_dbfs = level_dbfs
        if not masked:
            self.floor_dbfs = self.noise.update(end_sample, level_dbfs)
        self.margin = level_dbfs - self.floor_dbfs
        self._previous, self._frame = self._frame, pcm
        self._voicing = voicing_
        power = 10 ** (max(level_dbfs, -90.0) / 10)
        self.mean_dbfs = -90.0 if self._mean is None else 10 * math.log10(self._mean)
        self.busy = self.floor_dbfs >= self.busy_dbfs or (
            self._learnt_for(self.rate) and self.mean_dbfs >= self.busy_dbfs
            and self.mean_dbfs - self.floor_dbfs >= self.busy_db)
        self.active = level_dbfs >= self.energy_dbfs and self.margin >= self.noise_margin_db
        self.foreground = (self.active and level_dbfs - self.mean_dbfs >= self.margin_db
                           and level_dbfs - self.recent_dbfs >= self.recent_margin_db)
        self.suppressed = level_dbfs < self._suppressed(end_sample)
        self.soft = (self.active and not self.foreground and self.busy
                     and self.bg_prob <= self.quiet_bg_prob
                     and level_dbfs - self.mean_dbfs >= self.soft_margin_db
                     and level_dbfs >= self.recent_dbfs)
        self.far = self.foreground and self.margin >= self.far_margin_db and not self.busy
        if masked:
            self._learn_due(end_sample)   # (what was heard before it is learnt on time)
            return
        if level_dbfs < SILENT_DBFS:
            # digital silence (no media yet, a concealed packet, a muted or DTX phone) is no
            # background; lasting silence_forget_ms, it means the background has gone
            if self._silent_since is None:
                self._silent_since = end_sample - dt
            self._learn_due(end_sample)
            if end_sample - self._silent_since >= self.silence_forget:
                self._forget()
            return
        self._silent_since = None
        voice = self.foreground and self.prob >= self.voice_prob
        clear = voice and self.margin >= self.far_margin_db
        if paused or clear:
            # a voice far over the line's floor, or the sound the agent is paused for: the
            # frames still waiting to be learnt were the start of it, before Silero was sure
            self._pending.clear()
        if paused or (hold_mean and self._settled) or (voice and (not self._settled or clear)):
            return   # the caller talking (Silero says so) is not the background (once the mean
            # has settled, a voice the floor has caught up with is a TV's: it is learnt)
        self._pending.append((end_sample, dt, power, self.foreground, self.prob))
        self._learn_due(end_sample)

    def _learn_due(self, end_sample: int) -> None:
        """Learn the frames waiting ``learn_delay_ms`` (``first_learn_delay_ms`` while no
        background is known: a caller talking from the first frame, whose first syllables
        Silero scores under ``voice_prob`` for up to 400 ms, must not become the background)."""
        delay = self.first_learn_delay if self._mean is None else self.learn_delay
        while self._pending and end_sample - self._pending[0][0] >= delay:
            self._learn(*self._pending.popleft())
            delay = self.learn_delay

    def _forget(self) -> None:
        """The line went digitally silent: whatever it had as background is gone (a burst of
        noise before it must not stand over the caller's voice for the rest of the call)."""
        self._mean = self._start = None
        self._settled = False
        self.mean_dbfs = -90.0
        self._pending.clear()
        self._recent.clear()
        self.recent_dbfs = -math.inf
        self.bg_prob = 1.0
        self._learnt = 0

    def _learn(self, at: int, dt: int, power: float, foreground: bool, prob: float) -> None:
        """One frame found to be background ``learn_delay_ms`` after it was heard."""
        if self._mean is None:       # the first: the background is what it is
            self._mean, self._start = power, at - dt
            self.bg_prob = prob
        else:
            # over the first seconds of sound the mean is about the plain average so far
            tau = min(self.mean_samples, max(at - self._start, dt))
            self._settled = tau == self.mean_samples
            a = math.exp(-dt / tau)
            if foreground:
                # a foreground frame moves the mean as if it were only margin_db over it (4x
                # slower while the call's first 2 s of sound are learnt): a new background (a
                # TV switched on) is learnt at up to ~14 dB/s, typing's clicks hardly at all
                a = a if self._settled else math.exp(-dt / (4 * tau))
                power = min(power, self._mean * 10 ** (self.margin_db / 10))
            self._mean = a * self._mean + (1 - a) * power
            self.bg_prob = a * self.bg_prob + (1 - a) * prob
        self.mean_dbfs = 10 * math.log10(self._mean)
        level = 10 * math.log10(power)
        recent = self._recent
        recent.append((at, level))
        while at - recent[0][0] > self.recent_samples:
            recent.popleft()
        self._learnt += 1
        if self._learnt % 5 == 1:    # every 100 ms of it: the loud end of the last 8 s
            self.recent_dbfs = float(np.percentile([lv for _t, lv in recent], 80))

    def _learnt_for(self, samples: int) -> bool:
        """The background mean has ``samples`` of sound behind it."""
        return self._start is not None and self._end - self._start >= samples

    @property
    def settled(self) -> bool:
        """The background mean has 2 s of sound behind it (it is the line's, not a first guess)."""
        return self._settled

    @property
    def mean_power(self) -> float | None:
        """The background mean (linear power), for :meth:`restore_mean`; None while it has
        heard under 300 ms of sound (then it is no one's background yet)."""
        if not self._learnt_for(self.rate * 3 // 10):
            return None
        return self._mean

    def restore_mean(self, power: float | None) -> None:
        """The caller's turn ended: forget what it added to the mean (``power``: the mean when
        it began). Needed in the call's first seconds, when the mean still learns during turns."""
        if power is None or self._mean is None:
            return
        # never under the floor plus 6 dB: music learnt only partly when the turn began is
        # known by now from its floor
        power = max(power, min(self._mean, 10 ** ((self.floor_dbfs + 6.0) / 10)))
        if power < self._mean:
            self._mean = power
            self.mean_dbfs = 10 * math.log10(power)

    def voiced(self) -> bool:
        """Whether the newest frame is periodic at a pitch (:meth:`periodicity` at least
        ``voiced_min``)."""
        return self.periodicity() >= self.voiced_min

    def periodicity(self) -> float:
        """The newest frame's :func:`~sipbridge.media.noisefloor.voicing` (computed once, on
        demand). Without samples or a scripted value (unit tests of the policy): 1.0, voiced."""
        if self._voicing is None:
            if self._frame is None:
                return 1.0
            self._voicing = voicing(self._frame, self._previous, self.rate)
        return self._voicing

    def hiss(self) -> tuple[float, float]:
        """The newest frame's energy at the top of the band and in all of it
        (:func:`~sipbridge.media.noisefloor.sibilance`); zeros without samples."""
        if self._frame is None:
            return 0.0, 0.0
        return sibilance(self._frame, self.rate)

    def sibilant(self, frames: list[tuple[float, float]]) -> bool:
        """Whether ``frames`` (:meth:`hiss` of a few frames in a row) are an /s/: at least
        ``sibilant_min`` (42 %) of their energy at the top of the band."""
        total = sum(t for _top, t in frames)
        return total > 0 and sum(top for top, _t in frames) >= self.sibilant_min * total

    def on_prob(self, prob: float) -> None:
        self.prob = prob

    def suppress(self, peak_dbfs: float, at_sample: int) -> None:
        """A sound as loud as ``peak_dbfs`` paused the agent for nothing: raise the bar above it."""
        self._suppress_dbfs = max(self._suppressed(at_sample), peak_dbfs + self.suppress_db)
        self._suppress_at = at_sample

    def _suppressed(self, at_sample: int) -> float:
        if self._suppress_dbfs == -math.inf:
            return -math.inf
        return self._suppress_dbfs - self.fade_per_sample * max(at_sample - self._suppress_at, 0)
