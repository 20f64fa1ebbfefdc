#!/usr/bin/env python3
"""Echo canceller benchmark: CPU per 20 ms tick, ERLE and delay per echo path, false turns, double talk.

Run: ``python bench/echo.py [--quick] [--only cost|late] [--rate 8000|16000]``. Prints one JSON
object on stdout (progress on stderr). About 80 s on the 2-core development VM (``--quick``: a
third of the cases, ~30 s; ``--only cost``: calibration and ``cost_us`` only, ~15 s; ``--only
late``: ``late_echo``).

``--rate 8000`` runs the canceller at the line's own rate (160-sample frames) on the same audio,
paths and seeds: the agent is the 8 kHz prompt itself and the line has no resampler. The turn
engine (16 kHz) then hears the canceller's output resampled to 16 kHz, as an 8 kHz media path
would hand it over, so turn timings compare with 16 kHz ones (both pay one 8 -> 16 kHz resampler).

Audio: the agent is Asterisk's ``demo-congrats`` (30 s of speech, 8 kHz) resampled to 16 kHz as
the bridge holds it; the line is :func:`sipbridge.media.echo_sim.line_echo` (16k -> 8k, µ-law,
hybrid + network delay, attenuation, optional dispersive IR, caller and -60 dBFS noise added at
the phone, µ-law, 8k -> 16k). Turn decisions: the real Silero :class:`TurnEngine`, default
:class:`TurnSettings`. Each tick feeds :meth:`EchoCanceller.far` then :meth:`EchoCanceller.near`.

Keys:

* ``rate``: the canceller's sample rate (``--rate``).
* ``calibration_us`` / ``calibration_after_us``: ``rfft`` of 640 points and one tiny numpy call,
  hot, min of 7 repeats, before and after the cost runs: this VM's speed varies by 1.5-2x with
  its neighbours; compare costs against these.
* ``cost_us``: CPU (``thread_time_ns``) per tick, ``far()`` + ``near()`` (``mean`` too: work
  done on some ticks only, like the delay search on an echo-free line, hides from the median):
  ``far_active`` on a converged 12 dB / 60 ms echo, back to back, minimum over 3 identical runs
  per tick (filters out other processes), ``median`` / ``p95`` / ``max``; ``far_active_paced``
  the same ticks paced at 20 ms like pjmedia's clock (cold caches, single run);
  ``far_active_in_rfft640`` each active tick over one 640-point rfft timed right after it (a
  separate run): the cost in units of this machine's speed at that moment;
  ``acquiring`` the first second (delay search, no filter yet); ``far_silent`` the idle
  pass-through (far frames of digital silence, caller speech on the near leg); ``echo_free``
  agent speech on a line that returns none of it (a caller and -60 dBFS noise only), after
  the canceller gave up (``acquire_give_up_ms``), minimum over 3 runs per tick, with
  ``split_echo_free`` its ``far()`` and ``near()`` apart.
* ``erle``: per echo path ``"<delay> ms/<atten> dB"`` (delay = hybrid + network):
  ``erle_db`` (the canceller's own, linear filter, recent echo-only frames), ``suppression_db``
  (near power over output power after 2 s, measured from outside), ``delay_error_ms`` (estimate
  minus the main tap, resamplers included), ``placed_ms`` (the first placement of the filter,
  from the start of the call). ``erle_dispersive`` and ``erle_noisy`` repeat some
  paths with a dispersive IR and with -60 dBFS line noise.
* ``false_turns_echo_alone``: SpeechStarted and SpeechOnset counts over all echo-only cases
  (10 s each), on the raw near signal and on the canceller's output, per attenuation.
* ``double_talk``: a caller (6 prompts with a crisp first sound) starts 4 s into the agent's
  speech over 4 echo paths at 6 and 12 dB, at the agent's level (``caller_+0_db``) and 6 dB
  under it (``caller_-6_db``, about as loud as a 6 dB echo): ``flag_latency_ms`` (caller onset
  to the first frame flagged ``double_talk``), ``started_ms`` (onset to SpeechStarted on the
  canceller's output), ``added_ms`` (that minus the same caller with no echo at all),
  ``within_budget`` (started within min_speech_ms + 150 ms), ``missed``.
* ``delay_change``: the echo jumps to another delay 6 s into a 16 s call: SpeechStarted and
  SpeechOnset counts, time from the jump to the re-placement, final delay error.
* ``late_echo``: a line without echo (-60 dBFS noise) for ``appear_s`` seconds of agent speech
  (the canceller is ``echo_free`` by then), then an echo appears (a transfer, a speakerphone):
  per case ``detected_after_ms`` (appearance to the filter's placement; None: never, within
  the 16 s), ``placed_before`` (a placement on the echo-free part), ``delay_error_ms``, and
  SpeechStarted / SpeechOnset counts on the output after the appearance; ``detected_after_ms``
  over all cases as median / max.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from sipcodecs import StreamResampler  # noqa: E402

from sipbridge.media.echo import EchoCanceller  # noqa: E402
from sipbridge.media.echo_sim import EchoPath, hybrid_ir, line_echo, place_caller  # noqa: E402
from sipbridge.media.echo_sim import onset16 as onset16_at  # noqa: E402
from sipbridge.media.echo_sim import onset_at  # noqa: E402
from sipbridge.turn.engine import TurnEngine  # noqa: E402
from sipbridge.turn.events import SpeechOnset, SpeechStarted  # noqa: E402
from sipbridge.turn.settings import TurnSettings  # noqa: E402
from sipbridge.turn.silero import load_model  # noqa: E402
from tests.support.audio import asterisk_prompt, load_wav, trim_silence  # noqa: E402
from machine import machine  # noqa: E402 - bench/machine.py

FRAME = 320         # the canceller's frame and rate (--rate 8000: 160 and 8000)
RATE = 16000
VAD_FRAME = 320     # the turn engine's (always 16 kHz)
VAD_RATE = 16000
CALLERS = ("conf-onlyperson", "pbx-invalid", "vm-sorry", "ss-noservice", "vm-intro", "privacy-unident")


def progress(msg: str) -> None:
    print(f"[echo] {msg}", file=sys.stderr, flush=True)


def calibration() -> dict:
    x = np.random.default_rng(0).standard_normal(640)
    small = np.zeros(8)
    best = lambda fn, n: round(min(timeit.repeat(fn, number=n, repeat=7)) / n * 1e6, 2)  # noqa: E731
    return {"rfft_640": best(lambda: np.fft.rfft(x), 2000), "numpy_call": best(small.sum, 20000)}


def prompt8(name: str) -> np.ndarray:
    return trim_silence(load_wav(asterisk_prompt(name)), -50.0, frame_ms=10)


AGENT8 = None


def agent(seconds: float) -> np.ndarray:
    """The agent's audio as the bridge holds it at RATE (at 8 kHz: the prompt itself)."""
    global AGENT8
    if AGENT8 is None:
        AGENT8 = prompt8("demo-congrats")
    held = AGENT8 if RATE == 8000 else StreamResampler(8000, RATE).process_array(AGENT8)
    return held[: int(seconds * RATE)]


