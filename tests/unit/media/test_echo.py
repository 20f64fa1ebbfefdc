"""EchoCanceller: the agent's echo kept from the VAD, caller speech over it kept, idle pass-through, robustness.

Audio is real speech: Asterisk prompts (8 kHz), the agent's resampled to 16 kHz as the bridge
holds it, sent through :func:`sipbridge.media.echo_sim.line_echo` (16k -> 8k, G.711, hybrid delay
plus network delay, attenuation, optional dispersive IR, caller speech and line noise added at
the phone, G.711 back, 8k -> 16k). Turn decisions come from the real Silero TurnEngine with
default TurnSettings. The canceller is fed per 20 ms tick: far frame first, then near frame.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sipcodecs import StreamResampler

from sipbridge.media.echo import EchoCanceller, EchoSettings, EchoState
from sipbridge.media.echo_sim import EchoPath, hybrid_ir, line_echo, place_caller
from sipbridge.media.echo_sim import onset16 as onset16_at
from sipbridge.turn.engine import TurnEngine
from sipbridge.turn.events import SpeechStarted
from sipbridge.turn.settings import TurnSettings
from sipbridge.turn.silero import load_model
from tests.support.audio import asterisk_prompt, load_wav, trim_silence

FRAME = 320
RATE = 16000
FAR_SECONDS = 10
CALLER_AT_S = 4.0          # caller barges in 4 s into the agent's speech (the filter has converged)
BUDGET_MS = TurnSettings().min_speech_ms + 150
# prompts whose clean onset-to-SpeechStarted at 4.0 s is 318-382 ms (a crisp first sound)
CALLERS = ("conf-onlyperson", "pbx-invalid", "vm-sorry", "ss-noservice", "vm-intro", "privacy-unident")


@pytest.fixture(scope="module")
def vad_model():
    return load_model()


@functools.lru_cache(maxsize=None)
def prompt8(name: str) -> np.ndarray:
    """An Asterisk prompt at 8 kHz, trimmed to its speech."""
    return trim_silence(load_wav(asterisk_prompt(name)), -50.0, frame_ms=10)


@functools.lru_cache(maxsize=1)
def agent16() -> np.ndarray:
    """The agent's audio as the bridge sends it: a long prompt at 16 kHz."""
    return StreamResampler(8000, RATE).process_array(prompt8("demo-congrats"))[: FAR_SECONDS * RATE]


def caller8(name: str, at_s: float, gain_db: float = 0.0, seconds: float = FAR_SECONDS) -> np.ndarray:
    """The caller's voice at the phone (8 kHz float), starting ``at_s`` seconds in."""
    return place_caller(prompt8(name), at_s, gain_db, seconds)


def onset16(at_s: float) -> int:
    """The caller's true onset in the bridge's 16 kHz samples (the 8k -> 16k resampler adds 1.5 ms)."""
    return onset16_at(at_s, StreamResampler(8000, RATE).delay_samples)


