"""EchoCanceller at 8 kHz (160-sample frames): the caller leg at the line's own rate.

Same speech, line and helpers as tests/unit/media/test_echo.py, with the bridge at 8 kHz:
:func:`line_echo` with ``rate=8000`` codes the agent's 8 kHz audio to G.711 and back with no
resampler, so an echo's main tap lies exactly ``delay_ms * 8`` samples after the far sample it
reflects. Turns are decided by the real Silero TurnEngine (16 kHz) on the canceller's output
resampled 8 -> 16 kHz: the one resampler the 16 kHz path has ahead of its canceller, so onsets
are test_echo's. At 8 kHz a delay of whole 20 ms frames puts the echo exactly on a lag the
delay search zeroes when its near frame is not tapered (the first of each partition, see
:meth:`EchoCanceller._estimate`): the paths below have such delays and others.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sipcodecs import StreamResampler

from sipbridge.media.echo import EchoCanceller, EchoSettings
from sipbridge.media.echo_sim import EchoPath, hybrid_ir, line_echo
from sipbridge.turn.silero import load_model
from tests.unit.media.test_echo import (BUDGET_MS, CALLER_AT_S, CALLERS, FAR_SECONDS, RATE, caller8, cancel, onset16,
                                        prompt8, starts)

RATE8 = 8000
FRAME8 = 160
# (delay_ms, atten_db, dispersive IR seed, line noise dBFS): borders (0, 20, 60, 160 ms) and not
PATHS = [(20, 6, None, None), (60, 12, 1, None), (100, 20, 3, -60.0), (137, 12, None, None),
         (181, 6, 5, None), (45, 20, None, -60.0), (0, 12, None, None), (160, 6, None, None)]


@pytest.fixture(scope="module")
def vad_model():
    return load_model()


def canceller8(settings: EchoSettings | None = None) -> EchoCanceller:
    return EchoCanceller(settings, sample_rate=RATE8, frame_samples=FRAME8)


@functools.lru_cache(maxsize=1)
def agent8() -> np.ndarray:
    """The agent's audio as an 8 kHz bridge holds it: the prompt itself."""
    return prompt8("demo-congrats")[: FAR_SECONDS * RATE8]


def up16(x: np.ndarray) -> np.ndarray:
    """8 kHz canceller output as the 16 kHz turn engine takes it."""
    return StreamResampler(RATE8, RATE).process_array(x)


def path_of(case: tuple) -> tuple[EchoPath, float | None]:
    delay, atten, seed, noise = case
    return EchoPath(delay_ms=delay, atten_db=atten, ir=None if seed is None else tuple(hybrid_ir(seed=seed))), noise


