"""sip.pump_ticks: the pump runs every N ticks over N frames a call (sipbridge/media/native/pump.py, port.c), no pjsua."""

import ctypes
import os
import time

import pytest

from sipbridge.config import build
from sipbridge.errors import ConfigError
from sipbridge.media.native.lib import load
from sipbridge.media.native.pump import MAX_TICKS, Pump
from sipbridge.media.playout import PlayoutBuffer
from tests.unit.media.native.fakes import SILENCE, Handlers, Session, frame


def test_the_clock_wakes_the_pump_only_once_a_ring_holds_n_frames(audio):
    """With pump ticks 2, the first caller frame of a round writes no eventfd and the second does."""
    lib = load()
    pa = audio(Session([], "a"))
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        assert lib.sb_set_wake_every(2) == 1
        lib.sb_set_wake_fd(fd)
        pa.port.put(frame(1))
        with pytest.raises(BlockingIOError):
            os.eventfd_read(fd)
        pa.port.put(frame(2))
        assert os.eventfd_read(fd) == 1
    finally:
        lib.sb_set_wake_fd(-1)
        lib.sb_set_wake_every(1)
        os.close(fd)


def test_wake_thresholds_the_rings_cannot_serve_are_refused():
    """The C side takes 1..MAX_TICKS and refuses 0 and depths its agent ring could not queue."""
    lib = load()
    try:
        assert all(lib.sb_set_wake_every(n) == 1 for n in range(1, MAX_TICKS + 1))
        assert lib.sb_set_wake_every(0) == 0 and lib.sb_set_wake_every(9) == 0
    finally:
        lib.sb_set_wake_every(1)
    with pytest.raises(ValueError):
        Pump(lib, ticks=MAX_TICKS + 1)


def test_the_rings_hold_a_late_round_of_the_deepest_setting_without_overrun(audio):
    """Caller ring >= 2*MAX_TICKS and agent ring >= MAX_TICKS slots: a round one round late drops nothing."""
    out = (ctypes.c_uint64 * 32)()
    load().sb_layout(out, 32)
    in_slots, out_slots = out[16], out[17]
    assert in_slots >= 2 * MAX_TICKS and out_slots >= MAX_TICKS
    s = Session([], "a")
    pa = audio(s)
    for n in range(2 * MAX_TICKS):
        pa.port.put(frame(n))
    Pump(load(), ticks=MAX_TICKS).tick((pa,))
    assert pa.port.stats()["in_dropped"] == 0 and s.got == [frame(n) for n in range(2 * MAX_TICKS)]
    assert pa.port.out_queued() == MAX_TICKS


def test_a_round_replays_its_ticks_in_order_for_all_calls(audio):
    """Two ticks of two calls: tick by tick, every caller frame then every agent frame, two queued at the end."""
    log: list = []
    a, b = Session(log, "a"), Session(log, "b")
    pa, pb = audio(a, 1), audio(b, 2)
    for n in (1, 2):
        pa.port.put(frame(n))
        pb.port.put(frame(10 + n))
    assert Pump(load(), ticks=2).tick((pa, pb)) == 4
    assert log == [("a", "rx"), ("b", "rx"), ("a", "tx"), ("b", "tx")] * 2
    assert a.got == [frame(1), frame(2)] and b.got == [frame(11), frame(12)]
    assert [pa.port.get(), pa.port.get(), pa.port.get()] == [frame(1), frame(2), SILENCE]


def test_a_call_that_joined_mid_round_takes_part_in_its_last_ticks(audio):
    """A call with one frame where the others have two is served on the round's second tick, in step with them."""
    log: list = []
    a, b = Session(log, "a"), Session(log, "b")
    pa, pb = audio(a, 1), audio(b, 2)
    pa.port.put(frame(1))
    pa.port.put(frame(2))
    pb.port.put(frame(3))
    Pump(load(), ticks=2).tick((pa, pb))
    assert log == [("a", "rx"), ("a", "tx"), ("b", "tx"),
                   ("a", "rx"), ("b", "rx"), ("a", "tx"), ("b", "tx")]
    assert pa.port.out_queued() == 2 and pb.port.out_queued() == 2


def test_a_late_round_pulls_agent_audio_only_in_its_last_ticks(audio):
    """Three caller frames at pump ticks 2: agent frames are pulled after the second and third, two queued."""
    log: list = []
    a = Session(log, "a")
    pa = audio(a)
    for n in range(3):
        pa.port.put(frame(n))
    Pump(load(), ticks=2).tick((pa,))
    assert log == [("a", "rx"), ("a", "rx"), ("a", "tx"), ("a", "rx"), ("a", "tx")]


