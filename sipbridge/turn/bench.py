"""Cost of one Silero chunk, single-stream and batched: ``python -m sipbridge.turn.bench``.

Prints microseconds per chunk per stream (median of several repeats) for
:meth:`SileroStream.prob` and for :meth:`SileroModel.probs` at a few batch
sizes, plus the whole :class:`TurnEngine` path per 20 ms frame. Audio is
low-level noise (every chunk is scored); the model runs on one thread, as in
the bridge. A measuring tool, not part of the bridge at run time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from sipbridge.turn.engine import TurnEngine, score_pending
from sipbridge.turn.settings import TurnSettings
from sipbridge.turn.silero import CHUNK_SAMPLES, load_model


def _median_us(run, repeats: int, per: int) -> float:
    samples = []
    for _ in range(repeats):
        begin = time.perf_counter_ns()
        run()
        samples.append((time.perf_counter_ns() - begin) / 1000 / per)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> None:
    """Run the measurements and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=400, help="chunks per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    model = load_model()
    rng = np.random.default_rng(0)
    chunks = (rng.normal(0, 3000, (args.chunks, CHUNK_SAMPLES))).astype(np.int16)

    stream = model.new_stream()
    for chunk in chunks[:20]:
        stream.prob(chunk)

    def single() -> None:
        for chunk in chunks:
            stream.prob(chunk)

    print(f"single   B=1  {_median_us(single, args.repeats, len(chunks)):7.1f} us/chunk")
    for batch in (1, 2, 4, 8, 16, 32):
        streams = [model.new_stream() for _ in range(batch)]
        rounds = max(1, len(chunks) // batch)

        def batched() -> None:
            for r in range(rounds):
                model.probs(streams, [chunks[(r * batch + i) % len(chunks)] for i in range(batch)])

        per = _median_us(batched, args.repeats, rounds * batch)
        print(f"batched  B={batch:<2d} {per:7.1f} us/chunk/stream")

    frames = chunks.reshape(-1)[: (chunks.size // 320) * 320].reshape(-1, 320)
    engine = TurnEngine(model.new_stream(), TurnSettings(silence_floor_dbfs=-120.0))

    def engine_feed() -> None:
        for frame in frames:
            engine.feed(frame)

    print(f"engine   feed {_median_us(engine_feed, args.repeats, len(frames)):7.1f} us/20ms frame (1 call)")
    engines = [TurnEngine(model.new_stream(), TurnSettings(silence_floor_dbfs=-120.0)) for _ in range(4)]

    def engine_batched() -> None:
        for frame in frames:
            for e in engines:
                e.push(frame)
            score_pending(engines)

    per = _median_us(engine_batched, args.repeats, len(frames))
    print(f"engine   push+score_pending x4 {per:7.1f} us/20ms tick ({per / 4:.1f} per call)")


if __name__ == "__main__":
    main()
