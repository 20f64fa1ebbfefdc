"""What a test's model server received of the caller, decoded in the format the session asked for.

``realtime.audio_format`` (``auto`` by default: µ-law at an 8 kHz port, pcm16 at 16 kHz) sets
the appends' format; a test that checks the caller's audio upstream reads it from the
``session.update`` the server received (GA ``session.audio.input.format`` or beta
``session.input_audio_format``) instead of assuming one.
"""

from __future__ import annotations

import base64

import numpy as np

from sipbridge.realtime.audio_format import AudioFormat, by_ga_type, by_name


def session_format(session: dict) -> AudioFormat:
    """The input format of a ``session.update``'s ``session`` object (GA or beta shape)."""
    if "input_audio_format" in session:
        return by_name(session["input_audio_format"])
    fmt = by_ga_type(session["audio"]["input"]["format"]["type"])
    assert fmt is not None, f"unknown input format {session['audio']['input']['format']}"
    return fmt


def caller_audio(session: dict, appends: list[dict]) -> tuple[np.ndarray, int]:
    """The ``input_audio_buffer.append`` events' audio as int16 samples, and their rate."""
    fmt = session_format(session)
    return fmt.decode(b"".join(base64.b64decode(e["audio"]) for e in appends)), fmt.rate
