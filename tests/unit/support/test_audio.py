"""Tests for tests/support/audio.py: WAV I/O, levels, G.711, generators, utterances."""

import wave

import numpy as np
import pytest

from tests.support import audio


def test_wav_round_trip(tmp_path):
    """write_wav() then load_wav() returns the same 8 kHz samples."""
    pcm = audio.sine(440, 100)
    path = audio.write_wav(tmp_path / "a.wav", pcm)
    with wave.open(str(path)) as wf:
        assert (wf.getframerate(), wf.getnchannels(), wf.getsampwidth()) == (8000, 1, 2)
    assert np.array_equal(audio.load_wav(path), pcm)


def test_load_wav_resamples_and_downmixes(tmp_path):
    """A 16 kHz stereo WAV loads as 8 kHz mono with the tone preserved."""
    t = np.arange(16000) / 16000
    left = (8000 * np.sin(2 * np.pi * 500 * t)).astype(np.int16)
    stereo = np.stack([left, left], axis=1).reshape(-1)
    path = tmp_path / "s.wav"
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(2)
        wf.setsampwidth(2)
        wf.setframerate(16000)
        wf.writeframes(stereo.astype("<i2").tobytes())
    pcm = audio.load_wav(path)
    assert abs(len(pcm) - 8000) <= 2
    spectrum = np.abs(np.fft.rfft(pcm.astype(float)))
    assert abs(np.argmax(spectrum) * 8000 / len(pcm) - 500) < 5


def test_levels():
    """dbfs() matches the requested RMS level of sine and noise; silence is the floor value."""
    assert audio.dbfs(audio.sine(1000, 200, level_dbfs=-20)) == pytest.approx(-20, abs=0.2)
    assert audio.dbfs(audio.noise(500, level_dbfs=-30)) == pytest.approx(-30, abs=0.5)
    assert audio.dbfs(audio.silence(20)) == audio.SILENCE_DBFS
    assert audio.dbfs([]) == audio.SILENCE_DBFS
    assert audio.rms([3, -3, 3, -3]) == pytest.approx(3.0)


def test_frame_levels_and_activity():
    """frame_dbfs()/active_frames() mark exactly the 20 ms frames that contain the tone."""
    pcm = np.concatenate([audio.silence(100), audio.sine(300, 200, -20), audio.silence(100)])
    mask = audio.active_frames(pcm, -45)
    assert mask.tolist() == [False] * 5 + [True] * 10 + [False] * 5
    assert len(audio.frame_dbfs(np.zeros(170, dtype=np.int16))) == 2  # partial frame included


def test_click_is_short_and_loud():
    """click() is a few ms long with a peak near the requested level."""
    c = audio.click(5, level_dbfs=-6)
    assert len(c) == 40
    assert np.max(np.abs(c)) == pytest.approx(32768 * 10 ** (-6 / 20), rel=0.01)


@pytest.mark.parametrize("law", ["ulaw", "alaw", "PCMU", "pcma"])
def test_g711_round_trip(law):
    """G.711 encode/decode keeps a tone within ~2 % error and one byte per sample."""
    pcm = audio.sine(440, 100, -10)
    enc = audio.g711_encode(pcm, law)
    assert len(enc) == len(pcm)
    dec = audio.g711_decode(enc, law)
    err = audio.rms(dec.astype(float) - pcm.astype(float)) / audio.rms(pcm)
    assert err < 0.02


def test_g711_silence_codes():
    """Digital silence encodes to the canonical 0xFF (mu-law) and 0xD5 (A-law) bytes."""
    assert audio.ulaw_encode(audio.silence(1)) == b"\xff" * 8
    assert audio.alaw_encode(audio.silence(1)) == b"\xd5" * 8
    assert audio.law_for_pt(0) == "ulaw" and audio.law_for_pt(8) == "alaw" and audio.law_for_pt(101) is None
    with pytest.raises(ValueError):
        audio.g711_encode(audio.silence(1), "g722")


