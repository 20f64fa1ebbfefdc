"""Audio helpers for telephony tests: 8 kHz int16 PCM as numpy arrays.

All PCM here is mono ``numpy.int16`` at ``RATE`` (8000 Hz) unless a ``rate``
argument says otherwise.  G.711 goes through the stdlib ``audioop`` module
(``audioop-lts`` on Python >= 3.13).

Public API::

    RATE = 8000 ; FRAME_MS = 20 ; SILENCE_DBFS = -120.0
    ASTERISK_SOUNDS: Path ; MOH_DIR: Path
    asterisk_prompt(name) -> Path                     # "tt-monkeys" -> .../en/tt-monkeys.wav
    load_wav(path, rate=RATE) -> np.ndarray           # any rate/width/channels -> mono int16
    write_wav(path, pcm, rate=RATE) -> Path
    resample(pcm, src_rate, dst_rate) -> np.ndarray
    rms(pcm) -> float ; dbfs(pcm) -> float            # full scale = 32768; silence -> SILENCE_DBFS
    frame_dbfs(pcm, frame_ms=20, rate=RATE) -> np.ndarray
    active_frames(pcm, threshold_dbfs=-45.0, frame_ms=20, rate=RATE) -> np.ndarray[bool]
    speech_segments(pcm, threshold_dbfs=-45.0, frame_ms=20, min_gap_ms=200,
                    min_len_ms=40, rate=RATE) -> list[tuple[int, int]]   # (start_ms, end_ms)
    trim_silence(pcm, threshold_dbfs=-45.0, frame_ms=10, pad_ms=0, rate=RATE) -> np.ndarray
    silence(ms, rate=RATE) ; sine(freq, ms, level_dbfs=-12.0, rate=RATE)
    noise(ms, level_dbfs=-30.0, seed=0, rate=RATE) ; click(ms=5, level_dbfs=-3.0, rate=RATE)
    ms_to_samples(ms, rate=RATE) -> int ; samples_to_ms(n, rate=RATE) -> float
    ulaw_encode(pcm) -> bytes ; ulaw_decode(data) -> np.ndarray
    alaw_encode(pcm) -> bytes ; alaw_decode(data) -> np.ndarray
    g711_encode(pcm, law="ulaw") -> bytes ; g711_decode(data, law="ulaw") -> np.ndarray
    law_for_pt(pt) -> "ulaw" | "alaw" | None ; normalize_law(law) -> "ulaw" | "alaw"
    align(reference, recorded, max_lag_ms=None, rate=RATE) -> (lag_samples, corr)
    @dataclass Utterance(pcm, segments, sources, rate=RATE)
        .duration_ms ; .write(path)
    make_utterance(prompts, gaps_ms=700, *, lead_ms=0, tail_ms=0, trim=True,
                   threshold_dbfs=-45.0, rate=RATE) -> Utterance
"""

from __future__ import annotations

import math
import warnings
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from . import system

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # noqa: E402  (stdlib until 3.12, audioop-lts afterwards)

__all__ = [
    "RATE",
    "FRAME_MS",
    "SILENCE_DBFS",
    "ASTERISK_SOUNDS",
    "MOH_DIR",
    "asterisk_prompt",
    "load_wav",
    "write_wav",
    "resample",
    "rms",
    "dbfs",
    "frame_dbfs",
    "active_frames",
    "speech_segments",
    "trim_silence",
    "silence",
    "sine",
    "noise",
    "click",
    "ms_to_samples",
    "samples_to_ms",
    "ulaw_encode",
    "ulaw_decode",
    "alaw_encode",
    "alaw_decode",
    "g711_encode",
    "g711_decode",
    "law_for_pt",
    "normalize_law",
    "align",
    "align_pieces",
    "assert_heard_back",
    "Utterance",
    "make_utterance",
]

RATE = 8000
FRAME_MS = 20
SILENCE_DBFS = -120.0
_FULL_SCALE = 32768.0

ASTERISK_SOUNDS = system.prompts_dir()   # resolved from the package: see tests/support/system.py
MOH_DIR = system.MOH_DIR

PcmLike = Union[np.ndarray, Sequence[int]]


