"""Between the call's media port (PCM16 at ``sip.media_rate``) and the model's wire format, both ways.

:class:`Uplink` turns caller audio into ``input_audio_buffer.append`` bytes: port rate (16 kHz
by default, or 8 kHz) -> the format's rate (24 kHz for pcm16, 8 kHz for G.711) -> encode.
:class:`Downlink` turns one assistant item's deltas back into port-rate PCM16 for the playout
buffer. Each holds one :class:`~sipcodecs.StreamResampler`, so a stream cut into batches or
deltas of any size comes out sample-for-sample as if converted in one piece, and after ``N``
model samples exactly ``N * port_rate / rate`` (floored) port samples have come out: the
playout buffer's count of samples handed to RTP is the model's own audio time, which
``conversation.item.truncate`` needs. The rates are in whole ratios (2:3, 1:2, 1:3, or 1:1 for
G.711 at an 8 kHz port), so that count is exact to the sample. At 1:1 there is no resampler at
all: a G.711 byte is one port sample both ways (the codec is the only work). Pure computation, one instance
per stream, not thread-safe (the session serialises).
"""

from __future__ import annotations

import numpy as np
from sipcodecs import StreamResampler

from sipbridge.realtime.audio_format import AudioFormat


class Uplink:
    """Caller PCM16 at ``port_rate`` -> wire bytes of ``fmt``."""

    def __init__(self, fmt: AudioFormat, port_rate: int = 16000):
        self.format = fmt
        # equal rates (G.711 at an 8 kHz port): the samples go to the encoder as they are
        self._resampler = StreamResampler(port_rate, fmt.rate) if port_rate != fmt.rate else None

    def process(self, pcm: bytes) -> bytes:
        """The next chunk of caller audio (whole 16-bit samples), as wire bytes."""
        samples = np.frombuffer(pcm, dtype="<i2")
        return self.format.encode(samples if self._resampler is None
                                  else self._resampler.process_array(samples))


class Downlink:
    """Wire bytes of ``fmt`` (one item's deltas, in order) -> PCM16 at ``port_rate``."""

    def __init__(self, fmt: AudioFormat, port_rate: int = 16000):
        self.format = fmt
        self._resampler = StreamResampler(fmt.rate, port_rate) if port_rate != fmt.rate else None

    def process(self, data: bytes) -> bytes:
        """The next delta (whole samples of the format), as port-rate PCM16 bytes."""
        samples = self.format.decode(data)
        if self._resampler is not None:
            samples = self._resampler.process_array(samples)
        return samples.astype("<i2", copy=False).tobytes()
