"""The playout buffer: sample-exact, pausable, clearable, generation-checked."""

import threading

import numpy as np
import pytest

from sipbridge.media.playout import PlayoutBuffer

FRAME = 640  # bytes: 20 ms at 16 kHz


def ramp(samples: int, start: int = 1) -> bytes:
    return (np.arange(start, start + samples) % 30000).astype("<i2").tobytes()


def drain(buf: PlayoutBuffer, frames: int) -> bytes:
    return b"".join(buf.pull() for _ in range(frames))


def test_empty_buffer_yields_silence_frames():
    """Pulling from an empty buffer returns exactly one frame of silence each time."""
    buf = PlayoutBuffer()
    assert buf.pull() == bytes(FRAME)
    assert buf.frames_out == 1 and buf.frames_audio == 0


def test_audio_comes_out_in_order_padded_to_a_frame():
    """Queued audio comes out sample for sample; the last partial frame is padded with silence."""
    buf = PlayoutBuffer()
    data = ramp(1000)
    assert buf.push(data[:700], "item1", 0) and buf.push(data[700:], "item1", 0)
    out = drain(buf, 4)
    assert out[:2000] == data
    assert out[2000:] == bytes(4 * FRAME - 2000)
    assert buf.played_ms("item1") == 1000 * 1000 // 16000


def test_pause_keeps_every_sample_and_resume_continues():
    """While paused the buffer sends silence and keeps all audio; resume picks up exactly after."""
    buf = PlayoutBuffer()
    data = ramp(320 * 5)
    buf.push(data, "a", 0)
    first = buf.pull()
    buf.pause()
    assert drain(buf, 3) == bytes(3 * FRAME)
    buf.resume()
    rest = drain(buf, 4)
    assert first + rest == data


def test_clear_makes_the_next_frame_silent_and_reports_what_was_heard():
    """After clear() the very next frame is silent and the report counts samples handed out."""
    buf = PlayoutBuffer()
    buf.push(ramp(320 * 10), "item", 0)
    drain(buf, 3)
    cleared = buf.clear()
    assert buf.pull() == bytes(FRAME)
    assert (cleared.item_id, cleared.played_ms, cleared.received_ms, cleared.dropped_ms) == (
        "item", 60, 200, 140)


def test_clear_gives_back_frames_the_port_never_sent():
    """clear(unsent=1): the last frame pulled was queued ahead of the wire and dropped there, so
    it counts as dropped, not heard; silence pulls give nothing back."""
    buf = PlayoutBuffer()
    buf.push(ramp(320 * 10), "item", 0)
    drain(buf, 3)
    cleared = buf.clear(unsent=1)
    assert (cleared.item_id, cleared.played_ms, cleared.received_ms, cleared.dropped_ms) == (
        "item", 40, 200, 160)
    assert buf.played_ms("item") == 40
    buf = PlayoutBuffer()
    buf.push(ramp(320 * 2), "item", 0)
    drain(buf, 3)                        # the answer, then a silence frame
    assert buf.clear(unsent=1).played_ms == 40


def test_late_push_of_an_old_generation_is_refused():
    """Deltas of a cancelled response (old generation) are dropped and counted."""
    buf = PlayoutBuffer()
    gen = buf.generation
    buf.push(ramp(320), "old", gen)
    buf.clear()
    assert not buf.push(ramp(320), "old", gen)
    assert buf.pull() == bytes(FRAME)
    assert buf.dropped_late == 1
    assert buf.push(ramp(320), "new", buf.generation)
    assert buf.pull() != bytes(FRAME)


def test_clear_reports_an_unplayed_item_with_zero_played():
    """An item that was queued but never started is reported with 0 ms played (to be deleted)."""
    buf = PlayoutBuffer()
    buf.push(ramp(320 * 2), "first", 0)
    drain(buf, 2)
    buf.end_item("first")
    buf.push(ramp(320 * 2), "second", 0)
    cleared = buf.clear()
    assert cleared.item_id == "second" and cleared.played_ms == 0


def test_clear_while_idle_reports_nothing():
    """clear() with nothing queued or streaming reports no item."""
    buf = PlayoutBuffer()
    assert buf.clear().item_id is None


def test_underrun_counted_only_while_an_item_is_streaming():
    """Running dry mid-item is an underrun; running dry after end_item is not."""
    buf = PlayoutBuffer()
    buf.push(ramp(320), "x", 0)
    drain(buf, 2)
    assert buf.underruns == 1
    buf.end_item("x")
    drain(buf, 2)
    assert buf.underruns == 1


def test_odd_byte_count_is_rejected():
    """PCM16 pushes must hold whole samples."""
    with pytest.raises(ValueError):
        PlayoutBuffer().push(b"\x00", "x", 0)


def test_concurrent_push_and_pull_lose_no_sample():
    """A producer thread and a consumer thread together neither lose nor duplicate samples."""
    buf = PlayoutBuffer()
    data = ramp(320 * 200)
    chunks = [data[i:i + 998] for i in range(0, len(data), 998)]

    def produce():
        for c in chunks:
            buf.push(c, "item", 0)

    t = threading.Thread(target=produce)
    t.start()
    out = bytearray()
    while len(out) < len(data) * 2:
        frame = buf.pull()
        if frame != bytes(FRAME) or not t.is_alive():
            out += frame
    t.join()
    stream = bytes(out).replace(bytes(FRAME), b"")
    assert stream.startswith(data[: len(data) - FRAME])