def _as_int16(pcm: PcmLike) -> np.ndarray:
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        arr = np.clip(np.round(arr.astype(np.float64)), -32768, 32767).astype(np.int16)
    return arr.reshape(-1)


def ms_to_samples(ms: float, rate: int = RATE) -> int:
    """Convert milliseconds to a whole number of samples."""
    return int(round(ms * rate / 1000.0))


def samples_to_ms(n: int, rate: int = RATE) -> float:
    """Convert a sample count to milliseconds."""
    return n * 1000.0 / rate


def asterisk_prompt(name: str) -> Path:
    """Path of an Asterisk English prompt (8 kHz mono 16-bit), e.g. ``"tt-monkeys"``."""
    path = ASTERISK_SOUNDS / (name if name.endswith(".wav") else f"{name}.wav")
    if not path.exists():
        raise FileNotFoundError(path)
    return path


# --------------------------------------------------------------------------- WAV I/O


def resample(pcm: PcmLike, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample mono int16 PCM with ``audioop.ratecv`` (linear, adequate for tests)."""
    arr = _as_int16(pcm)
    if src_rate == dst_rate or arr.size == 0:
        return arr.copy()
    out, _ = audioop.ratecv(arr.tobytes(), 2, 1, src_rate, dst_rate, None)
    return np.frombuffer(out, dtype=np.int16).copy()


def load_wav(path: str | Path, rate: int = RATE) -> np.ndarray:
    """Load a PCM WAV (8/16/24/32-bit, any channels, any rate) as mono int16 at ``rate``."""
    with wave.open(str(path), "rb") as wf:
        nch, width, src_rate, nframes = wf.getnchannels(), wf.getsampwidth(), wf.getframerate(), wf.getnframes()
        raw = wf.readframes(nframes)
    if width == 1:  # 8-bit WAV is unsigned
        raw = audioop.bias(raw, 1, -128)
    if width != 2:
        raw = audioop.lin2lin(raw, width, 2)
    if nch > 1:
        samples = np.frombuffer(raw, dtype=np.int16).reshape(-1, nch).astype(np.int32)
        raw = np.clip(samples.mean(axis=1), -32768, 32767).astype(np.int16).tobytes()
    pcm = np.frombuffer(raw, dtype=np.int16)
    return resample(pcm, src_rate, rate)


def write_wav(path: str | Path, pcm: PcmLike, rate: int = RATE) -> Path:
    """Write mono int16 PCM as a 16-bit WAV file and return its path."""
    path = Path(path)
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(rate)
        wf.writeframes(_as_int16(pcm).astype("<i2").tobytes())
    return path


# --------------------------------------------------------------------------- levels


def rms(pcm: PcmLike) -> float:
    """Root-mean-square amplitude (0.0 for empty input)."""
    arr = np.asarray(pcm, dtype=np.float64).reshape(-1)
    return float(np.sqrt(np.mean(arr * arr))) if arr.size else 0.0


def dbfs(pcm: PcmLike) -> float:
    """RMS level in dBFS (full-scale square wave = 0 dBFS); ``SILENCE_DBFS`` for digital silence."""
    value = rms(pcm)
    if value <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(value / _FULL_SCALE))


def frame_dbfs(pcm: PcmLike, frame_ms: int = FRAME_MS, rate: int = RATE) -> np.ndarray:
    """dBFS of each consecutive ``frame_ms`` frame (a trailing partial frame is included)."""
    arr = np.asarray(pcm, dtype=np.float64).reshape(-1)
    n = ms_to_samples(frame_ms, rate)
    if arr.size == 0:
        return np.zeros(0)
    pad = (-arr.size) % n
    frames = np.concatenate([arr, np.zeros(pad)]).reshape(-1, n)
    counts = np.full(frames.shape[0], n, dtype=np.float64)
    if pad:
        counts[-1] = n - pad
    power = (frames * frames).sum(axis=1) / counts
    with np.errstate(divide="ignore"):
        levels = 10.0 * np.log10(power / (_FULL_SCALE * _FULL_SCALE))
    return np.maximum(levels, SILENCE_DBFS)


def active_frames(
    pcm: PcmLike, threshold_dbfs: float = -45.0, frame_ms: int = FRAME_MS, rate: int = RATE
) -> np.ndarray:
    """Boolean mask of frames whose level is above ``threshold_dbfs``."""
    return frame_dbfs(pcm, frame_ms, rate) > threshold_dbfs


def speech_segments(
    pcm: PcmLike,
    threshold_dbfs: float = -45.0,
    frame_ms: int = FRAME_MS,
    min_gap_ms: int = 200,
    min_len_ms: int = 40,
    rate: int = RATE,
) -> list[tuple[int, int]]:
    """Energy-based ``(start_ms, end_ms)`` segments; gaps shorter than ``min_gap_ms`` are bridged."""
    mask = active_frames(pcm, threshold_dbfs, frame_ms, rate)
    segments: list[list[int]] = []
    for i, on in enumerate(mask):
        if not on:
            continue
        start, end = i * frame_ms, (i + 1) * frame_ms
        if segments and start - segments[-1][1] < min_gap_ms:
            segments[-1][1] = end
        else:
            segments.append([start, end])
    total_ms = int(round(samples_to_ms(len(np.asarray(pcm).reshape(-1)), rate)))
    return [(s, min(e, total_ms)) for s, e in segments if e - s >= min_len_ms]


def trim_silence(
    pcm: PcmLike, threshold_dbfs: float = -45.0, frame_ms: int = 10, pad_ms: int = 0, rate: int = RATE
) -> np.ndarray:
    """Cut leading/trailing frames at or below ``threshold_dbfs``, keeping ``pad_ms`` around."""
    arr = _as_int16(pcm)
    mask = active_frames(arr, threshold_dbfs, frame_ms, rate)
    if not mask.any():
        return arr[:0].copy()
    n = ms_to_samples(frame_ms, rate)
    first = int(np.argmax(mask))
    last = len(mask) - 1 - int(np.argmax(mask[::-1]))
    pad = ms_to_samples(pad_ms, rate)
    start = max(0, first * n - pad)
    end = min(arr.size, (last + 1) * n + pad)
    return arr[start:end].copy()


# --------------------------------------------------------------------------- generators


def _amplitude(level_dbfs: float) -> float:
    return _FULL_SCALE * 10.0 ** (level_dbfs / 20.0)


def silence(ms: float, rate: int = RATE) -> np.ndarray:
    """Digital silence of ``ms`` milliseconds."""
    return np.zeros(ms_to_samples(ms, rate), dtype=np.int16)


def sine(freq: float, ms: float, level_dbfs: float = -12.0, rate: int = RATE) -> np.ndarray:
    """Sine tone whose RMS level is ``level_dbfs``."""
    t = np.arange(ms_to_samples(ms, rate)) / rate
    peak = _amplitude(level_dbfs) * math.sqrt(2.0)
    return _as_int16(peak * np.sin(2 * math.pi * freq * t))


def noise(ms: float, level_dbfs: float = -30.0, seed: int = 0, rate: int = RATE) -> np.ndarray:
    """Gaussian white noise at an RMS level of ``level_dbfs`` (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    return _as_int16(rng.standard_normal(ms_to_samples(ms, rate)) * _amplitude(level_dbfs))


def click(ms: float = 5, level_dbfs: float = -3.0, rate: int = RATE) -> np.ndarray:
    """A short decaying broadband click of ``ms`` milliseconds (peak ``level_dbfs``)."""
    n = max(1, ms_to_samples(ms, rate))
    envelope = np.exp(-np.arange(n) / max(1.0, n / 5.0))
    sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    return _as_int16(_amplitude(level_dbfs) * envelope * sign)


# --------------------------------------------------------------------------- G.711


def ulaw_encode(pcm: PcmLike) -> bytes:
    """Encode int16 PCM to G.711 mu-law bytes."""
    return audioop.lin2ulaw(_as_int16(pcm).tobytes(), 2)


def ulaw_decode(data: bytes) -> np.ndarray:
    """Decode G.711 mu-law bytes to int16 PCM."""
    return np.frombuffer(audioop.ulaw2lin(bytes(data), 2), dtype=np.int16).copy()


def alaw_encode(pcm: PcmLike) -> bytes:
    """Encode int16 PCM to G.711 A-law bytes."""
    return audioop.lin2alaw(_as_int16(pcm).tobytes(), 2)


def alaw_decode(data: bytes) -> np.ndarray:
    """Decode G.711 A-law bytes to int16 PCM."""
    return np.frombuffer(audioop.alaw2lin(bytes(data), 2), dtype=np.int16).copy()


def g711_encode(pcm: PcmLike, law: str = "ulaw") -> bytes:
    """Encode with ``law`` = "ulaw"/"pcmu" or "alaw"/"pcma"."""
    return ulaw_encode(pcm) if normalize_law(law) == "ulaw" else alaw_encode(pcm)


def g711_decode(data: bytes, law: str = "ulaw") -> np.ndarray:
    """Decode with ``law`` = "ulaw"/"pcmu" or "alaw"/"pcma"."""
    return ulaw_decode(data) if normalize_law(law) == "ulaw" else alaw_decode(data)


def normalize_law(law: str) -> str:
    """Map "ulaw"/"pcmu"/"mulaw" to "ulaw" and "alaw"/"pcma" to "alaw"; ValueError otherwise."""
    key = law.lower()
    if key in ("ulaw", "pcmu", "mulaw", "u"):
        return "ulaw"
    if key in ("alaw", "pcma", "a"):
        return "alaw"
    raise ValueError(f"unknown G.711 law: {law!r}")


def law_for_pt(pt: int) -> str | None:
    """Static payload type to G.711 law: 0 -> "ulaw", 8 -> "alaw", others None."""
    return {0: "ulaw", 8: "alaw"}.get(pt)


# --------------------------------------------------------------------------- comparison


def align(reference: PcmLike, recorded: PcmLike, max_lag_ms: float | None = None, rate: int = RATE) -> tuple[int, float]:
    """Find where ``reference`` starts inside ``recorded``.

    Returns ``(lag, corr)``: ``recorded[lag:]`` best matches ``reference``
    (``lag`` < 0 means the recording starts ``-lag`` samples into the
    reference), and ``corr`` is the normalised correlation (1.0 = identical
    shape) over the overlapping part.  ``max_lag_ms`` bounds ``|lag|``.
    """
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    rec = np.asarray(recorded, dtype=np.float64).reshape(-1)
    if ref.size == 0 or rec.size == 0:
        return 0, 0.0
    n = 1 << int(np.ceil(np.log2(ref.size + rec.size)))
    xc = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(ref, n)), n)
    lags = np.concatenate([np.arange(0, rec.size), np.arange(-(ref.size - 1), 0)])
    vals = np.concatenate([xc[: rec.size], xc[n - (ref.size - 1) :]]) if ref.size > 1 else xc[: rec.size]
    if max_lag_ms is not None:
        keep = np.abs(lags) <= ms_to_samples(max_lag_ms, rate)
        lags, vals = lags[keep], vals[keep]
    if lags.size == 0:
        return 0, 0.0
    lag = int(lags[int(np.argmax(vals))])
    if lag >= 0:
        a, b = ref, rec[lag:]
    else:
        a, b = ref[-lag:], rec
    m = min(a.size, b.size)
    a, b = a[:m], b[:m]
    denom = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return lag, (float(np.dot(a, b)) / denom if denom > 0 else 0.0)