@functools.lru_cache(maxsize=None)
def run8(case: tuple) -> tuple[np.ndarray, np.ndarray, EchoCanceller, int | None, float | None]:
    """Near, output, canceller, the tick of its first placement and its ERLE after 4 s of far speech."""
    path, noise = path_of(case)
    near = line_echo(agent8(), path, noise_dbfs=noise, seed=1, rate=RATE8)
    aec = canceller8()
    out = np.empty_like(near)
    placed, erle_4s = None, None
    for i in range(len(near) // FRAME8):
        at = slice(i * FRAME8, (i + 1) * FRAME8)
        aec.far(agent8()[at])
        out[at] = aec.near(near[at])
        if placed is None and aec.delay_changes:
            placed = i + 1
        if i + 1 == 4 * RATE8 // FRAME8:
            erle_4s = aec.erle_db
    return near, out, aec, placed, erle_4s


@pytest.mark.parametrize("case", PATHS)
def test_echo_is_placed_within_two_samples(case):
    """The echo is placed within 0.5 s of far speech (measured: 240-300 ms), at its main tap to within 2 samples of 8 kHz."""
    _, _, aec, placed, _ = run8(case)
    path, _ = path_of(case)
    assert aec.mode == "cancelling" and aec.delay_changes == 1
    assert placed is not None and placed * 20 <= 500
    assert abs(aec.delay_samples - path.true_delay_samples_at(RATE8)) <= 2
    assert aec.delay_ms == pytest.approx(aec.delay_samples / 8.0)


@pytest.mark.parametrize("case", [c for c in PATHS if c[3] is None])
def test_erle_after_a_few_seconds(case):
    """Without line noise: 10 dB ERLE after 4 s of far speech (measured 13-23), 20 dB after 10 s, 25 dB whole-canceller suppression after 2 s."""
    near, out, aec, _, erle_4s = run8(case)
    assert erle_4s >= 10.0
    assert aec.erle_db >= 20.0
    tail = slice(2 * RATE8, None)
    near_power = np.mean(near[tail].astype(np.float64) ** 2)
    out_power = np.mean(out[tail].astype(np.float64) ** 2)
    assert 10 * np.log10(near_power / max(out_power, 1e-9)) >= 25.0


@pytest.mark.parametrize("case", [c for c in PATHS if c[1] <= 12])
def test_echo_alone_starts_no_turn(vad_model, case):
    """The agent's 6-12 dB echo starts a turn on the raw line but none on the 8 kHz canceller's output."""
    near, out, _, _, _ = run8(case)
    assert starts(vad_model, up16(near)), "the raw echo must trigger the VAD, or this case proves nothing"
    assert starts(vad_model, up16(out)) == []


@pytest.mark.parametrize("caller", CALLERS[:3])
@pytest.mark.parametrize(("delay", "atten"), [(20, 6), (60, 12), (123, 6)])
def test_caller_over_echo_starts_a_turn_in_time(vad_model, caller, delay, atten):
    """A caller talking over the echo after 4 s starts a turn within min_speech_ms + 150 ms of the true onset, not before it."""
    near = line_echo(agent8(), EchoPath(delay_ms=delay, atten_db=atten), caller8=caller8(caller, CALLER_AT_S),
                     rate=RATE8)
    out, _ = cancel(agent8(), near, canceller8())
    onset = onset16(CALLER_AT_S)
    found = starts(vad_model, up16(out))
    assert found and found[0] >= onset
    assert (found[0] - onset) * 1000 / RATE <= BUDGET_MS


def test_double_talk_is_flagged_within_two_frames_of_the_onset():
    """The double-talk flag rises within 40 ms of a caller's onset over a converged echo and is rare on echo alone."""
    near = line_echo(agent8(), EchoPath(delay_ms=60, atten_db=6), caller8=caller8("conf-onlyperson", CALLER_AT_S),
                     rate=RATE8)
    aec = canceller8()
    flags = []
    for i in range(len(near) // FRAME8):
        at = slice(i * FRAME8, (i + 1) * FRAME8)
        aec.far(agent8()[at])
        aec.near(near[at])
        flags.append(aec.double_talk)
    onset_frame = int(CALLER_AT_S * RATE8) // FRAME8
    assert any(flags[onset_frame: onset_frame + 3])
    before = flags[100:onset_frame]   # echo alone, after 2 s
    assert sum(before) <= 0.1 * len(before)


@pytest.mark.parametrize(("before", "after"), [(40, 100), (100, 20), (20, 180)])
def test_echo_moving_to_a_whole_frame_delay_is_followed(vad_model, before, after):
    """An echo jumping 6 s into the call to another whole-frame delay is re-placed within 1 s (measured 560-620 ms; never without the search's taper), sample exact, and starts no turn."""
    seconds = 16
    far = prompt8("demo-congrats")[: seconds * RATE8]
    new = EchoPath(delay_ms=after, atten_db=6)
    near = line_echo(far, None, paths=[(0, EchoPath(delay_ms=before, atten_db=6)), (6 * RATE8, new)], rate=RATE8)
    aec = canceller8()
    out = np.empty_like(near)
    replaced = None
    for i in range(len(near) // FRAME8):
        at = slice(i * FRAME8, (i + 1) * FRAME8)
        aec.far(far[at])
        out[at] = aec.near(near[at])
        if replaced is None and aec.delay_changes >= 2:
            replaced = (i + 1) * 20 - 6000
    assert replaced is not None and 0 <= replaced <= 1000
    assert aec.delay_changes == 2 and aec.delay_samples == new.true_delay_samples_at(RATE8)
    assert aec.erle_db >= 15.0
    assert starts(vad_model, up16(out)) == []


def test_a_line_without_echo_passes_through():
    """Far speech with nothing of it coming back: echo-free after acquire_give_up_ms, then every near frame is returned untouched."""
    near = line_echo(np.zeros(FAR_SECONDS * RATE8, np.int16), EchoPath(), caller8=caller8("vm-sorry", 1.0),
                     noise_dbfs=-60.0, rate=RATE8)
    aec = canceller8(EchoSettings(acquire_give_up_ms=3000))
    for i in range(len(near) // FRAME8):
        at = slice(i * FRAME8, (i + 1) * FRAME8)
        aec.far(agent8()[at])
        frame = near[at]
        result = aec.near(frame)
        assert result.dtype == np.int16 and result.shape == (FRAME8,)
        if i > 3 * RATE8 // FRAME8:
            assert result is frame
    assert aec.mode == "echo_free" and aec.delay_ms is None and aec.delay_changes == 0


def test_far_silent_passes_the_caller_bit_exact():
    """With the far end silent every near frame comes back as the very same object."""
    near = line_echo(np.zeros(FAR_SECONDS * RATE8, np.int16), EchoPath(), caller8=caller8("conf-onlyperson", 1.0),
                     noise_dbfs=-60.0, rate=RATE8)
    aec = canceller8()
    silence = np.zeros(FRAME8, np.int16)
    for i in range(len(near) // FRAME8):
        aec.far(silence)
        frame = near[i * FRAME8: (i + 1) * FRAME8]
        assert aec.near(frame) is frame
    assert aec.mode == "idle" and aec.state().frames_idle == aec.frames_near


def test_bad_8k_settings_and_frames_are_refused():
    """The search band (plus its 150 Hz edge) must end below 4 kHz, the taper leave a frame's middle, frames be 160 samples."""
    with pytest.raises(ValueError):
        canceller8(EchoSettings(band_hz=(200.0, 3900.0)))
    with pytest.raises(ValueError):
        EchoSettings(search_taper_ms=-1.0)
    with pytest.raises(ValueError):
        EchoCanceller(EchoSettings(search_taper_ms=5.0), sample_rate=RATE8, frame_samples=64)
    with pytest.raises(ValueError):
        canceller8().far(np.zeros(320, np.int16))
