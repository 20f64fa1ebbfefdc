"""The adapter seam: the registry builds a provider's Upstream, and the OpenAI adapter turns the
neutral commands into the OpenAI client events a real (embedded, strict) server receives."""

from __future__ import annotations

import asyncio
import base64
import inspect

import pytest

from sipbridge.config import RealtimeConfig
from sipbridge.embedded import EmbeddedModel
from sipbridge.errors import ConfigError
from sipbridge.realtime import providers
from sipbridge.realtime.events import ErrorEvent, FunctionCall, ResponseCreated, ResponseDone
from sipbridge.realtime.providers.openai import OpenAIUpstream, wire_config
from sipbridge.realtime.upstream import Capabilities, SessionConfig, Tool, Upstream

from .helpers import arun, pcm_ramp, wait_until

VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}


def test_every_registered_provider_builds_an_upstream_with_capabilities():
    """Each name in the registry builds an object with every method of the Upstream interface."""
    rc = RealtimeConfig(provider="azure", azure_deployment="rt", azure_resource="res")
    for name in providers.ADAPTERS:
        upstream = providers.make_upstream(RealtimeConfig(provider=name) if name != "azure" else rc,
                                           "ws://127.0.0.1:9/v1/realtime", "k", SessionConfig(model="m"),
                                           lambda e: None)
        assert isinstance(upstream, Upstream), name
        assert isinstance(upstream.capabilities, Capabilities)
        for method in ("send_audio", "commit_input", "clear_input", "create_response", "cancel", "truncate",
                       "update_session", "function_output", "fatal", "connect", "run", "close"):
            assert callable(getattr(upstream, method)), (name, method)
    assert providers.AVAILABLE == tuple(providers.ADAPTERS)


def test_the_interface_names_no_provider_event():
    """The Upstream interface's source names no OpenAI wire event (input_audio_buffer, response.create, ...)."""
    from sipbridge.realtime import upstream as module
    source = inspect.getsource(module.Upstream)
    for wire in ("input_audio_buffer", "response.create", "response.cancel", "session.update",
                 "conversation.item", "function_call_output"):
        assert wire not in source


def test_an_unknown_provider_is_a_config_error_naming_the_key():
    """make_upstream of a provider with no adapter raises ConfigError on realtime.provider."""
    with pytest.raises(ConfigError) as err:
        providers.make_upstream(RealtimeConfig(provider="nope"), "ws://127.0.0.1:9", None,
                                SessionConfig(model="m"), lambda e: None)
    assert err.value.key == "realtime.provider"


def test_azure_and_openai_get_their_own_url_and_auth():
    """openai adds ?model= and a bearer key; azure keeps its URL whole and sends the api-key header."""
    openai = providers.make_upstream(RealtimeConfig(model="gpt-x"), "wss://api.example/v1/realtime", "sk",
                                     SessionConfig(model="gpt-x"), lambda e: None)
    azure = providers.make_upstream(
        RealtimeConfig(provider="azure", azure_resource="res", azure_deployment="dep"),
        "wss://res.openai.azure.com/openai/v1/realtime?model=dep", "az", SessionConfig(model="m"), lambda e: None)
    assert openai.url == "wss://api.example/v1/realtime?model=gpt-x"
    assert ("Authorization", "Bearer sk") in openai._headers()
    assert azure.url == "wss://res.openai.azure.com/openai/v1/realtime?model=dep"
    assert ("api-key", "az") in azure._headers()


def test_server_vad_is_told_the_bridge_owns_the_cancel_and_the_session_keeps_its_config():
    """wire_config adds create_response true / interrupt_response false to server_vad only; session is the given config."""
    cfg = SessionConfig(model="m", turn_detection=dict(VAD))
    assert wire_config(cfg).turn_detection == {**VAD, "create_response": True, "interrupt_response": False}
    assert wire_config(SessionConfig(model="m")).turn_detection is None
    up = OpenAIUpstream("ws://127.0.0.1:9", "m", None, cfg, lambda e: None)
    assert up.session is cfg


def test_fatal_follows_the_error_type_and_code():
    """A server_error (any code) or session_expired is fatal; an invalid_request_error is not."""
    up = OpenAIUpstream("ws://127.0.0.1:9", "m", None, SessionConfig(model="m"), lambda e: None)
    assert up.fatal(ErrorEvent(code=None, message="x", event_id=None, kind="server_error"))
    assert up.fatal(ErrorEvent(code="session_expired", message="x", event_id=None, kind="invalid_request_error"))
    assert not up.fatal(ErrorEvent(code="response_cancel_not_active", message="x", event_id=None,
                                   kind="invalid_request_error"))


