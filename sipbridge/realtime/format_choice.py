"""Which audio format a call's model session carries: ``realtime.audio_format``, ``auto`` settled.

``auto`` (the default) picks, per call, the format that needs no resampling where one exists:

* the provider's one format when its row of :data:`~sipbridge.realtime.providers.RULES` forces
  one (``gemini``: pcm16; ``media_stream``: g711_ulaw);
* else ``g711_ulaw`` on a narrowband line (``sip.media_rate`` 8000): the caller's 8 kHz frames
  go up as they were heard, one byte a sample, and the model's G.711 comes back at the port's
  own rate, so neither direction is resampled (:mod:`sipbridge.realtime.transcode` passes 1:1
  through untouched). A PSTN call is 8 kHz G.711 already: the model hears nothing less. µ-law
  rather than A-law whatever the call's codec: the port hands the session linear PCM, and the
  codec is negotiated after the session is made; µ-law and A-law differ by less than their own
  quantisation step;
* else ``pcm16`` (24 kHz): a wideband port (16000) would lose its upper band in G.711.

An explicit ``pcm16``/``g711_ulaw``/``g711_alaw`` is kept as given (the provider's check refuses
one it cannot speak when the config is loaded). Pure: no I/O, no state.
"""

from __future__ import annotations

from typing import Any

AUTO = "auto"
NARROWBAND = 8000   # sip.media_rate at which G.711 carries the whole band


def choose(setting: str, *, media_rate: int, forced: str | None = None) -> str:
    """The concrete format for ``setting`` (``auto`` or a format name) on a port at ``media_rate``
    whose provider speaks only ``forced`` (None: any of the three)."""
    if setting != AUTO:
        return setting
    if forced is not None:
        return forced
    return "g711_ulaw" if media_rate == NARROWBAND else "pcm16"


def resolve(rc: Any, media_rate: int) -> str:
    """:func:`choose` for a ``RealtimeConfig`` (its ``audio_format`` and ``provider``)."""
    from sipbridge.realtime.providers import RULES
    rules = RULES.get(rc.provider)
    forced = rules.audio_format[0] if rules is not None and rules.audio_format is not None else None
    return choose(rc.audio_format, media_rate=media_rate, forced=forced)
