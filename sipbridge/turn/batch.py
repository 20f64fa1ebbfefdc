"""One Silero run per media clock tick for all of a worker's calls.

pjmedia's clock thread delivers every call's caller frame in turn each 20 ms tick (the
conference bridge reads every port, then writes every port). Scoring each call on its own costs
one ONNX Runtime call per call and chunk, each paying the run's fixed overhead on cold caches.
:class:`TickBatch` instead collects the frames of a tick and, once every call that takes part has
delivered its frame, scores the ready chunks of all of them with
:func:`~sipbridge.turn.engine.score_pending` (one batched model run per round), then hands each
call its events. Calls at 16 kHz and at 8 kHz may share one batch: each round
runs the model once per sample rate among its chunks, never mixing rates in one run.

Why no decision comes later than before: the batch is scored while the same tick's frames are
still being delivered, before the clock's next tick requests any agent audio, so a pause or
flush decided from a frame still lands before the next outbound frame, as with per-call scoring.

Membership: a call takes part from its first frame (:meth:`push`) until :meth:`leave`. A round
that is still open when the next tick begins (a call joined after the others had pushed, or a
call's media went away before it left) is scored then: :meth:`flush`, which the session calls
when its agent frame is requested, and :meth:`catch_up` before a call's next frame. Such a round
is one tick late (``late_rounds``); it never stalls, and the next round is aligned again.

Chunk phase: a 32 ms chunk is 1.6 frames, so a call completes chunks on five ticks in eight,
and calls that started on different ticks complete them on different ticks: one model run per
phase, each paying ONNX Runtime's fixed cost on cold caches (4 calls: 0.8 runs per tick of 1.5
rows). A call's first frame therefore aligns its engine (:meth:`TurnEngine.align`) so its
partial chunk matches the other calls' of its rate: the chunk cuts are the same audio moved by
under a chunk, as if the call had been answered a few ms earlier, and every sample index is
unchanged. Rounds then hold every call's chunk (bench/tick_profile.py).

Threads: :meth:`push` on the media clock thread only (the model is not thread-safe);
:meth:`leave` from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import structlog

from sipbridge.turn.engine import TurnEngine, score_pending
from sipbridge.turn.events import TurnEvent

OnEvents = Callable[[list[TurnEvent]], None]
log = structlog.get_logger("sipbridge.turn")


class TickBatch:
    """Scores the turn engines of a worker's calls together, once per tick. See the module doc."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: set[int] = set()                 # id(engine) of calls taking part
        self._known: dict[int, TurnEngine] = {}         # ... and the engines themselves
        self._round: dict[int, tuple[TurnEngine, OnEvents]] = {}
        self._pushed: set[int] = set()                  # engines that pushed since the last flush
        self.rounds = 0
        self.late_rounds = 0   # rounds scored only when the next tick began
        self.aligned = 0       # calls whose chunk cuts were moved onto the others' ticks
        self.ticks = 0         # media ticks seen: a phase the calls share (append batches)

    def push(self, engine: TurnEngine, frame: np.ndarray, on_events: OnEvents) -> None:
        """One call's frame of this tick; ``on_events(events)`` runs once its chunks are scored
        (possibly right here, when this call completes the round)."""
        key = id(engine)
        if key in self._round:  # this call is back: a new tick began, score the stalled round
            self.late_rounds += 1
            self._score()
        if engine.samples_fed == 0 and engine.partial_samples == 0:
            self._align(engine, len(frame))
        engine.push(frame)
        self._pushed.add(key)
        self._round[key] = (engine, on_events)
        with self._lock:
            self._members.add(key)
            self._known[key] = engine
            complete = self._members.issubset(self._round)
        if complete:
            self._score()

    def flush(self) -> None:
        """The clock's next tick has begun (a call asks for its agent frame): score the round in
        progress now, so every decision of the last tick lands before any outbound frame of this
        one. Nothing to do in the steady state, where the last call's frame closed the round."""
        if self._pushed:   # the first agent frame after this tick's caller frames
            self.ticks += 1
            self._pushed.clear()
        if self._round:
            self.late_rounds += 1
            self._score()

    def catch_up(self, engine: TurnEngine) -> None:
        """Called before a call's next frame: if its last frame's round is still unscored (a call
        that left without saying so held it up), score that round now, so its events come first."""
        if id(engine) in self._round:
            self.late_rounds += 1
            self._score()

    def _align(self, engine: TurnEngine, frame_len: int) -> None:
        """A new call cuts its chunks on the ticks the others do (same rate): after this frame
        its partial chunk holds as many samples as theirs will, so one model run per tick
        scores every call's chunk instead of one run per phase (calls start at any tick).
        A member that pushed since the last :meth:`flush` (the tick's agent frames) has this
        tick's frame in already; any other has it still to come."""
        size = engine.chunk_samples
        with self._lock:
            known = list(self._known.items())
        other = None
        for key, candidate in known:
            if candidate.chunk_samples == size and candidate is not engine:
                other = (candidate.partial_samples if key in self._pushed
                         else (candidate.partial_samples + frame_len) % size)
                if key in self._pushed:
                    break
        if other is None:
            return
        self.aligned += 1
        engine.align((other - frame_len) % size)

    def leave(self, engine: TurnEngine) -> None:
        """The call is over: later rounds no longer wait for it."""
        with self._lock:
            self._members.discard(id(engine))
            self._known.pop(id(engine), None)

    def _score(self) -> None:
        members = list(self._round.values())
        self._round.clear()
        self.rounds += 1
        results = score_pending([engine for engine, _ in members])
        for (_, on_events), events in zip(members, results):
            try:  # one call's failure must not cost the others their events
                on_events(events)
            except Exception:  # noqa: BLE001
                log.exception("turn_events_failed")
