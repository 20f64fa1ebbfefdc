"""The model's WebSocket fails mid-call: the caller stays on the line while the bridge reconnects.

One bridge and one breakable model server (tests/support/flaky_upstream.py) serve the module;
each test places its own SIPp call. The model answers every turn with a 440 Hz tone, the
reconnect prompt is a 1 kHz tone, so every agent packet on the wire says whose audio it is.
RTP is captured with tcpdump on loopback.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.support import audio
from tests.support.bridge import Bridge
from tests.support.capture import RtpCapture, decode_payload
from tests.support.flaky_upstream import FlakyUpstream
from tests.support.model_audio import caller_audio
from tests.support.ports import free_port_block
from tests.support.sipp import make_audio_pcap, run_sipp

REPLY_HZ, PROMPT_HZ, PROMPT_MS = 440, 1000, 600
RETRY = {"reconnect_attempts": 3, "reconnect_backoff_min_ms": 150, "reconnect_backoff_max_ms": 300}
MAX_GAP_S = 0.100  # bridge->caller RTP must never pause longer than this across an outage


def quiet(ms: int) -> np.ndarray:
    return audio.noise(ms, -65.0, seed=ms)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("upstream-faults")
    hello = audio.trim_silence(audio.load_wav(audio.asterisk_prompt("hello-world")))  # 1.27 s
    # two utterances 3.4 s apart: the first is answered on the first connection, the second
    # must reach the connection made after the drop
    two = np.concatenate([quiet(300), hello, quiet(3400), hello, quiet(3000)])
    make_audio_pcap(two, d / "two_utterances.pcap")
    make_audio_pcap(quiet(9000), d / "silent.pcap")
    reply = audio.write_wav(d / "reply.wav", audio.sine(REPLY_HZ, 2500, -12.0, rate=24000), rate=24000)
    prompt = audio.write_wav(d / "prompt.wav", audio.sine(PROMPT_HZ, PROMPT_MS, -12.0, rate=8000), rate=8000)
    return {"two": d / "two_utterances.pcap", "two_ms": len(two) // 8, "silent": d / "silent.pcap",
            "reply": reply, "prompt": prompt}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory, files):
    with FlakyUpstream(tmp_path_factory.mktemp("flaky"), reply_wav=files["reply"], pace=2.0) as server:
        yield server


@pytest.fixture(scope="module")
def bridge(tmp_path_factory, upstream, files):
    extra = {"realtime": {**RETRY, "reconnect_prompt": str(files["prompt"])}}
    with Bridge(tmp_path_factory.mktemp("bridge"), upstream.url, extra=extra) as b:
        yield b


@pytest.fixture(autouse=True)
def healthy_upstream(upstream):
    yield
    upstream.accept()


def in_background(fn, *args, **kwargs):
    pool = ThreadPoolExecutor(1)
    future = pool.submit(fn, *args, **kwargs)
    pool.shutdown(wait=False)
    return future


def log_time(rec: dict) -> float:
    """A bridge log line's wall-clock time (epoch seconds, comparable with tcpdump's)."""
    return dt.datetime.fromisoformat(rec["timestamp"].replace("Z", "+00:00")).timestamp()


def after(bridge: Bridge, event: str, t0: float, timeout: float = 10.0, **match) -> dict:
    """The first ``event`` log line at or after ``t0`` (wall clock), waiting for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rec in bridge.logs(event):
            if log_time(rec) >= t0 - 0.005 and all(rec.get(k) == v for k, v in match.items()):
                return rec
        time.sleep(0.02)
    raise AssertionError(f"no {event} after {t0}:\n" + bridge.output()[-3000:])


def to_caller(cap: RtpCapture, bridge: Bridge):
    lo, hi = bridge.rtp_range
    streams = [s for s in cap.streams().values() if lo <= s.src[1] <= hi]
    assert len(streams) == 1, f"expected one bridge->caller stream, got {list(cap.streams())}"
    return streams[0]


