"""Barge-in policy: pause first, cancel on confirmation, resume when it was nothing.

Pure logic, fed once per 20 ms caller frame and once per turn event, time in caller samples.
It answers with what the session must do to the agent's audio:

* ``PAUSE`` at the first sign of the caller over the agent: a frame ``energy_margin_db`` above
  the silence floor and ``noise_margin_db`` above the line's tracked noise floor (after echo
  cancellation, and not judged echo), or Silero's first speech chunk (``SpeechOnset``),
  whichever comes first. Pausing costs nothing: queued audio is kept. Measured: a 0 dB
  margin catches breathy starts 150 ms sooner but pauses on music and residual echo and,
  when Silero confirms later than ``energy_hold_ms``, lets a blip of the agent through.
* ``CANCEL`` when the speech is confirmed (``SpeechStarted``: it lasted ``min_speech_ms``) or a
  DTMF digit arrives: the session clears the buffer and cancels and truncates upstream.
* ``RESUME`` when the candidate is rejected (shorter than ``min_speech_ms``: a cough, a
  click) and the caller has then been quiet for ``quiet_before_resume_ms``; when an energy
  pause sees no Silero onset within ``energy_hold_ms`` (Silero finds most onsets 70-140 ms in),
  unless the caller is still loud and Silero has scored a chunk since the pause at
  ``maybe_prob`` or more (some words open on sounds Silero doubts for 300 ms: "thank you"
  scores 0.13-0.44 before its first 0.5; music on hold rarely gets there), in which case
  the pause holds until the caller is quiet or an onset comes; or when a paused candidate is
  neither confirmed nor rejected within ``resume_window_ms`` (a safety net): playback
  continues with the sample after the last one sent.

With the provider's turn detection (``server_vad``), its ``speech_started`` pauses and holds
(:mod:`sipbridge.bargein_server`). This is ``barge_in.trigger: level``; the default,
``voice`` (:mod:`sipbridge.bargein_voice`), pauses for a voice and not for the line's
background (music, a TV, traffic, clicks), at the cost of some 20-50 ms on a clean line
(bench/README.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .bargein_server import ServerHold
from .turn.events import SpeechOnset, SpeechRejected, SpeechStarted


class Action(enum.Enum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Decision:
    action: Action
    source: str              # energy | local_vad | dtmf | timeout | rejected | no_speech | server_*
    at_sample: int


class BargeInPolicy(ServerHold):
    """Decides pause / resume / cancel while the agent is talking (``barge_in.trigger: level``)."""

    turn_was_foreground = True   # every Silero turn is the caller's (see bargein_voice for not)

    def __init__(self, *, enabled: bool = True, dtmf: bool = True, resume_window_ms: int = 800,
                 energy_hold_ms: int = 250, energy_margin_db: float = 10.0,
                 noise_margin_db: float = 12.0, floor_dbfs: float = -45.0,
                 quiet_before_resume_ms: int = 200, maybe_prob: float = 0.2,
                 rate: int = 16000):
        self.enabled = enabled
        self.dtmf = dtmf
        self.resume_window = resume_window_ms * rate // 1000
        self.energy_hold = energy_hold_ms * rate // 1000
        self.quiet_before_resume = quiet_before_resume_ms * rate // 1000
        self.maybe_prob = maybe_prob
        self.max_prob = 0.0                  # Silero's highest chunk score since the pause
        self.last_loud = -(1 << 62)          # end sample of the caller's last loud frame
        self.resume_pending = False          # rejected, waiting for the caller to be quiet
        self.energy_quiet_until = 0          # no energy pauses before this sample (after a
        # false alarm: music on hold or steady noise would otherwise pause and resume the agent
        # every quarter second; Silero's onsets still pause it)
        self.energy_dbfs = floor_dbfs + energy_margin_db
        self.noise_margin_db = noise_margin_db
        self.noise_dbfs = floor_dbfs - 20.0  # the line's noise floor, tracked per frame
        self.paused_at: int | None = None    # sample at which we paused (None: not paused by us)
        self.onset_seen = False              # Silero saw a speech onset since the pause
        self.pause_source: str | None = None

    def set_floor(self, floor_dbfs: float, margin_db: float = 10.0) -> None:
        self.energy_dbfs = floor_dbfs + margin_db

    def _track_noise(self, level_dbfs: float) -> float:
        """Follow the line's noise floor: down at once, up slowly (~2.5 dB/s); return the trigger."""
        if level_dbfs < self.noise_dbfs:
            self.noise_dbfs = max(level_dbfs, -100.0)
        else:
            self.noise_dbfs += 0.05
        return max(self.energy_dbfs, self.noise_dbfs + self.noise_margin_db)

    level_dbfs = float("-inf")   # the newest caller frame's level

    def evidence(self) -> dict:
        """What the newest frame was, for the ``barge_in_paused`` log line."""
        return {"level_dbfs": round(self.level_dbfs, 1),
                "over_floor_db": round(self.level_dbfs - self.noise_dbfs, 1)}

    def on_frame(self, end_sample: int, level_dbfs: float, echo_only: bool,
                 agent_talking: bool, frame=None, voicing: float | None = None,
                 masked: bool = False) -> Decision | None:
        """One caller frame (after echo cancellation): an energy pause, or a resume on timeout.
        (``frame``, ``voicing`` and ``masked`` are for the voice trigger; this one goes by level
        alone.)"""
        if not self.enabled:
            return None
        trigger = self._track_noise(level_dbfs)
        self.level_dbfs = level_dbfs
        if level_dbfs >= trigger:
            self.last_loud = end_sample
        if self.paused_at is not None and self.server_at is not None:
            return self._server_hold(end_sample)
        if self.paused_at is not None:
            if self.resume_pending and end_sample - self.last_loud >= self.quiet_before_resume:
                return self._resume("rejected", end_sample)
            waited = end_sample - self.paused_at
            if not self.onset_seen and self.pause_source == "energy" and waited >= self.energy_hold:
                loud = end_sample - self.last_loud < self.quiet_before_resume
                if not (loud and self.max_prob >= self.maybe_prob):
                    return self._resume("no_speech", end_sample)
            if waited >= self.resume_window:
                return self._resume("timeout", end_sample)
            return None
        if (agent_talking and not echo_only and level_dbfs >= trigger
                and end_sample >= self.energy_quiet_until):
            return self._pause("energy", end_sample)
        return None

    def on_turn(self, event, agent_talking: bool) -> Decision | None:
        """A turn event from the detector."""
        if not self.enabled:
            return None
        if isinstance(event, SpeechOnset):
            if self.paused_at is not None:
                self.onset_seen = True
                self.resume_pending = False
                return None
            if agent_talking:
                decision = self._pause("local_vad", event.at_sample)
                self.onset_seen = True
                return decision
        elif isinstance(event, SpeechRejected):
            if self.paused_at is not None:
                # a word with a stop in it is often rejected and re-detected a chunk later:
                # resume only once the caller has been quiet for a moment
                if event.at_sample - self.last_loud >= self.quiet_before_resume:
                    return self._resume("rejected", event.at_sample)
                self.resume_pending = True
        elif isinstance(event, SpeechStarted):
            if self.paused_at is not None or agent_talking:
                return self._cancel("local_vad", event.at_sample)
        return None

    def on_prob(self, prob: float, pause_prob: float | None = None) -> None:
        """Silero's score of the newest chunk (fed after each frame's chunks are scored)."""
        if self.paused_at is not None and prob > self.max_prob:
            self.max_prob = prob

    def on_scored(self, end_sample: int, agent_talking: bool) -> Decision | None:
        """The newest frame once its chunk is scored: this policy decided on it already."""
        return None

    def caller_done(self, end_sample: int, silence: int) -> int | None:
        """Silero's own end of turn stands (this policy does not tell a caller from a TV)."""
        return None

    def on_dtmf(self, at_sample: int, agent_talking: bool) -> Decision | None:
        if self.enabled and self.dtmf and (agent_talking or self.paused_at is not None):
            return self._cancel("dtmf", at_sample)
        return None

    def reset(self) -> None:
        """The agent's audio was cleared by someone else (a cancel from another source)."""
        self.paused_at = None
        self.onset_seen = False
        self.pause_source = None
        self.resume_pending = False
        self.max_prob = 0.0
        self.server_at = None

    def _pause(self, source: str, at: int) -> Decision:
        self.paused_at, self.onset_seen, self.pause_source = at, False, source
        self.max_prob = 0.0
        return Decision(Action.PAUSE, source, at)

    def _resume(self, source: str, at: int) -> Decision | None:
        if self.server_at is not None and not source.startswith("server"):
            return None  # the provider's speech_started holds the pause until it decides
        self.reset()
        self.energy_quiet_until = at + 4 * self.energy_hold
        return Decision(Action.RESUME, source, at)

    def _cancel(self, source: str, at: int) -> Decision:
        self.reset()
        return Decision(Action.CANCEL, source, at)
