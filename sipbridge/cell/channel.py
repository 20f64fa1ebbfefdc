"""The supervisor's side of the local control channel: HTTP to each worker over a unix socket.

Worker ``i`` of a cell serves its ordinary API (``sipbridge/app``) on the unix socket
:func:`socket_path` ``(workdir, i)`` instead of ``api.listen``: the socket lives in the
supervisor's private working directory (mode 0700, the socket itself 0600), so no TCP port is
taken per worker and nothing off the box, nor another user, can reach it. Every request
carries the cell's internal bearer token, made fresh by the supervisor at each start and handed
to the workers in :data:`TOKEN_ENV` (never logged; the worker removes it from its environment).

:meth:`Channel.request` returns the worker's answer as is, or raises :class:`WorkerDown`
when the worker is not running or does not answer within the timeout.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import aiohttp

SOCKET_ENV = "SIPBRIDGE_CELL_CONTROL_SOCKET"
TOKEN_ENV = "SIPBRIDGE_CELL_CONTROL_TOKEN"
TIMEOUT_S = 5.0
# headers of a worker's answer the cell's API passes on
PASSED_HEADERS = ("Content-Type", "Retry-After", "Location", "WWW-Authenticate", "Allow")


def socket_path(workdir: str | Path, index: int) -> str:
    """Where worker ``index`` listens for the supervisor."""
    return str(Path(workdir) / f"worker-{index}.sock")


class WorkerDown(Exception):
    """The worker could not be asked (not running, restarting, or too slow)."""


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes


class Channel:
    """One aiohttp client session per worker socket (create and use on one event loop)."""

    def __init__(self, workdir: str | Path, token: str, timeout_s: float = TIMEOUT_S):
        self.workdir, self.token, self.timeout_s = workdir, token, timeout_s
        self._sessions: dict[int, aiohttp.ClientSession] = {}

    def session(self, index: int) -> aiohttp.ClientSession:
        s = self._sessions.get(index)
        if s is None or s.closed:
            s = self._sessions[index] = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=socket_path(self.workdir, index)),
                headers={"Authorization": f"Bearer {self.token}"})
        return s

    async def request(self, index: int, method: str, path: str, *, body: bytes | None = None,
                      content_type: str | None = None, query=None,
                      timeout_s: float | None = None) -> Answer:
        headers = {"Content-Type": content_type} if content_type else None
        try:
            async with self.session(index).request(
                    method, "http://worker" + path, data=body, headers=headers, params=query,
                    timeout=aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)) as resp:
                data = await resp.read()
                kept = {k: resp.headers[k] for k in PASSED_HEADERS if k in resp.headers}
                return Answer(resp.status, kept, data)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise WorkerDown(f"worker {index}: {exc.__class__.__name__} {exc}".strip()) from None

    async def json(self, index: int, path: str, timeout_s: float | None = None) -> dict | None:
        """GET ``path`` from worker ``index`` as JSON (any status); None when it is down or
        answers something that is not a JSON object."""
        try:
            answer = await self.request(index, "GET", path, timeout_s=timeout_s)
        except WorkerDown:
            return None
        try:
            data = json.loads(answer.body)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def stream(self, index: int, path: str):
        """An open streaming response (the caller closes it); raises :class:`WorkerDown`."""
        try:
            resp = await self.session(index).get(
                "http://worker" + path, timeout=aiohttp.ClientTimeout(total=None, connect=2))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise WorkerDown(f"worker {index}: {exc.__class__.__name__} {exc}".strip()) from None
        if resp.status != 200:
            resp.release()
            raise WorkerDown(f"worker {index}: {path} answered {resp.status}")
        return resp

    async def close(self) -> None:
        for s in self._sessions.values():
            await s.close()
        self._sessions.clear()


def worker_channel(environ) -> tuple[str, str] | None:
    """In a cell's worker: ``(socket path, token)`` its supervisor handed it, the token taken
    out of ``environ`` (a process the worker starts never sees it); None outside a cell."""
    path, token = environ.get(SOCKET_ENV), environ.pop(TOKEN_ENV, None)
    if not path or not token:
        return None
    return path, token


CONTROL_RATE_PER_S = 100000   # the worker's channel serves only its supervisor: no per-client cap
