"""sipcodecs: G.711 companding and low-latency streaming resampling.

The audio plumbing between an RTP leg (8 kHz G.711, PCMU/PCMA) and a
realtime voice model (16 or 24 kHz linear PCM), as pure numpy functions
and one small stateful class:

* :mod:`sipcodecs.g711` -- ITU-T G.711 µ-law / A-law encode and decode,
  table driven, bit-identical to ``audioop`` with ``width=2``;
* :mod:`sipcodecs.resample` -- :class:`StreamResampler`, a polyphase
  Kaiser-windowed-sinc FIR between rates with a small integer ratio
  (8 / 16 / 24 kHz in any direction), chunking-invariant, exact output
  length, saturating, with 1.5 ms (0.75 ms for 16 ↔ 24 kHz) group delay;
* :mod:`sipcodecs.fir` -- the filter design behind it;
* :mod:`sipcodecs.pcm` -- bytes ↔ int16 array helpers.

Linear PCM is always signed 16-bit little-endian mono.
"""

from .fir import ResamplerDesign, design_resampler
from .g711 import (
    alaw_decode,
    alaw_decode_array,
    alaw_encode,
    alaw_encode_array,
    ulaw_decode,
    ulaw_decode_array,
    ulaw_encode,
    ulaw_encode_array,
)
from .pcm import array_to_pcm16, pcm16_to_array
from .resample import StreamResampler

__all__ = [
    "ResamplerDesign",
    "StreamResampler",
    "alaw_decode",
    "alaw_decode_array",
    "alaw_encode",
    "alaw_encode_array",
    "array_to_pcm16",
    "design_resampler",
    "pcm16_to_array",
    "ulaw_decode",
    "ulaw_decode_array",
    "ulaw_encode",
    "ulaw_encode_array",
]
