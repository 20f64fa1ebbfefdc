"""provider media_stream against a real Pipecat pipeline: a SIPp/RtpPeer call through ``sipbridge
run`` to tests/support/pipecat_echo_bot.py (FastAPI WebSocket transport, ``TwilioFrameSerializer``,
Silero VAD, an offline echo of the caller's utterance), run by ``.venv-pipecat/bin/python``
(``./bootstrap --test`` makes it; Pipecat's protobuf<7 cannot share ``.venv``).
"""

from __future__ import annotations

from tests.support.pipecat_call import VENV_PYTHON, one_call


def test_pipecat_bot_echoes_the_caller_and_its_clear_silences_the_line(tmp_path):
    """The caller hears its own sentence back from Pipecat, and speaking over it makes Pipecat send
    ``clear``, which the bridge applies, with the line silent from the pause until the interruption ends."""
    assert VENV_PYTHON.exists(), (f"{VENV_PYTHON} is missing: run ./bootstrap --test "
                                  "(it installs the pinned pipecat-ai into .venv-pipecat)")
    r = one_call(str(VENV_PYTHON), tmp_path)
    assert r["sipp"] == 200, r
    assert r["start_parameters"] is not None, r         # Pipecat parsed the bridge's start message
    assert r["echo_correlation"] > 0.8, r               # what came back is the sentence said
    assert r["onset_to_clear_ms"] is not None, r        # Pipecat broadcast its interruption (clear)
    assert ("provider_clear" in [s for s, _ in r["barge_in"]]), r   # ...and the bridge got it
    assert r["onset_to_silence_ms"] is not None and r["onset_to_silence_ms"] < 300, r
    assert r["clear_to_silent"], r