def test_trim_silence():
    """trim_silence() removes leading/trailing silence and keeps the padding asked for."""
    tone = audio.sine(500, 200, -20)
    pcm = np.concatenate([audio.silence(300), tone, audio.silence(400)])
    assert len(audio.trim_silence(pcm)) == len(tone)
    assert len(audio.trim_silence(pcm, pad_ms=50)) == len(tone) + 800
    assert len(audio.trim_silence(audio.silence(100))) == 0


def test_utterance_from_arrays_has_exact_segments():
    """make_utterance() places prompts after the lead and gaps at the exact millisecond spans."""
    a, b = audio.sine(300, 500, -20), audio.sine(600, 250, -20)
    u = audio.make_utterance([a, b], [700], lead_ms=100, tail_ms=300)
    assert u.segments == [(100, 600), (1300, 1550)]
    assert u.duration_ms == 1850
    assert audio.speech_segments(u.pcm, frame_ms=10) == [(100, 600), (1300, 1550)]
    assert audio.speech_segments(u.pcm) == [(100, 600), (1300, 1560)]  # 20 ms frame grid


def test_utterance_from_asterisk_prompts(tmp_path):
    """Asterisk prompts are trimmed and concatenated; energy segments agree with the truth."""
    u = audio.make_utterance(["hello-world", "tt-weasels"], 800, lead_ms=300, tail_ms=200)
    assert len(u.segments) == 2 and u.segments[0][0] == 300
    assert u.segments[1][0] - u.segments[0][1] == 800
    found = audio.speech_segments(u.pcm, min_gap_ms=500)
    assert len(found) == 2
    for (ts, te), (fs, fe) in zip(u.segments, found):
        assert abs(ts - fs) <= 20 and abs(te - fe) <= 20
    assert audio.load_wav(u.write(tmp_path / "u.wav")).shape == u.pcm.shape


def test_align_finds_delay_through_g711():
    """align() recovers a known delay of a G.711-coded copy with correlation close to 1."""
    ref = np.concatenate([audio.noise(300, -20, seed=1), audio.sine(700, 200, -15)])
    rec = np.concatenate([audio.silence(37), audio.ulaw_decode(audio.ulaw_encode(ref)), audio.silence(50)])
    lag, corr = audio.align(ref, rec)
    assert lag == audio.ms_to_samples(37) and corr > 0.99
    _, corr_noise = audio.align(ref, audio.noise(600, -20, seed=2))
    assert corr_noise < 0.3


def test_align_pieces_follows_a_frame_slip_that_breaks_the_whole_alignment():
    """A copy that lost 10 ms mid-way: align() on the whole drops well under 0.9, while every
    piece is still found, at the delay before the slip or 10 ms earlier after it."""
    ref = audio.noise(1000, -20, seed=3)
    cut = audio.ms_to_samples(510)
    slipped = np.concatenate([audio.silence(100), ref[:cut], ref[cut + audio.ms_to_samples(10):]])
    assert audio.align(ref, slipped)[1] < 0.9
    pieces = audio.align_pieces(ref, slipped)
    delay, slip = audio.ms_to_samples(100), audio.ms_to_samples(10)
    assert [offset for offset, _ in pieces] == [delay, delay, delay - slip, delay - slip]
    assert [corr > 0.95 for _, corr in pieces] == [True, True, False, True]


def test_assert_heard_back_takes_a_slip_but_not_half_a_sentence_or_a_reordering():
    """A 10 ms slip passes; half the sentence, or its halves swapped, fail."""
    ref = audio.noise(2000, -20, seed=4)
    half, slip, lead = len(ref) // 2, audio.ms_to_samples(10), audio.silence(300)
    audio.assert_heard_back(ref, np.concatenate([lead, ref[:half], ref[half + slip:]]))
    with pytest.raises(AssertionError, match="not its sentence"):
        audio.assert_heard_back(ref, np.concatenate([lead, ref[:half], audio.silence(1000)]))
    with pytest.raises(AssertionError, match="out of order"):
        audio.assert_heard_back(ref, np.concatenate([lead, ref[half:], ref[:half]]))
    with pytest.raises(AssertionError, match="only silence"):
        audio.assert_heard_back(ref, audio.silence(3000))
