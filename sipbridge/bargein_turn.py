"""Turn judgement for the ``voice`` barge-in trigger: did the turn Silero ended hold the caller?

:class:`~sipbridge.bargein_voice.VoiceBargeInPolicy` owns one :class:`TurnJudge` and delegates
to it; the policy itself only pauses, resumes and cancels the agent's audio.

Pure logic, time in caller samples. The judge follows Silero's turn events
(:meth:`TurnJudge.follow`: ``SpeechOnset`` .. ``SpeechStarted`` / ``SpeechRejected``, then
``SpeechStarted`` .. ``SpeechStopped``), hears each caller frame once the line's
:class:`~sipbridge.bargein_trigger.ForegroundTracker` (the policy's, shared) has taken it
(:meth:`TurnJudge.frame`), and counts how much foreground voice the open turn held: all of it
(:attr:`~TurnJudge.turn_voice_samples`: while there is some, the tracker does not learn the
turn as the line's background, :attr:`~TurnJudge.holds_mean`), and the part over a false
alarm's bar (:attr:`~TurnJudge.turn_clear_samples`: Silero's turn cancels the agent only with
some, see :meth:`ForegroundTracker.suppress`).

It says whether a turn Silero ended held a foreground voice (:attr:`~TurnJudge.turn_was_foreground`)
so the session commits only those: a TV behind a silent caller does not make the agent answer.
That is judged looking back, when the turn ends (:meth:`~TurnJudge.stood_out`): a TV on from
the call's first frame is a voice until the background is learnt, but never stood out of its
own floor. And since Silero's turn on a TV never ends, :meth:`~TurnJudge.take_caller_end` tells
the session (the policy's ``caller_done``, asked once per frame) when the caller's own turn
inside it is over.
"""

from __future__ import annotations

import math

from .bargein_trigger import ForegroundTracker
from .turn.events import SpeechOnset, SpeechRejected, SpeechStarted, SpeechStopped


