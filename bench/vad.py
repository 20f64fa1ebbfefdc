#!/usr/bin/env python3
"""VAD cost per call-second: Silero per chunk, single stream and batched, on real call audio.

Run: ``python bench/vad.py [--seconds S] [--callers N] [--chunks N] [--repeats R]
[--batches 1,4,8,16] [--line-noise DBFS|none] [--rate 16000|8000]``. Prints one JSON object on
stdout (progress on stderr).

Call audio: a simulated caller per stream, built from Asterisk prompts (those 0.5-3 s long
once trimmed, drawn with a seeded generator) the way ``tests/unit/turn/corpus.py`` builds
one: utterances of one to three prompts with 150-400 ms pauses inside, 2-6 s of listening
(the agent's turn) between them, 8 -> 16 kHz and a G.711 µ-law round trip, over a line noise
floor (-60 dBFS white noise by default, under the -45 dBFS floor, so it is skipped).
``--rate 8000`` keeps the audio at 8 kHz (the µ-law round trip only) and scores it on 8 kHz
streams: 256-sample chunks, still 32 ms, so per-chunk figures compare across rates as they are.
``--callers`` callers (default: the largest batch, 16) of ``--seconds`` each (default 20);
every variant below processes all of them, so the figures compare like with like, and every
stream of a batch is a different caller, so their speech does not line up.

Measured on this thread's CPU clock (``time.thread_time_ns``; ONNX Runtime runs the model on
the calling thread, ``intra_op_num_threads=1``), in hot loops, as medians of ``--repeats``
rounds that run every variant once in turn (so background load falls on all alike):

* ``model_us_per_chunk``: the bare model on speech chunks, every chunk scored:
  :meth:`SileroStream.prob` (``single``) and :meth:`SileroModel.probs` at each batch size B
  (per chunk per stream);
* ``engine``: the whole :class:`TurnEngine` path (re-chunking, level, below-floor skipping,
  detector) on the call audio in 20 ms frames: ``single`` is ``engine.feed(frame)`` per call
  (what ``CallSession.on_caller_frame`` does today), ``batched.B`` is ``push`` on B engines
  then ``score_pending`` per 20 ms tick. Each gives ``us_per_chunk`` (CPU per 32 ms chunk of
  call audio, skipped ones included), ``cpu_ms_per_call_second`` and
  ``calls_per_core`` (1000 / that: VAD alone, nothing else of the media path);
* ``skipping``: per chunk of call audio, how many ran the model (above the floor, or in the
  first 500 ms of a quiet stretch while the state settles) and how many were skipped;
* ``model_only_every_chunk``: the bare single-stream model on every chunk (no skipping, no
  engine), per call-second, for scale.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from sipbridge.turn.engine import TurnEngine, score_pending  # noqa: E402
from sipbridge.turn.settings import TurnSettings  # noqa: E402
from sipbridge.turn.silero import SAMPLE_RATE, chunk_samples, load_model  # noqa: E402
from tests.support.audio import ulaw_decode, ulaw_encode  # noqa: E402
from tests.unit.turn.corpus import PROMPTS, read_wav, to_line, trim  # noqa: E402
from machine import machine  # noqa: E402 - bench/machine.py

FRAMES_PER_SECOND = 50                        # 20 ms frames
CHUNKS_PER_SECOND = SAMPLE_RATE / chunk_samples(SAMPLE_RATE)  # 31.25: 32 ms chunks at either rate


def progress(msg: str) -> None:
    print(f"[vad] {msg}", file=sys.stderr, flush=True)


def speech_prompts() -> list[np.ndarray]:
    """Every Asterisk prompt trimmed to its speech (as the corpus does), those 0.5-3 s long."""
    out = [trim(read_wav(path)) for path in sorted(PROMPTS.glob("*.wav"))]
    return [x for x in out if 0.5 <= len(x) / 8000 <= 3.0]


def call_audio(seconds: float, seed: int, noise_dbfs: float | None, prompts: list[np.ndarray],
               rate: int = SAMPLE_RATE) -> tuple[np.ndarray, float]:
    """Line audio of one caller at ``rate`` (16 or 8 kHz), ``seconds`` long; also its speech fraction.

    Utterances of 1-3 prompts, 150-400 ms pauses inside, 2-6 s of listening between them.
    """
    rng = np.random.default_rng(seed)
    need = int(seconds * 8000)
    parts = [np.zeros(int(rng.uniform(0.5, 2.0) * 8000), np.int16)]
    mask = [np.zeros(len(parts[0]), bool)]
    while sum(len(m) for m in mask) < need:
        for k in range(int(rng.integers(1, 4))):
            if k:
                parts.append(np.zeros(int(rng.uniform(150, 400) * 8), np.int16))
                mask.append(np.zeros(len(parts[-1]), bool))
            parts.append(prompts[int(rng.integers(len(prompts)))])
            mask.append(np.ones(len(parts[-1]), bool))
        parts.append(np.zeros(int(rng.uniform(2.0, 6.0) * 8000), np.int16))
        mask.append(np.zeros(len(parts[-1]), bool))
    src = np.concatenate(parts)[:need]
    speech = np.concatenate(mask)[:need]
    if noise_dbfs is not None:
        sigma = 32768.0 * 10 ** (noise_dbfs / 20)
        src = np.clip(src + rng.normal(0.0, sigma, len(src)), -32768, 32767).astype(np.int16)
    return (to_line(src) if rate == SAMPLE_RATE else ulaw_decode(ulaw_encode(src))), float(speech.mean())


def interleaved(runs: dict, repeats: int) -> dict:
    """CPU nanoseconds of each ``runs[name]()``: median over ``repeats`` rounds that run every
    entry once in turn, so background load falls on all of them alike."""
    samples: dict = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.thread_time_ns()
            run()
            samples[name].append(time.thread_time_ns() - t0)
    return {name: statistics.median(v) for name, v in samples.items()}


def bench_model(model, chunks: np.ndarray, batches: list[int], repeats: int, rate: int) -> dict:
    """Bare model cost per chunk (per stream for batches), every chunk scored."""
    count = len(chunks)
    stream = model.new_stream(rate)
    for c in chunks[:20]:
        stream.prob(c)

    def single() -> None:
        for c in chunks:
            stream.prob(c)
    runs, scored = {"single": single}, {"single": count}
    for b in batches:
        streams = [model.new_stream(rate) for _ in range(b)]
        rounds = max(1, count // b)
        # each stream walks the chunks at its own offset, so a batch is not B copies of one chunk
        rows = [[chunks[(r * b + i * 97) % count] for i in range(b)] for r in range(rounds)]
        model.probs(streams, rows[0])

        def batched(streams=streams, rows=rows) -> None:
            for row in rows:
                model.probs(streams, row)
        runs[str(b)], scored[str(b)] = batched, rounds * b
    cpu = interleaved(runs, repeats)
    us = {name: round(cpu[name] / 1000 / scored[name], 1) for name in runs}
    return {"single": us.pop("single"), "batched": us}


class RunCounter:
    """Counts model runs and rows (chunks scored) by wrapping the model's one entry point."""

    def __init__(self, model):
        self.model, self.calls, self.rows = model, 0, 0

    def __enter__(self):
        run = self.model._run

        def counted(audio, state):
            self.calls += 1
            self.rows += audio.shape[0]
            return run(audio, state)
        self.model._run = counted
        return self

    def __exit__(self, *exc):
        del self.model._run  # back to the class's method


