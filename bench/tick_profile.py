#!/usr/bin/env python3
"""Where a worker's per-tick Python goes: N real sessions, one pump-like thread, by stage.

Run: ``python bench/tick_profile.py [--calls 16] [--ticks 1000] [--rate 8000] [--pace-ms 20]
[--set section.key=value ...] [--without chunk-align|append-align] [--cprofile N]
[--pump-ticks N]``. Prints one JSON object on stdout.

What runs: ``--calls`` :class:`~sipbridge.session.CallSession` built as ``sipbridge/worker.py``
builds them (default config plus ``--set``, the worker's :class:`~sipbridge.turn.batch.TickBatch`,
the real Silero model), each connected to an in-process ``EmbeddedModel`` (its own loop thread,
so its CPU is not counted) through the bridge's real upstream client on a bridge loop thread.
This thread plays the native port's pump (``sipbridge/media/native/pump.py``): once per tick,
every call's caller frame into ``on_caller_frame``, then every call's ``next_frame``, a tick
every ``--pace-ms`` (a sleeping thread runs on cold caches, as the pump does). With
``--pump-ticks N`` (``sip.pump_ticks``) it wakes every N ticks and replays them as
``Pump._ticks`` does: for each of the N ticks, every call's caller frame, then every call's
agent frame.

The caller audio is what ``bench/capacity.py`` plays: two prompts 800 ms apart (the second
interrupts the answer to the first), then 8 s of -65 dBFS line noise while the model's answer
plays, repeated; each call starts at its own offset. The model answers every turn with the
caller's utterance (4x real time), so the agent is audible ~45 % of the time.

Stages (``thread_time_ns`` around the session's own methods, CPU of this thread; nested ones
are subtracted from their parent): ``echo_near``, ``echo_far``, ``silero`` (the batched model
runs), ``turn`` (the rest of ``TickBatch`` rounds: chunking, levels, detector, events),
``uplink`` (append batching, conversion to the model's format, hand-off to the loop),
``barge`` (the barge-in policy), ``playout`` (pull), ``session_rest`` (the remainder of
``on_caller_frame`` / ``next_frame``), and ``loop`` (the bridge loop thread's CPU per call per
tick: JSON, base64, WebSocket, deltas decoded and resampled into the playout buffer).
1 % of a core is 200 us per call per 20 ms tick.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from tests.support import audio  # noqa: E402
from tests.support.ports import free_tcp_port  # noqa: E402


class LoopThread:
    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()
        while self.thread.ident is None:
            time.sleep(0.001)

    def run(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def cpu_ns(self) -> int:
        return time.clock_gettime_ns(time.pthread_getcpuclockid(self.thread.ident))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def caller_audio(rate: int) -> np.ndarray:
    """One cycle of the capacity caller: prompt, 800 ms, prompt, 8 s of -65 dBFS noise."""
    files = sorted(audio.ASTERISK_SOUNDS.glob("*.wav"))
    rng = np.random.default_rng(7)
    a = audio.load_wav(files[3 % len(files)], rate)
    b = audio.load_wav(files[5 % len(files)], rate)
    gap = np.zeros(rate * 8 // 10, np.int16)
    noise = (rng.standard_normal(rate * 8) * 32768 * 10 ** (-65 / 20)).astype(np.int16)
    cycle = np.concatenate([a, gap, b, noise])
    return cycle


def parse_sets(items: list[str]) -> dict:
    cfg: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        cfg.setdefault(section, {})[name] = yaml.safe_load(value)
    return cfg


class Stages:
    """Exclusive CPU per stage: a wrapped call's time minus the wrapped calls inside it."""

    def __init__(self):
        self.acc: dict[str, int] = {}
        self._stack: list[int] = []   # child time accumulated per open frame

    def wrap(self, obj, attr: str, stage: str) -> None:
        fn = getattr(obj, attr)
        tt, acc, stack = time.thread_time_ns, self.acc, self._stack
        acc.setdefault(stage, 0)

        def wrapper(*args, **kw):
            if threading.current_thread() is not threading.main_thread():
                return fn(*args, **kw)
            stack.append(0)
            t0 = tt()
            try:
                return fn(*args, **kw)
            finally:
                spent = tt() - t0
                child = stack.pop()
                acc[stage] += spent - child
                if stack:
                    stack[-1] += spent
        setattr(obj, attr, wrapper)


