"""Per-call turn engine: int16 frames in (16 or 8 kHz), turn events out; plus batched scoring.

:class:`TurnEngine` glues a :class:`~sipbridge.turn.silero.SileroStream` to a
:class:`~sipbridge.turn.detector.TurnDetector`. The stream's sample rate is the
engine's (``TurnEngine(model.new_stream(8000), settings)`` takes 8 kHz frames;
16 kHz is the default); every sample index, event and history length is at that
rate, and the millisecond constants below are converted per engine. It re-chunks
frames of any length into the model's 32 ms chunks (512 samples at 16 kHz, 256
at 8 kHz), measures each chunk's level
(RMS re int16 full scale; digital silence is ``-inf`` dBFS), scores it, and
feeds the detector with the chunk's end sample. All time is the count of
samples fed since the call started. It also keeps the last ``history_ms`` of
audio so the bridge can send the prefix padding when a turn starts
(:meth:`TurnEngine.audio_since` with the event's ``audio_start_sample``).

Two ways to drive it (both drain the same queue of ready chunks):

* one call: ``events = engine.feed(frame)`` scores on the call's own stream;
* a worker's calls together, on its media thread: ``engine.push(frame)`` for
  each, then ``score_pending(engines)``, which scores every ready chunk of
  every engine with one batched model run per round (round *k* takes each
  engine's *k*-th ready chunk, one model run per sample rate among them; with
  20 ms frames there is at most one round per tick, and five ticks in eight
  have one).

Chunks the detector would judge without their probability (under its level
floor, see :meth:`TurnDetector.needs_prob`) need no model run, and while
``settings.type`` is not ``"silero"`` no chunk does. Silero's LSTM state must
still come out of such stretches as the never-skipping model would leave it.
Measured on real prompts: freezing the state at the first quiet chunk leaves it
"mid-speech", so noise at -43 dBFS after seconds of silence scores ~0.98 (the
never-skipping model: 0.04); zeroing it instead loses the context over stop
closures and short pauses (a resumed word scores ~0.04 for a chunk). So the
engine keeps scoring the first :data:`SETTLE_MS` of every quiet stretch -- the
model sees the speech decay and its state settles on silence, pauses shorter
than that are scored exactly as without skipping -- and only then skips,
holding the settled state and passing each skipped chunk's tail on as context.
After :data:`RESET_MS` of quiet outside a turn the state is zeroed (a fresh stream): the
settled state of earlier speech made Silero take music on hold, played 1.5 s after the caller
spoke, for speech (2 false turns in 5 tracks, bench/turns.py ``music_after_speech``; 0 after).
On 90 simulated calls built from real prompts the events matched the
never-skipping model's exactly in 74, were one chunk apart in 14, and in 2 an
onset that one variant rejected and restarted went straight through in the
other (the skipping one). In a long silence every chunk after the first half
second is skipped.

With a *probe* (``TurnEngine(stream, settings, probe=model.new_stream(rate))``, the session's
``barge_in.vad_hop_ms: 16``) a second stream of the same call cuts its chunks half a chunk
after the main stream's and is scored in the same batched runs: :attr:`TurnEngine.barge_prob`
is then the newest score of either, a chunk ending every 16 ms, for the barge-in only (the
detector, the events and :attr:`TurnEngine.last_prob` are exactly as without it). A word's
first score over music comes 0-16 ms sooner: Silero's own time to a score of 0.3 after the
first speech sample, over the noise corpus's tuning music (100 interruptions 10-15 dB over it),
p50 56 -> 48 ms, p90 106 -> 92; but the music's own rises over 0.3 before them went 29 -> 34
(the barge-in policy counts the probe's score only where the turn stream's is 0.05 or more:
27).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from sipbridge.turn.detector import TurnDetector, TurnState
from sipbridge.turn.events import TurnEvent
from sipbridge.turn.settings import MAX_MS, TurnSettings
from sipbridge.turn.silero import SAMPLE_RATE, SileroModel, SileroStream, chunk_samples

SETTLE_MS = 500
# Longest prefix padding plus longest min speech plus a second of slack: enough
# to fetch the whole padded start of a turn when SpeechStarted arrives.
DEFAULT_HISTORY_MS = MAX_MS["prefix_padding_ms"] + MAX_MS["min_speech_ms"] + 1000
_INT16_SCALE = np.float32(1.0 / 32768.0)
RESET_MS = 1000


def chunks_in(ms: int, sample_rate: int) -> int:
    """Model chunks needed to cover ``ms`` at ``sample_rate`` (rounded up; chunks are 32 ms at both rates)."""
    return math.ceil(ms * sample_rate / 1000 / chunk_samples(sample_rate))


_SETTLE_CHUNKS = chunks_in(SETTLE_MS, SAMPLE_RATE)  # at the default rate; the same 16 at 8 kHz


def chunk_dbfs(chunk: np.ndarray) -> float:
    """Level of float32 samples in [-1, 1) as dBFS of their RMS; ``-inf`` for digital silence.

    A full-scale square wave is 0 dBFS, a full-scale sine about -3 dBFS.
    """
    mean_square = float(np.dot(chunk, chunk)) / len(chunk)
    return 10.0 * math.log10(mean_square) if mean_square > 0.0 else -math.inf


class _History:
    """Ring buffer of the last ``capacity`` int16 samples, addressed by absolute sample index."""

    def __init__(self, capacity: int):
        self._data = np.zeros(capacity, dtype=np.int16)
        self._total = 0

    @property
    def total(self) -> int:
        return self._total

    @property
    def oldest(self) -> int:
        return max(0, self._total - len(self._data))

    def append(self, samples: np.ndarray) -> None:
        capacity = len(self._data)
        if len(samples) >= capacity:
            self._data[:] = samples[-capacity:]
            self._data = np.roll(self._data, (self._total + len(samples)) % capacity)
        else:
            at = self._total % capacity
            first = min(len(samples), capacity - at)
            self._data[at : at + first] = samples[:first]
            self._data[: len(samples) - first] = samples[first:]
        self._total += len(samples)

    def since(self, sample: int) -> np.ndarray:
        start = min(max(sample, self.oldest), self._total)
        count = self._total - start
        capacity = len(self._data)
        at = start % capacity
        if at + count <= capacity:
            return self._data[at : at + count].copy()
        return np.concatenate((self._data[at:], self._data[: at + count - capacity]))


class TurnEngine:
    """One call's turn taking: re-chunking, level, Silero, detector, audio history.

    Frames, sample indices and events are at ``stream.sample_rate`` (see
    :meth:`SileroModel.new_stream`). ``history_ms`` bounds :meth:`audio_since`;
    the default covers the largest prefix padding plus the largest min speech
    that settings allow.
    """

    def __init__(self, stream: SileroStream, settings: TurnSettings, *, history_ms: int = DEFAULT_HISTORY_MS,
                 probe: SileroStream | None = None):
        if history_ms <= 0:
            raise ValueError(f"history_ms must be positive, got {history_ms}")
        rate = stream.sample_rate
        if probe is not None and (probe is stream or probe.sample_rate != rate):
            raise ValueError("the probe is a second stream at the engine's rate")
        self._stream = stream
        self._chunk = chunk_samples(rate)
        # the probe: a second stream cutting its chunks half a chunk after the main one's, for
        # the barge-in only (a score every 16 ms instead of 32); the detector never sees it
        self._probe = _Probe(probe, self._chunk) if probe is not None else None
        self._settle_chunks = chunks_in(SETTLE_MS, rate)
        self._reset_chunks = chunks_in(RESET_MS, rate)
        self._detector = TurnDetector(settings, rate, chunk_samples=self._chunk)
        self._history = _History(history_ms * rate // 1000)
        self._partial = np.zeros(self._chunk, dtype=np.float32)
        self._filled = 0
        self._ready: deque[tuple[int, np.ndarray, float]] = deque()  # (end_sample, chunk, dbfs)
        self._chunks_ended = 0  # end sample of the last chunk cut
        self._quiet_run = 0  # consecutive chunks the detector judges without a probability
        self.last_prob = 0.0  # Silero's probability for the newest scored chunk (0: not scored)
        # the newest score for the barge-in: of the main stream's newest chunk or the probe's,
        # whichever ended last (the higher when both ended in the same push)
        self.barge_prob = 0.0

    # -- inspection -------------------------------------------------------

    @property
    def stream(self) -> SileroStream:
        """The Silero stream this call is scored on."""
        return self._stream

    @property
    def sample_rate(self) -> int:
        """Samples per second of the frames it takes and of every sample index it reports."""
        return self._detector.sample_rate

    @property
    def settings(self) -> TurnSettings:
        """The settings in force for the next chunk."""
        return self._detector.settings

    @property
    def state(self) -> TurnState:
        """The detector's state after the last judged chunk."""
        return self._detector.state

    @property
    def samples_fed(self) -> int:
        """Samples received since the call started (scored or not yet)."""
        return self._history.total

    @property
    def partial_samples(self) -> int:
        """Samples waiting for the next chunk (0 <= n < a chunk): where this stream's chunk cuts fall."""
        return self._filled

    @property
    def chunk_samples(self) -> int:
        """Samples per model chunk (256 at 8 kHz, 512 at 16 kHz)."""
        return self._chunk

    @property
    def pending_chunks(self) -> int:
        """Complete chunks pushed but not yet scored."""
        return len(self._ready)

    # -- control ----------------------------------------------------------

    def update(self, settings: TurnSettings) -> None:
        """Apply new settings from the next scored chunk on; the turn in progress is kept."""
        self._detector.update(settings)

    def reset_turn(self) -> None:
        """Forget the candidate or turn in progress without an event (after a DTMF commit or clear)."""
        self._detector.reset()

    def audio_since(self, sample: int) -> np.ndarray:
        """Copy of the int16 audio from absolute ``sample`` to the newest sample fed.

        Starts at the oldest retained sample when ``sample`` is older than the
        history (or negative); empty when ``sample`` is in the future.
        """
        return self._history.since(sample)

    def align(self, samples: int) -> None:
        """Cut chunks as if ``samples`` of digital silence (0 <= samples < a chunk) preceded the
        first frame; sample indices, events and the history still count only the frames fed.

        Only before the first frame. :class:`~sipbridge.turn.batch.TickBatch` uses it so the
        calls of a worker complete their chunks on the same ticks (one model run for all,
        not one per call phase); the first chunk's end is then ``chunk - samples``.
        """
        if self._history.total or self._filled or self._chunks_ended or self._ready:
            raise RuntimeError("align() is for a fresh engine, before its first frame")
        if not 0 <= samples < self._chunk:
            raise ValueError(f"align takes 0..{self._chunk - 1} samples, got {samples}")
        self._partial[:samples] = 0.0
        self._filled = samples
        self._chunks_ended = -samples
        if self._probe is not None:
            self._probe.align(samples)

    # -- audio in ---------------------------------------------------------

    def push(self, frame: np.ndarray) -> int:
        """Buffer a frame of int16 mono at :attr:`sample_rate` (any length); returns how many chunks are ready."""
        if frame.dtype != np.int16 or frame.ndim != 1:
            raise ValueError(f"frames are 1-D int16 at {self.sample_rate} Hz, got {frame.dtype}, shape {frame.shape}")
        self._history.append(frame)
        if self._probe is not None:
            self._probe.push(frame)
        self._filled, self._chunks_ended = _cut(frame, self._partial, self._filled,
                                                self._chunks_ended, self._ready)
        return len(self._ready)

    def feed(self, frame: np.ndarray) -> list[TurnEvent]:
        """Push a frame and score every ready chunk on this call's own stream; returns the events."""
        self.push(frame)
        events: list[TurnEvent] = []
        newest = (-1, 0.0)
        while self._ready:
            end_sample, chunk, dbfs = self._ready.popleft()
            prob = self._stream.prob(chunk) if self._wants_model(chunk, dbfs) else 0.0
            self.last_prob = prob
            newest = (end_sample, prob)
            events.extend(self._detector.process(end_sample, prob, dbfs))
        probe = self._probe
        while probe is not None and probe.ready:
            end_sample, chunk, dbfs = probe.ready.popleft()
            prob = probe.stream.prob(chunk) if self._wants_model(chunk, dbfs, probe) else 0.0
            newest = _newer(newest, (end_sample, prob))
        if newest[0] >= 0:
            self.barge_prob = newest[1]
        return events

    # -- internals shared with score_pending -------------------------------

    def _wants_model(self, chunk: np.ndarray, dbfs: float, probe: _Probe | None = None) -> bool:
        """Whether the chunk needs a model run; if not, advance the stream past it (see module doc).
        ``probe``: the chunk is the probe's, judged alike with its own run of quiet chunks."""
        stream, run = (self._stream, self._quiet_run) if probe is None else (probe.stream, probe.quiet_run)
        wants = False
        if self._detector.settings.type != "silero":
            run = self._settle_chunks  # turning Silero (back) on starts from settled history
            stream.skip(chunk, reset_state=True)
        elif self._detector.needs_prob(dbfs):
            run, wants = 0, True
        else:
            run += 1
            wants = run <= self._settle_chunks
            if not wants:
                # after a long quiet stretch outside any turn, start over as a fresh stream: the
                # state left by earlier speech makes Silero take later music for speech
                fresh = run >= self._reset_chunks and self._detector.state is TurnState.IDLE
                stream.skip(chunk, reset_state=fresh)
        if probe is None:
            self._quiet_run = run
        else:
            probe.quiet_run = run
        return wants


