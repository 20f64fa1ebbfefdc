"""The audio formats a Realtime session carries, their wire spellings and their codecs.

The OpenAI Realtime API takes three formats, the same set in both dialects:

* ``pcm16``: GA ``{"type": "audio/pcm", "rate": 24000}``, beta ``"pcm16"``; 24 kHz,
  16-bit little-endian samples;
* ``g711_ulaw``: GA ``{"type": "audio/pcmu"}``, beta ``"g711_ulaw"``; 8 kHz, one byte a sample;
* ``g711_alaw``: GA ``{"type": "audio/pcma"}``, beta ``"g711_alaw"``; 8 kHz, one byte a sample.

GA puts the object under ``session.audio.input.format`` / ``session.audio.output.format``,
beta the string in ``input_audio_format`` / ``output_audio_format``.

G.711 is what the phone line carries anyway: the caller is sent at the 8 kHz they were
heard at (no up-sampling to 24 kHz of a band the line never had), in a sixth of the bytes of
24 kHz pcm16 (less base64 and JSON on both ends of the socket). Everything that turns a byte
count of model audio into milliseconds goes through :meth:`AudioFormat.ms` /
:attr:`AudioFormat.bytes_per_ms`, so truncation stays exact in every format. Pure: no I/O,
no state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sipcodecs import alaw_decode_array, alaw_encode_array, ulaw_decode_array, ulaw_encode_array

Samples = npt.NDArray[np.int16]


def _pcm16_encode(samples: Samples) -> bytes:
    return samples.astype("<i2", copy=False).tobytes()


def _pcm16_decode(data: bytes) -> Samples:
    return np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)


def _g711(encode: Callable[[Samples], np.ndarray], decode: Callable[[np.ndarray], Samples]):
    def enc(samples: Samples) -> bytes:
        return encode(samples).tobytes()

    def dec(data: bytes) -> Samples:
        return decode(np.frombuffer(data, dtype=np.uint8))
    return enc, dec


@dataclass(frozen=True)
class AudioFormat:
    """One wire format: ``name`` (config value and beta spelling), ``ga_type`` (the GA
    ``format.type``), ``rate`` (Hz) and ``sample_bytes``; :meth:`encode`/:meth:`decode`
    convert between int16 samples at ``rate`` and wire bytes."""

    name: str
    ga_type: str
    rate: int
    sample_bytes: int
    _encode: Callable[[Samples], bytes] = field(repr=False, compare=False)
    _decode: Callable[[bytes], Samples] = field(repr=False, compare=False)

    @property
    def bytes_per_ms(self) -> int:
        """Wire bytes per millisecond (48 for pcm16, 8 for G.711)."""
        return self.rate * self.sample_bytes // 1000

    @property
    def linear(self) -> bool:
        """True for pcm16 (the wire bytes are the samples)."""
        return self.sample_bytes == 2

    def ga(self, rate: int | None = None) -> dict[str, Any]:
        """The GA format object; ``rate`` only applies to (and is only sent for) pcm16."""
        if self.linear:
            return {"type": self.ga_type, "rate": self.rate if rate is None else rate}
        return {"type": self.ga_type}

    def encode(self, samples: Samples) -> bytes:
        """int16 samples at :attr:`rate` -> wire bytes."""
        return self._encode(samples)

    def decode(self, data: bytes) -> Samples:
        """Wire bytes -> int16 samples at :attr:`rate` (``data`` holds whole samples)."""
        return self._decode(data)

    def samples(self, nbytes: int) -> int:
        """Samples in ``nbytes`` of wire audio."""
        return nbytes // self.sample_bytes

    def ms(self, nbytes: int) -> int:
        """Whole milliseconds in ``nbytes`` of wire audio (floored)."""
        return nbytes // self.sample_bytes * 1000 // self.rate


PCM16 = AudioFormat("pcm16", "audio/pcm", 24000, 2, _pcm16_encode, _pcm16_decode)
G711_ULAW = AudioFormat("g711_ulaw", "audio/pcmu", 8000, 1, *_g711(ulaw_encode_array, ulaw_decode_array))
G711_ALAW = AudioFormat("g711_alaw", "audio/pcma", 8000, 1, *_g711(alaw_encode_array, alaw_decode_array))

FORMATS: dict[str, AudioFormat] = {f.name: f for f in (PCM16, G711_ULAW, G711_ALAW)}
NAMES: tuple[str, ...] = tuple(FORMATS)
_BY_GA_TYPE: dict[str, AudioFormat] = {f.ga_type: f for f in FORMATS.values()}


def by_name(name: str) -> AudioFormat:
    """The format called ``name`` (``pcm16``, ``g711_ulaw``, ``g711_alaw``); ``ValueError`` else."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown audio format {name!r} (known: {', '.join(NAMES)})") from None


def by_ga_type(ga_type: Any) -> AudioFormat | None:
    """The format whose GA ``format.type`` is ``ga_type``, or None."""
    return _BY_GA_TYPE.get(ga_type) if isinstance(ga_type, str) else None
