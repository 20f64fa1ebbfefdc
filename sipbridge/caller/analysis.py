"""What happened on a test call, from the two sides' audio on one sample clock (pure, no I/O).

Input: ``sent`` (what the caller played, int16) and ``received`` (what it heard from the agent),
both at ``rate`` and aligned sample for sample: sample ``n`` of each belongs to the same media
clock tick. Times in the result are milliseconds from ``origin_ms`` (the answer).

Speech is found by level, in ``window_ms`` windows (RMS in dBFS), with hysteresis: a segment
starts when a window reaches ``on_dbfs`` and extends back over the windows right before it that
reach ``off_dbfs`` (the soft onset); it lasts while windows reach ``off_dbfs`` and ends at the last
such window once ``min_silence_ms`` of quieter windows follow (or the audio ends). A segment
shorter than ``min_speech_ms`` (a click) is dropped. The default silence gap matches the bridge's
default ``turn_detection.silence_threshold_ms`` (500), so a caller utterance here is a turn there.

Turns pair each caller utterance with the agent's audio:

* the reply is the first agent segment that starts after the utterance started and before the
  next utterance starts; ``eou_to_reply_ms`` = its start minus the utterance's end (negative when
  the agent began before the caller had finished);
* a barge-in is an utterance that starts while an agent segment is under way: ``onset_ms`` is the
  utterance's start and ``to_silence_ms`` the time from it to that agent segment's end, or
  ``None`` when the agent talked on past the end of the utterance (it was not interrupted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FULL_SCALE = 32768.0


@dataclass(frozen=True)
class Levels:
    """Speech detection settings (level thresholds in dBFS of a window's RMS)."""

    on_dbfs: float = -35.0
    off_dbfs: float = -45.0
    window_ms: int = 10
    min_speech_ms: int = 80
    min_silence_ms: int = 500

    def __post_init__(self):
        if self.off_dbfs > self.on_dbfs:
            raise ValueError("off_dbfs must not be above on_dbfs")
        if self.window_ms <= 0 or self.min_speech_ms < 0 or self.min_silence_ms <= 0:
            raise ValueError("window_ms and min_silence_ms must be > 0, min_speech_ms >= 0")


@dataclass(frozen=True)
class Segment:
    """Speech from ``start_ms`` to ``end_ms`` (from the origin)."""

    start_ms: float
    end_ms: float

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class BargeIn:
    """The caller spoke over the agent at ``onset_ms``; the agent fell silent ``to_silence_ms``
    later (``None``: it did not stop while the caller spoke)."""

    onset_ms: float
    to_silence_ms: float | None


@dataclass(frozen=True)
class Turn:
    """One caller utterance and what the agent did about it."""

    utterance: Segment
    reply_start_ms: float | None
    eou_to_reply_ms: float | None
    barge_in: BargeIn | None = None


@dataclass(frozen=True)
class Report:
    """Everything measured on one call (milliseconds from the origin)."""

    duration_ms: float
    first_words_ms: float | None
    turns: list[Turn] = field(default_factory=list)
    caller: list[Segment] = field(default_factory=list)
    agent: list[Segment] = field(default_factory=list)

    @property
    def agent_speech_ms(self) -> float:
        return sum(s.duration_ms for s in self.agent)


def window_dbfs(pcm: np.ndarray, rate: int, window_ms: int = 10) -> np.ndarray:
    """RMS level of each whole ``window_ms`` window of ``pcm`` in dBFS (digital silence: -inf)."""
    n = rate * window_ms // 1000
    if n <= 0:
        raise ValueError("window shorter than one sample")
    count = len(pcm) // n
    if count == 0:
        return np.empty(0)
    frames = np.asarray(pcm[: count * n], dtype=np.float64).reshape(count, n)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(rms / FULL_SCALE)


def segments(pcm: np.ndarray, rate: int, levels: Levels = Levels(),
             origin_ms: float = 0.0) -> list[Segment]:
    """The speech segments of ``pcm`` (see the module docstring), times from ``origin_ms``."""
    db = window_dbfs(pcm, rate, levels.window_ms)
    w = levels.window_ms
    gap = -(-levels.min_silence_ms // w)  # windows of silence that close a segment
    out: list[Segment] = []
    start = last_loud = None
    floor = 0  # windows before this belong to an earlier segment

    def close(end: int) -> None:
        if (end - start) * w >= levels.min_speech_ms:
            out.append(Segment(start * w - origin_ms, end * w - origin_ms))

    for i, level in enumerate(db):
        if start is None:
            if level >= levels.on_dbfs:
                start = i
                while start > floor and db[start - 1] >= levels.off_dbfs:
                    start -= 1
                last_loud = i
        elif level >= levels.off_dbfs:
            last_loud = i
        elif i - last_loud >= gap:
            close(last_loud + 1)
            floor = last_loud + 1
            start = None
    if start is not None:
        close(last_loud + 1)
    return out


def turns(caller: list[Segment], agent: list[Segment]) -> list[Turn]:
    """Pair each caller utterance with the agent's reply and any barge-in (module docstring)."""
    out = []
    for k, utt in enumerate(caller):
        next_start = caller[k + 1].start_ms if k + 1 < len(caller) else float("inf")
        reply = next((a for a in agent if utt.start_ms < a.start_ms < next_start), None)
        under_way = next((a for a in agent if a.start_ms <= utt.start_ms < a.end_ms), None)
        barge = None
        if under_way is not None:
            stopped = under_way.end_ms <= utt.end_ms
            barge = BargeIn(utt.start_ms,
                            under_way.end_ms - utt.start_ms if stopped else None)
        out.append(Turn(utt,
                        reply.start_ms if reply else None,
                        reply.start_ms - utt.end_ms if reply else None,
                        barge))
    return out


def analyse(sent: np.ndarray, received: np.ndarray, rate: int, origin_ms: float = 0.0,
            levels: Levels = Levels()) -> Report:
    """Segments both sides, pairs the turns, and finds the agent's first words after the origin."""
    n = max(len(sent), len(received))
    caller = segments(_padded(sent, n), rate, levels, origin_ms)
    agent = segments(_padded(received, n), rate, levels, origin_ms)
    first = next((a.start_ms for a in agent if a.end_ms > 0), None)
    return Report(duration_ms=n * 1000.0 / rate - origin_ms,
                  first_words_ms=max(first, 0.0) if first is not None else None,
                  turns=turns(caller, agent), caller=caller, agent=agent)


def _padded(pcm: np.ndarray, n: int) -> np.ndarray:
    pcm = np.asarray(pcm, dtype=np.int16)
    if len(pcm) >= n:
        return pcm
    return np.concatenate([pcm, np.zeros(n - len(pcm), dtype=np.int16)])
