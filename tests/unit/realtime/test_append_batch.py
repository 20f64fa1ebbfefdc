"""AppendBatcher: caller audio leaves in append_ms batches, in order, and a flush empties it at once."""

import pytest

from sipbridge import config
from sipbridge.errors import ConfigError
from sipbridge.realtime.append_batch import AppendBatcher

FRAME_24K = 960  # bytes of 20 ms of pcm16 at 24 kHz


def frames(n: int) -> list[bytes]:
    return [bytes([i % 256]) * FRAME_24K for i in range(n)]


def test_frames_are_released_once_a_batch_is_full_in_their_order():
    """Five 20 ms frames make one 100 ms batch, the concatenation of the five in order."""
    batcher = AppendBatcher.for_ms(100, 24000)
    out = [batcher.add(f) for f in frames(5)]
    assert out[:4] == [None] * 4
    assert out[4] == b"".join(frames(5))
    assert batcher.held_bytes == 0 and batcher.batches == 1


def test_flush_hands_out_what_is_held_and_then_nothing():
    """A flush returns the partial batch at once; a second flush returns None."""
    batcher = AppendBatcher.for_ms(100, 24000)
    for f in frames(2):
        assert batcher.add(f) is None
    assert batcher.flush() == b"".join(frames(2))
    assert batcher.flush() is None
    assert batcher.add(b"") is None and batcher.held_bytes == 0


@pytest.mark.parametrize("ms, frames_per_batch", [(20, 1), (30, 2), (100, 5), (1000, 50)])
def test_append_ms_is_rounded_up_to_whole_frames(ms, frames_per_batch):
    """append_ms is rounded up to whole 20 ms frames, so a frame is never split."""
    assert AppendBatcher.for_ms(ms, 24000).batch_bytes == frames_per_batch * FRAME_24K


def test_every_byte_comes_out_exactly_once():
    """Over many frames of uneven sizes, the batches plus the final flush are exactly the input."""
    batcher = AppendBatcher.for_ms(60, 24000)
    sent, got = [], []
    for i in range(97):
        payload = bytes([i % 256]) * (2 * (1 + i % 700))
        sent.append(payload)
        batch = batcher.add(payload)
        if batch is not None:
            got.append(batch)
    got.append(batcher.flush() or b"")
    assert b"".join(got) == b"".join(sent)


@pytest.mark.parametrize("bad", [0, 19, 1001, "100", True])
def test_a_bad_append_ms_is_a_config_error_naming_the_key(bad):
    """realtime.append_ms outside 20..1000 (or not an integer) raises ConfigError naming the key."""
    with pytest.raises(ConfigError) as err:
        config.build({"realtime": {"append_ms": bad}}, environ={})
    assert err.value.key == "realtime.append_ms"


def test_append_ms_defaults_to_100():
    """The default batch is 100 ms."""
    assert config.build({}, environ={}).realtime.append_ms == 100
