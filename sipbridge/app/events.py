"""Call events for the application: mapped from log events (pure), queued, signed and POSTed.

:func:`to_event` maps one tap event (with the record change it caused, if any) to the public
event, or None: ``call.incoming`` (inbound), ``call.progress`` (outbound: queued, ringing,
busy, ...), ``call.answered``, ``call.transferred``, ``call.ended`` (carrying the call's
record), ``tool.called`` and ``barge_in``. Each has a message id
(``msg_<hex>``) that stays the same on every retry, a ``type``, an ISO ``timestamp`` and
``data`` (always with the call's ``uid``); the body of the POST is that JSON object, signed with
the Standard Webhooks headers (:mod:`sipbridge.app.signing`).

:class:`Outbox` is the pure queue behind ``app.events_url``: bounded (``app.events_queue``; a
full box drops its oldest waiting event and counts it), strictly in order, one message in flight, retried
with exponential backoff and given up (counted) after :data:`ATTEMPTS` tries; time is passed in.
:class:`EventSender` is its aiohttp shell on the worker's loop, and :class:`EventHub` the
loop-side fan-out to the sender and to live ``GET /v1/events`` streams.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import structlog

from . import signing
from .records import END, Update

log = structlog.get_logger("sipbridge.events")

ATTEMPTS = 6               # tries of one message before it is given up
BACKOFF_MIN_S = 0.5        # first retry after this, doubling
BACKOFF_MAX_S = 8.0
SEND_TIMEOUT_S = 5.0       # one POST
DROP_LOG_EVERY_S = 10.0    # "events_dropped" at most this often
TYPES = ("call.incoming", "call.progress", "call.answered", "call.transferred", "call.ended",
         "tool.called", "barge_in")
_BARGE_FIELDS = ("source", "reason", "response_id", "audio_end_ms", "dropped_ms", "paused_by",
                 "onset_to_pause_ms", "onset_to_cancel_ms")
_TOOL_FIELDS = ("name", "function", "tool_call_id", "fn_call_id", "latency_ms", "outcome", "ok",
                "status", "detail", "error", "timed_out")


def new_id() -> str:
    return "msg_" + os.urandom(12).hex()


def _iso(ts) -> str:
    at = ts if isinstance(ts, (int, float)) else 0.0
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds")


def to_event(ev: dict, update: Update | None, uid: str | None,
             make_id: Callable[[], str] = new_id) -> dict | None:
    """The public event for one log event of a call, or None. ``uid`` is the call's bridge id
    (from the record book); events of calls without one are not published."""
    if uid is None:
        return None
    name = ev.get("event")
    rec = update.record if update is not None else None
    if update is not None and update.kind == END:
        kind, data = "call.ended", {"record": rec}
    elif name == "call_incoming" and update is not None and update.kind == "open":
        kind = "call.incoming"
        data = {k: rec.get(k) for k in ("direction", "caller", "called", "trunk", "route",
                                        "source", "sip_call_id")}
    elif update is not None and update.kind == "answer":
        kind, data = "call.answered", {"setup_ms": rec.get("setup_ms")}
    elif name == "outbound_progress":   # an outbound call's queued, ringing, ... (not answered)
        kind = "call.progress"
        data = {k: ev.get(k) for k in ("state", "status", "reason", "caller", "called", "trunk")
                if ev.get(k) is not None}
    elif name == "call_transfer_status" and ev.get("final"):
        kind, data = "call.transferred", {"status": ev.get("status"),
                                          "reason": ev.get("reason"),
                                          "ok": isinstance(ev.get("status"), int)
                                          and 200 <= ev["status"] < 300}
    elif name == "tool_called":
        kind, data = "tool.called", {k: ev[k] for k in _TOOL_FIELDS if k in ev}
    elif name == "barge_in":
        kind, data = "barge_in", {k: ev[k] for k in _BARGE_FIELDS if k in ev}
    else:
        return None
    return {"id": make_id(), "type": kind, "timestamp": _iso(ev.get("ts")),
            "data": {"uid": uid, **data}}


@dataclass
class Message:
    id: str
    body: bytes
    attempt: int = 0          # tries made so far
    due: float = 0.0          # when the next try may start


def backoff_s(attempt: int, low: float = BACKOFF_MIN_S, high: float = BACKOFF_MAX_S) -> float:
    """The wait after the ``attempt``-th failed try (1-based): low, 2 low, 4 low ... high."""
    return min(high, low * (2 ** max(0, attempt - 1)))


@dataclass
class Outbox:
    """The bounded, ordered, retrying queue of one receiver (pure; time passed in)."""

    maxsize: int
    attempts: int = ATTEMPTS
    pending: deque = field(default_factory=deque)
    dropped: int = 0          # refused: the box was full
    given_up: int = 0         # tried ``attempts`` times, never accepted
    delivered: int = 0

    def push(self, msg: Message) -> bool:
        """Queue ``msg``; when full, the oldest message not yet tried goes (the head, perhaps in
        flight, stays), so a receiver that comes back gets the latest events. False: ``msg``
        itself was dropped (a box of one with its head pending)."""
        if len(self.pending) >= self.maxsize:
            self.dropped += 1
            if len(self.pending) < 2:
                return False
            del self.pending[1]
        self.pending.append(msg)
        return True

    def wait_s(self, now: float) -> float | None:
        """Seconds until the head may be sent (0: now); None when empty."""
        if not self.pending:
            return None
        return max(0.0, self.pending[0].due - now)

    def head(self) -> Message | None:
        return self.pending[0] if self.pending else None

    def sent(self, ok: bool, now: float) -> None:
        """The outcome of trying the head: accepted (2xx) or not."""
        msg = self.pending[0]
        msg.attempt += 1
        if ok:
            self.pending.popleft()
            self.delivered += 1
        elif msg.attempt >= self.attempts:
            self.pending.popleft()
            self.given_up += 1
        else:
            msg.due = now + backoff_s(msg.attempt)


class EventSender:
    """POSTs the outbox's messages to ``url`` on the running loop (aiohttp)."""

    def __init__(self, url: str, key: bytes | None, maxsize: int,
                 wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic):
        self.url, self.key = url, key
        self.box = Outbox(maxsize)
        self._wall, self._mono = wall, mono
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._session = None
        self._last_drop_log = -DROP_LOG_EVERY_S
        self._logged_drops = 0

    def start(self) -> None:
        import aiohttp
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_S))
        self._task = asyncio.ensure_future(self._run())

    def push(self, event: dict) -> None:
        """Queue one event (loop thread); a full queue drops its oldest waiting event (counted,
        logged rate-limited)."""
        body = json.dumps(event, separators=(",", ":"), default=str).encode()
        dropped = self.box.dropped
        self.box.push(Message(event["id"], body, due=self._mono()))
        if self.box.dropped != dropped:
            self._log_drops()
        self._wake.set()

    def _log_drops(self) -> None:
        now = self._mono()
        lost = self.box.dropped + self.box.given_up
        if now - self._last_drop_log >= DROP_LOG_EVERY_S and lost > self._logged_drops:
            log.warning("events_dropped", dropped=self.box.dropped, given_up=self.box.given_up,
                        pending=len(self.box.pending), url=self.url)
            self._last_drop_log, self._logged_drops = now, lost

    async def _run(self) -> None:
        while True:
            wait = self.box.wait_s(self._mono())
            if wait is None or wait > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
                continue
            msg = self.box.head()
            ok = await self._post(msg)
            self.box.sent(ok, self._mono())
            if not ok and msg.attempt >= self.box.attempts:
                self._log_drops()

    async def _post(self, msg: Message) -> bool:
        headers = signing.headers(self.key, msg.id, int(self._wall()), msg.body)
        try:
            async with self._session.post(self.url, data=msg.body, headers=headers) as resp:
                await resp.read()
                return 200 <= resp.status < 300
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - refused, reset, timeout: retried with backoff
            return False

    async def close(self, deadline_s: float = 2.0) -> None:
        """Try to deliver what is queued for at most ``deadline_s``, then stop."""
        end = self._mono() + deadline_s
        while self.box.pending and self._mono() < end:
            head = self.box.head()
            if head.due > end:   # backing off past the deadline: no more tries
                break
            await asyncio.sleep(0.02)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if self._session is not None:
            await self._session.close()
        log.info("events_closed", delivered=self.box.delivered, dropped=self.box.dropped,
                 given_up=self.box.given_up, left=len(self.box.pending))


