"""The embedded "echo" model: a local Realtime-protocol server (GA names) that answers when no
model is configured, and the strict test server of the OpenAI adapter.

:class:`EmbeddedModel` (:mod:`.server`) is the asyncio WebSocket shell; :mod:`.echo_core` the
sans-I/O state machine; :mod:`.echo_session` its session object; ``python -m sipbridge.embedded``
the command line. It is a *server*: the bridge's upstream client (:mod:`sipbridge.realtime`)
never imports it, and it imports nothing from the SIP shell.
"""

from sipbridge.embedded.server import EmbeddedModel

__all__ = ["EmbeddedModel"]