@pytest.mark.parametrize("ticks", [2, 3])
def test_a_barge_in_mid_round_reports_exactly_what_went_on_the_wire(audio, ticks):
    """Barge-in on a round's last caller frame: the N-1 agent frames pulled in the round are given back, played_ms is what get_frame sent."""
    playout = PlayoutBuffer(8000)
    playout.push(frame(7) * 20, "item", playout.generation)   # 400 ms of agent audio
    holder: dict = {}
    rx = []

    def on_frame(pcm: bytes) -> None:
        rx.append(pcm)
        if len(rx) == ticks:   # the caller's speech is confirmed on the round's last frame
            flags = holder["audio"].flags
            holder["cleared"] = playout.clear(flags.unsent())
            flags.clear()
    pa = audio(Handlers(on_frame, playout.pull))
    holder["audio"] = pa
    pump = Pump(load(), ticks=ticks)
    pump.tick((pa,))                          # the previous round queued N frames
    wire = []
    for n in range(ticks):                    # the clock: N ticks, agent frame then caller frame
        wire.append(pa.port.get())
        pa.port.put(frame(100 + n))
    pump.tick((pa,))
    wire.append(pa.port.get())                # the packet after the decision
    heard = sum(f != SILENCE for f in wire)
    assert heard == ticks and wire[-1] == SILENCE
    assert holder["cleared"].played_ms == heard * 20
    assert holder["cleared"].dropped_ms == 400 - heard * 20


def test_a_pause_from_another_thread_silences_the_next_packet_with_n_queued(audio):
    """Pump ticks 3: a pause while three agent frames are queued makes the next packet silent; resume plays them in order."""
    s = Session([], "a")
    pa = audio(s)
    Pump(load(), ticks=3).tick((pa,))
    pa.flags.pause()
    assert pa.port.get() == SILENCE and pa.flags.unsent() == 3
    pa.flags.resume()
    assert [pa.port.get() for _ in range(4)] == [frame(1), frame(2), frame(3), SILENCE]


def test_the_pump_thread_wakes_once_per_round_of_n_ticks(audio):
    """With the thread running at pump ticks 2, six clock ticks wake it three times and deliver every frame in order."""
    s = Session([], "a")
    pa = audio(s)
    pump = Pump(load(), settle_s=0.0, ticks=2)
    pump.start()
    try:
        pump.add(pa)
        for n in range(1, 7):
            pa.port.get()
            pa.port.put(frame(n))
            deadline = time.monotonic() + 2
            while n % 2 == 0 and len(s.got) < n and time.monotonic() < deadline:
                time.sleep(0.001)
        pump.remove(pa)
    finally:
        pump.stop()
    assert s.got == [frame(n) for n in range(1, 7)] and pump.wakes == 3


def test_pump_ticks_is_a_checked_key_defaulting_to_two():
    """sip.pump_ticks defaults to 2 (a round every other tick), 1 is one key away, and a value outside 1..3 is a ConfigError naming it."""
    assert build({}, environ={}).sip.pump_ticks == 2
    assert build({"sip": {"pump_ticks": 1}}, environ={}).sip.pump_ticks == 1
    assert build({"sip": {"pump_ticks": 2}}, environ={}).sip.pump_ticks == 2
    with pytest.raises(ConfigError) as err:
        build({"sip": {"pump_ticks": 4}}, environ={})
    assert "sip.pump_ticks" in str(err.value)
    assert Pump(load()).depth == 1 and Pump(load(), ticks=2).depth == 2


@pytest.mark.parametrize("ticks", [1, 2])
def test_a_paused_agent_still_ticks_the_session_and_queues_nothing(audio, ticks):
    """While paused the session gets one next_frame per tick (its echo reference, timers), the silence is not queued, and a clear gives back exactly the frames the C side kept."""
    playout = PlayoutBuffer(8000)
    playout.push(frame(7) * 20, "item", playout.generation)   # 400 ms of agent audio
    pulls = []

    def next_frame() -> bytes:
        pulls.append(playout.paused)
        return playout.pull()
    pa = audio(Handlers(lambda pcm: None, next_frame))
    pump = Pump(load(), ticks=ticks)
    pump.tick((pa,))                          # `ticks` frames queued ahead of the wire
    wire = [pa.port.get()]                    # one of them sent
    playout.pause()
    pa.flags.pause()
    for t in range(3 * ticks):                # the clock goes on: silence, the rest kept
        wire.append(pa.port.get())
        pa.port.put(frame(1))
        if (t + 1) % ticks == 0:              # the pump's round every `ticks` ticks
            pump.tick((pa,))
    assert pulls.count(True) == 3 * ticks and pa.port.out_queued() == ticks - 1
    assert wire[1:] == [SILENCE] * 3 * ticks
    cleared = playout.clear(pa.flags.unsent())
    pa.flags.clear()
    assert cleared.played_ms == 20 and pa.port.get() == SILENCE
