"""The reconnect prompt: a short WAV the caller hears when the model's connection drops.

:func:`load_prompt` reads ``realtime.reconnect_prompt`` once (cached per path) and returns it as
16 kHz mono PCM16, the rate of the call's playout buffer. Accepted: RIFF/WAVE, PCM 16-bit, mono,
8000 or 16000 Hz, 20 ms to 30 s long; 8 kHz is upsampled with the same streaming resampler as
the call path (group delay removed, tail flushed). Anything else is a :class:`ConfigError` naming
the key, raised at start-up by :mod:`sipbridge.config` so a bad file never waits for an outage.
"""

from __future__ import annotations

import functools
import wave

from sipcodecs import StreamResampler

from sipbridge.errors import ConfigError

KEY = "realtime.reconnect_prompt"
PORT_RATE = 16000
RATES = (8000, 16000)
MIN_MS, MAX_MS = 20, 30_000
PROMPT_ITEM = "sipbridge.reconnect_prompt"  # playout item id: local audio, never truncated upstream


@functools.lru_cache(maxsize=8)
def load_prompt(path: str) -> bytes:
    """The prompt at ``path`` as 16 kHz PCM16 LE; raises ``ConfigError`` on a bad file."""
    try:
        with wave.open(path, "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            comptype, frames = wav.getcomptype(), wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise ConfigError(KEY, f"no such file: {path}") from None
    except (OSError, EOFError, wave.Error) as exc:
        raise ConfigError(KEY, f"{path} is not a readable WAV file: {exc}") from None
    if comptype != "NONE" or width != 2:
        raise ConfigError(KEY, f"{path}: must be 16-bit PCM, got {8 * width}-bit {comptype}")
    if channels != 1:
        raise ConfigError(KEY, f"{path}: must be mono, got {channels} channels")
    if rate not in RATES:
        raise ConfigError(KEY, f"{path}: must be 8000 or 16000 Hz, got {rate}")
    frames = frames[: len(frames) // 2 * 2]
    ms = len(frames) // 2 * 1000 // rate
    if not MIN_MS <= ms <= MAX_MS:
        raise ConfigError(KEY, f"{path}: must last {MIN_MS} ms to {MAX_MS // 1000} s, got {ms} ms")
    if rate == PORT_RATE:
        return frames
    up = StreamResampler(rate, PORT_RATE)
    delay = up.delay_samples
    pcm = up.process(frames) + up.process(bytes(2 * (delay * rate // PORT_RATE + 1)))
    return pcm[2 * delay: 2 * delay + 2 * (len(frames) // 2) * PORT_RATE // rate]
