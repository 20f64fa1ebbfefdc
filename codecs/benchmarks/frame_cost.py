"""Per-20-ms-frame CPU cost of the sipcodecs hot paths.

Run: ``python codecs/benchmarks/frame_cost.py`` (optionally ``--repeat N``).
Reports the best-of-``repeat`` mean over many calls, in microseconds, for
the bytes API (what the RTP path calls) and the array API.
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np

from sipcodecs import StreamResampler, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

DIRECTIONS = [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000), (16000, 24000), (24000, 16000)]


def best_us(call, number: int, repeat: int) -> float:
    """Best mean time of ``call`` in µs over ``repeat`` runs of ``number`` calls."""
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    frame8 = rng.integers(-8000, 8000, 160).astype("<i2").tobytes()
    codes = ulaw_encode(frame8)
    print("G.711, one 20 ms frame (160 samples), bytes API:")
    for name, call in [
        ("ulaw_encode", lambda: ulaw_encode(frame8)),
        ("ulaw_decode", lambda: ulaw_decode(codes)),
        ("alaw_encode", lambda: alaw_encode(frame8)),
        ("alaw_decode", lambda: alaw_decode(codes)),
    ]:
        print(f"  {name:12s} {best_us(call, args.number, args.repeat):6.2f} us")

    print("StreamResampler, one 20 ms frame, process(bytes) / process_array:")
    for in_rate, out_rate in DIRECTIONS:
        resampler = StreamResampler(in_rate, out_rate)
        samples = rng.integers(-8000, 8000, in_rate // 50).astype(np.int16)
        frame = samples.astype("<i2").tobytes()
        as_bytes = best_us(lambda: resampler.process(frame), args.number, args.repeat)
        as_array = best_us(lambda: resampler.process_array(samples), args.number, args.repeat)
        print(
            f"  {in_rate:5d} -> {out_rate:5d} Hz  {as_bytes:6.2f} us / {as_array:6.2f} us"
            f"   delay {resampler.delay_ms:.3f} ms = {resampler.delay_samples} samples"
        )


if __name__ == "__main__":
    main()