def run(calls: int, ticks: int, rate: int, pace_ms: float, sets: list[str], profile: int,
        without: tuple[str, ...] = (), pump_ticks: int = 1) -> dict:
    from sipbridge import logs
    from sipbridge.config import build
    from sipbridge.embedded import EmbeddedModel
    from sipbridge.session import CallSession
    from sipbridge.turn.batch import TickBatch
    from sipbridge.turn.silero import load_model

    logs.configure("info", "json", stream=open(os.devnull, "w"))  # noqa: SIM115
    raw = parse_sets(sets)
    raw.setdefault("sip", {})["media_rate"] = rate
    cfg = build(raw, environ={})
    vad_model = load_model()
    batch = TickBatch()
    if "chunk-align" in without:      # A/B: calls cut chunks on their own phase, as before
        batch._align = lambda engine, frame_len: None
    bridge = LoopThread("sipbridge-loop")
    model_loop = LoopThread("model-loop")
    url = model_loop.run(EmbeddedModel().start("127.0.0.1", free_tcp_port()))
    sessions = []
    for i in range(calls):
        s = CallSession(call_id=f"c{i}", config=cfg, url=url, api_key=None, loop=bridge.loop,
                        vad_model=vad_model, vad_batch=batch, on_end=lambda _r: None)
        bridge.run(s.start())
        if "append-align" in without:  # A/B: each call's appends on its own phase, as before
            s._append_frames = 1 << 40
        sessions.append(s)
    cycle = caller_audio(rate)
    n = rate // 50
    offsets = [(i * len(cycle) // max(calls, 1)) // n * n for i in range(calls)]

    st = Stages()
    runs = {"model_runs": 0, "rows": 0}
    probs = vad_model.probs

    def counted(streams, chunks):
        runs["model_runs"] += 1
        runs["rows"] += len(streams)
        return probs(streams, chunks)
    vad_model.probs = counted
    st.wrap(vad_model, "probs", "silero")
    st.wrap(batch, "_score", "turn")
    for s in sessions:
        if s.echo is not None:
            st.wrap(s.echo, "near", "echo_near")
            st.wrap(s.echo, "far", "echo_far")
        st.wrap(s, "_send_up", "uplink")
        st.wrap(s, "flush_audio", "uplink")
        st.wrap(s, "_barge", "barge")
        st.wrap(s.playout, "pull", "playout")
        st.wrap(s, "on_caller_frame", "session_rest")
        st.wrap(s, "next_frame", "session_rest")

    def frame(i: int, t: int) -> bytes:
        at = (offsets[i] + t * n) % (len(cycle) - n)
        return cycle[at:at + n].tobytes()

    # calls join 5 ticks apart (bench/capacity.py's 10 cps ramp), so their 32 ms Silero chunks
    # fall on different ticks as on a worker
    warm = max(100, 5 * calls + 50)
    for t in range(warm):
        for i, s in enumerate(sessions):
            if t >= 5 * i:
                s.on_caller_frame(frame(i, t))
        for i, s in enumerate(sessions):
            if t >= 5 * i:
                s.next_frame()
    for k in st.acc:
        st.acc[k] = 0
    runs.update(model_runs=0, rows=0)
    tt = time.thread_time_ns
    prof = cProfile.Profile() if profile else None
    cpu0, loop0 = tt(), bridge.cpu_ns()
    played = 0
    next_at = time.perf_counter()
    if prof:
        prof.enable()
    ticks = -(-ticks // pump_ticks) * pump_ticks   # whole rounds
    for t0 in range(warm, warm + ticks, pump_ticks):
        for t in range(t0, t0 + pump_ticks):   # one wake-up: the round's ticks in order
            for i, s in enumerate(sessions):
                s.on_caller_frame(frame(i, t))
            for s in sessions:
                s.next_frame()
                played += s.playout.playing
        if pace_ms:
            next_at += pace_ms * pump_ticks / 1000
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    if prof:
        prof.disable()
    cpu, loop_cpu = tt() - cpu0, bridge.cpu_ns() - loop0
    per = calls * ticks
    stages = {k: round(v / per / 1000, 2) for k, v in sorted(st.acc.items(), key=lambda kv: -kv[1])}
    stages["loop"] = round(loop_cpu / per / 1000, 2)
    total_us = cpu / per / 1000 + loop_cpu / per / 1000
    out = {"calls": calls, "ticks": ticks, "rate": rate, "pace_ms": pace_ms, "sets": sets,
           "pump_ticks": pump_ticks,
           "without": list(without),
           "agent_playing_share": round(played / per, 3),
           "pump_us_per_call_tick": round(cpu / per / 1000, 2),
           "loop_us_per_call_tick": stages["loop"],
           "total_us_per_call_tick": round(total_us, 2),
           "pct_of_core_per_call": round(total_us / 200, 3),
           "stages_us_per_call_tick": stages,
           "silero_runs_per_tick": round(runs["model_runs"] / ticks, 3),
           "silero_rows_per_run": round(runs["rows"] / max(runs["model_runs"], 1), 2),
           "barge_ins": sum(s.barge_ins for s in sessions),
           "pauses": sum(s.pauses for s in sessions),
           "echo_modes": sorted({s.echo.mode for s in sessions if s.echo is not None}),
           "loadavg_1m": os.getloadavg()[0]}
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(profile)
        out["cprofile_top"] = [line for line in buf.getvalue().splitlines() if line.strip()][-profile - 1:]
    for s in sessions:
        bridge.run(s.close())
    bridge.stop()
    model_loop.stop()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=16)
    p.add_argument("--ticks", type=int, default=1000)
    p.add_argument("--rate", type=int, choices=(8000, 16000), default=8000)
    p.add_argument("--pace-ms", type=float, default=20.0)
    p.add_argument("--set", action="append", default=[], dest="sets")
    p.add_argument("--without", action="append", default=[], choices=("chunk-align", "append-align"),
                   help="turn one of the per-tick alignments off (A/B)")
    p.add_argument("--cprofile", type=int, default=0, help="print the top N functions by own time")
    p.add_argument("--pump-ticks", type=int, choices=(1, 2, 3), default=1,
                   help="sip.pump_ticks: one wake-up every N ticks, N ticks replayed in it")
    args = p.parse_args()
    out = run(args.calls, args.ticks, args.rate, args.pace_ms, args.sets, args.cprofile,
              tuple(args.without), args.pump_ticks)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
