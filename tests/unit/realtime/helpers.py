"""Shared helpers for the realtime tests: running coroutines, audio fixtures, polling."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, TypeVar

import numpy as np

T = TypeVar("T")


def arun(coro: Awaitable[T], timeout: float = 10.0) -> T:
    """Run ``coro`` on a fresh loop, failing the test if it takes over ``timeout`` s."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def pcm_ramp(ms: int, rate: int = 24000, seed: int = 1) -> bytes:
    """``ms`` of distinctive pcm16 LE audio (pseudo-random, never all zeros)."""
    rng = np.random.default_rng(seed)
    return rng.integers(-20000, 20000, size=rate * ms // 1000, dtype=np.int16).astype("<i2").tobytes()


async def wait_until(predicate: Callable[[], Any], timeout: float = 3.0, step: float = 0.005) -> None:
    """Poll ``predicate`` until true; ``AssertionError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.1f s" % timeout)
        await asyncio.sleep(step)
