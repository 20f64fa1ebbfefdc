"""An echo-free line is watched at half the cost, and an echo that appears on it later is still found.

Once ``acquire_give_up_ms`` of agent speech brought no echo back, :class:`EchoCanceller` passes
the caller through and its delay search accumulates every other near frame only (same memory in
seconds). That search exists for an echo appearing later in the call (a transfer, a
speakerphone): these tests build such a line with :func:`sipbridge.media.echo_sim.line_echo`
(no echo at all, then an echo from ``appear_s`` on) under real agent speech (an Asterisk prompt
resampled to 16 kHz), and check the echo is placed in time, where it is, and cancelled.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sipcodecs import StreamResampler

from sipbridge.media.echo import EchoCanceller, EchoSettings
from sipbridge.media.echo_sim import EchoPath, hybrid_ir, line_echo, place_caller
from sipbridge.turn.engine import TurnEngine
from sipbridge.turn.events import SpeechStarted
from sipbridge.turn.settings import TurnSettings
from sipbridge.turn.silero import load_model
from tests.unit.media.test_echo import prompt8

FRAME = 320
RATE = 16000
SECONDS = 16
# Searching every frame placed such echoes after 180 ms median, 500 ms at most (70 cases, 4-17 s
# into the call); searching every other frame, after 200 ms median, 560 ms at most.
FOUND_WITHIN_MS = 800
NO_ECHO = EchoPath(atten_db=400.0)     # rounds to digital zero at the phone


@functools.lru_cache(maxsize=1)
def agent16() -> np.ndarray:
    return StreamResampler(8000, RATE).process_array(prompt8("demo-congrats"))[: SECONDS * RATE]


def late_echo_line(appear_s: float, path: EchoPath) -> np.ndarray:
    """No echo for ``appear_s`` seconds of agent speech, then ``path``; -60 dBFS line noise throughout."""
    return line_echo(agent16(), None, paths=[(0, NO_ECHO), (int(appear_s * 8000), path)],
                     noise_dbfs=-60.0, seed=int(appear_s))


def run(near: np.ndarray, aec: EchoCanceller) -> tuple[np.ndarray, list[str], list[int]]:
    """Feed every tick (far, then near); the output, the mode and delay_changes after each tick."""
    out = np.empty_like(near)
    modes, changes = [], []
    for i in range(len(near) // FRAME):
        at = slice(i * FRAME, (i + 1) * FRAME)
        aec.far(agent16()[at])
        out[at] = aec.near(near[at])
        modes.append(aec.mode)
        changes.append(aec.delay_changes)
    return out, modes, changes


LATE_CASES = [
    (6.0, EchoPath(delay_ms=60, atten_db=12)),
    (8.0, EchoPath(delay_ms=20, atten_db=6)),
    (10.0, EchoPath(delay_ms=120, atten_db=20)),
    (7.0, EchoPath(delay_ms=100, atten_db=12, ir=tuple(hybrid_ir(seed=2)))),
    (9.0, EchoPath(delay_ms=180, atten_db=20, ir=tuple(hybrid_ir(seed=4)))),
]


@functools.lru_cache(maxsize=None)
def late_run(case: int):
    appear_s, path = LATE_CASES[case]
    near = late_echo_line(appear_s, path)
    aec = EchoCanceller()
    out, modes, changes = run(near, aec)
    return near, out, modes, changes, aec.state()


@pytest.mark.parametrize("case", range(len(LATE_CASES)))
def test_an_echo_appearing_on_an_echo_free_line_is_found_within_800_ms(case):
    """The line is echo-free (nothing placed) until the echo appears; it is placed within 800 ms, on the right delay, and cancelled."""
    appear_s, path = LATE_CASES[case]
    _, _, modes, changes, state = late_run(case)
    appear = int(appear_s * RATE) // FRAME
    assert modes[appear - 1] == "echo_free" and changes[appear - 1] == 0
    placed = changes.index(1)
    assert (placed + 1 - appear) * FRAME * 1000 / RATE <= FOUND_WITHIN_MS
    assert state.mode == "cancelling" and state.delay_changes == 1
    assert abs(state.delay_ms - path.true_delay_ms) <= 2.0
    assert state.erle_db >= 12.0


@pytest.fixture(scope="module")
def vad_model():
    return load_model()


@pytest.mark.parametrize("case", [0, 1, 3])
def test_a_late_echo_starts_no_turn(vad_model, case):
    """The echo of a transfer or a speakerphone, 6-12 dB down, starts no turn on the canceller's output (it would on the raw line)."""
    near, out, _, _, _ = late_run(case)
    appear = int(LATE_CASES[case][0] * RATE)

    def starts(audio):
        engine = TurnEngine(vad_model.new_stream(), TurnSettings())
        events = []
        for i in range(len(audio) // FRAME):
            events += engine.feed(audio[i * FRAME: (i + 1) * FRAME])
        return [e.at_sample for e in events if isinstance(e, SpeechStarted) and e.at_sample >= appear]

    assert starts(out) == []
    assert starts(near), "the raw echo must start a turn, or this case proves nothing"


def test_an_echo_free_line_is_searched_on_every_other_frame_and_passed_through():
    """While acquiring every far-active frame is searched; once echo-free, every other one, the caller's frames come back untouched and nothing is placed."""
    caller = place_caller(prompt8("vm-sorry"), 3.0, 0.0, SECONDS) + place_caller(prompt8("vm-intro"), 9.0, -6.0, SECONDS)
    near = line_echo(np.zeros_like(agent16()), EchoPath(), caller8=caller, noise_dbfs=-60.0)
    aec = EchoCanceller(EchoSettings(acquire_give_up_ms=1000))
    counted = {"acquiring": [0, 0], "echo_free": [0, 0]}     # mode -> [far-active frames, frames searched]
    for i in range(len(near) // FRAME):
        at = slice(i * FRAME, (i + 1) * FRAME)
        aec.far(agent16()[at])
        mode, searched = aec.mode, aec.frames_searched
        frame = near[at]
        result = aec.near(frame)
        if mode == "echo_free":
            assert result is frame and not aec.likely_echo_only and not aec.double_talk
        if aec.far_active and mode in counted:
            counted[mode][0] += 1
            counted[mode][1] += aec.frames_searched - searched
    active, searched = counted["acquiring"]
    assert active >= 45 and searched == active
    active, searched = counted["echo_free"]
    assert active >= 300 and abs(searched - active / 2) <= 0.05 * active
    state = aec.state()
    assert state.mode == "echo_free" and state.delay_ms is None and state.delay_changes == 0
