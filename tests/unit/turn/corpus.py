"""Test audio built from real recordings: Asterisk's English prompts and music on hold.

Prompts are 8 kHz 16-bit mono studio recordings. A caller is simulated by
trimming prompts to their speech (first to last 10 ms frame above
:data:`TRIM_DBFS`), joining them with known gaps, resampling to 16 kHz
(``audioop.ratecv``) and taking a G.711 µ-law round trip, as a phone call does.
Times are 16 kHz sample indices.
"""

from __future__ import annotations

import audioop
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.support import system

PROMPTS = system.prompts_dir()
MUSIC = system.MOH_DIR
RATE = 16000
TRIM_DBFS = -50.0
_FRAME_8K = 80  # 10 ms


def read_wav(path: Path) -> np.ndarray:
    """An 8 kHz 16-bit mono wav as int16."""
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1), path
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def trim(x: np.ndarray, floor_dbfs: float = TRIM_DBFS) -> np.ndarray:
    """``x`` from its first to its last 10 ms frame whose RMS reaches ``floor_dbfs``."""
    frames = x[: len(x) // _FRAME_8K * _FRAME_8K].astype(np.float64).reshape(-1, _FRAME_8K) / 32768.0
    level = 10 * np.log10(np.maximum((frames**2).mean(axis=1), 1e-20))
    loud = np.flatnonzero(level >= floor_dbfs)
    return x[loud[0] * _FRAME_8K : (loud[-1] + 1) * _FRAME_8K]


def prompt(name: str) -> np.ndarray:
    """A trimmed 8 kHz prompt."""
    return trim(read_wav(PROMPTS / f"{name}.wav"))


def to_line(x8k: np.ndarray) -> np.ndarray:
    """8 kHz int16 -> 16 kHz int16 after a µ-law encode/decode."""
    up, _ = audioop.ratecv(x8k.tobytes(), 2, 1, 8000, RATE, None)
    return np.frombuffer(audioop.ulaw2lin(audioop.lin2ulaw(up, 2), 2), dtype=np.int16).copy()


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level of int16 audio in dBFS (-inf for digital silence)."""
    ms = float(np.mean((x.astype(np.float64) / 32768.0) ** 2))
    return 10 * np.log10(ms) if ms > 0 else float("-inf")


def scaled_to(x: np.ndarray, dbfs: float) -> np.ndarray:
    """``x`` scaled so its RMS is ``dbfs`` (clipped to int16)."""
    gain = 10 ** ((dbfs - rms_dbfs(x)) / 20)
    return np.clip(np.round(x.astype(np.float64) * gain), -32768, 32767).astype(np.int16)


def white_noise(ms: int, dbfs: float, seed: int, rate: int = RATE) -> np.ndarray:
    """Gaussian white noise with RMS ``dbfs``."""
    sigma = 32768.0 * 10 ** (dbfs / 20)
    x = np.random.default_rng(seed).normal(0.0, sigma, ms * rate // 1000)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


@dataclass(frozen=True)
class Caller:
    """A simulated caller: 16 kHz line audio and where each utterance truly ends."""

    audio: np.ndarray
    utterance_starts: tuple[int, ...]
    utterance_ends: tuple[int, ...]
    pause_ends: tuple[int, ...]  # ends of the prompts followed by a short in-utterance pause


def caller(
    utterances: list[list[str]],
    pause_ms: int,
    gap_ms: int = 1500,
    lead_ms: int = 1000,
    noise_dbfs: float | None = None,
    seed: int = 0,
) -> Caller:
    """Join prompts: each utterance's prompts ``pause_ms`` apart, utterances ``gap_ms`` apart.

    With ``noise_dbfs`` white noise of that RMS is added before the µ-law trip
    (a line's noise floor); otherwise the gaps are digital silence.
    """
    pieces = [np.zeros(lead_ms * 8, dtype=np.int16)]
    at = lead_ms * 8  # 8 kHz samples
    starts, ends, pauses = [], [], []
    for words in utterances:
        starts.append(at)
        for k, name in enumerate(words):
            if k:
                pauses.append(at)
                pieces.append(np.zeros(pause_ms * 8, dtype=np.int16))
                at += pause_ms * 8
            x = prompt(name)
            pieces.append(x)
            at += len(x)
        ends.append(at)
        pieces.append(np.zeros(gap_ms * 8, dtype=np.int16))
        at += gap_ms * 8
    source = np.concatenate(pieces)
    if noise_dbfs is not None:
        sigma = 32768.0 * 10 ** (noise_dbfs / 20)
        noisy = source + np.random.default_rng(seed).normal(0.0, sigma, len(source))
        source = np.clip(noisy, -32768, 32767).astype(np.int16)
    twice = lambda xs: tuple(2 * x for x in xs)  # 8 kHz -> 16 kHz sample index
    return Caller(to_line(source), twice(starts), twice(ends), twice(pauses))


def frames(x: np.ndarray, size: int = 320):
    """``x`` in successive frames of ``size`` samples (the last one may be shorter)."""
    for at in range(0, len(x), size):
        yield x[at : at + size]