def cancel(far: np.ndarray, near: np.ndarray,
           canceller: EchoCanceller | None = None) -> tuple[np.ndarray, EchoCanceller]:
    """Run a canceller tick by tick (far frame, then near frame, of its frame size); returns its output and itself."""
    aec = canceller or EchoCanceller()
    n = aec.frame_samples
    out = np.empty_like(near)
    for i in range(len(near) // n):
        at = slice(i * n, (i + 1) * n)
        aec.far(far[at])
        out[at] = aec.near(near[at])
    return out, aec


def starts(model, audio: np.ndarray) -> list[int]:
    """Samples at which the real turn engine (default settings) decides SpeechStarted."""
    engine = TurnEngine(model.new_stream(), TurnSettings())
    events = []
    for i in range(len(audio) // FRAME):
        events += engine.feed(audio[i * FRAME: (i + 1) * FRAME])
    return [e.at_sample for e in events if isinstance(e, SpeechStarted)]


ECHO_CASES = [
    (hybrid, network, atten)
    for hybrid, network, atten in itertools.product((0, 20, 40, 60), (0, 60, 120), (6, 12, 20))
]


def echo_case(hybrid: int, network: int, atten: int) -> tuple[EchoPath, float | None]:
    """The path of a case: every other case dispersive, every third with -60 dBFS line noise."""
    k = ECHO_CASES.index((hybrid, network, atten))
    ir = tuple(hybrid_ir(seed=k)) if k % 2 else None
    noise = -60.0 if k % 3 == 2 else None
    return EchoPath(delay_ms=hybrid + network, atten_db=atten, ir=ir), noise


@functools.lru_cache(maxsize=None)
def echo_run(hybrid: int, network: int, atten: int) -> tuple[np.ndarray, np.ndarray, EchoState]:
    """Near signal, canceller output and final state for an echo-only case (cached across tests)."""
    path, noise = echo_case(hybrid, network, atten)
    near = line_echo(agent16(), path, noise_dbfs=noise, seed=7)
    out, aec = cancel(agent16(), near)
    return near, out, aec.state()


# -- (1) echo alone -------------------------------------------------------------------------------
@pytest.mark.parametrize(("hybrid", "network", "atten"), ECHO_CASES)
def test_echo_alone_starts_no_turn(vad_model, hybrid, network, atten):
    """On echo alone the engine starts no turn on the canceller's output (from the very first frame), while at 6 and 12 dB it does on the raw line."""
    near, out, _ = echo_run(hybrid, network, atten)
    assert starts(vad_model, out) == []
    if atten <= 12:
        assert starts(vad_model, near), "the raw echo must trigger the VAD, or this case proves nothing"


# -- (3) ERLE and delay ----------------------------------------------------------------------------
@pytest.mark.parametrize(("hybrid", "network", "atten"), [c for c in ECHO_CASES if echo_case(*c)[1] is None])
def test_erle_and_delay_on_echo_alone(hybrid, network, atten):
    """Without line noise the linear filter reaches 20 dB ERLE and the delay estimate is within 2 ms of the echo's main tap."""
    near, out, state = echo_run(hybrid, network, atten)
    path, _ = echo_case(hybrid, network, atten)
    assert state.mode == "cancelling"
    assert abs(state.delay_ms - path.true_delay_ms) <= 2.0
    assert state.erle_db >= 20.0
    tail = slice(2 * RATE, None)   # whole canceller, measured from outside, after 2 s
    near_power = np.mean(near[tail].astype(np.float64) ** 2)
    out_power = np.mean(out[tail].astype(np.float64) ** 2)
    assert 10 * np.log10(near_power / max(out_power, 1e-9)) >= 25.0


def test_noisy_line_still_finds_the_delay():
    """With -60 dBFS line noise and a dispersive 20 dB echo the delay is still found within 2 ms."""
    path = EchoPath(delay_ms=100, atten_db=20, ir=tuple(hybrid_ir(seed=3)))
    near = line_echo(agent16(), path, noise_dbfs=-60.0, seed=1)
    _, aec = cancel(agent16(), near)
    assert abs(aec.delay_ms - path.true_delay_ms) <= 2.0


# -- (2) double talk -------------------------------------------------------------------------------
DT_CASES = list(itertools.product(CALLERS, ((0, 0), (20, 60), (40, 120), (60, 120)), (6, 12)))


@pytest.mark.parametrize(("caller", "delays", "atten"), DT_CASES)
def test_caller_over_echo_starts_a_turn_in_time(vad_model, caller, delays, atten):
    """A caller talking over the agent's echo (after 4 s of it) starts a turn within min_speech_ms + 150 ms of the true onset, and not before it."""
    path = EchoPath(delay_ms=sum(delays), atten_db=atten)
    near = line_echo(agent16(), path, caller8=caller8(caller, CALLER_AT_S))
    out, _ = cancel(agent16(), near)
    onset = onset16(CALLER_AT_S)
    found = starts(vad_model, out)
    assert found and found[0] >= onset
    assert (found[0] - onset) * 1000 / RATE <= BUDGET_MS


@pytest.mark.parametrize("caller", CALLERS[:3])
def test_quiet_caller_over_loud_echo_still_starts_a_turn(vad_model, caller):
    """A caller 6 dB quieter than the agent over a 6 dB echo (so about as loud as the echo) still starts a turn within 800 ms."""
    near = line_echo(agent16(), EchoPath(delay_ms=80, atten_db=6), caller8=caller8(caller, CALLER_AT_S, -6.0))
    out, _ = cancel(agent16(), near)
    onset = onset16(CALLER_AT_S)
    found = [s for s in starts(vad_model, out) if s >= onset]
    assert found and (found[0] - onset) * 1000 / RATE <= 800


def test_double_talk_is_flagged_within_two_frames_of_the_onset():
    """The double-talk flag rises within 40 ms of a caller's onset over a converged echo and is rare on echo alone."""
    path = EchoPath(delay_ms=60, atten_db=6)
    near = line_echo(agent16(), path, caller8=caller8("conf-onlyperson", CALLER_AT_S))
    aec = EchoCanceller()
    onset_frame = onset16(CALLER_AT_S) // FRAME
    flags = []
    for i in range(len(near) // FRAME):
        at = slice(i * FRAME, (i + 1) * FRAME)
        aec.far(agent16()[at])
        aec.near(near[at])
        flags.append(aec.double_talk)
    assert any(flags[onset_frame: onset_frame + 3])
    before = flags[100:onset_frame]   # echo alone, after 2 s
    assert sum(before) <= 0.1 * len(before)


def test_echo_alone_is_flagged_echo_only():
    """After convergence most echo frames are flagged likely_echo_only and echo_only_fraction agrees."""
    near, _, _ = echo_run(40, 60, 12)
    aec = EchoCanceller()
    flags = []
    for i in range(len(near) // FRAME):
        at = slice(i * FRAME, (i + 1) * FRAME)
        aec.far(agent16()[at])
        aec.near(near[at])
        if i >= 100 and aec.far_active and np.mean(near[at].astype(float) ** 2) > 32768.0 ** 2 * 1e-5:
            flags.append(aec.likely_echo_only)
    assert np.mean(flags) >= 0.85
    assert 0.0 <= aec.echo_only_fraction(25) <= 1.0
    assert aec.echo_only_fraction(0) == 0.0


# -- (4) far end silent ----------------------------------------------------------------------------
def test_far_silent_passes_the_caller_bit_exact(vad_model):
    """With the far end silent every near frame comes back as the very same object, so the caller's turn is untouched."""
    near = line_echo(np.zeros(FAR_SECONDS * RATE, np.int16), EchoPath(), caller8=caller8("conf-onlyperson", 1.0),
                     noise_dbfs=-60.0)
    aec = EchoCanceller()
    out = np.empty_like(near)
    for i in range(len(near) // FRAME):
        at = slice(i * FRAME, (i + 1) * FRAME)
        aec.far(np.zeros(FRAME, np.int16))
        frame = near[at]
        result = aec.near(frame)
        assert result is frame
        out[at] = result
    assert np.array_equal(out, near)
    assert starts(vad_model, out) == starts(vad_model, near) != []
    state = aec.state()
    assert state.mode == "idle" and state.frames_idle == state.frames_near and not state.far_active


def test_caller_frames_are_untouched_once_the_agent_is_out_of_reach():
    """Once the agent's last frame is beyond the echo's reach, the caller's frames are returned untouched again."""
    far = agent16().copy()
    far[5 * RATE:] = 0
    near = line_echo(far, EchoPath(delay_ms=60, atten_db=12), caller8=caller8("agent-pass", 6.0))
    aec = EchoCanceller()
    for i in range(len(near) // FRAME):
        at = slice(i * FRAME, (i + 1) * FRAME)
        aec.far(far[at])
        frame = near[at]
        result = aec.near(frame)
        if i >= 5 * RATE // FRAME + 10:      # 200 ms after the agent stopped (the filter spans < 200 ms here)
            assert result is frame
    assert aec.state().mode == "cancelling"


# -- (5) robustness -----------------------------------------------------------------------------------
def test_far_end_starting_mid_call(vad_model):
    """The agent starting 3 s into the call: the caller's earlier speech passes bit exact and the agent's echo then starts no turn."""
    seconds = 10
    far = np.zeros(seconds * RATE, np.int16)
    far[3 * RATE:] = agent16()[: (seconds - 3) * RATE]
    near = line_echo(far, EchoPath(delay_ms=80, atten_db=6), caller8=caller8("agent-loginok", 0.2, seconds=seconds))
    out, aec = cancel(far, near)
    assert np.array_equal(out[: 3 * RATE], near[: 3 * RATE])
    assert [s for s in starts(vad_model, out) if s > 3 * RATE] == []
    assert [s for s in starts(vad_model, out) if s < 3 * RATE]          # the caller's own turn
    assert [s for s in starts(vad_model, near) if s > 3 * RATE]         # the raw echo would start one
    assert abs(aec.delay_ms - EchoPath(delay_ms=80).true_delay_ms) <= 2.0


@pytest.mark.parametrize(("before", "after"), [(40, 100), (100, 20), (20, 180)])
def test_delay_change_mid_call_reconverges(vad_model, before, after):
    """An echo that jumps to another delay 6 s into the call is followed: no turn starts, and the delay and ERLE recover."""
    seconds = 16
    far = StreamResampler(8000, RATE).process_array(prompt8("demo-congrats"))[: seconds * RATE]
    new = EchoPath(delay_ms=after, atten_db=6)
    near = line_echo(far, None, paths=[(0, EchoPath(delay_ms=before, atten_db=6)), (6 * 8000, new)])
    out, aec = cancel(far, near)
    assert starts(vad_model, out) == []
    state = aec.state()
    assert abs(state.delay_ms - new.true_delay_ms) <= 2.0
    assert state.delay_changes == 2 and state.echo_moves >= 1
    assert state.erle_db >= 15.0


def slip(near: np.ndarray, at_frame: int, step: int) -> np.ndarray:
    """``near`` as a jitter buffer ahead of the canceller passes it when it conceals one late packet at
    ``at_frame`` (``step`` +1: a copy of the previous frame inserted) or discards one (-1): from there on
    the echo is one frame later or earlier against the far reference (same length)."""
    k = at_frame * FRAME
    if step > 0:
        return np.concatenate([near[:k], near[k - FRAME: k], near[k: -FRAME]])
    return np.concatenate([near[:k], near[k + FRAME:], np.zeros(FRAME, np.int16)])


@pytest.mark.parametrize(("delay", "ir_seed"), [(20, None), (100, 3)])
@pytest.mark.parametrize("step", [1, -1])
def test_a_one_frame_slip_is_followed_at_once(vad_model, delay, ir_seed, step):
    """An echo path jumping by one frame 4 s in (a frame inserted or dropped ahead of the canceller) is followed within 40 ms, and for the next second every loud echo frame comes out 15 dB down and flagged echo-only (measured >= 23.8 dB; 0-1.5 dB without the shift)."""
    path = EchoPath(delay_ms=delay, atten_db=6, ir=None if ir_seed is None else tuple(hybrid_ir(seed=ir_seed)))
    at = 4 * RATE // FRAME
    near = slip(line_echo(agent16(), path), at, step)
    aec = EchoCanceller()
    out = np.empty_like(near)
    shifted, before, worst_db, flags = None, None, [], []
    for i in range(len(near) // FRAME):
        frame = slice(i * FRAME, (i + 1) * FRAME)
        aec.far(agent16()[frame])
        out[frame] = aec.near(near[frame])
        if i == at - 1:
            before = aec.delay_ms
        if shifted is None and aec.echo_slips:
            shifted = i - at
        p_y = np.mean(near[frame].astype(np.float64) ** 2)
        if at <= i < at + 50 and p_y > 32768.0 ** 2 * 1e-3:     # near above -30 dBFS
            worst_db.append(10 * np.log10(np.mean(out[frame].astype(np.float64) ** 2) / p_y + 1e-12))
            flags.append(aec.likely_echo_only)
    assert shifted is not None and shifted <= 1
    assert aec.echo_slips == 1 and aec.delay_changes == 1
    assert aec.delay_ms == pytest.approx(before + 20.0 * step, abs=1.0)
    assert len(worst_db) > 10 and max(worst_db) <= -15.0
    assert all(flags)
    assert starts(vad_model, out) == []


@pytest.mark.parametrize("caller", CALLERS[:3])
@pytest.mark.parametrize("step", [1, -1])
def test_caller_after_a_slip_starts_a_turn_in_time(vad_model, caller, step):
    """A caller talking over the echo 300 ms after it slipped by one frame starts a turn within min_speech_ms + 150 ms of the onset (measured 330-426 ms; up to 1810 ms without the shift)."""
    path = EchoPath(delay_ms=60, atten_db=6)
    at = int(CALLER_AT_S * 50) - 15
    near = slip(line_echo(agent16(), path, caller8=caller8(caller, CALLER_AT_S)), at, step)
    out, aec = cancel(agent16(), near)
    onset = onset16(CALLER_AT_S) + step * FRAME
    found = starts(vad_model, out)
    assert aec.echo_slips == 1
    assert found and found[0] >= onset
    assert (found[0] - onset) * 1000 / RATE <= BUDGET_MS


@pytest.mark.parametrize("caller", CALLERS[:3])
@pytest.mark.parametrize("step", [1, -1])
def test_a_slip_under_the_callers_voice_keeps_it(caller, step):
    """The echo slipping by one frame 100 ms into a caller's speech over it costs the caller's own frames (6 dB over the echo) under 1 dB and takes the echo's own frames 14 dB down (measured -0.04 to -0.15 and -16.5 to -26.4 dB; without the shift -0.6 to -2.2 and -11.1 to -19.7)."""
    path = EchoPath(delay_ms=20, atten_db=6)
    at = int(CALLER_AT_S * 50) + 5
    near = slip(line_echo(agent16(), path, caller8=caller8(caller, CALLER_AT_S)), at, step)
    echo = slip(line_echo(agent16(), path), at, step).astype(np.float64).reshape(-1, FRAME)
    out, _ = cancel(agent16(), near)
    voice = near.astype(np.float64).reshape(-1, FRAME) - echo
    p_c, p_e = np.mean(voice ** 2, axis=1), np.mean(echo ** 2, axis=1)
    p_o = np.mean(out.astype(np.float64).reshape(-1, FRAME) ** 2, axis=1)
    after = np.arange(len(p_c)) >= at - 20
    loud = 32768.0 ** 2 * 1e-4
    voice_frames = after & (p_c > loud) & (p_c > 4 * p_e)
    echo_frames = after & (p_e > loud) & (p_e > 4 * p_c)
    assert voice_frames.sum() > 20 and echo_frames.sum() > 5
    assert 10 * np.log10(p_o[voice_frames].sum() / p_c[voice_frames].sum()) >= -1.0
    assert 10 * np.log10(p_o[echo_frames].sum() / p_e[echo_frames].sum()) <= -14.0


def test_clipped_far_and_near_never_raise():
    """A far end driven into clipping with a near end that clips too is cancelled without errors or overflow."""
    rng = np.random.default_rng(5)
    far = np.clip(rng.standard_normal(4 * RATE) * 40000, -32768, 32767).astype(np.int16)
    near = np.zeros_like(far)
    near[800:] = np.clip(far[:-800].astype(np.int64) * 3, -32768, 32767)
    out, aec = cancel(far, near)
    assert out.dtype == np.int16 and aec.state().mode == "cancelling"


_EXTREMES = st.sampled_from([0, 1, -1, 32767, -32768, 12345, -20000])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(st.tuples(st.booleans(),
                                 st.one_of(st.binary(min_size=640, max_size=640), _EXTREMES),
                                 st.one_of(st.binary(min_size=640, max_size=640), _EXTREMES)),
                       min_size=1, max_size=60))
def test_garbage_frames_never_raise(frames):
    """Arbitrary int16 frames, constant extremes included, in either call order, always give a 320-sample int16 frame back."""
    aec = EchoCanceller(EchoSettings(max_delay_ms=60))

    def frame(spec):
        if isinstance(spec, bytes):
            return np.frombuffer(spec, dtype=np.int16).copy()
        return np.full(FRAME, spec, dtype=np.int16)

    for near_first, far_spec, near_spec in frames:
        if near_first:
            result = aec.near(frame(near_spec))
            aec.far(frame(far_spec))
        else:
            aec.far(frame(far_spec))
            result = aec.near(frame(near_spec))
        assert result.dtype == np.int16 and result.shape == (FRAME,)
    assert isinstance(aec.state(), EchoState)


def test_garbage_does_not_break_a_later_echo(vad_model):
    """A burst of full-scale noise on both legs mid-call leaves the canceller working: the agent's echo afterwards starts no turn."""
    rng = np.random.default_rng(9)
    far = agent16().copy()
    near = line_echo(far, EchoPath(delay_ms=40, atten_db=6))
    burst = slice(2 * RATE, 2 * RATE + RATE // 2)
    far[burst] = rng.integers(-32768, 32768, RATE // 2)
    near[burst] = rng.integers(-32768, 32768, RATE // 2)
    out, aec = cancel(far, near)
    assert [s for s in starts(vad_model, out) if s > 4 * RATE] == []
    assert aec.state().mode == "cancelling"


# -- API --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.zeros(FRAME, np.float32), np.zeros(FRAME + 1, np.int16),
                                 np.zeros((2, FRAME // 2), np.int16), [0] * FRAME])
def test_wrong_frames_are_refused(bad):
    """Frames that are not 1-D int16 of 320 samples raise ValueError on either leg."""
    aec = EchoCanceller()
    with pytest.raises(ValueError):
        aec.far(bad)
    with pytest.raises(ValueError):
        aec.near(bad)


@pytest.mark.parametrize("changes", [{"max_delay_ms": 0}, {"mu": 0.0}, {"mu": 2.0}, {"overestimate": 0.0},
                                     {"double_talk_share": 1.0}, {"band_hz": (3000.0, 200.0)},
                                     {"acquire_give_up_ms": 0}])
def test_bad_settings_are_refused(changes):
    """Out-of-range settings raise ValueError when constructed."""
    with pytest.raises(ValueError):
        EchoSettings(**changes)


def test_a_line_without_echo_becomes_echo_free_and_passes_through():
    """When the far end talks but nothing of it comes back, the line is declared echo-free and the near frames pass untouched."""
    near = line_echo(np.zeros(FAR_SECONDS * RATE, np.int16), EchoPath(), caller8=caller8("vm-sorry", 1.0),
                     noise_dbfs=-60.0)
    aec = EchoCanceller(EchoSettings(acquire_give_up_ms=3000))
    untouched_after = 3 * RATE // FRAME + 1
    for i in range(len(near) // FRAME):
        at = slice(i * FRAME, (i + 1) * FRAME)
        aec.far(agent16()[at])
        frame = near[at]
        result = aec.near(frame)
        if i >= untouched_after:
            assert result is frame
    assert aec.mode == "echo_free" and aec.delay_ms is None


def test_state_snapshot_counts_frames():
    """The snapshot is frozen and its counters add up over a converged echo."""
    _, _, state = echo_run(20, 60, 6)
    assert state.frames_far == state.frames_near == FAR_SECONDS * RATE // FRAME
    assert state.frames_idle + state.frames_echo_only + state.frames_double_talk <= state.frames_near
    assert state.delay_changes == 1 and state.filter_copies > 0
    assert state.erl_db == pytest.approx(6.0, abs=3.0)
    with pytest.raises(AttributeError):
        state.mode = "idle"