def per_call_second(cpu_ns: float, call_seconds: float) -> dict:
    ms = cpu_ns / 1e6 / call_seconds
    return {"us_per_chunk": round(cpu_ns / 1000 / (call_seconds * CHUNKS_PER_SECOND), 1),
            "cpu_ms_per_call_second": round(ms, 2),
            "calls_per_core": int(1000 / ms) if ms > 0 else None}


def bench_engine(model, audios: list[np.ndarray], batches: list[int], repeats: int, settings, rate: int) -> dict:
    """The turn engine over every caller: one by one with ``feed``, then in groups of B with
    ``push`` + ``score_pending`` per 20 ms tick. Every variant processes the same callers."""
    frame = rate // FRAMES_PER_SECOND
    frames = [a[: len(a) // frame * frame].reshape(-1, frame) for a in audios]
    ticks = min(len(f) for f in frames)
    n = len(frames)

    def single() -> None:
        for fr in frames:
            engine = TurnEngine(model.new_stream(rate), settings)
            for f in fr[:ticks]:
                engine.feed(f)
    runs, call_seconds = {"single": single}, {"single": n * ticks / FRAMES_PER_SECOND}
    for b in batches:
        groups = [[frames[(g * b + i) % n] for i in range(b)] for g in range(-(-n // b))]

        def batched(groups=groups) -> None:
            for group in groups:
                engines = [TurnEngine(model.new_stream(rate), settings) for _ in group]
                for tick in range(ticks):
                    for e, fr in zip(engines, group):
                        e.push(fr[tick])
                    score_pending(engines)
        runs[str(b)] = batched
        call_seconds[str(b)] = len(groups) * b * ticks / FRAMES_PER_SECOND
    counted = {name: RunCounter(model) for name in runs}

    def counting(name):  # the wrapper costs well under 1 us a model call (one is 100+ us)
        def run():
            with counted[name]:
                runs[name]()
        return run
    cpu = interleaved({name: counting(name) for name in runs}, repeats)
    out = {}
    for name in runs:
        entry = per_call_second(cpu[name], call_seconds[name])
        chunks = call_seconds[name] * CHUNKS_PER_SECOND * repeats
        entry["model_runs_per_chunk"] = round(counted[name].rows / chunks, 3)
        if name != "single":
            ticks_run = call_seconds[name] / int(name) * FRAMES_PER_SECOND * repeats
            entry["model_calls_per_tick"] = round(counted[name].calls / ticks_run, 3)
            entry["rows_per_model_call"] = round(counted[name].rows / max(1, counted[name].calls), 2)
        out[name] = entry
    return {"callers": n, "single": out.pop("single"), "batched": out}


def skipping(model, audios: list[np.ndarray], settings, rate: int) -> dict:
    """Per chunk of all callers: scored above the floor, scored while settling, skipped."""
    counts = {"above_floor": 0, "settling": 0, "skipped": 0}
    stops = 0
    frame = rate // FRAMES_PER_SECOND
    for audio in audios:
        engine = TurnEngine(model.new_stream(rate), settings)
        wants = engine._wants_model

        def classify(chunk, dbfs, engine=engine, wants=wants):
            above = engine._detector.needs_prob(dbfs)
            scored = wants(chunk, dbfs)
            counts["above_floor" if above else ("settling" if scored else "skipped")] += 1
            return scored
        engine._wants_model = classify
        for at in range(0, len(audio) // frame * frame, frame):
            stops += sum(type(e).__name__ == "SpeechStopped" for e in engine.feed(audio[at:at + frame]))
    total = sum(counts.values())
    return {"chunks": total, **{k: round(v / total, 3) for k, v in counts.items()},
            "model_runs_per_chunk": round((counts["above_floor"] + counts["settling"]) / total, 3),
            "turns_ended": stops}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="call audio per caller (s)")
    parser.add_argument("--callers", type=int, default=None, help="callers (default: the largest batch)")
    parser.add_argument("--chunks", type=int, default=480, help="speech chunks per stream, bare-model runs")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--batches", default="1,4,8,16", help="comma-separated batch sizes")
    parser.add_argument("--line-noise", default="-60", help="line noise floor in dBFS, or 'none'")
    parser.add_argument("--rate", type=int, choices=(16000, 8000), default=SAMPLE_RATE,
                        help="rate the streams score at: 16000 (8 kHz upsampled, as today) or 8000")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",") if b]
    callers = args.callers or max(batches + [1])
    noise = None if args.line_noise == "none" else float(args.line_noise)
    t0 = time.monotonic()

    model = load_model()
    settings = TurnSettings()
    prompts = speech_prompts()
    if not prompts:
        raise SystemExit(f"no prompts in {PROMPTS}")
    progress(f"building {callers} callers of {args.seconds:.0f} s from {len(prompts)} prompts")
    built = [call_audio(args.seconds, seed, noise, prompts, args.rate) for seed in range(callers)]
    audios = [a for a, _ in built]

    every = np.concatenate(audios)
    chunk = chunk_samples(args.rate)
    every = every[: len(every) // chunk * chunk].reshape(-1, chunk)
    level = 10 * np.log10(np.maximum(np.mean((every / 32768.0) ** 2, axis=1), 1e-20))
    chunks = np.resize(every[level > -40.0], (args.chunks, chunk))
    progress(f"bare model: {args.chunks} speech chunks per stream, B = {batches}")
    model_us = bench_model(model, chunks, batches, args.repeats, args.rate)
    progress(f"turn engine on the callers: one by one, and in batches of {batches}")
    engine = bench_engine(model, audios, batches, args.repeats, settings, args.rate)
    progress("skipping breakdown")
    skip = skipping(model, audios, settings, args.rate)

    result = {
        "bench": "vad",
        "machine": machine("onnxruntime", "numpy"),
        "rate": args.rate,
        "call_audio": {"callers": callers, "seconds_per_caller": args.seconds, "line_noise_dbfs": noise,
                       "speech_fraction": round(float(np.mean([s for _, s in built])), 3),
                       "settings": "defaults (floor -45 dBFS, threshold 0.5)"},
        "model_us_per_chunk": model_us,
        "engine": engine,
        "skipping": skip,
        "model_only_every_chunk": {  # the bare single-stream model on every chunk, no engine
            "cpu_ms_per_call_second": round(model_us["single"] * CHUNKS_PER_SECOND / 1000, 2),
            "calls_per_core": int(1e6 / (model_us["single"] * CHUNKS_PER_SECOND))},
        "elapsed_s": round(time.monotonic() - t0, 1),
        "command": " ".join(["python bench/vad.py", *sys.argv[1:]]),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
