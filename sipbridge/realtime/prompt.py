"""The reconnect prompt: a short WAV the caller hears when the model's connection drops.

:func:`load_prompt` reads ``realtime.reconnect_prompt`` once (cached per path and rate) and
returns it as mono PCM16 at the rate of the call's playout buffer (``sip.media_rate``, 16 kHz by
default). Accepted: RIFF/WAVE, PCM 16-bit, mono, 8000 or 16000 Hz, 20 ms to 30 s long; another
rate than the playout's is converted with the same streaming resampler as the call path (group
delay removed, tail flushed). Anything else is a :class:`ConfigError` naming
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
def load_prompt(path: str, port_rate: int = PORT_RATE) -> bytes:
    """The prompt at ``path`` as PCM16 LE at ``port_rate``; raises ``ConfigError`` on a bad file."""
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
    if rate == port_rate:
        return frames
    conv = StreamResampler(rate, port_rate)
    delay = conv.delay_samples   # in output samples
    pcm = conv.process(frames) + conv.process(bytes(2 * (delay * rate // port_rate + 1)))
    return pcm[2 * delay: 2 * delay + 2 * (len(frames) // 2) * port_rate // rate]
