"""The pump's per-tick scheduling over real C ports (sipbridge/media/native/pump.py), no pjsua."""

import time

from sipbridge.media.native.lib import load
from sipbridge.media.native.pump import Pump
from tests.unit.media.native.fakes import FB, Session, frame


def test_a_tick_drains_every_call_before_filling_any(audio):
    """All calls' caller frames are delivered before any call's agent frame is pulled."""
    log: list = []
    a, b = Session(log, "a"), Session(log, "b")
    pa, pb = audio(a, 1), audio(b, 2)
    pa.port.put(frame(1))
    pb.port.put(frame(2))
    Pump(load()).tick((pa, pb))
    assert log == [("a", "rx"), ("b", "rx"), ("a", "tx"), ("b", "tx")]
    assert pa.port.get() == frame(1) and pb.port.get() == frame(1)


def test_fill_keeps_one_frame_ahead_of_the_clock(audio):
    """The agent ring is topped up to one frame: a second round in the same tick pulls nothing."""
    log: list = []
    pa = audio(Session(log, "a"))
    pump = Pump(load())
    pump.tick((pa,))
    pump.tick((pa,))
    assert log.count(("a", "tx")) == 1 and pa.port.out_queued() == 1


def test_a_decision_from_this_ticks_audio_silences_the_next_packet(audio):
    """A pause decided from a caller frame, through the port's flags, makes the next packet silent."""
    log: list = []
    holder = {}
    s = Session(log, "a", on_frame=lambda pcm: holder["flags"].pause())
    pa = audio(s)
    holder["flags"] = pa.flags
    pa.port.push_out(frame(7), pa.port.gen)   # queued before the decision
    pa.port.put(frame(1))
    Pump(load()).tick((pa,))
    assert pa.port.get() == bytes(FB)


def test_clear_from_another_thread_drops_what_the_pump_queued(audio):
    """A clear (DTMF, the API) after the pump filled the ring: the queued agent frame is never sent."""
    pa = audio(Session([], "a"))
    Pump(load()).tick((pa,))
    assert pa.port.out_queued() == 1
    assert pa.flags.unsent() == 1   # pulled, counted as played, never on the wire
    pa.flags.clear()
    assert pa.port.get() == bytes(FB)


def test_flags_of_a_finished_call_do_not_touch_the_next_call(audio):
    """A late pause or clear from the previous call's session is ignored once the port serves another call."""
    pa = audio(Session([], "a"))
    old_flags = pa.flags
    pa.bind(Session([], "b").on_caller_frame, Session([], "b").next_frame)
    pa.port.push_out(frame(3), pa.port.gen)
    old_flags.pause()
    old_flags.clear()
    assert not pa.port.paused and pa.port.get() == frame(3)


def test_caller_frames_of_the_previous_call_are_not_delivered(audio):
    """Frames the clock queued for the call a port served before never reach the new call's session."""
    first, second = Session([], "a"), Session([], "b")
    pa = audio(first)
    pa.port.put(frame(1))
    pa.bind(second.on_caller_frame, second.next_frame)
    pa.port.put(frame(2))
    Pump(load()).tick((pa,))
    assert first.got == [] and second.got == [frame(2)]


def test_a_failing_session_costs_only_its_own_call(audio):
    """A callback that raises is counted; its packet is silence and the other calls are served."""
    class Broken(Session):
        def next_frame(self):
            raise RuntimeError("boom")
    good = Session([], "good")
    bad, ok = audio(Broken([], "bad"), 1), audio(good, 2)
    short = audio(None, 3)
    short.bind(lambda pcm: None, lambda: b"\x01" * 10)   # wrong size: silence, counted
    Pump(load()).tick((bad, ok, short))
    assert bad.errors == 1 and short.errors == 1 and ok.errors == 0
    assert bad.port.get() == bytes(FB) and short.port.get() == bytes(FB) and ok.port.get() == frame(1)


def test_the_pump_thread_serves_a_port_when_the_clock_ticks(audio):
    """With the thread running, a caller frame put by the clock reaches the session and an agent frame is queued."""
    s = Session([], "a")
    pa = audio(s)
    pump = Pump(load(), settle_s=0.0)
    pump.start()
    try:
        pump.add(pa)
        for n in range(1, 6):
            pa.port.get()
            pa.port.put(frame(n))
            deadline = time.monotonic() + 2
            while len(s.got) < n and time.monotonic() < deadline:
                time.sleep(0.001)
        pump.remove(pa)
    finally:
        pump.stop()
    assert s.got == [frame(n) for n in range(1, 6)]
    assert pump.wakes >= 1 and pa.port.out_queued() == 1
