"""A recording model server the test can break on command: drop sockets, refuse upgrades.

The server is the embedded echo model (:class:`~sipbridge.embedded.EmbeddedModel`)
in its own process, with a control channel on stdin; each command is answered on stdout with
``ok <command> <count>`` once done, so the test knows when the fault happened::

    drop            abort every open connection's TCP socket (no close frame: code 1006)
    close CODE      close every open connection with CODE (1000 = a deliberate end)
    error CODE [T]  send an ``error`` event with code CODE (``null``: no code) and type T
                    (default ``invalid_request_error``) on every open connection
    refuse N        answer the next N upgrades with HTTP 503 (N = -1: every upgrade, "down")
    accept          stop refusing

Every received client event is recorded (JSON lines) with ``_conn``: the number of the
connection it came on (1, 2, ... in accept order), so a test can tell what reached the
session before a drop from what reached the one after it.

In-process (unit tests on an asyncio loop): ``flaky_model(sink, reply_pcm, pace)`` returns the
server object; ``await model.start()``, ``await model.command("drop")``.

API (test side)::

    FlakyUpstream(tmp_path, reply_wav=None, pace=4.0)   # context manager, like bridge.Upstream
        .url .port .events(type=None, conn=None) .wait_for(type, timeout, count, conn=None)
        .connections() -> list[int]   # connection numbers seen in the record
        .drop() .close(code) .error(code, type) .refuse(n) .accept() -> float (time.time() when done)

CLI: ``python -m tests.support.flaky_upstream --port N --record F [--reply-wav W] [--pace X]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import signal
import subprocess
import sys
import threading
import time
from http import HTTPStatus
from pathlib import Path

from .bridge import PYTHON, Upstream
from .ports import free_tcp_port

REPO = Path(__file__).resolve().parents[2]
_CONN: contextvars.ContextVar[int] = contextvars.ContextVar("conn", default=0)


# -- server side (its own process) -------------------------------------------------------------
def flaky_model(sink, reply_pcm: bytes | None = None, pace: float = 4.0):
    """The server object (in this process): ``sink(record)`` gets each received client event
    with ``_conn``; ``await model.command(line)`` applies a control command (see above)."""
    from websockets.asyncio.server import ServerConnection

    from sipbridge.embedded import EmbeddedModel

    class Recorder:
        def append(self, rec: dict) -> None:
            sink({**rec, "_conn": _CONN.get()})

    class FlakyModel(EmbeddedModel):
        def __init__(self):
            super().__init__(record=Recorder(), reply_pcm=reply_pcm, pace=pace)
            self.open: set[ServerConnection] = set()
            self.accepted = 0
            self.refuse = 0  # upgrades left to refuse; -1: all

        def _authorize(self, connection, request):
            if self.refuse:
                self.refuse -= self.refuse > 0
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "down for the test\n")
            return super()._authorize(connection, request)

        async def _handler(self, ws):
            self.accepted += 1
            _CONN.set(self.accepted)  # this handler's task: its records carry the number
            self.open.add(ws)
            try:
                await super()._handler(ws)
            finally:
                self.open.discard(ws)

        async def command(self, line: str) -> int:
            verb, *args = line.split()
            conns = list(self.open)
            if verb == "drop":
                for ws in conns:
                    ws.transport.abort()
            elif verb == "close":
                await asyncio.gather(*(ws.close(int(args[0]), "test") for ws in conns))
            elif verb == "error":
                code = None if args[0] == "null" else args[0]
                kind = args[1] if len(args) > 1 else "invalid_request_error"
                event = {"type": "error", "event_id": "event_fault",
                         "error": {"type": kind, "code": code, "message": "injected", "param": None,
                                   "event_id": None}}
                await asyncio.gather(*(ws.send(json.dumps(event)) for ws in conns),
                                     return_exceptions=True)
            elif verb == "refuse":
                self.refuse = int(args[0])
            elif verb == "accept":
                self.refuse = 0
            else:
                raise ValueError(f"unknown command {line!r}")
            return len(conns)

    return FlakyModel()


async def _serve(args: argparse.Namespace) -> None:
    from sipbridge.embedded.wav import load_wav_24k

    reply = load_wav_24k(args.reply_wav) if args.reply_wav else None
    record = open(args.record, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    def sink(rec: dict) -> None:
        record.write(json.dumps(rec) + "\n")
        record.flush()

    model = flaky_model(sink, reply, args.pace)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    lines: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.strip())

    threading.Thread(target=read_stdin, daemon=True).start()
    url = await model.start(args.host, args.port)
    print(url, flush=True)

    async def control() -> None:
        while True:
            line = await lines.get()
            if line:
                n = await model.command(line)
                print(f"ok {line} {n}", flush=True)

    task = asyncio.create_task(control())
    await stop.wait()
    task.cancel()
    await model.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.flaky_upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", required=True)
    parser.add_argument("--reply-wav", default=None)
    parser.add_argument("--pace", type=float, default=4.0)
    args = parser.parse_args(argv)
    import structlog
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    asyncio.run(_serve(args))
    return 0


# -- test side ---------------------------------------------------------------------------------
class FlakyUpstream(Upstream):
    """The server above as a subprocess; the recording API of :class:`bridge.Upstream`."""

    def __init__(self, tmp_path: Path, reply_wav: Path | None = None, pace: float = 4.0):
        self.record = Path(tmp_path) / f"flaky-upstream-{time.monotonic_ns()}.jsonl"
        cmd = [PYTHON, "-m", "tests.support.flaky_upstream", "--port", str(free_tcp_port()),
               "--record", str(self.record), "--pace", str(pace)]
        if reply_wav:
            cmd += ["--reply-wav", str(reply_wav)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, cwd=REPO, text=True, bufsize=1)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("ws://"):
            self.stop()
            raise RuntimeError(f"flaky upstream did not start: {self.url!r}")

    def events(self, etype: str | None = None, conn: int | None = None) -> list[dict]:
        return [e for e in super().events(etype) if conn is None or e.get("_conn") == conn]

    def wait_for(self, etype: str, timeout: float = 10.0, count: int = 1,
                 conn: int | None = None) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(etype, conn)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"upstream never received {count} x {etype} (conn {conn})")

    def connections(self) -> list[int]:
        return sorted({e["_conn"] for e in self.events()})

    def _command(self, line: str, timeout: float = 5.0) -> float:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()  # commands answer in order, promptly
        if not reply.startswith(f"ok {line}"):
            raise RuntimeError(f"flaky upstream: {line!r} answered {reply!r}")
        return time.time()

    def drop(self) -> float:
        """Abort every open connection (no close frame); returns the wall time it was done."""
        return self._command("drop")

    def close(self, code: int) -> float:
        return self._command(f"close {code}")

    def error(self, code: str, kind: str = "invalid_request_error") -> float:
        return self._command(f"error {code} {kind}")

    def refuse(self, n: int = -1) -> float:
        """Refuse the next ``n`` upgrades with HTTP 503 (-1: all of them)."""
        return self._command(f"refuse {n}")

    def accept(self) -> float:
        return self._command("accept")

    def stop(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        super().stop()


if __name__ == "__main__":
    sys.exit(main())
