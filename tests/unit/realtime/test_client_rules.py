"""RealtimeClient keeps the strict server's rules on a real socket: one response at a time, fixed voice."""

from __future__ import annotations

import asyncio

from sipbridge.embedded import EmbeddedModel
from sipbridge.realtime import protocol as p
from sipbridge.realtime.client import RealtimeClient
from sipbridge.realtime.events import AudioDelta, ErrorEvent, ResponseDone, SessionUpdated

from .helpers import arun, pcm_ramp, wait_until


async def _session(record, events, cfg):
    model = EmbeddedModel(record=record, pace=20.0)
    url = await model.start()
    client = RealtimeClient(url, "m", None, cfg, events.append)
    await client.connect()
    return model, client, asyncio.create_task(client.run())


def test_a_turn_committed_while_a_response_starts_is_answered_after_it():
    """commit + response.create right after another response.create: the second waits for the first's done,
    so the server refuses nothing and both responses complete (the caller is answered)."""
    record, events = [], []

    async def body():
        model, client, reader = await _session(record, events, p.SessionConfig(model="m"))
        try:
            client.send(p.response_create(instructions="greet"))   # the greeting, starting
            client.send_audio(pcm_ramp(300))
            client.send(p.input_audio_commit())                    # the caller's turn ends at once
            client.send(p.response_create())
            await wait_until(lambda: len([e for e in events if isinstance(e, ResponseDone)]) == 2, 10)
            done = [e for e in events if isinstance(e, ResponseDone)]
            assert [d.status for d in done] == ["completed", "completed"]
            assert [e for e in events if isinstance(e, ErrorEvent)] == []
            assert len([r for r in record if r["type"] == "response.create"]) == 2
            assert client.responses.held == 1 and not client.responses.busy
        finally:
            await client.close()
            await asyncio.gather(reader, return_exceptions=True)
            await model.stop()

    arun(body())


def test_without_the_gate_the_strict_server_refuses_the_second_create():
    """The same two creates written straight to the socket: the server answers the second with
    conversation_already_has_active_response (what the gate prevents)."""
    record, events = [], []

    async def body():
        model, client, reader = await _session(record, events, p.SessionConfig(model="m"))
        try:
            client.responses.offer = lambda event: True   # the gate switched off
            client.send(p.response_create())
            client.send(p.response_create())
            await wait_until(lambda: any(isinstance(e, ErrorEvent) for e in events), 5)
            (err,) = [e for e in events if isinstance(e, ErrorEvent)]
            assert (err.kind, err.code) == ("invalid_request_error", "conversation_already_has_active_response")
        finally:
            await client.close()
            await asyncio.gather(reader, return_exceptions=True)
            await model.stop()

    arun(body())


def test_an_update_after_audio_keeps_its_instructions_and_drops_the_unchanged_voice():
    """After the model spoke, session.update with the same voice and new instructions is accepted:
    the voice is left out, the instructions apply."""
    record, events = [], []

    async def body():
        cfg = p.SessionConfig(model="m", voice="marin", instructions="first")
        model, client, reader = await _session(record, events, cfg)
        try:
            client.send(p.response_create())
            await wait_until(lambda: any(isinstance(e, ResponseDone) for e in events), 10)
            assert any(isinstance(e, AudioDelta) for e in events)
            client.send(p.session_update(p.SessionConfig(model="m", voice="marin", instructions="second")))
            await wait_until(lambda: len([e for e in events if isinstance(e, SessionUpdated)]) == 2, 5)
            update = [r for r in record if r["type"] == "session.update"][-1]
            assert "voice" not in update["session"]["audio"]["output"]
            assert update["session"]["instructions"] == "second"
            session = [e for e in events if isinstance(e, SessionUpdated)][-1].session
            assert session["instructions"] == "second" and session["audio"]["output"]["voice"] == "marin"
            assert [e for e in events if isinstance(e, ErrorEvent)] == []
        finally:
            await client.close()
            await asyncio.gather(reader, return_exceptions=True)
            await model.stop()

    arun(body())
