"""Twilio Media Streams' WebSocket messages, both ways, and the adapter's bookkeeping. Pure.

Sources: Twilio's "Media Streams - WebSocket Messages" (twilio.com/docs/voice/media-streams/
websocket-messages) and Fonoster's Twilio-compatibility reference (docs.fonoster.com/reference/
twilio-compatibility), which lists the same fields. Every message is a JSON text frame with an
``event`` discriminator. Twilio (here: sipbridge) sends:

* ``connected``: ``{"event", "protocol": "Call", "version": "1.0.0"}``, first, no sequence number;
* ``start`` once: ``sequenceNumber`` (a string counting up from ``"1"`` over every later message),
  ``streamSid``, and ``start`` = {``accountSid``, ``streamSid``, ``callSid``, ``tracks``
  (``["inbound"]``), ``customParameters`` (an object of strings), ``mediaFormat`` =
  {``encoding: "audio/x-mulaw"``, ``sampleRate: 8000``, ``channels: 1``}};
* ``media``: ``media`` = {``track: "inbound"``, ``chunk`` (string, from ``"1"``), ``timestamp``
  (string, ms since the stream started), ``payload`` (base64 µ-law, no header)}; 20 ms a chunk;
* ``dtmf``: ``dtmf`` = {``track: "inbound_track"``, ``digit``};
* ``mark``: ``mark`` = {``name``} sent back when the audio the bot queued before its mark has
  been played, or when a ``clear`` dropped it;
* ``stop``: ``stop`` = {``accountSid``, ``callSid``}, last.

The bot sends ``media`` (``streamSid``, ``media.payload``: base64 µ-law 8 kHz), ``mark``
(``mark.name``) and ``clear`` (drop all audio queued for playback), each with the ``streamSid``.
:func:`parse_bot` refuses anything else (another event, a missing or foreign ``streamSid``, bad
base64, a nameless mark) with a reason: the adapter counts and logs it, and the call goes on.

Twilio's bots have no response ids and do their own turn detection: :class:`BotTurns` makes up
one response per burst of bot audio (a new one after a ``clear`` or after ``gap_ms`` without
audio), and :class:`Marks` holds each mark at its place in the bot's audio until the playout has
handed that much of the item to RTP (and the packets carrying it have gone out).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sipbridge.realtime.events import AudioDelta, AudioDone, ResponseCreated, ResponseDone, ServerEvent

MEDIA_FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
CHUNK_BYTES = 160          # 20 ms of 8 kHz µ-law, one byte a sample
CHUNK_MS = 20


def sid(prefix: str, seed: str) -> str:
    """A Twilio-shaped id (``CA``/``MZ``/``AC`` + 32 hex digits), stable for ``seed``."""
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:32]


class Outbound:
    """The messages sipbridge sends, playing Twilio's part (numbering and chunking kept here)."""

    def __init__(self, stream_sid: str, call_sid: str, account_sid: str, parameters: dict[str, str]):
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.account_sid = account_sid
        self.parameters = dict(parameters)
        self.sequence = 0
        self.chunks = 0
        self._rest = b""   # caller audio short of a whole 20 ms chunk

    def _next(self, event: str, **body: Any) -> dict[str, Any]:
        self.sequence += 1
        return {"event": event, "sequenceNumber": str(self.sequence), "streamSid": self.stream_sid, **body}

    @staticmethod
    def connected() -> dict[str, Any]:
        return {"event": "connected", "protocol": "Call", "version": "1.0.0"}

    def start(self) -> dict[str, Any]:
        return self._next("start", start={
            "accountSid": self.account_sid, "streamSid": self.stream_sid, "callSid": self.call_sid,
            "tracks": ["inbound"], "customParameters": dict(self.parameters),
            "mediaFormat": dict(MEDIA_FORMAT)})

    def media(self, ulaw: bytes) -> list[dict[str, Any]]:
        """Caller µ-law (any length) as whole 20 ms ``media`` messages; a remainder waits."""
        data = self._rest + ulaw
        whole = len(data) - len(data) % CHUNK_BYTES
        self._rest = data[whole:]
        out = []
        for off in range(0, whole, CHUNK_BYTES):
            self.chunks += 1
            out.append(self._next("media", media={
                "track": "inbound", "chunk": str(self.chunks),
                "timestamp": str((self.chunks - 1) * CHUNK_MS),
                "payload": base64.b64encode(data[off:off + CHUNK_BYTES]).decode("ascii")}))
        return out

    def dtmf(self, digit: str) -> dict[str, Any]:
        return self._next("dtmf", dtmf={"track": "inbound_track", "digit": digit})

    def mark(self, name: str) -> dict[str, Any]:
        return self._next("mark", mark={"name": name})

    def stop(self) -> dict[str, Any]:
        return self._next("stop", stop={"accountSid": self.account_sid, "callSid": self.call_sid})


@dataclass(frozen=True)
class BotMedia:
    ulaw: bytes


@dataclass(frozen=True)
class BotMark:
    name: str


@dataclass(frozen=True)
class BotClear:
    pass


@dataclass(frozen=True)
class BotRefused:
    reason: str


BotMessage = BotMedia | BotMark | BotClear | BotRefused


