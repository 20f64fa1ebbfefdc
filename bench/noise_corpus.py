"""Caller-side backgrounds for the barge-in benches, with a tuning part and a held-out part.

    python bench/noise_corpus.py --out DIR [--part tune|heldout]   # writes the WAVs to listen to

Five kinds of background a caller brings onto the line, each at 8 kHz int16 and at a level
between -35 and -20 dBFS (RMS over the whole excerpt; for clicks and breaths, over the events
themselves):

* ``music``: Debian's asterisk-moh-opsound tracks (``/usr/share/asterisk/moh``), a random
  excerpt per case;
* ``babble``: a TV in the room, on before the call: four or five distant talkers at once,
  each a stream of Asterisk prompts (Allison) or espeak-ng sentences in several voices,
  mixed, low-passed and reverberated with sox;
* ``road``: brown plus pink noise (car, street), slowly modulated (0.1-0.4 Hz swells and a
  passing vehicle), synthesised from a seed;
* ``clicks``: keyboard typing: bursts of 3-8 ms resonant transients 80-250 ms apart;
* ``breaths``: band-passed noise bursts of 250-600 ms every 1.5-3 s.

Under each, the line's own noise at -65 dBFS (a phone line is never digitally silent).

The two parts share no source: the tuning part uses three music tracks, the even-numbered
prompts, one set of espeak voices and texts, and seeds 1-999; the held-out part the other two
tracks, the odd prompts, other voices and texts, and seeds from 1000. The interrupting
prompts (``speech``) are split the same way. Everything is deterministic for a given
(part, kind, index).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import audio, system  # noqa: E402

RATE = 8000
KINDS = ("music", "babble", "road", "clicks", "breaths")
PARTS = ("tune", "heldout")
LINE_NOISE_DBFS = -65.0
MOH = system.MOH_DIR
MUSIC = {"tune": ["macroform-cold_day", "manolo_camp-morning_coffee", "reno_project-system"],
         "heldout": ["macroform-robot_dity", "macroform-the_simplicity"]}
VOICES = {"tune": ["en-us+m3", "en-gb+f2", "en+m1"],
          "heldout": ["en-029+f3", "en-gb-scotland+m4", "en-us+f4"]}
TEXTS = {
    "tune": ["The weather tonight will be cloudy with a chance of rain in the north.",
             "Shares closed higher after a quiet day of trading in the city.",
             "And now back to the studio for the rest of the evening news.",
             "The match was stopped for twenty minutes while the pitch was cleared.",
             "Traffic is heavy on the ring road after an accident near the bridge."],
    "heldout": ["Scientists say the new telescope has found another distant planet.",
                "Tickets for the concert sold out within an hour on Friday morning.",
                "The minister is expected to announce the budget later this week.",
                "Stay with us, there is much more to come after the break.",
                "Fans waited outside the stadium long after the final whistle."],
}
# level of each case, cycled by index: the levels first, then the ends of -35..-20
LEVELS = {"music": (-25.0, -20.0, -30.0, -35.0), "babble": (-30.0, -25.0, -35.0),
          "road": (-30.0, -25.0, -35.0, -20.0), "clicks": (-25.0, -20.0, -30.0),
          "breaths": (-30.0, -35.0, -25.0)}


def sounds_dir() -> Path:
    """The Asterisk English prompts (where their package put them: tests/support/system.py)."""
    return system.prompts_dir()


def _prompt_names(part: str) -> list[str]:
    names = sorted(p.stem for p in sounds_dir().glob("*.wav"))
    return names[0::2] if part == "tune" else names[1::2]


def _seed(part: str, kind: str, index: int) -> int:
    return (0 if part == "tune" else 1000) + 1 + KINDS.index(kind) * 100 + index


def _to_level(x: np.ndarray, level_dbfs: float, mask: np.ndarray | None = None) -> np.ndarray:
    x = x.astype(np.float64)
    ref = x[mask] if mask is not None and mask.any() else x
    rms = float(np.sqrt(np.mean(ref * ref))) or 1.0
    return np.clip(x * (32768.0 * 10 ** (level_dbfs / 20) / rms), -32768, 32767).astype(np.int16)


def _sox(pcm: np.ndarray, *effects: str, in_rate: int = RATE) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        audio.write_wav(src, pcm, rate=in_rate)
        subprocess.run(["sox", "-R", str(src), "-r", str(RATE), str(dst), *effects], check=True,
                       capture_output=True)
        return audio.load_wav(dst, rate=RATE)


def _espeak(text: str, voice: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True,
                       capture_output=True)
        return audio.load_wav(wav, rate=RATE)  # sox resamples below; espeak's 22 kHz is low-passed


def music(part: str, index: int, ms: int, level: float) -> np.ndarray:
    rng = np.random.default_rng(_seed(part, "music", index))
    tracks = MUSIC[part]
    track = audio.load_wav(MOH / f"{tracks[index % len(tracks)]}.wav")
    n = ms * RATE // 1000
    start = int(rng.integers(0, max(1, len(track) - n)))
    return _to_level(track[start:start + n], level)


def _talker(part: str, rng: np.random.Generator, n: int, names: list[str], use_tts: bool) -> np.ndarray:
    out = np.zeros(n, dtype=np.float64)
    at = int(rng.integers(0, RATE))
    while at < n:
        if use_tts:
            voice = VOICES[part][int(rng.integers(len(VOICES[part])))]
            piece = _espeak(TEXTS[part][int(rng.integers(len(TEXTS[part])))], voice)
        else:
            piece = audio.load_wav(sounds_dir() / f"{names[int(rng.integers(len(names)))]}.wav")
        piece = audio.trim_silence(piece).astype(np.float64)
        piece *= 1.0 / max(float(np.sqrt(np.mean(piece * piece))), 1.0)
        take = min(len(piece), n - at)
        out[at:at + take] += piece[:take]
        at += take + int(rng.integers(RATE // 10, RATE // 2))
    return out


def babble(part: str, index: int, ms: int, level: float) -> np.ndarray:
    """Four or five distant talkers (prompts and TTS voices), mixed, low-passed, reverberated."""
    rng = np.random.default_rng(_seed(part, "babble", index))
    lead = 2 * RATE                      # the TV was on before the call: its first 2 s are cut
    n = ms * RATE // 1000 + lead
    names = _prompt_names(part)
    talkers = int(rng.integers(4, 6))
    mix = sum(_talker(part, rng, n, names, use_tts=k % 2 == 1) * 10 ** (rng.uniform(-4, 0) / 20)
              for k in range(talkers))
    mix = _to_level(mix, -20.0)
    room = _sox(mix, "lowpass", str(int(rng.integers(1600, 2600))), "reverb",
                str(int(rng.integers(40, 80))), "50", str(int(rng.integers(60, 100))))
    return _to_level(room[lead:n], level)


def road(part: str, index: int, ms: int, level: float) -> np.ndarray:
    """Brown plus pink noise with slow swells and a passing vehicle."""
    rng = np.random.default_rng(_seed(part, "road", index))
    n = ms * RATE // 1000
    white = rng.standard_normal(n)
    brown = np.zeros(n)
    acc = 0.0
    leak = 0.999
    for i, w in enumerate(white):   # leaky integrator: a 1/f^2 rumble
        acc = leak * acc + w
        brown[i] = acc
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    pink = np.fft.irfft(spec / np.sqrt(np.maximum(f, 20.0)), n)
    mix = brown / np.std(brown) + 0.5 * pink / np.std(pink)
    t = np.arange(n) / RATE
    swell = 10 ** ((3.0 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6))) / 20)
    passing = 1.0 + 1.5 * np.exp(-((t - rng.uniform(0.3, 0.8) * t[-1]) / rng.uniform(0.8, 2.0)) ** 2)
    return _to_level(mix * swell * passing, level)


def _events(rng: np.random.Generator, n: int, make, gap_ms: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros(n, dtype=np.float64)
    mask = np.zeros(n, dtype=bool)
    at = int(rng.integers(0, RATE // 2))
    while at < n:
        ev = make(rng)
        take = min(len(ev), n - at)
        out[at:at + take] += ev[:take]
        mask[at:at + take] = True
        at += take + int(rng.integers(*gap_ms)) * RATE // 1000
    return out, mask


def _click(rng: np.random.Generator) -> np.ndarray:
    k = int(rng.integers(24, 64))                     # 3-8 ms
    burst = rng.standard_normal(k) * np.exp(-np.arange(k) / (k / 4))
    f0 = rng.uniform(1200, 3200)                      # the key's resonance
    ring = np.sin(2 * np.pi * f0 * np.arange(k) / RATE) * np.exp(-np.arange(k) / (k / 3))
    return burst + 2 * ring


def clicks(part: str, index: int, ms: int, level: float) -> np.ndarray:
    """Typing: bursts of 5-20 keystrokes 80-250 ms apart, 0.4-1.5 s between bursts."""
    rng = np.random.default_rng(_seed(part, "clicks", index))
    n = ms * RATE // 1000
    out = np.zeros(n)
    at = int(rng.integers(0, RATE // 2))
    while at < n:
        for _ in range(int(rng.integers(5, 21))):
            c = _click(rng)
            take = min(len(c), n - at)
            if take <= 0:
                break
            out[at:at + take] += c[:take] * rng.uniform(0.5, 1.0)
            at += int(rng.integers(80, 251)) * RATE // 1000
        at += int(rng.integers(400, 1500)) * RATE // 1000
    # the level is that of the 20 ms frames holding a click
    frames = np.sqrt(np.mean(out[: n // 160 * 160].reshape(-1, 160) ** 2, axis=1))
    loud = frames > frames.max() * 0.05
    ref = float(np.sqrt(np.mean(frames[loud] ** 2))) or 1.0
    return np.clip(out * (32768.0 * 10 ** (level / 20) / ref), -32768, 32767).astype(np.int16)


def breaths(part: str, index: int, ms: int, level: float) -> np.ndarray:
    """Band-passed noise bursts (in and out breaths) of 250-600 ms every 1.5-3 s."""
    rng = np.random.default_rng(_seed(part, "breaths", index))
    n = ms * RATE // 1000

    def one(r: np.random.Generator) -> np.ndarray:
        k = int(r.integers(250, 601)) * RATE // 1000
        spec = np.fft.rfft(r.standard_normal(k))
        f = np.fft.rfftfreq(k, 1 / RATE)
        lo, hi = r.uniform(300, 700), r.uniform(1800, 3200)
        shape = np.exp(-0.5 * ((f - (lo + hi) / 2) / ((hi - lo) / 2)) ** 2)
        x = np.fft.irfft(spec * shape, k)
        env = np.sin(np.pi * np.arange(k) / k) ** 1.5
        return x * env

    out, mask = _events(rng, n, one, (1500, 3000))
    return _to_level(out, level, mask)


MAKERS = {"music": music, "babble": babble, "road": road, "clicks": clicks, "breaths": breaths}


def background(kind: str, part: str, index: int, ms: int) -> tuple[np.ndarray, float]:
    """Case ``index`` of ``kind`` in ``part``: (``ms`` of 8 kHz int16, its level in dBFS)."""
    if part not in PARTS or kind not in KINDS:
        raise ValueError(f"part in {PARTS}, kind in {KINDS}; got {part!r}, {kind!r}")
    level = LEVELS[kind][index % len(LEVELS[kind])]
    pcm = MAKERS[kind](part, index, ms, level).astype(np.float64)
    hiss = np.random.default_rng(_seed(part, kind, index) + 7).standard_normal(len(pcm))
    pcm += hiss * 32768.0 * 10 ** (LINE_NOISE_DBFS / 20)   # the line's own noise under it
    return np.clip(pcm, -32768, 32767).astype(np.int16), level


def speech(part: str, limit: int) -> list[tuple[str, np.ndarray]]:
    """Interrupting prompts of 0.6-3 s for ``part`` (the even or odd prompts, spread), trimmed."""
    names = _prompt_names(part)
    out = []
    for name in names[3::5] if part == "tune" else names[2::5]:
        if name.split("-")[0] in ("digits", "letters", "phonetic"):
            continue
        pcm = audio.trim_silence(audio.load_wav(sounds_dir() / f"{name}.wav"))
        if 600 <= len(pcm) / 8 <= 3000:
            out.append((name, pcm))
        if len(out) == limit:
            break
    return out


def speech_level(pcm: np.ndarray) -> float:
    """Speech level in dBFS: RMS over its 20 ms frames louder than -45 dBFS."""
    n = len(pcm) // 160 * 160
    frames = pcm[:n].astype(np.float64).reshape(-1, 160)
    power = np.mean(frames * frames, axis=1)
    active = power > (32768.0 * 10 ** (-45 / 20)) ** 2
    return 10 * np.log10(np.mean(power[active]) / 32768.0 ** 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--part", choices=PARTS, default="tune")
    ap.add_argument("--cases", type=int, default=2)
    ap.add_argument("--ms", type=int, default=8000)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        for i in range(args.cases):
            pcm, level = background(kind, args.part, i, args.ms)
            path = audio.write_wav(args.out / f"{args.part}-{kind}-{i}.wav", pcm)
            print(f"{path} {level:+.0f} dBFS (measured {audio.dbfs(pcm):.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
