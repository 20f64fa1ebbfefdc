#!/usr/bin/env python3
"""Call-path benchmark: per-frame media CPU cost in-process, and added latency on a real call.

Run: ``python bench/call_path.py [--frames N] [--responses N] [--skip-e2e] [--pace-ms MS]
[--audio-format pcm16|g711_ulaw|g711_alaw]`` (``realtime.audio_format`` of the part-1 session
and its embedded model; with G.711 the ``resample`` figures are 16 -> 8 kHz plus the encode).
Prints one JSON object on stdout (progress on stderr). Anything native code writes to file
descriptor 1 (pjlib, SIPp helpers) is redirected to stderr, so stdout carries only the JSON.

Part 1, in-process (``media_in_us``, ``media_out_us``, ``read_frame_*``, ``vad_share_in``):
a :class:`~sipbridge.session.CallSession` built the way ``sipbridge/worker.py`` builds one
(default config, a loop thread, ``session.start()`` via ``run_coroutine_threadsafe``), with
the real Silero model and a real ``RealtimeClient`` connected to an in-process
``EmbeddedModel`` (on a loop thread of its own, so the loop-side cost of the bridge can be
told apart). This thread plays pjmedia's clock thread:

* out: ``next_frame()`` then ``write_frame(frame, data)`` while the playout buffer is full;
* in: ``read_frame(frame)`` of a 640-byte ``pj.MediaFrame`` then ``on_caller_frame(pcm)``,
  with Asterisk prompts resampled to 16 kHz;

both once per tick, a tick every ``--pace-ms`` (20 ms, the media clock: a thread that sleeps
between frames runs them on cold caches, and that costs a lot here, see ``hot``).

Each call is bracketed by ``time.thread_time_ns`` (CPU time of this thread: what the media
thread burns; waits for the GIL do not count) and ``time.perf_counter_ns`` (wall). Inside the
in path, the session's resampler, turn engine and loop hand-off are wrapped with one
``thread_time_ns`` pair each for the breakdown (``instrumentation_us_per_wrapper`` says what a
wrapper adds). Unpaced passes over the same frames give the hot-cache costs, among them
``read_frame`` against ``bytes(frame.buf)`` (the slow SWIG copy it replaces).

Part 2, a real call (``delta_to_rtp_ms``, ``rtp_to_append_ms``): ``sipbridge run`` as a
subprocess (tests/support/bridge.Bridge) pointed at a small in-process model server, SIPp
placing the call (uac_pcmu.xml), tcpdump capturing RTP on loopback. Phase A: the caller plays
tone bursts with sharp onsets; onsets in the captured caller->bridge RTP are matched with
onsets in the ``input_audio_buffer.append`` stream the server receives. Phase B: the caller
is silent and the server starts a response on its own every 1.5 s (5 x 100 ms deltas of a
1 kHz tone at -10 dBFS, paced in real time); the time each first delta is sent is matched with
the first loud RTP packet from the bridge to the caller. Every timestamp is wall clock
(``time.time()`` in this process, kernel capture time in tcpdump), on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

# stdout is for the JSON only: keep the real one aside, point fd 1 at stderr for everyone else.
_JSON_OUT = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tests.support import audio  # noqa: E402
from tests.support.ports import free_port_block, free_tcp_port  # noqa: E402

FRAME_BYTES = 640          # 20 ms of 16 kHz PCM16: what pjmedia hands the call port
PORT_RATE = 16000
MODEL_RATE = 24000
LOUD_DBFS = -30.0          # a packet / append louder than this carries the test tone
QUIET_DBFS = -60.0         # ... quieter than this is silence (digital zero is -120)


def progress(msg: str) -> None:
    print(f"[call_path] {msg}", file=sys.stderr, flush=True)


def stats(values, digits: int = 2) -> dict:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return {"median": None, "p95": None, "mean": None, "n": 0}
    return {"median": round(float(np.median(arr)), digits),
            "p95": round(float(np.percentile(arr, 95)), digits),
            "mean": round(float(arr.mean()), digits), "n": int(arr.size)}


def stats_range(values, digits: int = 1) -> dict:
    out = stats(values, digits)
    arr = np.asarray(values, dtype=float)
    out["min"] = round(float(arr.min()), digits) if arr.size else None
    out["max"] = round(float(arr.max()), digits) if arr.size else None
    return out


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_1m": round(os.getloadavg()[0], 2),
            "pjsua2": version("pjsua2-python"), "numpy": np.__version__,
            "onnxruntime": version("onnxruntime"), "websockets": version("websockets")}


def timer_overhead_ns(clock, n: int = 20000) -> float:
    """Median cost of one back-to-back pair of ``clock()`` calls (what a bracket adds)."""
    d = np.empty(n)
    for i in range(n):
        a = clock()
        d[i] = clock() - a
    return float(np.median(d))


class LoopThread:
    """An asyncio loop running forever on a daemon thread (like the worker's)."""

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
        if not self.thread.is_alive():
            self.loop.close()


# =============================================================================== part 1


def speech_frames(count: int) -> list[bytes]:
    """``count`` 20 ms frames of 16 kHz speech: Asterisk prompts, 700 ms of silence between
    every third prompt (so the turn engine ends turns and the echo model answers)."""
    files = sorted(audio.ASTERISK_SOUNDS.glob("*.wav"))
    if not files:
        raise RuntimeError(f"no prompts in {audio.ASTERISK_SOUNDS}")
    parts, total, need = [], 0, count * FRAME_BYTES // 2
    for i in range(10**6):
        pcm = audio.load_wav(files[i % len(files)], PORT_RATE)
        parts.append(pcm)
        total += len(pcm)
        if i % 3 == 2:
            parts.append(np.zeros(PORT_RATE * 7 // 10, dtype=np.int16))
            total += PORT_RATE * 7 // 10
        if total >= need:
            break
    pcm = np.concatenate(parts)[:need].astype("<i2").tobytes()
    return [pcm[i:i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


def bench_media(n_frames: int, pace_ms: float, audio_format: str = "pcm16") -> dict:
    import pjsua2 as pj
    import structlog

    from sipbridge import logs
    from sipbridge.config import build
    from sipbridge.media.frames import FAST_PATH, read_frame, write_frame
    from sipbridge.realtime.audio_format import by_name
    from sipbridge.embedded import EmbeddedModel
    from sipbridge.realtime.transcode import Uplink
    from sipbridge.session import CallSession
    from sipbridge.turn.engine import TurnEngine
    from sipbridge.turn.silero import load_model

    # The bridge's own logging at its default level, rendered but thrown away: log calls on
    # the media path (speech_started/stopped, barge_in) cost what they cost in production.
    devnull = open(os.devnull, "w")  # noqa: SIM115
    logs.configure("info", "json", stream=devnull)

    progress(f"part 1: loading {n_frames} frames of speech, the Silero model, the session")
    frames = speech_frames(n_frames)
    n = len(frames)
    vad_model = load_model()
    cfg = build({"realtime": {"audio_format": audio_format}}, environ={})
    fmt = by_name(audio_format)
    up_key = "resample_16k_24k" if fmt.linear else "resample_16k_8k_encode"
    bridge_loop = LoopThread("sipbridge-loop")
    model_loop = LoopThread("model-loop")
    embedded = EmbeddedModel()
    url = model_loop.run(embedded.start("127.0.0.1", free_tcp_port()))
    ended: list[str] = []

    def new_session(call_id: str) -> CallSession:
        return CallSession(call_id=call_id, config=cfg, url=url, api_key=None,
                           loop=bridge_loop.loop, vad_model=vad_model, on_end=ended.append)
    session = new_session("bench-in")
    bridge_loop.run(session.start())
    # The out side gets a session of its own (never started: next_frame only reads its
    # playout buffer), so agent audio queued for it cannot turn the caller's speech into
    # barge-ins on the in side.
    speaker = new_session("bench-out")
    reply = np.frombuffer(b"".join(frames), dtype=np.int16)
    step = PORT_RATE // 10  # 100 ms pushes, as the resampled model deltas arrive

    def fill(buffer, item: str) -> None:
        buffer.clear()
        for at in range(0, len(reply), step):
            buffer.push(reply[at:at + step].tobytes(), item, buffer.generation)

    pj_in, pj_out = pj.MediaFrame(), pj.MediaFrame()

    def load(pcm: bytes) -> None:   # what pjmedia hands the port: not timed
        pj_in.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        pj_in.buf = pj.ByteVector(pcm)
        pj_in.size = len(pcm)

    tt, pc = time.thread_time_ns, time.perf_counter_ns
    overhead = {"thread_time_ns": timer_overhead_ns(tt), "perf_counter_ns": timer_overhead_ns(pc)}

    warm = min(50, n)
    for pcm in frames[:warm]:
        load(pcm)
        session.on_caller_frame(read_frame(pj_in))

    # ---- the clock tick: out (next_frame + write_frame), then in (read_frame +
    # on_caller_frame) -- pjmedia's conference bridge reads every port, then writes every
    # port -- paced like the media clock. The session's resampler, turn engine and loop
    # hand-off are wrapped (one thread_time pair each) for the breakdown of this very pass.
    acc = {"resample": 0, "turn_engine": 0, "handoff": 0}

    def timed(fn, key):
        def wrapper(*args):
            t0 = tt()
            try:
                return fn(*args)
            finally:
                acc[key] += tt() - t0
        return wrapper
    session._up.process = timed(session._up.process, "resample")
    session.engine.feed = timed(session.engine.feed, "turn_engine")
    session._to_loop = timed(session._to_loop, "handoff")
    fill(speaker.playout, "item_out")
    cpu_in, wall_in, cpu_read = np.empty(n), np.empty(n), np.empty(n)
    cpu_out, wall_out = np.empty(n), np.empty(n)
    parts = {k: np.empty(n) for k in acc}
    loop_cpu0, model_cpu0 = bridge_loop.cpu_ns(), model_loop.cpu_ns()
    progress(f"part 1: {n} clock ticks (out + in), one every {pace_ms} ms")
    interval = pace_ms / 1000.0
    next_at = time.perf_counter()
    t_start = time.perf_counter()
    for i, pcm in enumerate(frames):
        load(pcm)
        for k in acc:
            acc[k] = 0
        c0, w0 = tt(), pc()
        write_frame(pj_out, speaker.next_frame())
        w1, c1 = pc(), tt()
        cpu_out[i], wall_out[i] = (c1 - c0) / 1000, (w1 - w0) / 1000
        c0, w0 = tt(), pc()
        data = read_frame(pj_in)
        c1 = tt()
        session.on_caller_frame(data)
        w2, c2 = pc(), tt()
        cpu_in[i], wall_in[i], cpu_read[i] = (c2 - c0) / 1000, (w2 - w0) / 1000, (c1 - c0) / 1000
        for k, v in acc.items():
            parts[k][i] = v / 1000
        next_at += interval
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.perf_counter() - t_start
    time.sleep(0.2)  # let the loop drain what was queued
    loop_cpu = (bridge_loop.cpu_ns() - loop_cpu0) / 1000 / n
    model_cpu = (model_loop.cpu_ns() - model_cpu0) / 1000 / n
    out_underruns = speaker.playout.underruns
    client = session.client
    in_counters = {"events_out": client.events_out, "events_in": client.events_in,
                   "pending": client.pending, "dropped": client.dropped,
                   "barge_ins": session.barge_ins, "on_end": list(ended)}
    noop = timed(lambda: None, "handoff")
    wrapper_ns = timer_overhead_ns(lambda: (noop(), tt())[1], 5000) - overhead["thread_time_ns"]

    # ---- components, same frames, separate unpaced passes (hot caches)
    progress("part 1: components, unpaced (read_frame fast/slow, resampler, turn engine, out)")
    fast, slow = np.empty(n), np.empty(n)
    for i, pcm in enumerate(frames):
        load(pcm)
        w0 = pc()
        data = read_frame(pj_in)
        fast[i] = (pc() - w0) / 1000
        w0 = pc()
        data_slow = bytes(pj_in.buf)
        slow[i] = (pc() - w0) / 1000
        if data != pcm or data_slow != pcm:
            raise AssertionError("read_frame returned other bytes than the frame holds")

    up = Uplink(fmt, PORT_RATE)
    resample = np.empty(n)
    for i, pcm in enumerate(frames):
        c0 = tt()
        up.process(pcm)
        resample[i] = (tt() - c0) / 1000

    engine = TurnEngine(vad_model.new_stream(), cfg.turn_detection)
    stream = engine.stream
    runs = [0]
    prob = stream.prob

    def counted_prob(chunk):
        runs[0] += 1
        return prob(chunk)
    stream.prob = counted_prob
    vad = np.empty(n)
    turns = 0
    for i, pcm in enumerate(frames):
        c0 = tt()
        events = engine.feed(np.frombuffer(pcm, dtype=np.int16))
        vad[i] = (tt() - c0) / 1000
        turns += sum(type(e).__name__ == "SpeechStopped" for e in events)
    chunks = n * FRAME_BYTES // 2 // 512

    fill(speaker.playout, "item_hot")
    hot_out, nxt, wrt = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        c0 = tt()
        data = speaker.next_frame()
        c1 = tt()
        write_frame(pj_out, data)
        c2 = tt()
        hot_out[i], nxt[i], wrt[i] = (c2 - c0) / 1000, (c1 - c0) / 1000, (c2 - c1) / 1000

    bridge_loop.run(session.close())
    model_loop.run(embedded.stop())
    bridge_loop.stop()
    model_loop.stop()
    structlog.reset_defaults()
    devnull.close()

    in_stats = stats(cpu_in)
    in_stats.update(clock="thread_time", wall=stats(wall_in))
    out_stats = stats(cpu_out)
    out_stats.update(clock="thread_time", wall=stats(wall_out), underrun_frames=out_underruns)
    rest = cpu_in - cpu_read - parts["resample"] - parts["turn_engine"] - parts["handoff"]
    return {
        "audio_format": audio_format,
        "media_in_us": in_stats,
        "media_out_us": out_stats,
        "read_frame_fast_us": round(float(np.median(fast)), 2),
        "read_frame_slow_us": round(float(np.median(slow)), 2),
        "vad_share_in": round(float(parts["turn_engine"].sum() / cpu_in.sum()), 3),
        "media_detail": {
            "fast_path_active": FAST_PATH,
            "pace_ms": pace_ms, "ticks_elapsed_s": round(elapsed, 2),
            "in_breakdown_us": {
                "read_frame": stats(cpu_read), up_key: stats(parts["resample"]),
                "turn_engine": stats(parts["turn_engine"]), "handoff": stats(parts["handoff"]),
                "rest": stats(rest)},
            "instrumentation_us_per_wrapper": round(wrapper_ns / 1000, 2),
            "loop_thread_cpu_us_per_frame": round(loop_cpu, 1),
            "model_loop_cpu_us_per_frame": round(model_cpu, 1),
            "in_session": in_counters,
            "hot": {
                "read_frame_fast_us": stats(fast), "read_frame_slow_us": stats(slow),
                f"{up_key}_us": stats(resample), "turn_engine_us": stats(vad),
                "out_us": stats(hot_out), "out_next_frame_us": stats(nxt),
                "out_write_frame_us": stats(wrt)},
            "silero_runs_per_chunk": round(runs[0] / max(1, chunks), 3),
            "turns_ended": turns,
            "timer_overhead_ns": {k: round(v) for k, v in overhead.items()},
        },
    }


# =============================================================================== part 2


class ToneModel:
    """Just enough of the Realtime server side: greets, acknowledges session.update, records
    every client event with its receive time, and on request streams tone responses."""

    def __init__(self, delta_ms: int = 100, level_dbfs: float = -10.0):
        tone = audio.sine(1000, delta_ms, level_dbfs, rate=MODEL_RATE)
        self.delta_b64 = base64.b64encode(tone.astype("<i2").tobytes()).decode()
        self.delta_ms = delta_ms
        self.appends: list[tuple[float, str]] = []     # (time.time() at receipt, base64)
        self.events: list[tuple[float, str]] = []      # other client events
        self.responses: list[dict] = []
        self.ws = None
        self.connected = threading.Event()
        self.server = None
        self.url = ""

    async def start(self) -> str:
        from websockets.asyncio.server import serve
        port = free_tcp_port()
        self.server = await serve(self._handler, "127.0.0.1", port, max_size=16 * 2**20)
        self.url = f"ws://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handler(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed
        self.ws = ws
        session = {"id": "sess_bench", "object": "realtime.session", "type": "realtime"}
        await ws.send(json.dumps({"type": "session.created", "event_id": "ev_0", "session": session}))
        try:
            async for message in ws:
                t = time.time()
                event = json.loads(message)
                etype = event.get("type")
                if etype == "input_audio_buffer.append":
                    self.appends.append((t, event.get("audio", "")))
                    continue
                self.events.append((t, etype))
                if etype == "session.update":
                    merged = {**session, **(event.get("session") or {})}
                    await ws.send(json.dumps({"type": "session.updated", "event_id": "ev_1",
                                              "session": merged}))
                    self.connected.set()
                # commit / response.create / cancel: recorded only; responses come on a timer
        except ConnectionClosed:
            pass

    async def run_responses(self, count: int, period_s: float, deltas: int) -> None:
        """``count`` responses, one every ``period_s`` plus ``r/count`` of a 20 ms frame (so
        the first deltas land at every phase of the bridge's media clock, not at one), each
        ``deltas`` tone deltas paced in real time."""
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        for r in range(count):
            ws = self.ws
            rid, iid = f"resp_bench_{r}", f"item_bench_{r}"
            head = [
                {"type": "response.created", "event_id": f"ev_rc{r}",
                 "response": {"id": rid, "object": "realtime.response", "status": "in_progress",
                              "output": []}},
                {"type": "response.output_item.added", "event_id": f"ev_ia{r}", "response_id": rid,
                 "output_index": 0, "item": {"id": iid, "object": "realtime.item", "type": "message",
                                             "role": "assistant", "status": "in_progress",
                                             "content": []}},
            ]
            delta = json.dumps({"type": "response.output_audio.delta", "event_id": f"ev_d{r}",
                                "response_id": rid, "item_id": iid, "output_index": 0,
                                "content_index": 0, "delta": self.delta_b64})
            tail = [
                {"type": "response.output_audio.done", "event_id": f"ev_ad{r}", "response_id": rid,
                 "item_id": iid, "output_index": 0, "content_index": 0},
                {"type": "response.done", "event_id": f"ev_rd{r}",
                 "response": {"id": rid, "object": "realtime.response", "status": "completed",
                              "status_details": None, "output": []}},
            ]
            t_r = start + r * period_s + 0.020 * r / count
            await asyncio.sleep(max(0.0, t_r - loop.time()))
            for ev in head:
                await ws.send(json.dumps(ev))
            sent = []
            for k in range(deltas):
                await asyncio.sleep(max(0.0, t_r + k * self.delta_ms / 1000 - loop.time()))
                sent.append(time.time())
                await ws.send(delta)
            for ev in tail:
                await ws.send(json.dumps(ev))
            self.responses.append({"id": rid, "delta_sent": sent})


def tone_bursts(count: int, burst_ms: int, period_ms: int, lead_ms: int, tail_ms: int) -> np.ndarray:
    """8 kHz: ``lead`` silence, ``count`` x (700 Hz burst at -10 dBFS + silence), ``tail``.
    Bursts start on 20 ms packet boundaries, so each onset is the first sample of a packet."""
    parts = [audio.silence(lead_ms)]
    for _ in range(count):
        parts += [audio.sine(700, burst_ms, -10.0), audio.silence(period_ms - burst_ms)]
    parts.append(audio.silence(tail_ms))
    return np.concatenate(parts)


def onsets(times, levels) -> list[float]:
    """Times of loud units that follow a silent one."""
    return [times[i] for i in range(1, len(levels))
            if levels[i] > LOUD_DBFS and levels[i - 1] < QUIET_DBFS]


def bench_e2e(n_responses: int, n_bursts: int, keep: bool) -> dict:
    from tests.support.bridge import Bridge
    from tests.support.capture import RtpCapture, capture_available, payload_dbfs
    from tests.support.pcap import read_pcap, write_pcap
    from tests.support.sipp import make_audio_pcap, pcap_duration_ms, run_sipp, sipp_available

    if not capture_available():
        raise RuntimeError("tcpdump cannot capture here (needs root or cap_net_raw)")
    if not sipp_available():
        raise RuntimeError("sipp is not installed")
    period_s, deltas, burst_period_ms = 1.5, 5, 500
    tmp = Path(tempfile.mkdtemp(prefix="bench-call-path-"))
    model_loop = LoopThread("tone-model")
    model = ToneModel()
    try:
        url = model_loop.run(model.start())
        wav = audio.write_wav(tmp / "bursts.wav",
                              tone_bursts(n_bursts, 160, burst_period_ms, lead_ms=600, tail_ms=800))
        pcap_path = tmp / "bursts.pcap"
        make_audio_pcap(wav, tmp / "bursts-even.pcap", ssrc=0x0BE4C401)
        # SIPp sends by the pcap's timestamps: stretch them so that over the bursts the caller
        # slips one 20 ms frame against the bridge's clock (a caller clock 0.3 % slow), so
        # the onsets meet the bridge's media clock at evenly spread phases, not all at one.
        stretch = 1 + 0.020 / (n_bursts * burst_period_ms / 1000)
        dgrams = read_pcap(tmp / "bursts-even.pcap")
        t0 = dgrams[0].ts
        write_pcap(pcap_path, [replace(d, ts=t0 + (d.ts - t0) * stretch) for d in dgrams])
        pcap_ms = pcap_duration_ms(pcap_path)
        hold_ms = pcap_ms + 800 + int(n_responses * period_s * 1000) + 1500
        progress(f"part 2: starting sipbridge (upstream {url})")
        # ToneModel speaks pcm16 (24 kHz) only: pinned, as audio_format auto would pick µ-law at 8 kHz
        with Bridge(tmp, url, extra={"realtime": {"audio_format": "pcm16"}}) as bridge:
            media_port = free_port_block(4, align=2)
            sipp_result: dict = {}

            def place_call() -> None:
                sipp_result["r"] = run_sipp("uac_pcmu", bridge.target, media_port=media_port,
                                            pcap=pcap_path, hold_ms=hold_ms,
                                            timeout=hold_ms / 1000 + 20, trace_dir=tmp / "sipp")
            with RtpCapture(port_range=bridge.rtp_range, path=tmp / "call.pcap") as cap:
                caller = threading.Thread(target=place_call, name="sipp", daemon=True)
                caller.start()
                bridge.wait_log("call_answered", timeout=15)
                t_answer = time.monotonic()
                progress(f"part 2: call up; phase A: {n_bursts} caller tone bursts ({pcap_ms} ms)")
                time.sleep(max(0.0, t_answer + pcap_ms / 1000 + 0.8 - time.monotonic()))
                progress(f"part 2: phase B: {n_responses} model responses, one every {period_s} s")
                model_loop.run(model.run_responses(n_responses, period_s, deltas),
                               timeout=n_responses * period_s + 15)
                caller.join(hold_ms / 1000 + 40)
                bridge.wait_log("call_ended", timeout=10)
            sipp = sipp_result.get("r")
            if sipp is None or not sipp.ok:
                raise RuntimeError("SIPp call failed:\n" + (sipp.describe() if sipp else "no result"))
            streams = cap.streams()
            exit_code = bridge.stop()
            barge_ins = bridge.logs("barge_in")
            underruns = [r.get("underruns") for r in bridge.logs("session_closed")]
    finally:
        model_loop.run(model.stop())
        model_loop.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)

    to_bridge = [s for s in streams.values() if s.src[1] == media_port and s.audio_packets()]
    to_caller = [s for s in streams.values() if s.dst[1] == media_port and s.audio_packets()]
    if len(to_bridge) != 1 or len(to_caller) != 1:
        raise RuntimeError(f"expected one RTP stream each way, got {list(streams)}")
    up_pk = to_bridge[0].audio_packets()
    down_pk = sorted(to_caller[0].audio_packets(), key=lambda p: p.arrival)

    # ---- rtp_to_append: caller onsets (capture) -> append onsets (server receipt)
    up_on = onsets([p.arrival for p in up_pk], [payload_dbfs(p.payload, p.pt) for p in up_pk])
    app_t = [t for t, _ in model.appends]
    app_lv = [audio.dbfs(np.frombuffer(base64.b64decode(b), dtype="<i2")) for _, b in model.appends]
    app_on = onsets(app_t, app_lv)
    down_t = [p.arrival for p in down_pk]   # the bridge sends one packet per media clock tick
    rtp_to_append, onset_tick_wait = [], []
    for t in up_on:
        j = bisect.bisect_left(app_on, t)
        if j < len(app_on) and app_on[j] - t < burst_period_ms / 1000 * 0.8:
            rtp_to_append.append((app_on[j] - t) * 1000)
            k = bisect.bisect_left(down_t, t)
            if k < len(down_t):
                onset_tick_wait.append((down_t[k] - t) * 1000)

    # ---- delta_to_rtp: first delta sent -> first loud packet to the caller
    down_lv = [payload_dbfs(p.payload, p.pt) for p in down_pk]
    delta_to_rtp, tick_wait, extra_frames, loud_ms, gaps = [], [], [], [], []
    for resp in model.responses:
        t = resp["delta_sent"][0]
        first = bisect.bisect_left(down_t, t)
        j = next((k for k in range(first, len(down_t)) if down_lv[k] > LOUD_DBFS), None)
        if j is None or down_t[j] - t > 1.0 or (j > 0 and down_lv[j - 1] > QUIET_DBFS):
            continue
        delta_to_rtp.append((down_t[j] - t) * 1000)
        tick_wait.append((down_t[first] - t) * 1000)
        extra_frames.append(j - first)
        end = bisect.bisect_left(down_t, t + period_s - 0.1)
        loud = [k for k in range(j, end) if down_lv[k] > LOUD_DBFS]
        loud_ms.append(20 * len(loud))
        gaps.append(sum(1 for k in range(j, loud[-1]) if down_lv[k] <= LOUD_DBFS))

    iat = np.diff(down_t) * 1000 if len(down_t) > 1 else np.zeros(0)
    return {
        "delta_to_rtp_ms": stats_range(delta_to_rtp),
        "rtp_to_append_ms": stats_range(rtp_to_append),
        "e2e_detail": {
            "responses_sent": len(model.responses), "responses_matched": len(delta_to_rtp),
            "caller_onsets": len(up_on), "append_onsets": len(app_on),
            "onsets_matched": len(rtp_to_append),
            "rtp_to_append_next_tick_wait_ms": stats(onset_tick_wait, 1),
            "delta_to_rtp_next_packet_wait_ms": stats(tick_wait, 1),
            "delta_to_rtp_extra_frames": stats(extra_frames, 1),
            "tone_ms_out_per_response": stats(loud_ms, 1),
            "tone_ms_sent_per_response": deltas * model.delta_ms,
            "silent_frames_inside_responses": {"total": int(sum(gaps)),
                                               "responses_with_gaps": sum(1 for g in gaps if g)},
            "bridge_to_caller_packet_interval_ms": stats(iat, 2),
            "appends_received": len(model.appends),
            "client_events": sorted({e for _, e in model.events}),
            "barge_ins": len(barge_ins), "session_underruns": underruns,
            "bridge_exit_code": exit_code, "rtp_packets": {"to_bridge": len(up_pk),
                                                          "to_caller": len(down_pk)},
            **({"artifacts": str(tmp)} if keep else {}),
        },
    }


# =============================================================================== main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=3000, help="frames per media measurement")
    parser.add_argument("--responses", type=int, default=12, help="model responses on the call")
    parser.add_argument("--bursts", type=int, default=12, help="caller tone bursts on the call")
    parser.add_argument("--pace-ms", type=float, default=20.0,
                        help="interval between 'in' frames (20: the media clock)")
    parser.add_argument("--skip-e2e", action="store_true", help="only the in-process part")
    parser.add_argument("--audio-format", default="pcm16", choices=("pcm16", "g711_ulaw", "g711_alaw"),
                        help="realtime.audio_format of the in-process session (part 1)")
    parser.add_argument("--keep", action="store_true", help="keep the capture, pcap and traces")
    args = parser.parse_args()

    t0 = time.monotonic()
    result: dict = {"bench": "call_path", "machine": machine()}
    errors = []
    try:
        result.update(bench_media(args.frames, args.pace_ms, args.audio_format))
    except Exception as exc:  # noqa: BLE001 - report, keep going
        errors.append(f"media: {type(exc).__name__}: {exc}")
    result.update(delta_to_rtp_ms=None, rtp_to_append_ms=None)
    if not args.skip_e2e:
        try:
            result.update(bench_e2e(args.responses, args.bursts, args.keep))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"e2e: {type(exc).__name__}: {exc}")
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    result["command"] = " ".join(["python bench/call_path.py", *sys.argv[1:]])
    if errors:
        result["errors"] = errors
    _JSON_OUT.write(json.dumps(result) + "\n")
    _JSON_OUT.flush()
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
