"""A caller who speaks and then puts the agent on hold: the music must not start a turn."""

import numpy as np
import pytest

from sipbridge.turn.engine import TurnEngine
from sipbridge.turn.events import SpeechStarted
from sipbridge.turn.settings import TurnSettings

from .corpus import MUSIC, frames, prompt, read_wav, scaled_to, to_line

RATE8 = 8000


def silence8(ms: int) -> np.ndarray:
    return np.zeros(RATE8 * ms // 1000, dtype=np.int16)


@pytest.mark.parametrize("track", sorted(p.name for p in MUSIC.glob("*.wav")))
def test_music_on_hold_after_speech_starts_no_turn(model, track):
    """One utterance, 1.5 s of silence, then 3 s of music at -30 dBFS: exactly one turn, the caller's."""
    music = read_wav(MUSIC / track)[60 * RATE8: 63 * RATE8]
    src = np.concatenate([silence8(500), prompt("hello-world"), silence8(1500),
                          scaled_to(music, -30.0), silence8(500)])
    engine = TurnEngine(model.new_stream(), TurnSettings())
    started = [e for f in frames(to_line(src)) for e in engine.feed(f) if isinstance(e, SpeechStarted)]
    assert len(started) == 1 and started[0].audio_start_ms < 1000, started
