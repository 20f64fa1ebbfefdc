"""A call's session works with any adapter of the Upstream interface, not just OpenAI's.

``ToyUpstream`` is an adapter of a made-up provider, registered for the test as ``toy`` (one
registry line, as a real adapter would be): it records the neutral commands the session gives
it and lets the test play the provider's side by handing the session neutral events. Nothing in
session.py knows it exists; if the session reached past the interface (an OpenAI event, a
``send`` of a wire dict) these calls would fail.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from sipbridge.realtime import providers
from sipbridge.realtime.events import (AudioDelta, ErrorEvent, FunctionCall, ResponseCreated,
                                       ResponseDone, TurnDiscarded)
from sipbridge.realtime.upstream import Capabilities, CloseInfo, SessionConfig
from tests.unit.app.harness import SessionHarness

INSTANCES: list["ToyUpstream"] = []
SILENT = bytes(640)  # 20 ms at 16 kHz


class ToyUpstream:
    """Records every command; ``emit`` plays the provider (see the module docstring)."""

    capabilities = Capabilities(local_turns=True, server_turns=False, truncate=True,
                                server_cancels_on_speech=False, audio_formats=("pcm16",))

    def __init__(self, rc, url, api_key, session, on_event):
        self.url, self._session, self.on_event = url, session, on_event
        self.commands: list[tuple] = []
        self.audio_bytes = 0
        self._closed: asyncio.Event | None = None
        INSTANCES.append(self)

    @property
    def session(self) -> SessionConfig:
        return self._session

    async def connect(self) -> None:
        self._closed = asyncio.Event()

    async def run(self) -> CloseInfo:
        await self._closed.wait()
        return CloseInfo(1000, "closed")

    async def close(self) -> None:
        if self._closed is not None:
            self._closed.set()

    def send_audio(self, audio: bytes) -> None:
        self.audio_bytes += len(audio)

    def _record(name):
        def command(self, *args, **kwargs):
            self.commands.append((name, *args, *kwargs.values()))
        return command

    commit_input = _record("commit_input")
    clear_input = _record("clear_input")
    create_response = _record("create_response")
    cancel = _record("cancel")
    truncate = _record("truncate")
    update_session = _record("update_session")
    function_output = _record("function_output")

    def fatal(self, error: ErrorEvent) -> bool:
        return error.kind == "gone"


class ToyModel:
    async def start(self) -> str:
        return "toy://127.0.0.1/"

    async def stop(self) -> None:
        pass


@pytest.fixture
def toy(loop, monkeypatch):
    monkeypatch.setitem(providers.ADAPTERS, "toy", ToyUpstream)
    INSTANCES.clear()
    harness = SessionHarness(loop, ToyModel(), turn={"type": "none"},
                             realtime={"provider": "toy", "greeting": "Say hello",
                                       "reconnect_backoff_min_ms": 10, "reconnect_backoff_max_ms": 20})
    yield harness
    harness.close()


def emit(harness, event) -> None:
    harness.on_loop(harness.session.client.on_event, event)


def wait(predicate, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.002)


def agent_audio(ms: int) -> bytes:
    return (np.full(24 * ms, 8000, dtype="<i2")).tobytes()  # pcm16 at 24 kHz


def test_an_answer_plays_and_the_one_cancel_path_reaches_any_adapter(toy):
    """The greeting is asked for with its instructions; the answer plays; interrupt() silences the next
    frame, then the adapter is told cancel(r1) and truncate(i1, exactly the ms played); late audio is refused."""
    toy.session.greet()
    up = INSTANCES[0]
    wait(lambda: ("create_response", "Say hello") in up.commands)
    emit(toy, ResponseCreated("r1"))
    emit(toy, AudioDelta("r1", "i1", 0, agent_audio(400)))
    frames = [toy.session.next_frame() for _ in range(10)]
    assert all(f != SILENT for f in frames)
    toy.session.interrupt("interrupted", source="test")
    assert toy.session.next_frame() == SILENT
    wait(lambda: any(c[0] == "truncate" for c in up.commands))
    assert ("cancel", "r1") in up.commands
    assert [c for c in up.commands if c[0] == "truncate"] == [("truncate", "i1", 200)]
    emit(toy, AudioDelta("r1", "i1", 0, agent_audio(200)))  # in flight when the cancel went
    assert all(toy.session.next_frame() == SILENT for _ in range(10))
    emit(toy, ResponseDone("r1", "cancelled", "client_cancelled"))
    assert toy.wait_log("response.done")["status"] == "cancelled"


def test_turns_tools_and_updates_go_through_the_interface(toy):
    """commit_turn, an unknown function call, update_model and clear_turn become the neutral commands."""
    up = INSTANCES[0]
    toy.session.commit_turn()
    wait(lambda: ("commit_input",) in up.commands)
    emit(toy, FunctionCall("r2", "i2", "call_9", "no_such_tool", "{}"))
    toy.session.update_model(instructions="be brief")
    toy.session.clear_turn()
    wait(lambda: ("clear_input",) in up.commands)
    names = [c[0] for c in up.commands]
    assert names == ["commit_input", "create_response", "function_output", "create_response",
                     "update_session", "clear_input"]
    output = next(c for c in up.commands if c[0] == "function_output")
    assert output[1] == "call_9" and "no_such_tool" in output[2]
    update = next(c for c in up.commands if c[0] == "update_session")
    assert update[1].instructions == "be brief"
    assert up.audio_bytes == 0  # no caller frames were fed


def test_an_error_the_adapter_calls_fatal_reconnects_with_a_new_adapter(toy):
    """fatal(error) true: the session drops that upstream and a fresh adapter of the same provider takes over;
    a discarded turn is only logged."""
    emit(toy, TurnDiscarded("u1"))
    assert toy.wait_log("turn_discarded")["item_id"] == "u1"
    emit(toy, ErrorEvent(code=None, message="session lost", event_id=None, kind="refused"))
    assert len(INSTANCES) == 1
    emit(toy, ErrorEvent(code=None, message="session lost", event_id=None, kind="gone"))
    toy.wait_log("upstream_restored")
    assert len(INSTANCES) == 2 and toy.session.client is INSTANCES[1]
    assert toy.ended == []
