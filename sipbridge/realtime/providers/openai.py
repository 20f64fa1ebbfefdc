"""The OpenAI Realtime adapter (GA, and beta where a provider still speaks it): OpenAI and Azure.

:class:`OpenAIUpstream` is the :class:`~sipbridge.realtime.upstream.Upstream` of the OpenAI
Realtime protocol. The socket, the handshake and the server's rules (one response at a time, the
voice fixed after the first audio) are :class:`~sipbridge.realtime.client.RealtimeClient`'s; the
wire events are :mod:`sipbridge.realtime.protocol`'s builders and :mod:`~sipbridge.realtime.parser`'s
classes. What this module adds is the mapping from the session's neutral commands:

=====================  ========================================================================
command                OpenAI client event
=====================  ========================================================================
send_audio             ``input_audio_buffer.append``
commit_input           ``input_audio_buffer.commit``
clear_input            ``input_audio_buffer.clear``
create_response        ``response.create`` (``response.instructions`` for this one only)
cancel                 ``response.cancel`` of that response (nothing when ``None``)
truncate               ``conversation.item.truncate`` at ``audio_end_ms`` = what was heard, or
                       ``conversation.item.delete`` when nothing was (0 ms is refused)
update_session         ``session.update``
function_output        ``conversation.item.create`` of a ``function_call_output``
=====================  ========================================================================

Server turn detection (``turn_detection`` server_vad) says explicitly that the server answers a
turn it ends (``create_response: true``) but never cancels on its own ``speech_started``
(``interrupt_response: false``): that event also fires on noise, and the bridge's pause-first
barge-in owns the cancel. Azure is the same adapter with its URL and ``api-key`` header
(:func:`sipbridge.realtime.providers.azure_url`, ``client_options``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from sipbridge.realtime import protocol as rt
from sipbridge.realtime.client import RealtimeClient
from sipbridge.realtime.retry import is_fatal_error
from sipbridge.realtime.upstream import Capabilities, ErrorEvent, ServerEvent, SessionConfig

CAPABILITIES = Capabilities(local_turns=True, server_turns=True, truncate=True,
                            server_cancels_on_speech=False,
                            audio_formats=("pcm16", "g711_ulaw", "g711_alaw"))

# the bridge's barge-in policy, said to the server with every server_vad configuration
SERVER_VAD_POLICY = {"create_response": True, "interrupt_response": False}


def wire_config(config: SessionConfig) -> SessionConfig:
    """``config`` as OpenAI is told it: server VAD with the bridge's policy added (keys the
    caller set are kept)."""
    td = config.turn_detection
    if td is None or td.get("type") != "server_vad":
        return config
    return replace(config, turn_detection={**td, **{k: v for k, v in SERVER_VAD_POLICY.items()
                                                    if k not in td}})


class OpenAIUpstream(RealtimeClient):
    """One OpenAI Realtime session behind the neutral interface (see the module docstring)."""

    capabilities = CAPABILITIES

    def __init__(self, url: str, model: str, api_key: str | None, session: SessionConfig,
                 on_event: Callable[[ServerEvent], None], **options: Any):
        super().__init__(url, model, api_key, wire_config(session), on_event, **options)
        self._spec = session

    @property
    def session(self) -> SessionConfig:
        """The configuration as the session gave it (before :func:`wire_config`)."""
        return self._spec

    def commit_input(self) -> None:
        self.send(rt.input_audio_commit())

    def clear_input(self) -> None:
        self.send(rt.input_audio_clear())

    def create_response(self, instructions: str | None = None) -> None:
        self.send(rt.response_create(instructions=instructions))

    def cancel(self, response_id: str | None) -> None:
        if response_id is not None:
            self.send(rt.response_cancel(response_id))

    def truncate(self, item_id: str, heard_ms: int) -> None:
        # the server refuses a truncate at 0 ms: an answer nobody heard is deleted instead
        self.send(rt.item_truncate(item_id, heard_ms) if heard_ms > 0 else rt.item_delete(item_id))

    def update_session(self, config: SessionConfig) -> None:
        self.send(rt.session_update(wire_config(config)))

    def function_output(self, call_id: str, output: str) -> None:
        self.send(rt.function_output(call_id, output))

    def fatal(self, error: ErrorEvent) -> bool:
        return is_fatal_error(error.code, error.kind)


def factory(rc: Any, url: str, api_key: str | None, session: SessionConfig,
            on_event: Callable[[ServerEvent], None], **options: Any) -> OpenAIUpstream:
    """The registry's entry for ``openai`` and ``azure`` (``options``: the provider's auth and
    URL handling, from :func:`sipbridge.realtime.providers.client_options`)."""
    return OpenAIUpstream(url, rc.model, api_key, session, on_event,
                          connect_timeout=rc.connect_timeout_ms / 1000, **options)
