"""Fixtures shared by the in-process session tests."""

from __future__ import annotations

import asyncio
import threading

import pytest


@pytest.fixture(scope="module")
def loop():
    """An asyncio loop running on its own thread, as in the worker."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture(scope="module")
def vad_model():
    """The real Silero model, loaded once per module."""
    from sipbridge.turn.silero import load_model
    return load_model()


@pytest.fixture
def make_call(loop, vad_model):
    """``make_call(**kwargs)``: a test_session ``Call`` (closed after the test)."""
    from tests.unit.app.test_session import Call
    calls: list[Call] = []

    def make(**kwargs) -> Call:
        calls.append(Call(loop, vad_model, **kwargs))
        return calls[-1]

    yield make
    for call in calls:
        call.close()
