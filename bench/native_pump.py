#!/usr/bin/env python3
"""What the native port's Python side costs per call and tick: ``Pump.tick`` over N calls.

Run: ``python bench/native_pump.py [--calls 1,4,16,64] [--ticks 3000] [--rate 8000|16000]``.
Prints one JSON object. No pjsua: the C ports (sipbridge/media/native/port.c) are driven the
way pjmedia's clock drives them (get_frame then put_frame per port per tick, untimed), and the
pump's round (drain every caller ring into a session, top every agent ring up) is timed with
``thread_time`` (CPU) and ``perf_counter`` (wall). The session is a loopback with no work (what
``CallSession.on_caller_frame`` / ``next_frame`` cost at the least), so this is the pump's own
cost: ctypes calls, bytes copies, Python dispatch. bench/README.md, "The native media port".
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sipbridge.media.native.lib import NativePort, load  # noqa: E402
from sipbridge.media.native.pump import CallAudio, Pump  # noqa: E402


class Loopback:
    def __init__(self, frame_bytes: int):
        self.frames: collections.deque[bytes] = collections.deque(maxlen=3)
        self.silence = bytes(frame_bytes)

    def on_caller_frame(self, pcm: bytes) -> None:
        self.frames.append(pcm)

    def next_frame(self) -> bytes:
        return self.frames.popleft() if self.frames else self.silence


def run(calls: int, ticks: int, rate: int) -> dict:
    fb = rate // 50 * 2
    lib = load()
    audio = []
    for i in range(calls):
        a = CallAudio(NativePort(rate, fb, f"b{i}", lib), i)
        s = Loopback(fb)
        a.bind(s.on_caller_frame, s.next_frame)
        audio.append(a)
    pump = Pump(lib)
    snapshot = tuple(audio)
    speech = bytes(range(256)) * (fb // 256) + bytes(fb % 256)
    cpu, wall = [], []
    for _ in range(ticks):
        for a in snapshot:          # pjmedia's side, untimed
            a.port.get()
            a.port.put(speech)
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        pump.tick(snapshot)
        cpu.append(time.thread_time_ns() - c0)
        wall.append(time.perf_counter_ns() - w0)
    for a in audio:
        a.port.free()
    per_call = [c / calls / 1000 for c in cpu]
    return {"calls": calls, "ticks": ticks,
            "tick_cpu_us": {"p50": round(statistics.median(cpu) / 1000, 1),
                            "mean": round(statistics.fmean(cpu) / 1000, 1)},
            "tick_wall_us_p50": round(statistics.median(wall) / 1000, 1),
            "per_call_cpu_us": {"p50": round(statistics.median(per_call), 2),
                                "mean": round(statistics.fmean(per_call), 2)},
            # 1 % of a core is 200 us per 20 ms tick
            "per_call_pct_of_core": round(statistics.fmean(per_call) / 200, 3)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", default="1,4,16,64")
    p.add_argument("--ticks", type=int, default=3000)
    p.add_argument("--rate", type=int, choices=(8000, 16000), default=8000)
    args = p.parse_args()
    import os
    out = {"bench": "native_pump", "rate": args.rate, "loadavg_1m": os.getloadavg()[0],
           "runs": [run(int(n), args.ticks, args.rate) for n in args.calls.split(",")]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
