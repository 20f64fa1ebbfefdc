"""A second interruption in the same call, in the agent's next answer, is caught like the first.

The real session, Silero, barge-in policy and echo canceller at 8 kHz on a line with no echo,
the test playing the media clock (caller frame, then agent frame). Before the canceller held
its delay search over a barge-in (EchoCanceller.hold_search), the caller's first interruption
placed an echo on this line, and the next answer's interruption was taken for its echo: in
all four cases below never cancelled (paused late and resumed, or not paused at all).
"""

from __future__ import annotations


import numpy as np
import pytest

from sipbridge import config as config_mod
from sipbridge.session import CallSession
from sipbridge.turn.settings import resolve
from tests.support import audio, bench_module
from tests.support.barge import reply_pcm

barge_sim = bench_module.load("barge_sim")
N = 160


@pytest.fixture(scope="module")
def model():
    return barge_sim.load_model()


def _prompt(name: str) -> np.ndarray:
    return audio.trim_silence(audio.load_wav(audio.asterisk_prompt(name), rate=8000), rate=8000)


@pytest.mark.parametrize("trigger", ["voice", "level"])
@pytest.mark.parametrize("first,at_ms,second", [("tt-somethingwrong", 2160, "vm-goodbye"),
                                                ("hello-world", 2580, "auth-thankyou")])
def test_the_next_answer_is_interrupted_at_the_callers_first_word_too(model, trigger, first, at_ms, second):
    """The caller interrupts the answer, the agent answers again 800 ms after the caller stops, the caller interrupts that 200 ms in: the agent is paused at the word and cancelled both times."""
    cfg = config_mod.Config(sip=config_mod.SipConfig(media_rate=8000), turn_detection=resolve({}),
                            barge_in=config_mod.BargeInConfig(trigger=trigger))
    loop = barge_sim._NoLoop()
    s = CallSession(call_id="two", config=cfg, url="ws://127.0.0.1:9", api_key=None, loop=loop,
                    vad_model=model, on_end=lambda _r: None)
    x1, x2 = _prompt(first), _prompt(second)
    answer2 = (at_ms + len(x1) // 8 + 800) // 20          # frame of the next answer
    at2 = answer2 * 20 + 200                               # ms of the second interruption
    frames = (at2 + len(x2) // 8 + 1000) // 20
    caller = np.zeros(frames * N)
    caller[at_ms * 8: at_ms * 8 + len(x1)] = x1
    caller[at2 * 8: at2 * 8 + len(x2)] = x2
    line = audio.ulaw_decode(audio.ulaw_encode(caller.astype(np.int16))).astype("<i2")
    paused, cancels = [], []
    for k in range(frames):
        if k in (0, answer2):
            s.playout.push(reply_pcm().tobytes(), "item", s.playout.generation)
        before = loop.cancels
        s.on_caller_frame(line[k * N:(k + 1) * N].tobytes())
        s.next_frame()
        paused.append(s.playout.paused)
        if loop.cancels > before:
            cancels.append(k * 20)
    assert len(cancels) == 2 and cancels[1] > at2, cancels
    first_paused = next(k * 20 for k in range(at2 // 20 - 5, frames) if paused[k])
    assert at2 - 20 <= first_paused <= at2 + 120, (first_paused, at2)
