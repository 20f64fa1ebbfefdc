"""The C port's rings and flags (sipbridge/media/native/port.c), driven through its own callbacks, no pjsua."""

import os
import threading

import pytest

from sipbridge.media.native import build
from sipbridge.media.native.lib import NativePort, expected_layout, load

FB = 640   # 20 ms at 16 kHz


def frame(n: int, size: int = FB) -> bytes:
    """A recognisable frame: its number in every sample."""
    return (n % 30000).to_bytes(2, "little") * (size // 2)


@pytest.fixture
def port():
    p = NativePort(16000, FB, "test")
    p.bind(True)
    yield p
    p.free()


def test_library_agrees_with_the_python_mirrors():
    """port.c reports the same pjmedia offsets and sizes as lib.py's ctypes declarations."""
    import ctypes
    out = (ctypes.c_uint64 * 32)()
    count = load().sb_layout(out, 32)
    assert list(out[:len(expected_layout())]) == expected_layout() and count >= len(expected_layout())


def test_caller_frames_come_out_in_order_stamped_with_the_bind_epoch(port):
    """Frames put by the clock are popped in order, each stamped with the epoch of the call bound."""
    for n in range(5):
        port.put(frame(n))
    got = [port.pop_in() for _ in range(6)]
    assert got[:5] == [(frame(n), port.epoch) for n in range(5)] and got[5] is None
    assert port.stats()["frames_in"] == 5


def test_a_tick_without_audio_is_delivered_as_silence(port):
    """A frame without audio (no RTP this tick) or of the wrong size reaches Python as 20 ms of silence."""
    port.put(None)
    port.put(b"\x01\x02" * 10)
    assert [port.pop_in()[0] for _ in range(2)] == [bytes(FB)] * 2
    assert port.stats()["frames_empty"] == 2


def test_an_idle_port_takes_nothing_and_answers_silence():
    """An unbound port ignores caller frames, sends silence and keeps no agent audio for later."""
    p = NativePort(8000, 320, "idle")
    try:
        p.put(frame(1, 320))
        assert p.pop_in() is None
        assert p.get() == bytes(320) and p.stats()["out_idle"] == 1
    finally:
        p.free()


def test_agent_frames_are_sent_in_order_and_an_underrun_is_silence(port):
    """Queued agent frames go out one per get_frame; with none queued the packet is silence, counted."""
    gen = port.gen
    assert port.push_out(frame(1), gen) and port.push_out(frame(2), gen)
    assert [port.get(), port.get(), port.get()] == [frame(1), frame(2), bytes(FB)]
    assert port.stats()["frames_out"] == 2 and port.stats()["underruns"] == 1


def test_clear_silences_the_very_next_packet(port):
    """After a clear nothing queued before it is sent: the next packet is silence, then newer audio plays."""
    gen = port.gen
    for n in range(4):
        port.push_out(frame(n), gen)
    assert port.get() == frame(0)
    port.clear()
    assert port.get() == bytes(FB)
    port.push_out(frame(9), port.gen)
    assert port.get() == frame(9)
    assert port.stats()["stale_dropped"] == 3


def test_a_frame_pulled_before_a_clear_is_dropped_even_if_pushed_after(port):
    """A frame pulled under the old generation and pushed after the clear never reaches the wire."""
    gen = port.gen
    port.clear()
    port.push_out(frame(5), gen)
    assert port.get() == bytes(FB) and port.stats()["stale_dropped"] == 1


def test_pause_sends_silence_until_resumed(port):
    """While paused every packet is silence and the queued frame is kept; after resume it plays first, then new audio."""
    gen = port.gen
    port.push_out(frame(1), gen)
    port.pause(True)
    assert port.paused and port.get() == bytes(FB) and port.get() == bytes(FB)
    assert port.out_queued() == 1
    port.pause(False)
    port.push_out(frame(2), gen)
    assert port.get() == frame(1) and port.get() == frame(2)
    assert port.stats()["paused_frames"] == 2


def test_a_clear_while_paused_drops_the_kept_frame(port):
    """A clear after a pause drops the frame the pause kept: it never reaches the wire."""
    port.push_out(frame(1), port.gen)
    port.pause(True)
    assert port.get() == bytes(FB)
    port.clear()
    port.pause(False)
    assert port.get() == bytes(FB) and port.stats()["stale_dropped"] == 1


def test_a_new_call_gets_nothing_queued_for_the_previous_one(port):
    """Rebinding bumps epoch and generation: the old call's caller frames are told apart, its agent frames dropped."""
    port.put(frame(1))
    port.push_out(frame(2), port.gen)
    port.pause(True)
    old = port.epoch
    new = port.bind(True)
    assert new != old and not port.paused
    assert port.pop_in() == (frame(1), old)
    assert port.get() == bytes(FB)


def test_full_rings_drop_the_newest_and_count_it(port):
    """A caller ring the pump does not drain drops new frames (counted), never overwriting unread ones."""
    for n in range(40):
        port.put(frame(n))
    assert port.stats()["in_dropped"] == 8
    assert [port.pop_in()[0] for _ in range(32)] == [frame(n) for n in range(32)]
    gen = port.gen
    assert sum(port.push_out(frame(n), gen) for n in range(10)) == 8
    with pytest.raises(ValueError):
        port.push_out(bytes(FB + 2), gen)


def test_the_clock_wakes_the_pump_once_until_acknowledged(port):
    """Caller frames write the eventfd once; the next write comes only after the pump's acknowledgement."""
    lib = load()
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        lib.sb_set_wake_fd(fd)
        port.put(frame(1))
        port.put(frame(2))
        assert os.eventfd_read(fd) == 1
        lib.sb_wake_ack()
        port.put(frame(3))
        assert os.eventfd_read(fd) == 1
    finally:
        lib.sb_set_wake_fd(-1)
        os.close(fd)


def test_rings_stay_ordered_and_whole_across_threads(port):
    """A producer and a consumer on two threads move 20000 numbered frames each way: none lost, reordered or torn."""
    import time
    n_frames = 20000
    deadline = time.monotonic() + 30
    got_in: list[bytes] = []
    sent_out: list[bytes] = []

    def clock():   # pjmedia's side: puts caller frames, gets agent frames, interleaved
        n = 0
        while (n < n_frames or len(sent_out) < n_frames) and time.monotonic() < deadline:
            if n < n_frames and port.stats()["frames_in"] - len(got_in) < 16:
                port.put(frame(n))
                n += 1
            out = port.get()
            if out != bytes(FB):
                sent_out.append(out)

    t = threading.Thread(target=clock)
    t.start()
    gen, pushed = port.gen, 0
    while t.is_alive():   # the pump's side
        got = port.pop_in()
        if got is not None:
            got_in.append(got[0])
        if pushed < n_frames and port.push_out(frame(pushed + 1), gen):
            pushed += 1
    t.join()
    assert got_in == [frame(n) for n in range(n_frames)]
    assert sent_out == [frame(n + 1) for n in range(n_frames)]


def test_build_is_atomic_and_only_when_stale(tmp_path):
    """The library is rebuilt only when missing or older than port.c, and appears whole under its name."""
    lib = tmp_path / "sb.so"
    assert build.stale(lib)
    build.ensure(lib)
    first = lib.stat().st_mtime_ns
    assert not build.stale(lib) and build.ensure(lib).stat().st_mtime_ns == first
    assert [p.name for p in tmp_path.iterdir()] == ["sb.so"]


def test_a_missing_compiler_is_a_clear_error(tmp_path, monkeypatch):
    """Without a C compiler the build says so and what to use instead."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises((build.BuildError, OSError)):
        build.build(tmp_path / "x.so")
