"""The turn state machine: per-chunk (probability, level) in, turn events out.

Pure and deterministic: no model, no audio, no clock. Time is the sample index
of each chunk's end, counted from the start of the call; everything reported is
derived from it (milliseconds are ``samples * 1000 // sample_rate``).

States::

    idle --speech--> candidate --lasted min_speech--> speaking <--speech-- trailing
      ^                  |                               |                    |
      +-----non-speech---+ (SpeechRejected)              +--non-speech------->+
      ^                                                                       |
      +----------------- silence_threshold of non-speech (SpeechStopped) -----+

A chunk is speech when ``dbfs >= silence_floor_dbfs`` and ``prob`` reaches
``threshold``. While already in speech (candidate, speaking) both bars drop:
``prob`` need only reach ``release_threshold`` and ``dbfs`` may sit up to
``floor_hysteresis_db`` (10 dB) under the floor. The level hysteresis is there
because real word endings (a fading vowel, a final "s") run at -45 to -55 dBFS
for 100-200 ms while Silero still scores them ~1.0; gated at the onset floor
they start the silence count early, and a pause of ``silence_threshold_ms -
150`` ms then ends the turn.

Entering candidate emits ``SpeechOnset``. A candidate whose span (onset chunk
start to current chunk end) reaches ``min_speech_ms`` on a speech chunk emits
``SpeechStarted``; one whose non-speech reaches ``candidate_gap_ms`` first
emits ``SpeechRejected``. The default gap (64 ms: one 32 ms chunk is bridged,
the second rejects) exists because clean speech has stop closures (the
silence before the "t" of "try") that dip under the floor for one chunk;
without it such a word rejects its own candidate and restarts it, delaying
``SpeechStarted`` by about ``min_speech_ms``.

In speaking/trailing, non-speech accumulates from the end of the last speech
chunk and, once it spans ``silence_threshold_ms``, ``SpeechStopped`` reports
that end; a speech chunk (at the full threshold and floor) before then resumes
the turn: a pause, not an end. Resumption is not re-qualified by
``min_speech_ms``, so a lone loud chunk in a pause restarts the silence count.
"""

from __future__ import annotations

import enum

from sipbridge.turn.events import SpeechOnset, SpeechRejected, SpeechStarted, SpeechStopped, TurnEvent
from sipbridge.turn.settings import TurnSettings

CHUNK_SAMPLES = 512
CANDIDATE_GAP_MS = 64
FLOOR_HYSTERESIS_DB = 10.0


class TurnState(enum.Enum):
    """Where the caller is: silent, maybe speaking, speaking, or pausing within a turn."""

    IDLE = "idle"
    CANDIDATE = "candidate"
    SPEAKING = "speaking"
    TRAILING = "trailing"