def parse_bot(text: str | bytes, stream_sid: str) -> BotMessage:
    """One frame from the bot: its ``media``, ``mark`` or ``clear``, or why it is refused."""
    if isinstance(text, bytes):
        return BotRefused("binary frame (Media Streams messages are JSON text)")
    try:
        msg = json.loads(text)
    except ValueError:
        return BotRefused("not JSON")
    if not isinstance(msg, dict) or not isinstance(msg.get("event"), str):
        return BotRefused("no event")
    event = msg["event"]
    if event not in ("media", "mark", "clear"):
        return BotRefused(f"event {event[:40]!r} is not one a bot sends (media, mark, clear)")
    if msg.get("streamSid") != stream_sid:
        return BotRefused(f"{event}: streamSid {str(msg.get('streamSid'))[:40]!r} is not this stream's")
    if event == "clear":
        return BotClear()
    body = msg.get(event)
    if not isinstance(body, dict):
        return BotRefused(f"{event}: no {event} object")
    if event == "mark":
        name = body.get("name")
        if not isinstance(name, str) or not name:
            return BotRefused("mark: no name")
        return BotMark(name)
    payload = body.get("payload")
    if not isinstance(payload, str):
        return BotRefused("media: no payload")
    try:
        return BotMedia(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        return BotRefused("media: payload is not base64")


class BotTurns:
    """Made-up response and item ids for the bot's audio, so the session can refuse the late
    audio of one it cancelled: a response opens at the bot's first ``media``, and ends at a
    ``clear`` (cancelled) or once ``gap_ms`` passed without audio (completed, via :meth:`tick`)."""

    def __init__(self, prefix: str, gap_ms: int):
        self.prefix = prefix
        self.gap_ms = gap_ms
        self.count = 0
        self.response_id: str | None = None
        self.item_id: str | None = None
        self.samples = 0          # of the open item, 8 kHz
        self._last_ms = 0.0

    def audio(self, ulaw: bytes, now_ms: float) -> list[ServerEvent]:
        events = self.tick(now_ms)
        if self.response_id is None:
            self.count += 1
            self.response_id = f"{self.prefix}-r{self.count}"
            self.item_id = f"{self.prefix}-i{self.count}"
            self.samples = 0
            events.append(ResponseCreated(self.response_id))
        self.samples += len(ulaw)
        self._last_ms = now_ms
        events.append(AudioDelta(self.response_id, self.item_id, 0, ulaw))
        return events

    def tick(self, now_ms: float) -> list[ServerEvent]:
        """End the open response when the bot has been silent for ``gap_ms``."""
        if self.response_id is not None and now_ms - self._last_ms >= self.gap_ms:
            return self._end("completed", None)
        return []

    def clear(self) -> list[ServerEvent]:
        """The bot's ``clear``: the open response is cancelled (``interrupted``)."""
        return self._end("cancelled", "interrupted") if self.response_id is not None else []

    def _end(self, status: str, reason: str | None) -> list[ServerEvent]:
        rid, item = self.response_id, self.item_id
        self.response_id = None
        return [AudioDone(rid, item), ResponseDone(rid, status, reason)]

    def position(self) -> tuple[str, int] | None:
        """Where a mark sent now sits: the end of the bot's audio so far, as (item, its 8 kHz
        samples); None before any audio."""
        return (self.item_id, self.samples) if self.item_id is not None else None


PLAYOUT_LAG_FRAMES = 2
"""Frames a mark waits after the last sample before it was handed to RTP: the frame holding
that sample goes out with the next packet (the conference bridge holds one frame), and the
resamplers' group delay (8 -> 16 kHz here, 16 -> 8 kHz in pjmedia) carries its last few
milliseconds into the packet after that (measured on loopback: ~6 ms)."""


class Marks:
    """The bot's marks, each at (item, 8 kHz samples into it); released in order once the
    playout has handed that much of the item to RTP and :data:`PLAYOUT_LAG_FRAMES` more frames
    have gone out, or all at once when the audio is dropped."""

    def __init__(self) -> None:
        self._pending: deque[list] = deque()   # [name, item, samples, frame it is due at]

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, name: str, position: tuple[str, int] | None) -> list[str]:
        """Hold mark ``name``; with no audio before it (``position`` None) it is due now."""
        if position is None and not self._pending:
            return [name]
        item, samples = position if position is not None else self._pending[-1][1:3]
        self._pending.append([name, item, samples, None])
        return []

    def due(self, played_ms: Callable[[str], int], frames_out: int) -> list[str]:
        """The marks whose audio has been played: ``played_ms(item)`` (ms of it handed to RTP)
        covers the mark, and ``frames_out`` (frames the playout has sent) has since moved on by
        :data:`PLAYOUT_LAG_FRAMES`."""
        out = []
        while self._pending:
            head = self._pending[0]
            if head[3] is None:
                if played_ms(head[1]) * 8 < head[2]:
                    break
                head[3] = frames_out + PLAYOUT_LAG_FRAMES
            if frames_out < head[3]:
                break
            self._pending.popleft()
            out.append(head[0])
        return out

    def flush(self) -> list[str]:
        """Every mark held (their audio was dropped: the bot is told, as Twilio does on ``clear``)."""
        out = [entry[0] for entry in self._pending]
        self._pending.clear()
        return out
