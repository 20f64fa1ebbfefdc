"""Embedded "echo" model: a local WebSocket server speaking the Realtime protocol (GA names).

The default model when no API key is configured, so the whole call path works
offline: the caller hears their last committed sentence back, in whichever
audio format the session asked for (pcm16, G.711 µ-law or A-law). With
``turn_detection: {"type": "server_vad", ...}`` in the session it also takes
turns on its own, like the provider: speech_started/stopped from an energy VAD
on the appended audio, then a commit and the echo (see
:mod:`~sipbridge.embedded.echo_core`). Protocol logic is
in :class:`~sipbridge.embedded.echo_core.EchoCore`; this module only does I/O:
one reader loop per connection, one writer task draining an ordered queue (so a
``response.done`` can never overtake a delta already queued, and no delta follows
it), and one pacer task per response sending a 100 ms delta every
``0.1 / pace`` s ("The server will produce audio faster than realtime").

Test options: ``api_key`` (the upgrade must carry ``Authorization: Bearer <key>``,
else HTTP 401), ``azure_deployment`` / ``azure_api_version`` (serve as an Azure OpenAI
deployment: only its URL, the key in ``api-key``; see :mod:`sipbridge.embedded.endpoint`), ``record`` (anything with ``append``; gets every received client
event as its dict plus ``"_recv_t"``: ``time.monotonic()`` at receipt; a frame
that is not a JSON object is recorded as ``{"_recv_t", "_malformed": text}``),
``reply_pcm`` (fixed 24 kHz pcm16 reply instead of the echo, sent in the session's
output format), ``pace``, ``call_tool`` (the first completed response also calls the session's
function of that name, e.g. ``end_call``; several names separated by commas are parallel calls),
``tool_args`` (the arguments of those calls, a JSON text as a model writes it; ``{}``). The
response after function outputs arrived speaks them: beeps for answers, a buzz for errors
(see :func:`~sipbridge.embedded.echo_core.tool_answer`).

CLI (for tests running it as a separate "upstream" process)::

    python -m sipbridge.embedded --host 127.0.0.1 --port N [--api-key K]
        [--record FILE.jsonl] [--reply-wav F] [--pace X] [--call-tool NAME[,NAME...]]
        [--tool-args JSON] [--azure-deployment NAME [--azure-api-version V]]

prints its ``ws://`` URL as the first stdout line, logs to stderr, appends records
as JSON lines (flushed per line), and exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from sipbridge.embedded.echo_core import EchoCore
from sipbridge.embedded.endpoint import azure_refusal, openai_refusal
from sipbridge.embedded.wav import load_wav_24k

MAX_MESSAGE_BYTES = 16 * 2**20


class Recorder(Protocol):
    def append(self, record: dict[str, Any], /) -> None: ...


def _decode(message: str | bytes) -> dict[str, Any] | str:
    """The client event dict, or the reason it is not one."""
    try:
        obj = json.loads(message)
    except (ValueError, RecursionError) as exc:
        return f"not JSON ({type(exc).__name__})"
    return obj if isinstance(obj, dict) else f"top-level JSON is a {type(obj).__name__}, not an object"


class EmbeddedModel:
    """Local echo model server. ``connections`` counts accepted WebSocket
    sessions since ``start()``; ``active_connections`` those open now;
    ``refused`` upgrades rejected with 401."""

    def __init__(self, api_key: str | None = None, record: Recorder | None = None,
                 reply_pcm: bytes | None = None, pace: float = 4.0, chunk_ms: int = 100,
                 call_tool: str | None = None, tool_args: str = "{}",
                 azure_deployment: str | None = None, azure_api_version: str | None = None):
        if not pace > 0:
            raise ValueError(f"pace must be > 0, got {pace!r}")
        self._api_key = api_key
        self._record = record
        self._reply_pcm = reply_pcm
        self._pace = pace
        self._chunk_ms = chunk_ms
        self._call_tool = call_tool
        self._tool_args = tool_args
        self._azure = azure_deployment          # set: only Azure's URL shape and api-key header
        self._azure_version = azure_api_version
        self._server: Server | None = None
        self.url: str | None = None
        self.connections = 0
        self.active_connections = 0
        self.refused = 0
        self._log = structlog.get_logger().bind(component="embedded")

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen and return the ``ws://host:port`` URL (the real port when ``port=0``)."""
        self._server = await serve(self._handler, host, port, process_request=self._authorize,
                                   max_size=MAX_MESSAGE_BYTES)
        bound = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://[{host}]:{bound}" if ":" in host else f"ws://{host}:{bound}"
        self._log.info("embedded.listening", url=self.url, auth=self._api_key is not None, pace=self._pace)
        return self.url

    async def stop(self) -> None:
        """Close every connection (code 1001) and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _authorize(self, connection: ServerConnection, request: Request) -> Response | None:
        """The upgrade's URL and key (see :mod:`sipbridge.embedded.endpoint`): None lets it in."""
        if self._azure is not None:
            refusal = azure_refusal(request.path, request.headers, api_key=self._api_key,
                                    deployment=self._azure, api_version=self._azure_version)
        else:
            refusal = openai_refusal(request.headers, self._api_key)
        if refusal is None:
            return None
        status, body = refusal
        self.refused += 1
        self._log.info("embedded.refused", status=int(status), path=request.path)
        return connection.respond(status, body + "\n")

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.active_connections += 1
        query = parse_qs(urlsplit(ws.request.path).query)
        model = (query.get("model") or query.get("deployment") or ["embedded-echo"])[0]
        log = self._log.bind(conn=self.connections, model=model)
        core = EchoCore(model=model, reply_pcm=self._reply_pcm, chunk_ms=self._chunk_ms,
                        call_tool=self._call_tool, tool_args=self._tool_args)
        out: asyncio.Queue[str] = asyncio.Queue()

        def emit(events: list[dict[str, Any]]) -> None:
            for event in events:  # serialise now: the core may mutate its state later
                out.put_nowait(json.dumps(event))

        tasks = {asyncio.create_task(self._write(ws, out))}
        pacing: str | None = None
        emit(core.greeting())
        try:
            async for message in ws:
                event = _decode(message)
                self._remember(event, message)
                if isinstance(event, str):
                    emit(core.malformed(event))
                    continue
                emit(core.handle(event))  # an append may start a response (server VAD)
                if core.active is not None and core.active.response_id != pacing:
                    pacing = core.active.response_id
                    tasks.add(asyncio.create_task(self._stream(core, pacing, emit)))
        except ConnectionClosed:
            pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.active_connections -= 1
            log.info("embedded.closed", code=None if ws.close_code is None else int(ws.close_code))

    def _remember(self, event: dict[str, Any] | str, message: str | bytes) -> None:
        if self._record is None:
            return
        now = time.monotonic()
        if isinstance(event, dict):
            self._record.append({"_recv_t": now, **event})
        else:
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            self._record.append({"_recv_t": now, "_malformed": text[:500]})

    async def _stream(self, core: EchoCore, response_id: str, emit: Any) -> None:
        """Emit one chunk per ``chunk_ms / pace`` on an absolute schedule (no drift)."""
        loop = asyncio.get_running_loop()
        interval = self._chunk_ms / 1000 / self._pace
        start, n = loop.time(), 0
        while True:
            events = core.next_chunk(response_id)
            if not events:
                return
            emit(events)
            if core.active is None or core.active.response_id != response_id:
                return
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - loop.time()))

    @staticmethod
    async def _write(ws: ServerConnection, out: asyncio.Queue[str]) -> None:
        while True:
            text = await out.get()
            try:
                await ws.send(text)
            except ConnectionClosed:
                return


