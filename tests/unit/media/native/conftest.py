"""The ``audio`` fixture: real C ports bound to fake sessions (tests/unit/media/native/fakes.py)."""

import pytest

from sipbridge.media.native.lib import NativePort
from sipbridge.media.native.pump import CallAudio
from tests.unit.media.native.fakes import FB


@pytest.fixture
def audio():
    """``make(session=None, slot=0)``: a call's port (8 kHz), bound to ``session``'s
    ``on_caller_frame`` and ``next_frame`` if given; every port is freed after the test."""
    made = []

    def make(session=None, slot=0):
        a = CallAudio(NativePort(8000, FB, f"t{slot}"), slot)
        if session is not None:
            a.bind(session.on_caller_frame, session.next_frame)
        made.append(a)
        return a
    yield make
    for a in made:
        a.port.free()