class TurnDetector:
    """Turn state machine fed one chunk at a time (see the module docstring for the rules).

    ``chunk_samples`` is the length of every chunk (512 for Silero at 16 kHz); a
    chunk ends at ``end_sample`` and starts ``chunk_samples`` before it.
    ``candidate_gap_ms`` is how much non-speech rejects a candidate (at least
    one chunk: 0 behaves like one chunk); ``floor_hysteresis_db`` is how far
    under ``silence_floor_dbfs`` a chunk may be and still hold speech.
    """

    def __init__(
        self,
        settings: TurnSettings,
        sample_rate: int = 16000,
        *,
        chunk_samples: int = CHUNK_SAMPLES,
        candidate_gap_ms: int = CANDIDATE_GAP_MS,
        floor_hysteresis_db: float = FLOOR_HYSTERESIS_DB,
    ):
        if sample_rate <= 0 or chunk_samples <= 0 or candidate_gap_ms < 0 or floor_hysteresis_db < 0:
            raise ValueError(
                "sample_rate and chunk_samples must be positive, candidate_gap_ms and floor_hysteresis_db "
                f"not negative; got {sample_rate}, {chunk_samples}, {candidate_gap_ms}, {floor_hysteresis_db}"
            )
        self._floor_hysteresis = float(floor_hysteresis_db)
        self._settings = settings
        self._rate = sample_rate
        self._chunk = chunk_samples
        self._candidate_gap = self.samples(candidate_gap_ms)
        self._state = TurnState.IDLE
        self._last_end: int | None = None
        self._onset = 0  # first sample of the current candidate/turn
        self._audio_start = 0  # onset minus prefix padding, clamped at 0
        self._speech_end = 0  # end of the last speech chunk

    @property
    def state(self) -> TurnState:
        """Current state; ``state.value`` is ``"idle"``, ``"candidate"``, ``"speaking"`` or ``"trailing"``."""
        return self._state

    @property
    def settings(self) -> TurnSettings:
        """The settings the next chunk will be judged by."""
        return self._settings

    @property
    def sample_rate(self) -> int:
        """Samples per second of the ``end_sample`` timeline."""
        return self._rate

    @property
    def in_turn(self) -> bool:
        """True from ``SpeechStarted`` until ``SpeechStopped`` (speaking or trailing)."""
        return self._state in (TurnState.SPEAKING, TurnState.TRAILING)

    def update(self, settings: TurnSettings) -> None:
        """Judge chunks from the next one on by ``settings``; the current state and timings are kept.

        A shortened ``min_speech_ms`` / ``silence_threshold_ms`` that an ongoing
        candidate / pause already satisfies takes effect on the next chunk.
        """
        self._settings = settings

    def reset(self) -> None:
        """Drop any candidate or turn without an event (e.g. after a DTMF commit or clear); time is kept."""
        self._state = TurnState.IDLE

    def ms(self, sample: int) -> int:
        """Milliseconds from call start at ``sample`` (floored)."""
        return sample * 1000 // self._rate

    def samples(self, ms: int) -> int:
        """Whole samples in ``ms`` milliseconds (floored)."""
        return ms * self._rate // 1000

    def _holding(self) -> bool:
        return self._state in (TurnState.CANDIDATE, TurnState.SPEAKING)

    @property
    def floor_dbfs(self) -> float:
        """Lowest level that can count as speech in the current state (the floor, or under it while holding)."""
        floor = self._settings.silence_floor_dbfs
        return floor - self._floor_hysteresis if self._holding() else floor

    def needs_prob(self, dbfs: float) -> bool:
        """Whether the next chunk's verdict depends on its probability (else the model run can be skipped)."""
        return dbfs >= self.floor_dbfs

    def is_speech(self, prob: float, dbfs: float) -> bool:
        """Whether a chunk with this probability and level counts as speech in the current state."""
        s = self._settings
        return dbfs >= self.floor_dbfs and prob >= (s.release if self._holding() else s.threshold)

    def process(self, end_sample: int, prob: float, dbfs: float) -> list[TurnEvent]:
        """Judge the chunk ending at ``end_sample``; returns the events it causes (often none).

        ``end_sample`` must increase from call to call. ``dbfs`` may be ``-inf``
        (digital silence).
        """
        if self._last_end is not None and end_sample <= self._last_end:
            raise ValueError(f"end_sample must increase: {end_sample} after {self._last_end}")
        self._last_end = end_sample
        speech = self.is_speech(prob, dbfs)
        events: list[TurnEvent] = []
        state = self._state
        if state is TurnState.IDLE:
            if speech:
                self._begin_candidate(end_sample, events)
        elif state is TurnState.CANDIDATE:
            if speech:
                self._speech_end = end_sample
                self._confirm_if_long(end_sample, events)
            elif end_sample - self._speech_end >= self._candidate_gap:
                self._state = TurnState.IDLE
                events.append(SpeechRejected(self.ms(self._audio_start), self._audio_start, end_sample))
        elif speech:  # speaking or trailing
            self._speech_end = end_sample
            self._state = TurnState.SPEAKING
        else:
            self._state = TurnState.TRAILING
            self._stop_if_silent_long(end_sample, events)
        return events

    def _begin_candidate(self, end_sample: int, events: list[TurnEvent]) -> None:
        self._onset = max(0, end_sample - self._chunk)
        self._audio_start = max(0, self._onset - self.samples(self._settings.prefix_padding_ms))
        self._speech_end = end_sample
        self._state = TurnState.CANDIDATE
        events.append(SpeechOnset(self.ms(self._audio_start), self._audio_start, end_sample))
        self._confirm_if_long(end_sample, events)

    def _confirm_if_long(self, end_sample: int, events: list[TurnEvent]) -> None:
        if end_sample - self._onset >= self.samples(self._settings.min_speech_ms):
            self._state = TurnState.SPEAKING
            events.append(SpeechStarted(self.ms(self._audio_start), self._audio_start, end_sample))

    def _stop_if_silent_long(self, end_sample: int, events: list[TurnEvent]) -> None:
        if end_sample - self._speech_end >= self.samples(self._settings.silence_threshold_ms):
            self._state = TurnState.IDLE
            events.append(SpeechStopped(self.ms(self._speech_end), self._speech_end, end_sample))
