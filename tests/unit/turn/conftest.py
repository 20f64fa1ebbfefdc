"""Shared fixtures: one verified Silero model per test session (loading costs ~50 ms)."""

import pytest

from sipbridge.turn.silero import SileroModel, load_model


@pytest.fixture(scope="session")
def model() -> SileroModel:
    return load_model()