def agent_packets(stream, t0: float, t1: float) -> list[tuple[float, int]]:
    """``(arrival, tone)`` of the non-silent bridge->caller packets in [t0, t1]: the tone is
    REPLY_HZ or PROMPT_HZ when the packet's strongest 50 Hz bin is within 50 Hz of it, else
    that bin's frequency."""
    out = []
    for p in stream.audio_packets():
        if t0 <= p.arrival <= t1:
            pcm = decode_payload(p.payload, p.pt).astype(float)
            if audio.dbfs(pcm) > -30:
                spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
                hz = int(np.argmax(spectrum) * 8000 / len(pcm))
                out.append((p.arrival, next((t for t in (REPLY_HZ, PROMPT_HZ) if abs(hz - t) <= 50), hz)))
    return out


def max_gap(stream, t0: float, t1: float) -> float:
    """Longest pause between consecutive bridge->caller packets from ``t0`` to ``t1``."""
    times = np.array([p.arrival for p in stream.packets if t0 <= p.arrival <= t1])
    assert len(times) > (t1 - t0) / 0.02 * 0.8, \
        f"{len(times)} RTP packets to the caller in {t1 - t0:.2f} s (stream: {len(stream)} packets)"
    return float(np.diff(times).max())


def test_drop_mid_answer_reconnects_and_the_call_goes_on(upstream, bridge, files):
    """An abrupt drop while the agent talks: its audio stops, the prompt plays, the session is
    restored with the same session.update, and the caller's next utterance is answered by the new
    connection; RTP to the caller never pauses."""
    conns = len(upstream.connections())
    first, second = conns + 1, conns + 2
    media = free_port_block(4)
    with RtpCapture(ports=[media], port_range=bridge.rtp_range) as cap:
        call = in_background(run_sipp, "uac_pcmu", bridge.target, media_port=media, pcap=files["two"],
                             hold_ms=files["two_ms"] + 300, timeout=30)
        upstream.wait_for("response.create", timeout=10, conn=first)
        time.sleep(0.4)  # the 440 Hz answer is playing (streamed at 2x: ~400 ms queued, more to come)
        t_drop = upstream.drop()
        res = call.result()
    assert res.returncode == 0 and res.final_code == 200, res.describe()

    lost = after(bridge, "upstream_lost", t_drop - 0.5)
    assert lost["code"] == 1006
    restored = after(bridge, "upstream_restored", t_drop)
    assert restored["attempt"] == 1
    cut = after(bridge, "barge_in", t_drop - 0.5, source="upstream_lost")
    assert cut["response_id"] and cut["dropped_ms"] > 0, "no answer in flight was cut"
    assert not [r for r in bridge.logs("call_hangup") if log_time(r) >= t_drop]

    # the same session configuration on the new connection, and the next utterance went there
    assert upstream.events("session.update", conn=second)[0]["session"] == \
        upstream.events("session.update", conn=first)[0]["session"]
    assert upstream.events("input_audio_buffer.commit", conn=second)
    assert upstream.events("response.create", conn=second)
    appended, _ = caller_audio(upstream.events("session.update", conn=second)[0]["session"],
                               upstream.events("input_audio_buffer.append", conn=second))
    assert audio.dbfs(appended) > -40, "the caller's utterance never reached the new connection"

    # on the wire: the old answer stops, the prompt plays once, later the new answer plays
    back = to_caller(cap, bridge)
    t_restored = log_time(restored)
    outage = agent_packets(back, t_drop + 0.1, t_restored + 1.5)
    assert {hz for _, hz in outage} <= {PROMPT_HZ}, f"the cut answer kept playing: {outage[:5]}"
    prompt = [t for t, hz in agent_packets(back, t_drop - 0.5, t_restored + 1.5) if hz == PROMPT_HZ]
    assert abs(len(prompt) * 20 - PROMPT_MS) <= 60, f"prompt heard for {len(prompt) * 20} ms"
    assert 0 <= prompt[0] - t_drop < 0.2, "the prompt started late"
    later = agent_packets(back, t_restored + 1.5, back.last_arrival)
    assert sum(1 for _, hz in later if hz == REPLY_HZ) * 20 >= 700, "the new session's answer was not heard"
    gap = max_gap(back, t_drop - 0.2, t_restored + 0.5)
    assert gap <= MAX_GAP_S, f"RTP to the caller paused {gap * 1000:.0f} ms during the outage"