class EventHub:
    """Fans events out on the loop: to the sender (if any) and to each live stream's queue."""

    STREAM_QUEUE = 256     # events a slow stream client may lag behind before losing some
    MAX_STREAMS = 32       # live streams at once (each holds a queue)

    def __init__(self, loop: asyncio.AbstractEventLoop, sender: EventSender | None = None):
        self.loop, self.sender = loop, sender
        self.streams: set[asyncio.Queue] = set()
        self.stream_dropped = 0
        self.published = 0

    def publish_threadsafe(self, event: dict) -> None:
        """Hand one event to the loop (any thread, never blocks)."""
        try:
            self.loop.call_soon_threadsafe(self._publish, event)
        except RuntimeError:  # the loop is closed: shutting down
            pass

    def _publish(self, event: dict) -> None:
        self.published += 1
        if self.sender is not None:
            self.sender.push(event)
        for q in self.streams:
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                self.stream_dropped += 1

    def open_stream(self) -> asyncio.Queue | None:
        """A new live stream's queue; None when :attr:`MAX_STREAMS` are open already."""
        if len(self.streams) >= self.MAX_STREAMS:
            return None
        q: asyncio.Queue = asyncio.Queue(self.STREAM_QUEUE)
        self.streams.add(q)
        return q

    def close_stream(self, q: asyncio.Queue) -> None:
        self.streams.discard(q)

    def close_streams(self) -> None:
        """End every live stream (any thread): its handler gets ``None`` and returns."""
        def close() -> None:
            for q in self.streams:
                while q.full():
                    q.get_nowait()
                q.put_nowait(None)
        try:
            self.loop.call_soon_threadsafe(close)
        except RuntimeError:
            pass