class _JsonlRecorder:
    """Append records to a JSON-lines file, flushed per line."""

    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    def append(self, record: dict[str, Any], /) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()


async def _serve_until_signal(args: argparse.Namespace) -> None:
    reply = load_wav_24k(args.reply_wav) if args.reply_wav else None
    record = _JsonlRecorder(args.record) if args.record else None
    model = EmbeddedModel(api_key=args.api_key, record=record, reply_pcm=reply, pace=args.pace,
                          call_tool=args.call_tool, tool_args=args.tool_args,
                          azure_deployment=args.azure_deployment, azure_api_version=args.azure_api_version)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    url = await model.start(args.host, args.port)
    sys.stdout.write(url + "\n")
    sys.stdout.flush()
    await stop.wait()
    await model.stop()


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m sipbridge.embedded",
                                     description="Embedded echo Realtime model server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--record", default=None, metavar="FILE.jsonl")
    parser.add_argument("--reply-wav", default=None, metavar="F")
    parser.add_argument("--pace", type=float, default=4.0)
    parser.add_argument("--call-tool", default=None, metavar="NAME[,NAME...]")
    parser.add_argument("--tool-args", default="{}", metavar="JSON")
    parser.add_argument("--azure-deployment", default=None, metavar="NAME",
                        help="serve only Azure's realtime URL of this deployment (api-key header)")
    parser.add_argument("--azure-api-version", default=None, metavar="VERSION",
                        help="with --azure-deployment: the preview URL shape with this api-version")
    args = parser.parse_args(argv)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    asyncio.run(_serve_until_signal(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