def align_pieces(reference: PcmLike, recorded: PcmLike, piece_ms: float = 250, rate: int = RATE) -> list[tuple[int, float]]:
    """:func:`align` each whole ``piece_ms`` piece of ``reference`` on its own.

    Returns ``(offset, corr)`` per piece, ``offset`` being where the piece sits in
    ``recorded`` minus where it sits in ``reference``. Audio that crossed a live
    jitter buffer can slip by a frame (one concealed, or one dropped to catch up):
    the whole-reference correlation then collapses although every piece was heard,
    in order, at offsets a frame or two apart.
    """
    ref = np.asarray(reference).reshape(-1)
    n = ms_to_samples(piece_ms, rate)
    out = []
    for start in range(0, ref.size - n + 1, n):
        lag, corr = align(ref[start:start + n], recorded, rate=rate)
        out.append((lag - start, corr))
    return out


def assert_heard_back(sentence: PcmLike, heard: PcmLike, detail: str = "", rate: int = RATE) -> list[tuple[int, float]]:
    """Assert that ``heard`` holds ``sentence`` whole and in order; returns :func:`align_pieces`.

    Judged in 250 ms pieces, for a live call: when the machine is starved, pjmedia's media
    clock runs late and catches up, the bridge's jitter buffer conceals a frame (the call's
    ``rtp_jb_lost``) and the rest slips by 10 ms. The whole-sentence correlation then drops to
    ~0.58 although every piece was heard (8 busy processes on 2 cores: 8 runs in 30). So: the
    median piece correlates > 0.95, 80 % of pieces > 0.85, and those sit within 40 ms of each other.
    """
    assert dbfs(heard) > -40, "the handset heard only silence"
    pieces = align_pieces(sentence, heard, rate=rate)
    matched = [offset for offset, corr in pieces if corr > 0.85]
    why = f"pieces (offset, corr) {[(o, round(c, 2)) for o, c in pieces]} {detail}"
    assert pieces and np.median([corr for _, corr in pieces]) > 0.95 and len(matched) >= 0.8 * len(pieces), \
        f"what the handset heard is not its sentence: {why}"
    assert max(matched) - min(matched) <= ms_to_samples(40, rate), f"the sentence came back out of order: {why}"
    return pieces

