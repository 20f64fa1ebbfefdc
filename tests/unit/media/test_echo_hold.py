"""EchoCanceller.hold_search: the caller talking over an agent stopped by a barge-in is never searched for echo.

8 kHz, the bridge's line settings (session.LINE_ECHO), fed per 20 ms tick as the session does:
the caller's frame, then the agent's. The agent says the wire bench's answer; the caller's
words (Asterisk prompts) start over it and it stops 80 ms later, as a pause does. Without the
hold, the three cases below place an echo on this echo-free line (196, 198 and 10.5 ms: the
caller's voice against the agent's last frames) and start cancelling the caller with it.
"""

from __future__ import annotations

import numpy as np
import pytest

from sipbridge.media.echo import EchoCanceller
from sipbridge.session import LINE_ECHO
from tests.support import audio
from tests.support.barge import reply_pcm

N = 160


def _prompt(name: str) -> np.ndarray:
    return audio.trim_silence(audio.load_wav(audio.asterisk_prompt(name), rate=8000), rate=8000)


def _call(onset_ms: int, caller: np.ndarray, then: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(near, far) of a call: the agent from 0 until onset_ms + 80, the caller from onset_ms;
    ``then``: the agent's next answer 1 s after the caller stops."""
    stop = (onset_ms + 80) * 8
    length = onset_ms * 8 + len(caller) + 8000 + (len(then) if then is not None else 0)
    near, far = np.zeros(length), np.zeros(length)
    near[onset_ms * 8: onset_ms * 8 + len(caller)] = caller
    far[:stop] = reply_pcm()[:stop]
    if then is not None:
        far[length - len(then):] = then
    return near.astype(np.int16), far.astype(np.int16)


def _run(near: np.ndarray, far: np.ndarray, hold_at: int | None, watch_from: int = 0):
    """Tick through; hold_search at frame ``hold_at``; the frames from ``watch_from`` on that
    the canceller changed, and the canceller."""
    ec = EchoCanceller(LINE_ECHO, sample_rate=8000, frame_samples=N)
    changed = 0
    for k in range(len(near) // N):
        if k == hold_at:
            ec.hold_search()
        frame = near[k * N:(k + 1) * N]
        out = ec.near(frame)
        changed += k >= watch_from and not np.array_equal(out, frame)
        ec.far(far[k * N:(k + 1) * N])
    return changed, ec


@pytest.mark.parametrize("name,onset_ms", [("tt-somethingwrong", 2160), ("hello-world", 2580),
                                           ("hello-world", 3000)])
def test_a_caller_over_the_paused_agent_is_not_taken_for_its_echo(name, onset_ms):
    """Held from the pause on, the caller's words over the silent agent place no echo on a line with none, and pass untouched."""
    near, far = _call(onset_ms, _prompt(name))
    pause = (onset_ms + 80) // 20
    changed, ec = _run(near, far, hold_at=pause, watch_from=pause)
    assert (ec.mode, ec.delay_ms, ec.delay_changes) == ("echo_free", None, 0)
    assert changed == 0
    assert ec.search_held   # the agent has not talked since


def _placed(near: np.ndarray, far: np.ndarray, start: int, hold_at: int | None):
    """(ms into the answer starting at sample ``start`` when a delay was placed, that delay, held at the end)."""
    ec = EchoCanceller(LINE_ECHO, sample_rate=8000, frame_samples=N)
    placed_at = None
    for k in range(len(near) // N):
        if k == hold_at:
            ec.hold_search()
        ec.near(near[k * N:(k + 1) * N])
        ec.far(far[k * N:(k + 1) * N])
        if k * N >= start and placed_at is None and ec.delay_ms is not None:
            placed_at = (k * N - start) / 8
    return placed_at, ec.delay_ms, ec.search_held


def test_the_hold_ends_with_the_agents_next_sound_and_an_echo_then_is_found():
    """The agent's next answer ends the hold: an echo 40 ms late and 10 dB down that appears with it is placed within a second, where it is without a barge-in."""
    answer = _prompt("tt-weasels")
    near, far = _call(2160, _prompt("tt-somethingwrong"), then=answer)
    start = len(far) - len(answer)
    echo = np.zeros(len(far))
    echo[start + 320:] = 10 ** (-10 / 20) * far[start: len(far) - 320]   # 40 ms late
    with_echo = np.clip(near + echo, -32768, 32767).astype(np.int16)
    at, delay, held = _placed(with_echo, far, start, hold_at=(2160 + 80) // 20)
    assert not held
    assert at is not None and at <= 1000, at
    # the same echo on the same line with no barge-in before it (the caller's words taken out)
    _at, alone, _held = _placed(echo.astype(np.int16), far, start, hold_at=None)
    assert alone is not None and abs(delay - alone) <= 1.0, (delay, alone)
