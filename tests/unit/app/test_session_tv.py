"""A caller over a TV: Silero's turn on the TV's talk never ends, the caller's turn in it does.

A real CallSession with the real Silero model; the TV is four Asterisk prompts talking at once
in a small room (:func:`tests.support.barge.tv_talk`), at -32 dBFS; the caller 14 dB over it.
"""

from __future__ import annotations

import numpy as np

from tests.support import audio
from tests.support.barge import tv_talk
from tests.unit.app.test_session import RATE, prompt


def test_a_tv_alone_is_never_answered_and_a_caller_over_it_is_once_they_stop(make_call):
    """3 s of a TV alone commits nothing; the caller's words 14 dB over it are committed once, by the turn ended at their voice's end."""
    call = make_call()
    pcm = tv_talk(9 * RATE, -32.0, RATE)
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
