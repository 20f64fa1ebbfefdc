"""Turn events: what the detector says about the caller, as frozen values.

Every event carries its audio position twice, as milliseconds from the start of
the call (the unit the realtime APIs speak) and as a sample index at the
detector's sample rate (the unit the bridge's audio buffers use), plus
``at_sample``: the end of the chunk on which the decision was made, so
``at_sample - audio_end_sample`` is the decision latency.

Lifecycle of one candidate: ``SpeechOnset`` then exactly one of
``SpeechRejected`` (too short, never speech) or ``SpeechStarted``; a started
turn ends with exactly one ``SpeechStopped``. Onset, Started and Rejected of
the same candidate share ``audio_start_*`` (the onset minus the prefix padding).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpeechOnset:
    """First speech chunk of a candidate: tentative; barge-in may pause playback on it."""

    audio_start_ms: int
    audio_start_sample: int
    at_sample: int


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The candidate has lasted ``min_speech_ms``: the caller's turn has begun."""

    audio_start_ms: int
    audio_start_sample: int
    at_sample: int


@dataclass(frozen=True, slots=True)
class SpeechRejected:
    """The candidate ended before ``min_speech_ms``: it was never speech (resume playback)."""

    audio_start_ms: int
    audio_start_sample: int
    at_sample: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """``silence_threshold_ms`` of non-speech followed the turn; it ended at ``audio_end_*``."""

    audio_end_ms: int
    audio_end_sample: int
    at_sample: int


TurnEvent = SpeechOnset | SpeechStarted | SpeechRejected | SpeechStopped