def test_the_neutral_commands_reach_the_strict_server_as_openai_events():
    """Through a real socket: audio, commit, a response with its instructions, cancel, a server_vad update arrive as the OpenAI client events, and nothing is refused."""
    record, events = [], []

    async def body():
        model = EmbeddedModel(record=record, pace=2.0)
        url = await model.start()
        up = providers.make_upstream(RealtimeConfig(), url, None, SessionConfig(model="m"), events.append)
        await up.connect()
        reader = asyncio.create_task(up.run())
        try:
            audio = pcm_ramp(300)
            up.send_audio(audio)
            up.commit_input()
            up.create_response(instructions="answer briefly")
            await wait_until(lambda: any(isinstance(e, ResponseCreated) for e in events), 5)
            rid = next(e.response_id for e in events if isinstance(e, ResponseCreated))
            await wait_until(lambda: any(r["type"] == "conversation.item.create" or
                                         r["type"].startswith("response.") for r in record), 5)
            up.cancel(rid)
            up.cancel(None)   # no response known: nothing is sent
            await wait_until(lambda: any(isinstance(e, ResponseDone) for e in events), 5)
            up.update_session(SessionConfig(model="m", turn_detection=dict(VAD)))
            up.clear_input()
            await wait_until(lambda: any(r["type"] == "input_audio_buffer.clear" for r in record), 5)
        finally:
            await up.close()
            await asyncio.gather(reader, return_exceptions=True)
            await model.stop()
        types = [r["type"] for r in record]
        appended = b"".join(base64.b64decode(r["audio"]) for r in record if r["type"] == "input_audio_buffer.append")
        assert appended == audio
        assert types.index("input_audio_buffer.commit") < types.index("response.create")
        assert [r for r in record if r["type"] == "response.create"][0]["response"] == {
            "instructions": "answer briefly"}
        assert [r["response_id"] for r in record if r["type"] == "response.cancel"] == [rid]
        updates = [r["session"] for r in record if r["type"] == "session.update"]
        assert updates[-1]["audio"]["input"]["turn_detection"] == {
            **VAD, "create_response": True, "interrupt_response": False}
        assert [e for e in events if isinstance(e, ErrorEvent)] == []

    arun(body())


def test_truncate_sends_what_was_heard_and_deletes_an_unheard_item():
    """truncate(item, 120) is conversation.item.truncate at 120 ms; truncate(item, 0) is conversation.item.delete."""
    record = []

    async def body():
        model = EmbeddedModel(record=record, pace=2.0)
        url = await model.start()
        up = providers.make_upstream(RealtimeConfig(), url, None, SessionConfig(model="m"), lambda e: None)
        await up.connect()
        reader = asyncio.create_task(up.run())
        try:
            up.truncate("item_a", 120)
            up.truncate("item_b", 0)
            await wait_until(lambda: any(r["type"] == "conversation.item.delete" for r in record), 5)
        finally:
            await up.close()
            await asyncio.gather(reader, return_exceptions=True)
            await model.stop()
        cuts = [(r["type"], r["item_id"], r.get("audio_end_ms")) for r in record
                if r["type"].startswith("conversation.item.")]
        assert cuts == [("conversation.item.truncate", "item_a", 120), ("conversation.item.delete", "item_b", None)]

    arun(body())


def test_a_function_output_answers_the_models_call_and_a_response_follows():
    """The model calls a tool; function_output with its call_id and create_response get a completed answer, no error."""
    record, events = [], []

    async def body():
        model = EmbeddedModel(record=record, pace=4.0, call_tool="lookup", tool_args='{"q": "x"}')
        url = await model.start()
        cfg = SessionConfig(model="m", tools=(Tool("lookup", "Look it up"),))
        up = providers.make_upstream(RealtimeConfig(), url, None, cfg, events.append)
        await up.connect()
        reader = asyncio.create_task(up.run())
        try:
            up.send_audio(pcm_ramp(300))
            up.commit_input()
            up.create_response()
            await wait_until(lambda: any(isinstance(e, FunctionCall) for e in events), 5)
            call = next(e for e in events if isinstance(e, FunctionCall))
            up.function_output(call.call_id, '{"found": 1}')
            up.create_response()
            await wait_until(lambda: len([e for e in events if isinstance(e, ResponseDone)]) == 2, 5)
        finally:
            await up.close()
            await asyncio.gather(reader, return_exceptions=True)
            await model.stop()
        assert call.name == "lookup" and call.arguments == '{"q": "x"}'
        outputs = [r["item"] for r in record if r["type"] == "conversation.item.create"]
        assert outputs == [{"type": "function_call_output", "call_id": call.call_id, "output": '{"found": 1}'}]
        assert [e.status for e in events if isinstance(e, ResponseDone)] == ["completed", "completed"]
        assert [e for e in events if isinstance(e, ErrorEvent)] == []

    arun(body())