def caller8(name: str, at_s: float, gain_db: float, seconds: float) -> np.ndarray:
    return place_caller(prompt8(name), at_s, gain_db, seconds)


def onset16(at_s: float) -> int:
    """A caller onset in the turn engine's 16 kHz samples (after one 8 -> 16 kHz resampler at either rate)."""
    return onset16_at(at_s, StreamResampler(8000, VAD_RATE).delay_samples)


def onset(at_s: float) -> int:
    """The same in the canceller's samples (at 8 kHz: no resampler)."""
    return onset_at(at_s, RATE, 0 if RATE == 8000 else StreamResampler(8000, RATE).delay_samples)


_REF = np.random.default_rng(0).standard_normal(640)


def reference_ns() -> int:
    """One hot 640-point rfft, best of three: the machine's speed right now."""
    best = None
    for _ in range(3):
        t0 = time.thread_time_ns()
        np.fft.rfft(_REF)
        t = time.thread_time_ns() - t0
        best = t if best is None else min(best, t)
    return best


def cancel(far, near, aec=None, paced=False, times=None, flags=None, refs=None, split=None):
    aec = aec or EchoCanceller(sample_rate=RATE, frame_samples=FRAME)
    out = np.empty_like(near)
    for i in range(len(near) // FRAME):
        at = slice(i * FRAME, (i + 1) * FRAME)
        f, y = far[at], near[at]
        if paced:
            time.sleep(0.02)
        t0 = time.thread_time_ns()
        aec.far(f)
        t1 = time.thread_time_ns()
        out[at] = aec.near(y)
        if times is not None:
            times.append(time.thread_time_ns() - t0)
        if split is not None:
            split.append((t1 - t0, time.thread_time_ns() - t1))
        if refs is not None:
            refs.append(reference_ns())
        if flags is not None:
            flags.append((aec.double_talk, aec.delay_changes))
    return out, aec


def turn_events(model, audio):
    """SpeechStarted and SpeechOnset samples (16 kHz) on ``audio`` (at RATE; resampled to 16 kHz first)."""
    if RATE != VAD_RATE:
        audio = StreamResampler(RATE, VAD_RATE).process_array(audio)
    engine = TurnEngine(model.new_stream(), TurnSettings())
    events = []
    for i in range(len(audio) // VAD_FRAME):
        events += engine.feed(audio[i * VAD_FRAME: (i + 1) * VAD_FRAME])
    return ([e.at_sample for e in events if isinstance(e, SpeechStarted)],
            [e.at_sample for e in events if isinstance(e, SpeechOnset)])


def stats(values, digits=1) -> dict:
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "median": round(float(np.median(v)), digits),
            "mean": round(float(v.mean()), digits),
            "p95": round(float(np.percentile(v, 95)), digits), "max": round(float(v.max()), digits)}


def bench_cost() -> dict:
    progress("cost")
    far = agent(12)
    near = line_echo(far, EchoPath(delay_ms=60, atten_db=12), rate=RATE)
    runs = []
    for _ in range(3):
        times = []
        cancel(far, near, times=times)
        runs.append(times)
    per_tick = np.min(np.array(runs), axis=0) / 1e3
    times, refs = [], []   # a separate run: the reference rfft after each tick cools the caches a little
    cancel(far, near, times=times, refs=refs)
    in_rfft = (np.array(times) / np.array(refs))[100:]
    paced = []
    cancel(far[: 8 * RATE], near[: 8 * RATE], paced=True, times=paced)
    paced = np.array(paced[100:]) / 1e3
    silent_far = np.zeros(6 * RATE, np.int16)
    silent_near = line_echo(silent_far, EchoPath(), caller8=caller8("vm-intro", 0.5, 0.0, 6), noise_dbfs=-60.0,
                            rate=RATE)
    silent = []
    for _ in range(3):
        t = []
        cancel(silent_far, silent_near, times=t)
        silent.append(t)
    silent = np.min(np.array(silent), axis=0) / 1e3
    split = []
    cancel(far, near, split=split)
    split = np.array(split[100:]) / 1e3
    free_near = line_echo(np.zeros_like(far), EchoPath(), caller8=caller8("vm-intro", 6.0, 0.0, 12), noise_dbfs=-60.0,
                          rate=RATE)
    give_up = EchoCanceller().settings.acquire_give_up_ms * RATE // 1000 // FRAME + 5
    free, free_split = [], []
    for _ in range(3):
        t, sp = [], []
        _, aec = cancel(far, free_near, times=t, split=sp)
        assert aec.mode == "echo_free", aec.mode
        free.append(t)
        free_split.append(sp)
    free = (np.min(np.array(free), axis=0) / 1e3)[give_up:]
    free_split = (np.min(np.array(free_split), axis=0) / 1e3)[give_up:]
    return {"far_active": stats(per_tick[100:]), "far_active_in_rfft640": stats(in_rfft),
            "far_active_paced": stats(paced),
            "acquiring": stats(per_tick[:50]), "far_silent": stats(silent),
            "split_far_active": {"far": stats(split[:, 0]), "near": stats(split[:, 1])},
            "echo_free": stats(free),
            "split_echo_free": {"far": stats(free_split[:, 0]), "near": stats(free_split[:, 1])}}


def bench_echo(model, quick: bool) -> tuple[dict, dict, dict, dict]:
    erle, dispersive, noisy = {}, {}, {}
    counts = {}
    cases = list(itertools.product((0, 20, 40, 60), (0, 60, 120), (6, 12, 20)))
    if quick:
        cases = cases[::3]
    far = agent(10)
    for k, (hybrid, network, atten) in enumerate(cases):
        variants = [("plain", None, None)]
        if k % 3 == 1:
            variants.append(("dispersive", tuple(hybrid_ir(seed=k)), None))
        if k % 3 == 2:
            variants.append(("noisy", None, -60.0))
        for kind, ir, noise in variants:
            path = EchoPath(delay_ms=hybrid + network, atten_db=atten, ir=ir)
            near = line_echo(far, path, noise_dbfs=noise, seed=k, rate=RATE)
            flags = []
            out, aec = cancel(far, near, flags=flags)
            placed = next((i for i in range(len(flags)) if flags[i][1] >= 1), None)
            state = aec.state()
            tail = slice(2 * RATE, None)
            p_near = np.mean(near[tail].astype(float) ** 2)
            sup = 10 * np.log10(p_near / max(np.mean(out[tail].astype(float) ** 2), 1e-9))
            row = {"erle_db": None if state.erle_db is None else round(state.erle_db, 1),
                   "suppression_db": round(float(sup), 1),
                   "delay_error_ms": None if state.delay_ms is None
                   else round(state.delay_ms - path.true_delay_ms_at(RATE), 3),
                   "placed_ms": None if placed is None else round((placed + 1) * FRAME * 1000 / RATE)}
            key = f"{hybrid + network} ms/{atten} dB" + (f" (hybrid {hybrid})" if hybrid + network in (60, 120) else "")
            {"plain": erle, "dispersive": dispersive, "noisy": noisy}[kind][key] = row
            raw_s, raw_o = turn_events(model, near)
            out_s, out_o = turn_events(model, out)
            c = counts.setdefault(f"{atten} dB", {"cases": 0, "raw_started": 0, "raw_onsets": 0,
                                                  "aec_started": 0, "aec_onsets": 0})
            c["cases"] += 1
            c["raw_started"] += len(raw_s)
            c["raw_onsets"] += len(raw_o)
            c["aec_started"] += len(out_s)
            c["aec_onsets"] += len(out_o)
        progress(f"echo {hybrid}+{network} ms {atten} dB")
    total = {key: sum(c[key] for c in counts.values()) for key in next(iter(counts.values()))}
    return erle, dispersive, noisy, {"total": total, **counts}


def bench_double_talk(model, quick: bool) -> dict:
    progress("double talk")
    seconds, at_s = 10, 4.0
    far = agent(seconds)
    onset_vad, onset_aec = onset16(at_s), onset(at_s)
    budget = TurnSettings().min_speech_ms + 150
    callers = CALLERS[:2] if quick else CALLERS
    result = {"budget_ms": budget}
    for level in (0.0, -6.0):
        flag_ms, started_ms, added_ms, missed, within, early = [], [], [], 0, 0, 0
        for name in callers:
            voice = caller8(name, at_s, level, seconds)
            clean = line_echo(np.zeros_like(far), EchoPath(), caller8=voice, rate=RATE)
            base = [s for s in turn_events(model, clean)[0] if s >= onset_vad]
            for (hybrid, network), atten in itertools.product(((0, 0), (20, 60), (40, 120), (60, 120)), (6, 12)):
                near = line_echo(far, EchoPath(delay_ms=hybrid + network, atten_db=atten), caller8=voice, rate=RATE)
                flags = []
                out, _ = cancel(far, near, flags=flags)
                first = next((i for i in range(onset_aec // FRAME, len(flags)) if flags[i][0]), None)
                if first is not None:
                    flag_ms.append(((first + 1) * FRAME - onset_aec) * 1000 / RATE)
                started = turn_events(model, out)[0]
                early += sum(1 for s in started if s < onset_vad)
                after = [s for s in started if s >= onset_vad]
                if not after:
                    missed += 1
                    continue
                ms = (after[0] - onset_vad) * 1000 / VAD_RATE
                started_ms.append(ms)
                within += ms <= budget
                if base:
                    added_ms.append(ms - (base[0] - onset_vad) * 1000 / VAD_RATE)
            progress(f"double talk {name} {level:+.0f} dB")
        result[f"caller_{level:+.0f}_db"] = {
            "cases": len(callers) * 8, "flag_latency_ms": stats(flag_ms), "started_ms": stats(started_ms),
            "added_ms": stats(added_ms), "within_budget": within, "missed": missed, "started_before_onset": early}
    return result


def bench_delay_change(model) -> dict:
    progress("delay change")
    seconds = 16
    far = agent(seconds)
    result = {}
    for before, after in ((40, 100), (100, 20), (20, 180)):
        new = EchoPath(delay_ms=after, atten_db=6)
        near = line_echo(far, None, paths=[(0, EchoPath(delay_ms=before, atten_db=6)), (6 * 8000, new)], rate=RATE)
        flags = []
        out, aec = cancel(far, near, flags=flags)
        replaced = next((i for i in range(len(flags)) if flags[i][1] >= 2), None)
        started, onsets = turn_events(model, out)
        state = aec.state()
        result[f"{before}->{after} ms"] = {
            "aec_started": len(started), "aec_onsets": len(onsets),
            "replaced_after_ms": None if replaced is None else round((replaced + 1) * FRAME * 1000 / RATE - 6000),
            "final_delay_error_ms": None if state.delay_ms is None
            else round(state.delay_ms - new.true_delay_ms_at(RATE), 3),
            "final_erle_db": None if state.erle_db is None else round(state.erle_db, 1)}
    return result


def bench_late_echo(model) -> dict:
    progress("late echo")
    seconds = 16
    far = agent(seconds)
    none = EchoPath(atten_db=400.0)   # rounds to digital zero: no echo at all
    result, found = {}, []
    for appear_s in (6, 8, 10):
        for path in (EchoPath(delay_ms=60, atten_db=12), EchoPath(delay_ms=20, atten_db=6),
                     EchoPath(delay_ms=120, atten_db=20), EchoPath(delay_ms=100, atten_db=12, ir=tuple(hybrid_ir(seed=2)))):
            near = line_echo(far, None, paths=[(0, none), (appear_s * 8000, path)], noise_dbfs=-60.0, seed=appear_s,
                             rate=RATE)
            flags = []
            out, aec = cancel(far, near, flags=flags)
            appear = appear_s * RATE // FRAME
            placed = next((i for i in range(len(flags)) if flags[i][1] >= 1), None)
            after = None if placed is None or placed < appear else round(((placed + 1) - appear) * FRAME * 1000 / RATE)
            started, onsets = turn_events(model, out)
            state = aec.state()
            key = f"{path.delay_ms:g} ms/{path.atten_db:g} dB{' dispersive' if path.ir else ''} at {appear_s} s"
            result[key] = {
                "detected_after_ms": after, "placed_before": placed is not None and placed < appear,
                "delay_error_ms": None if state.delay_ms is None
                else round(state.delay_ms - path.true_delay_ms_at(RATE), 3),
                "aec_started": sum(s >= appear_s * VAD_RATE for s in started),
                "aec_onsets": sum(s >= appear_s * VAD_RATE for s in onsets)}
            found.append(after)
    detected = [a for a in found if a is not None]
    result["detected_after_ms"] = {**stats(detected, 0), "missed": len(found) - len(detected)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a third of the echo cases, two callers")
    parser.add_argument("--only", choices=("cost", "late"), help="only the cost part, or only late_echo")
    parser.add_argument("--rate", type=int, choices=(8000, 16000), default=16000,
                        help="the canceller's sample rate (20 ms frames)")
    args = parser.parse_args()
    global RATE, FRAME
    RATE, FRAME = args.rate, args.rate // 50
    started = time.perf_counter()
    report = {"machine": machine("numpy"), "rate": RATE}
    if args.only != "late":
        calib = calibration()
        cost = bench_cost()
        report.update({"calibration_us": calib, "calibration_after_us": calibration(), "cost_us": cost})
    if args.only == "cost":
        print(json.dumps(report, indent=1))
        return
    model = load_model()
    if args.only == "late":
        report.update({"late_echo": bench_late_echo(model), "seconds": round(time.perf_counter() - started, 1)})
        print(json.dumps(report, indent=1))
        return
    erle, dispersive, noisy, false_turns = bench_echo(model, args.quick)
    report.update({"erle": erle, "erle_dispersive": dispersive, "erle_noisy": noisy,
                   "false_turns_echo_alone": false_turns,
                   "double_talk": bench_double_talk(model, args.quick),
                   "delay_change": bench_delay_change(model),
                   "late_echo": bench_late_echo(model),
                   "seconds": round(time.perf_counter() - started, 1)})
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
