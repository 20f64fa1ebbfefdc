"""One CallSession on a test's asyncio loop, against a model server the test picks.

The test thread plays the media clock (``on_caller_frame`` / ``next_frame``); the loop thread
runs the session's socket as in the worker. :class:`SessionHarness` holds what every in-process
session test needs: start and stop, the session's log records, bounded waits. The test modules
subclass it with their own model server and helpers.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from sipbridge import config
from sipbridge.session import CallSession


class SessionHarness:
    """``model`` (anything with async ``start() -> url`` and ``stop()``) serves one CallSession."""

    def __init__(self, loop, model, *, call_id: str = "call-1", turn=None, realtime=None, sip=None,
                 vad_model=None, vad_batch=None, parties=None, app=None, environ=None,
                 barge_in=None):
        self.loop = loop
        self.model = model
        url = self.run(model.start())
        # the session tests feed 16 kHz frames (320 samples): the rate is pinned unless a test
        # picks one (test_session_8k.py runs the 8 kHz default)
        sip = {"media_rate": 16000, **(sip or {})}
        cfg = config.build({"turn_detection": turn or {}, "realtime": realtime or {}, "sip": sip,
                            "app": app or {}, "barge_in": barge_in or {}}, environ=environ or {})
        self.ended: list[str] = []
        self.transfers: list[str] = []      # targets the session asked the worker to REFER to
        self._capture = structlog.testing.capture_logs()
        self.logs = self._capture.__enter__()
        self.session = CallSession(call_id=call_id, config=cfg, url=url, api_key=None, loop=loop,
                                   vad_model=vad_model, on_end=self.ended.append, vad_batch=vad_batch,
                                   on_transfer=self.transfers.append, parties=parties)
        self.run(self.session.start())

    def run(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def on_loop(self, fn, *args):
        """Run ``fn(*args)`` on the event loop thread and wait for it."""
        async def call():
            return fn(*args)
        return self.run(call())

    def close(self) -> None:
        try:
            self.run(self.session.close())
            self.run(self.model.stop())
        finally:
            self._capture.__exit__(None, None, None)

    def log_events(self, name: str) -> list[dict]:
        return [r for r in list(self.logs) if r.get("event") == name]

    def wait_log(self, name: str, timeout: float = 5.0, **match) -> dict:
        """The session's first log record ``name`` with ``match``ing fields (waits, bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            for record in self.log_events(name):
                if all(record.get(k) == v for k, v in match.items()):
                    return record
            assert time.monotonic() < deadline, f"the session never logged {name} {match}"
            time.sleep(0.002)
