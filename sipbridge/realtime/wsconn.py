"""One WebSocket to a model provider: the plumbing every realtime adapter shares.

:class:`SocketSession` owns the socket's life cycle, and a subclass adds only its protocol's
message mapping. ``connect()`` dials (``_target()``, ``_headers()``) and runs the subclass's
``_handshake(ws)`` under one deadline, turning every failure into an
:class:`~sipbridge.realtime.upstream.UpstreamError` in the subclass's wording (``_timed_out``,
``_refused``, ``_unreachable``, ``_closed_in_setup``) and dropping a half-open connection at
once. ``_send()`` queues a message and a writer task sends the queue in order, counting
``events_out``; a ``None`` queued ends the writer once everything before it is sent.
``run()`` reads until the socket closes, handing each message to ``_ingest``, logs the end
(``_ended``) and returns :class:`~sipbridge.realtime.upstream.CloseInfo` for a deliberate end
(1000/1001, or our ``close()``), else raises ``UpstreamError`` with the close code
(``_dropped``). ``close()`` stops the writer (and ``_tasks()``) and closes the socket.

State: new -> connecting -> open -> closed, or connecting -> failed. Messages sent before the
socket is open wait in the queue; after a failed connect, ``close()`` or a stopped writer they
are counted in ``dropped``. Reconnecting is not done here: a lost socket is the caller's
(:class:`~sipbridge.realtime.link.UpstreamLink`, with :class:`~sipbridge.backoff.Backoff`) to
replace with a new session. Everything runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State

from sipbridge.realtime.upstream import CloseInfo, UpstreamError

MAX_MESSAGE_BYTES = 16 * 2**20
_HINTS = {
    401: "API key missing or invalid",
    403: "API key has no access to this model or project",
    404: "wrong URL or unknown model",
    429: "rate limited or out of quota",
}


def is_loopback(url: str) -> bool:
    """True when ``url``'s host is localhost or a loopback address (no proxy is asked then)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refusal(url: str, status: int, body: bytes | None) -> str:
    """An HTTP refusal of the upgrade, said with its phrase, a hint and the start of the body."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    hint = f" ({_HINTS[status]})" if status in _HINTS else ""
    text = f"upstream {url} refused the WebSocket upgrade: HTTP {status} {phrase}{hint}"
    snippet = (body or b"")[:200].decode("utf-8", "replace").strip()
    return f"{text}: {snippet}" if snippet else text


def abort(ws: ClientConnection | None) -> None:
    """Drop a half-open connection on an error path without waiting."""
    if ws is not None and ws.transport is not None:
        ws.transport.abort()


class SocketSession:
    """One provider WebSocket; see the module docstring. Subclasses set the class attributes
    and implement ``_handshake`` and ``_ingest``; the wording hooks default to OpenAI's."""

    name = "SocketSession"                  # in the errors of a misused or abandoned connect()
    writer_name = "realtime-writer"         # the writer task's name
    max_message_bytes = MAX_MESSAGE_BYTES
    use_proxy = True                        # the environment's proxy for a non-loopback URL
    yield_between_messages = False          # let the loop run between two messages read
    setup_reply = "session.updated"         # what ends the handshake, for the timeout error
    setup_stage = "session setup"           # the handshake, for a close during it
    peer = "upstream"                       # the far end, in the errors

    def __init__(self, url: str, api_key: str | None, connect_timeout: float, log: Any):
        self.url = url                      # logged: never carries the key
        self._api_key = api_key
        self._timeout = connect_timeout
        self._log = log
        self._ws: ClientConnection | None = None
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._state = "new"
        self.events_out = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Messages queued but not yet written to the socket."""
        return self._queue.qsize()

    @property
    def connected(self) -> bool:
        return self._state == "open" and self._ws is not None and self._ws.state is State.OPEN

    # -- what a subclass supplies ------------------------------------------------------------
    def _target(self) -> str:
        """The URL dialled (``self.url`` plus what must not be logged)."""
        return self.url

    def _headers(self) -> list[tuple[str, str]]:
        return [("Authorization", f"Bearer {self._api_key}")] if self._api_key else []

    async def _handshake(self, ws: ClientConnection, *args: Any) -> None:
        """Configure the session on the new socket; return once the provider accepted it."""
        raise NotImplementedError

    def _ingest(self, message: str | bytes) -> None:
        """One message read from the socket."""
        raise NotImplementedError

    def _on_open(self) -> None:
        self._log.info("realtime.connected")

    def _ended(self, code: int | None, reason: str) -> None:
        """The socket closed (``run()``): log it."""
        self._log.info("realtime.closed", code=code, reason=reason)

    def _timed_out(self, opened: bool) -> UpstreamError:
        stage = f"no {self.setup_reply}" if opened else "could not open the WebSocket"
        return UpstreamError(f"{stage} from {self.peer} {self.url} within {self._timeout:g} s")

    def _refused(self, status: int, body: bytes | None) -> UpstreamError:
        return UpstreamError(refusal(self.url, status, body), status=status)

    def _unreachable(self, exc: Exception) -> UpstreamError:
        return UpstreamError(f"cannot connect to {self.peer} {self.url}: {exc}")

    def _closed_in_setup(self, code: int | None, reason: str, exc: ConnectionClosed) -> UpstreamError:
        text = f"{self.peer} {self.url} closed during {self.setup_stage} (code {code}) {reason}"
        return UpstreamError(text.rstrip(), close_code=code)

    def _dropped(self, code: int | None, reason: str) -> UpstreamError:
        return UpstreamError(f"{self.peer} {self.url} dropped the connection (code {code}) {reason}".rstrip(),
                             close_code=code)

    def _write_failed(self) -> bool:
        """The socket refused a write (it is closing): count what is lost; True keeps the
        writer going (for a socket that is being replaced), False stops it."""
        self.dropped += 1 + self._queue.qsize()
        return False

    def _tasks(self) -> tuple[asyncio.Task | None, ...]:
        """The tasks ``close()`` cancels."""
        return (self._writer,)

    # -- the life cycle ------------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the socket and run the handshake within the connect timeout; raises
        ``UpstreamError`` on any failure (see the module docstring)."""
        if self._state != "new":
            raise UpstreamError(f"connect() on a {self.name} in state {self._state!r}; make a new one")
        self._state = "connecting"
        try:
            ws = await self._open()
        except BaseException:
            if self._state == "connecting":
                self._state = "failed"
            self.dropped += self._queue.qsize()
            raise
        if self._state == "closed":  # close() was called while we were connecting
            await ws.close()
            raise UpstreamError(f"{self.name} closed while connecting")
        self._ws, self._state = ws, "open"
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name=self.writer_name)
        self._on_open()

    async def _open(self, *args: Any) -> ClientConnection:
        """Dial + ``_handshake(ws, *args)`` under one deadline; every failure is UpstreamError."""
        ws: ClientConnection | None = None
        try:
            async with asyncio.timeout(self._timeout):
                ws = await ws_connect(
                    self._target(),
                    additional_headers=self._headers(),
                    open_timeout=None,
                    close_timeout=2.0,
                    max_size=self.max_message_bytes,
                    proxy=True if self.use_proxy and not is_loopback(self.url) else None,
                    # no permessage-deflate: zlib on every append and delta cost more CPU than
                    # the bridge's whole send path (py-spy, bench/README.md), to save ~25 % of
                    # the bytes of base64 audio
                    compression=None,
                )
                await self._handshake(ws, *args)
                return ws
        except TimeoutError:
            abort(ws)
            raise self._timed_out(ws is not None) from None
        except InvalidStatus as exc:
            raise self._refused(exc.response.status_code, exc.response.body) from None
        except (OSError, InvalidURI, InvalidHandshake) as exc:
            abort(ws)
            raise self._unreachable(exc) from None
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            reason = exc.rcvd.reason if exc.rcvd else ""
            raise self._closed_in_setup(code, reason, exc) from None
        except BaseException:
            abort(ws)
            raise

    def _refuse(self) -> bool:
        """True (and counted in ``dropped``) when the socket takes no more messages."""
        if self._state in ("failed", "closed") or (self._writer is not None and self._writer.done()):
            self.dropped += 1
            return True
        return False

    def _send(self, message: dict[str, Any]) -> None:
        """Queue one message (a dict, sent as JSON). Never blocks."""
        if not self._refuse():
            self._queue.put_nowait(json.dumps(message))

    async def _write_loop(self) -> None:
        while True:
            text = await self._queue.get()
            if text is None:
                return
            try:
                await self._ws.send(text)
            except ConnectionClosed:
                if self._write_failed():
                    continue
                return
            self.events_out += 1

    async def _read(self, ws: ClientConnection) -> tuple[int | None, str]:
        """Hand every message of ``ws`` to ``_ingest`` until it closes; its close code and reason."""
        try:
            async for message in ws:
                self._ingest(message)
                if self.yield_between_messages:
                    await asyncio.sleep(0)
        except ConnectionClosed:
            pass
        return (None if ws.close_code is None else int(ws.close_code)), ws.close_reason or ""

    async def run(self) -> CloseInfo:
        """Read until the socket closes; :class:`CloseInfo` on a deliberate end (1000/1001 or
        our ``close()``), else ``UpstreamError`` with ``close_code``."""
        ws = self._ws
        if ws is None:
            raise UpstreamError("run() before connect()")
        code, reason = await self._read(ws)
        self._ended(code, reason)
        if self._state == "closed" or code in (1000, 1001):
            return CloseInfo(code, reason)
        raise self._dropped(code, reason)

    async def close(self) -> None:
        """Stop the writer and close the socket (bounded by a 2 s close timeout).
        Idempotent; queued messages are dropped and counted."""
        if self._state == "closed":
            return
        self._state = "closed"
        self.dropped += self._queue.qsize()
        for task in self._tasks():
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