class TurnJudge:
    """Silero's view of the caller, how much foreground voice each turn held, and whose it was."""

    def __init__(self, fg: ForegroundTracker, *, rate: int = 16000, turn_voice_ms: int = 100,
                 turn_over_floor_db: float = 15.0, talking_bg_prob: float = 0.5,
                 faded_ms: int = 300):
        self.fg = fg                             # the line's evidence (the policy feeds it frames)
        self.rate = rate
        self.turn_voice = turn_voice_ms * rate // 1000
        self.turn_over_floor_db = turn_over_floor_db
        self.talking_bg_prob = talking_bg_prob
        self.faded = faded_ms * rate // 1000
        self.in_turn = False                 # Silero's SpeechStarted .. SpeechStopped
        self.in_candidate = False            # SpeechOnset .. SpeechStarted / SpeechRejected
        self.turn_voice_samples = 0          # foreground speech heard since the candidate began
        self.turn_clear_samples = 0          # of it, over a false alarm's bar (see suppress)
        self.turn_voice_levels: list[float] = []   # the levels of its frames (the first 10 s)
        self.turn_floor = -math.inf          # the line's floor in the turn (see stood_out)
        self.turn_known = False              # the background was known when the turn began
        self.last_voice: int | None = None   # end sample of its last foreground voice frame
        self.turn_was_foreground = False     # the last turn Silero ended held a foreground voice
        self.mean_at_onset: float | None = None   # the background mean when that turn began

    @property
    def holds_mean(self) -> bool:
        """Silero's candidate or turn is open and a foreground voice was heard in it: the
        tracker must leave the background mean as it is (its ``hold_mean``)."""
        return (self.in_candidate or self.in_turn) and self.turn_voice_samples > 0

    def follow(self, event) -> None:
        """Silero's turn event: a new candidate starts the count afresh (unless a turn is
        already open); its ``SpeechStopped`` is judged (:attr:`turn_was_foreground`), and a
        turn that was the caller's is forgotten from the background mean (the caller's own
        turn is not the line's background)."""
        if isinstance(event, SpeechOnset):
            if not self.in_turn:
                self.in_candidate, self.turn_voice_samples = True, 0
                self.turn_clear_samples = 0
                self.turn_voice_levels, self.turn_floor = [], -math.inf
                self.turn_known = self.fg.settled
                self.last_voice = None
                self.mean_at_onset = self.fg.mean_power
        elif isinstance(event, SpeechRejected):
            self.in_candidate = False
        elif isinstance(event, SpeechStarted):
            self.in_candidate, self.in_turn = False, True
        elif isinstance(event, SpeechStopped):
            self.in_turn = False
            self.turn_was_foreground = self.stood_out() >= self.turn_voice
            if self.turn_was_foreground:   # the caller's own turn is not the line's background
                self.fg.restore_mean(self.mean_at_onset)

    def frame(self, end_sample: int, level_dbfs: float, voice: bool) -> None:
        """The caller frame ending at ``end_sample``, after the tracker has taken it; ``voice``:
        it was foreground and Silero scored it ``voice_prob`` (the policy's ``speechlike``).

        Inside a candidate or turn: the turn's floor (the highest while the background is not
        known, else the first, see :meth:`stood_out`), and a voice frame's 20 ms, level (the
        first 10 s) and end (:attr:`last_voice`)."""
        if not (self.in_candidate or self.in_turn):
            return
        fg = self.fg
        if not self.turn_known or self.turn_floor == -math.inf:
            self.turn_floor = max(self.turn_floor, fg.floor_dbfs)
        if voice:
            self.turn_voice_samples += self.rate // 50
            if len(self.turn_voice_levels) < 500:   # (the first 10 s)
                self.turn_voice_levels.append(level_dbfs)
            self.last_voice = end_sample
            if not fg.suppressed:
                self.turn_clear_samples += self.rate // 50

    def stood_out(self) -> int:
        """Samples of the ended turn's voice that stood ``turn_over_floor_db`` (15 dB) over the
        line's floor in the turn, and ``margin_db`` over the background mean now.

        A TV on from the call's first frame is a voice until the mean has learnt it, which
        it does not inside a turn; but the floor follows it within its first turn, and a
        TV's distant talkers never stand 15 dB over their own floor (measured: 11.5-14.5 dB
        at their loudest): so while the background is not known (the mean not settled when
        the turn began), the floor is the highest in the turn. Once it is known, the floor
        is the turn's first: the floor's minimum statistics climb under a caller talking for
        seconds over loud music (-25 -> -20 dBFS under music at -20), and judged against
        that the caller's own turn did not stand out (2 of 100 tuning callers over music
        never answered). A caller's voice, with gaps between its words, stands 20-60 dB over
        a quiet line's floor and 15 dB or more over music's."""
        fg = self.fg
        bar = max(self.turn_floor + self.turn_over_floor_db, fg.mean_dbfs + fg.margin_db)
        return sum(1 for level in self.turn_voice_levels if level >= bar) * (self.rate // 50)

    def take_caller_end(self, end_sample: int, silence: int) -> int | None:
        """A step, asked once per frame, not a query: whether the caller's turn is over inside
        a turn of Silero's that a TV holds open: the end sample of the caller's last voice
        frame, or None. Each voice end is judged once: when it is old enough to be judged,
        :attr:`last_voice` is cleared whatever the verdict (the TV's own voice frames start it
        again), so the same end is never answered twice.

        Silero scores a TV's distant talkers as speech (0.9-1.0), so over one its turn never
        ends and the caller who spoke in it would never be answered (the noise corpus, babble,
        the agent silent: 0 of 40 callers' turns committed). On a line whose background
        Silero scores ``talking_bg_prob`` (0.5) on average, ``silence`` samples (the turn
        detector's ``silence_threshold_ms``) plus ``faded_ms`` (300) with no foreground voice
        (``foreground``, scored ``voice_prob``: a TV's talkers stay within 8 dB of their mean,
        a caller 10 dB over them does not) end the caller's turn, if it held ``turn_voice_ms``
        of voice standing out of the background (:meth:`stood_out`, as a turn must to be
        committed): the session ends Silero's turn there and commits it. ``faded_ms`` is the
        end of a phrase sinking under the TV, which Silero would still have counted as speech:
        without it a caller's 240 ms pause after one ("invalid option | please try again") was
        taken for the end of their turn (3 of 100 tuning calls). Elsewhere Silero's end stands."""
        fg = self.fg
        last = self.last_voice
        if (not self.in_turn or last is None or end_sample - last < silence + self.faded
                or fg.mean_power is None or fg.bg_prob < self.talking_bg_prob):
            return None
        self.last_voice = None   # (judged once: the TV's own voice frames start it again)
        return last if self.stood_out() >= self.turn_voice else None