class _Probe:
    """A second stream of one call, its chunks cut half a chunk after the main stream's.

    Scored only for the barge-in (:attr:`TurnEngine.barge_prob`): with it a chunk ends every
    16 ms, so a word's first score over music or road noise comes 0-16 ms sooner. Its chunks
    skip the model where the main stream's would (the same level floor and settling), so a
    quiet line costs no more; a busy line or speech costs a second row per chunk in the same
    batched model run (bench/tick_profile.py).
    """

    def __init__(self, stream: SileroStream, chunk: int):
        self.stream = stream
        self.chunk = chunk
        self.partial = np.zeros(chunk, dtype=np.float32)
        self.filled = chunk // 2       # half a chunk of silence first: cuts between the main's
        self.ended = -(chunk // 2)
        self.ready: deque[tuple[int, np.ndarray, float]] = deque()
        self.quiet_run = 0

    def align(self, samples: int) -> None:
        """Follow :meth:`TurnEngine.align` (still half a chunk after the main stream's cuts)."""
        self.filled = (samples + self.chunk // 2) % self.chunk
        self.partial[: self.filled] = 0.0
        self.ended = -self.filled

    def push(self, frame: np.ndarray) -> None:
        self.filled, self.ended = _cut(frame, self.partial, self.filled, self.ended, self.ready)


def _cut(frame: np.ndarray, partial: np.ndarray, filled: int, ended: int,
         ready: deque[tuple[int, np.ndarray, float]]) -> tuple[int, int]:
    """Re-chunk ``frame`` (int16) into ``partial`` (float32, one chunk long, ``filled`` samples
    in it); each chunk it completes goes to ``ready`` as (end sample, chunk, dBFS), the end
    counted on from ``ended``. Returns the new (filled, ended)."""
    size = len(partial)
    at = 0
    while at < len(frame):
        take = min(size - filled, len(frame) - at)
        np.multiply(frame[at : at + take], _INT16_SCALE, out=partial[filled : filled + take])
        filled += take
        at += take
        if filled == size:
            chunk = partial.copy()
            ended += size
            ready.append((ended, chunk, chunk_dbfs(chunk)))
            filled = 0
    return filled, ended


def _newer(a: tuple[int, float], b: tuple[int, float]) -> tuple[int, float]:
    """Of two (end sample, score), the later; the higher score when they end together."""
    if a[0] != b[0]:
        return a if a[0] > b[0] else b
    return a if a[1] >= b[1] else b


def score_pending(engines: Sequence[TurnEngine]) -> list[list[TurnEvent]]:
    """Score the ready chunks of many calls with batched model runs; returns each engine's events.

    The engines must share one :class:`SileroModel` (a worker's); their
    sample rates may differ. Each round takes the oldest ready chunk of every
    engine that has one, skips those under the floor, scores the rest with one
    :meth:`SileroModel.probs` call per sample rate among them (a model run
    never mixes rates) and then runs each engine's detector; rounds repeat
    until nothing is ready. Per engine, results equal :meth:`TurnEngine.feed`
    (within float rounding).
    """
    models = {id(e.stream.model) for e in engines}
    if len(models) > 1:
        raise ValueError("score_pending needs engines on one SileroModel")
    if len({id(e) for e in engines}) != len(engines):
        raise ValueError("an engine appears twice")
    results: list[list[TurnEvent]] = [[] for _ in engines]
    newest: list[tuple[int, float]] = [(-1, 0.0)] * len(engines)
    model: SileroModel | None = engines[0].stream.model if engines else None
    while True:
        # (index, engine, stream, probe or None, end_sample, chunk, dbfs): the main streams'
        # oldest ready chunks and the probes', scored in the same model runs
        round_ = [(i, e, e.stream, None, *e._ready.popleft()) for i, e in enumerate(engines) if e._ready]
        round_ += [(i, e, e._probe.stream, e._probe, *e._probe.ready.popleft())
                   for i, e in enumerate(engines) if e._probe is not None and e._probe.ready]
        if not round_:
            break
        by_rate: dict[int, list] = {}
        for n, (_i, engine, _stream, probe, _end, chunk, dbfs) in enumerate(round_):
            if engine._wants_model(chunk, dbfs, probe):
                by_rate.setdefault(engine.sample_rate, []).append(n)
        prob_of: dict[int, float] = {}
        for scored in by_rate.values():
            probs = model.probs([round_[n][2] for n in scored], [round_[n][5] for n in scored])
            prob_of.update((n, float(p)) for n, p in zip(scored, probs))
        for n, (i, engine, _stream, probe, end_sample, _chunk, dbfs) in enumerate(round_):
            prob = prob_of.get(n, 0.0)
            if probe is None:
                engine.last_prob = prob
                results[i].extend(engine._detector.process(end_sample, prob, dbfs))
            newest[i] = _newer(newest[i], (end_sample, prob))
    for i, engine in enumerate(engines):
        if newest[i][0] >= 0:
            engine.barge_prob = newest[i][1]
    return results
