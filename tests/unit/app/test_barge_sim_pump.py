"""Barge-in replayed through the real native port and pump (bench/barge_sim.py ``--pump-ticks``).

The wire's slow voice-trigger calls (bench/README.md, issue #13: ~970 ms onset -> silent, or
never silent, with ``echo_mode: cancelling`` on a line with no echo) came from the pump: while
the agent was paused it pulled no agent frame, so the echo canceller's reference stayed on the
agent's last loud frames for the whole pause; it took the caller's voice for their echo (a
delay placed on an echo-free line, the voice flagged echo-only and removed), the trigger heard
the voice stop and resumed the agent (``voice_stopped``, ~800 ms) over the caller. Replayed
here at the bridge's defaults (8 kHz, ``sip.pump_ticks`` 2) on the two wire-bench prompts that
showed it (before the pump's fix: 960 and 1200 ms, each resumed once while the caller spoke).
"""

from __future__ import annotations


import numpy as np
import pytest

from tests.support import audio, bench_module

barge_sim = bench_module.load("barge_sim")


@pytest.fixture(scope="module")
def model():
    return barge_sim.load_model()


def _paused_runs(paused: np.ndarray) -> int:
    return int(np.count_nonzero(np.diff(np.concatenate([[0], paused.astype(int)])) == 1))


@pytest.mark.parametrize("trigger", ["voice", "level"])
@pytest.mark.parametrize("name,at_ms", [("tt-somethingwrong", 2160), ("hello-world", 2580)])
def test_a_voice_over_the_paused_agent_is_not_taken_for_its_echo_through_the_native_pump(
        model, monkeypatch, trigger, name, at_ms):
    """Through the real native port and pump (8 kHz, pump_ticks 2), an interruption on an echo-free line pauses the agent once and cancels it: never resumed while the caller speaks, silent within 120 ms."""
    monkeypatch.setattr(barge_sim, "TRIGGER", trigger)
    monkeypatch.setattr(barge_sim, "PUMP_TICKS", 2)
    pcm = audio.trim_silence(audio.load_wav(audio.asterisk_prompt(name), rate=8000), rate=8000)
    res = barge_sim.simulate(model, pcm, at_ms, rate=8000, total_ms=at_ms + len(pcm) // 8 + 600)
    assert res["barge_ins"] == 1
    assert _paused_runs(res["paused"]) == 1, "the agent was resumed while the caller spoke"
    assert not barge_sim.resumed_while_speaking(res, pcm, at_ms)
    assert barge_sim.onset_to_silence(res, pcm, at_ms) <= 120