def test_upstream_stays_down_ends_the_call_with_bye_after_the_limit(upstream, bridge, files):
    """When every reconnect is refused, the bridge tries reconnect_attempts times, then sends BYE
    with reason upstream_lost; until then RTP to the caller keeps flowing."""
    media = free_port_block(4)
    with RtpCapture(ports=[media], port_range=bridge.rtp_range) as cap:
        call = in_background(run_sipp, "uac_wait_bye", bridge.target, media_port=media,
                             pcap=files["silent"], timeout=25)
        answered = after(bridge, "call_answered", time.time() - 1, timeout=15)
        time.sleep(0.8)
        upstream.refuse(-1)
        t_drop = upstream.drop()
        res = call.result()
    assert res.returncode == 0, "the caller never got a BYE:\n" + res.describe()
    hangup = after(bridge, "call_hangup", t_drop)
    assert hangup["reason"] == "upstream_lost" and hangup["call_id"] == answered["call_id"]
    gave_up = after(bridge, "upstream_gave_up", t_drop)
    assert gave_up["attempts"] == 3
    failed = [r for r in bridge.logs("upstream_reconnect_failed") if log_time(r) >= t_drop]
    assert [r["attempt"] for r in failed] == [1, 2, 3] and all(r["status"] == 503 for r in failed)
    tries = [r for r in bridge.logs("upstream_reconnecting") if log_time(r) >= t_drop]
    assert sum(r["delay_ms"] for r in tries) >= 150 + 225 + 225
    assert log_time(hangup) - t_drop >= 0.6, "hung up without waiting out the backoff"
    back = to_caller(cap, bridge)
    gap = max_gap(back, t_drop - 0.2, log_time(hangup) - 0.05)
    assert gap <= MAX_GAP_S, f"RTP to the caller paused {gap * 1000:.0f} ms before the BYE"


def test_prompt_is_heard_once_while_reconnects_are_refused(upstream, bridge, files):
    """With reconnect_prompt set, a silent caller hears exactly the prompt during an outage that
    takes three attempts, then the call goes on until the caller hangs up."""
    media = free_port_block(4)
    with RtpCapture(ports=[media], port_range=bridge.rtp_range) as cap:
        call = in_background(run_sipp, "uac_pcmu", bridge.target, media_port=media,
                             pcap=files["silent"], hold_ms=4500, timeout=25)
        after(bridge, "call_answered", time.time() - 1, timeout=15)
        time.sleep(0.5)
        upstream.refuse(2)
        t_drop = upstream.drop()
        res = call.result()
    assert res.returncode == 0 and res.final_code == 200, res.describe()
    restored = after(bridge, "upstream_restored", t_drop)
    assert restored["attempt"] == 3
    assert not [r for r in bridge.logs("call_hangup") if log_time(r) >= t_drop]
    back = to_caller(cap, bridge)
    heard = agent_packets(back, t_drop - 1.0, back.last_arrival)
    assert heard, "the caller heard nothing during the outage"
    assert {hz for _, hz in heard} == {PROMPT_HZ}
    assert abs(len(heard) * 20 - PROMPT_MS) <= 60, f"prompt heard for {len(heard) * 20} ms, not once"
    assert 0 <= heard[0][0] - t_drop < 0.2
    gap = max_gap(back, t_drop - 0.2, log_time(restored) + 0.5)
    assert gap <= MAX_GAP_S, f"RTP to the caller paused {gap * 1000:.0f} ms during the outage"
