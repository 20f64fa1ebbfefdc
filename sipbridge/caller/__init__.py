"""``sipbridge call``: a small SIP caller that speaks a WAV to an agent and shows what happened.

:mod:`.analysis` (pure) finds speech on both sides and measures the turns, :mod:`.audio` reads
and writes the WAV files, :mod:`.summary` renders the result, :mod:`.pjcall` is the pjsua2 edge
that places the call, and :mod:`.cli` ties them together. ``hello.wav`` (two short sentences
with a pause between them, 8 kHz 16-bit mono, made with espeak-ng and sox) is what ``--say``
plays by default.
"""

from pathlib import Path

DEFAULT_SAY = Path(__file__).with_name("hello.wav")