# --------------------------------------------------------------------------- utterances


@dataclass
class Utterance:
    """Concatenated prompts with known gaps; ``segments`` are the true prompt spans in ms."""

    pcm: np.ndarray
    segments: list[tuple[int, int]]
    sources: list[str] = field(default_factory=list)
    rate: int = RATE

    @property
    def duration_ms(self) -> float:
        return samples_to_ms(len(self.pcm), self.rate)

    def write(self, path: str | Path) -> Path:
        """Write the utterance as a WAV file."""
        return write_wav(path, self.pcm, self.rate)


def make_utterance(
    prompts: Sequence[str | Path | np.ndarray],
    gaps_ms: int | Sequence[int] = 700,
    *,
    lead_ms: int = 0,
    tail_ms: int = 0,
    trim: bool = True,
    threshold_dbfs: float = -45.0,
    rate: int = RATE,
) -> Utterance:
    """Build ``lead + p0 + gap0 + p1 + gap1 + ... + pN + tail``.

    ``prompts`` items are Asterisk prompt names (``"tt-monkeys"``), WAV paths or
    PCM arrays.  With ``trim`` each prompt's leading/trailing silence is cut,
    so ``segments`` (start_ms, end_ms) are the exact spans where a prompt's
    samples lie -- the ground truth for VAD / turn-taking tests.  Segments are
    computed in samples and rounded to whole milliseconds.
    """
    if isinstance(gaps_ms, int):
        gaps = [gaps_ms] * max(0, len(prompts) - 1)
    else:
        gaps = list(gaps_ms)
        if len(gaps) != max(0, len(prompts) - 1):
            raise ValueError("need exactly len(prompts) - 1 gaps")
    parts: list[np.ndarray] = [silence(lead_ms, rate)]
    segments: list[tuple[int, int]] = []
    sources: list[str] = []
    pos = len(parts[0])
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, np.ndarray):
            pcm, name = _as_int16(prompt), f"<array {i}>"
        else:
            p = Path(prompt)
            path = p if (p.suffix == ".wav" or p.exists()) else asterisk_prompt(str(prompt))
            pcm, name = load_wav(path, rate), str(path)
        if trim:
            pcm = trim_silence(pcm, threshold_dbfs, rate=rate)
        start = pos
        parts.append(pcm)
        pos += len(pcm)
        segments.append((int(round(samples_to_ms(start, rate))), int(round(samples_to_ms(pos, rate)))))
        sources.append(name)
        if i < len(gaps):
            gap = silence(gaps[i], rate)
            parts.append(gap)
            pos += len(gap)
    parts.append(silence(tail_ms, rate))
    return Utterance(pcm=np.concatenate(parts).astype(np.int16), segments=segments, sources=sources, rate=rate)
