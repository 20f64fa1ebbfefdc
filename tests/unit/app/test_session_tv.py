"""A caller over a TV: Silero's turn on the TV's talk never ends, the caller's turn in it does.

A real CallSession with the real Silero model; the TV is four Asterisk prompts talking at once
in a small room (each looped, mixed, an exponentially decaying noise tail for the room), at
-32 dBFS; the caller 14 dB over it.
"""

from __future__ import annotations

import numpy as np

from tests.support import audio
from tests.unit.app.test_session import RATE, prompt

TALKERS = ("vm-intro", "conf-onlyperson", "tt-monkeys", "vm-options")


def tv(ms: int, level_dbfs: float = -32.0) -> np.ndarray:
    """A TV's talk: four talkers at once, each looped, reverberated, at ``level_dbfs``."""
    n = ms * RATE // 1000
    rng = np.random.default_rng(3)
    mix = np.zeros(n)
    for k, name in enumerate(TALKERS):
        voice = prompt(name).astype(np.float64)
        voice /= np.sqrt(np.mean(voice ** 2))
        looped = np.tile(voice, n // len(voice) + 2)
        start = int(rng.integers(len(voice)))
        mix += looped[start:start + n] * 10 ** (-3.0 * k / 20)
    tail = rng.standard_normal(RATE // 5) * np.exp(-np.arange(RATE // 5) / (RATE * 0.05))
    tail[0] = 60.0
    room = np.convolve(mix, tail)[:n]
    return (room * 10 ** (level_dbfs / 20) * 32768 / np.sqrt(np.mean(room ** 2))).astype(np.int16)


def test_a_tv_alone_is_never_answered_and_a_caller_over_it_is_once_they_stop(make_call):
    """3 s of a TV alone commits nothing; the caller's words 14 dB over it are committed once, by the turn ended at their voice's end."""
    call = make_call()
    pcm = tv(9000)
    call.feed(pcm[: 3 * RATE])
    call.barrier()
    assert call.sent("input_audio_buffer.commit") == []
    words = prompt("vm-goodbye").astype(np.float64)
    words *= 10 ** ((-32.0 + 14.0 - audio.dbfs(words)) / 20)
    over = pcm[3 * RATE: 3 * RATE + len(words)].astype(np.float64) + words
    call.feed(np.clip(over, -32768, 32767).astype(np.int16))
    call.feed(pcm[3 * RATE + len(words):])
    call.barrier()
    assert len(call.sent("input_audio_buffer.commit")) == 1
    ended = call.log_events("turn_ended_over_background")
    assert len(ended) == 1
    end_ms = 3000 + len(words) * 1000 // RATE
    assert end_ms - 300 <= ended[0]["audio_end_ms"] <= end_ms + 100
