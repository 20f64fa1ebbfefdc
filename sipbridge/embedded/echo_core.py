"""Sans-I/O core of the embedded "echo" model: client event dict in, server event dicts out.

One :class:`EchoCore` per connection. It keeps the input audio buffer, the
conversation items and at most one active response, and answers like the GA
Realtime API. The answer to ``response.create`` is the last committed user
utterance (or a fixed ``reply_pcm``), streamed by repeated calls to
:meth:`EchoCore.next_chunk`; the caller decides when (pacing is I/O). Before the
caller has said anything (a greeting) there is nothing to echo: the answer is a
short two-note :func:`chime`.

Functions: with ``call_tool`` set (a name, or several separated by commas) and
functions of those names in the session's ``tools``, the first completed response
ends with a ``function_call`` item calling each of them (arguments ``tool_args``,
``{}`` by default; several are parallel calls), as a model does when it decides to;
tests use it to drive the bridge's tools (once, so a refused transfer is not asked
for again and again). ``conversation.item.create`` takes a ``function_call_output``
for a call made (or a ``message``) and answers ``conversation.item.created``. The
next response after outputs arrived speaks them (:func:`tool_answer`): a 1 kHz beep
per successful output (``{"beeps": n}`` asks for n, 1-8), then a low 300 Hz buzz
if any output was an error (a JSON object with an ``error`` key, or not JSON), so
a test on the wire hears whether the answer reached the model (the outputs of the
bridge's own ``end_call`` and ``transfer_call`` are not spoken: the echo goes on).

Errors mirror the real server: "If there is no response to cancel, the server
will respond with an error"; "If the audio_end_ms is greater than the actual
audio duration, the server will respond with an error"; "This event will
produce an error if the input audio buffer is empty" (the real server also
refuses less than 100 ms, and so do we); "Conversation already has an active response in
progress" (``conversation_already_has_active_response``) for a second ``response.create``;
"Cannot update a conversation's voice if assistant audio is present" (``cannot_update_voice``:
a ``session.update`` carrying a voice, changed or not, after the first audio delta is refused
whole, nothing of it applied); ``unknown_parameter`` for any field the API does not define (in
the event, the session, or ``response``). Error events are
``{"type": "error", "error": {"type", "code", "message", "param", "event_id"}}``
where ``event_id`` is the offending client event's id. Ids are sequential
(``resp_1``, ``item_2``, ``event_3``) so tests can predict them.

Audio formats: the session's input and output formats (pcm16 at 24 kHz, G.711
µ-law or A-law at 8 kHz; see :mod:`~sipbridge.embedded.echo_session`) are
honoured as the provider does. Appended audio is decoded into linear samples at
the input format's rate; the echo is converted (resampled only when the two
rates differ, then encoded) into the output format when its response starts; a
fixed ``reply_pcm`` (24 kHz pcm16) likewise. Every millisecond figure (commit
minimum, truncation bounds, VAD times) counts samples at the format's own rate,
never bytes. Changing the input format drops the uncommitted buffer (it was in
the old format).

Server VAD: with ``turn_detection: {"type": "server_vad", ...}`` in the session
the core takes turns on its own, as the provider does. :class:`EnergyVad`
judges the appended audio in 20 ms frames by level (speech when a frame's RMS
reaches :func:`threshold_dbfs` of ``threshold``); time is the count of samples
appended since the session began, never a clock. On speech it emits
``input_audio_buffer.speech_started`` (``audio_start_ms`` = onset minus
``prefix_padding_ms``); after ``silence_duration_ms`` without speech,
``input_audio_buffer.speech_stopped`` (``audio_end_ms`` = where that silence
ran out, so it "includes the min_silence_duration_ms"), then it commits the
buffer up to that sample (``input_audio_buffer.committed``, the user item) and,
when ``create_response`` is true and no response is active, answers with
``response.created`` and the echo. A response is cancelled on speech only when
``interrupt_response`` is true (status ``cancelled``, reason ``turn_detected``);
by default that is left to the client.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sipcodecs import StreamResampler

from sipbridge.realtime.audio_format import PCM16, AudioFormat
from sipbridge.embedded.echo_session import (apply_session_update, default_session, input_format_of,
                                             output_format_of, turn_detection_of, unknown_key)

RATE = 24000                          # pcm16's rate, that of ``reply_pcm``
BYTES_PER_MS = RATE * 2 // 1000       # of pcm16
MIN_COMMIT_MS = 100
VAD_FRAME_MS = 20
VAD_FLOOR_DBFS = -70.0  # threshold 0 ...
VAD_SPAN_DB = 60.0      # ... to threshold 1 at -10 dBFS

Event = dict[str, Any]
# each client event's fields besides type and event_id, and response.create's response object
EVENT_FIELDS = {
    "session.update": {"session"},
    "input_audio_buffer.append": {"audio"},
    "input_audio_buffer.commit": set(),
    "input_audio_buffer.clear": set(),
    "response.create": {"response"},
    "response.cancel": {"response_id"},
    "conversation.item.truncate": {"item_id", "content_index", "audio_end_ms"},
    "conversation.item.delete": {"item_id"},
    "conversation.item.create": {"item", "previous_item_id"},
}
RESPONSE_KEYS = {"response": {"instructions", "conversation", "output_modalities", "audio", "tools",
                              "tool_choice", "metadata", "input", "max_output_tokens", "prompt",
                              "modalities", "voice", "temperature"}}


def threshold_dbfs(threshold: float) -> float:
    """Frame level (RMS, dBFS) that counts as speech for a VAD ``threshold`` in [0, 1].

    Linear from -70 dBFS at 0 to -10 dBFS at 1: the default 0.5 is -40 dBFS, under
    the voiced parts of normal phone speech and well over a line's idle noise.
    """
    return VAD_FLOOR_DBFS + VAD_SPAN_DB * threshold


@dataclass(frozen=True)
class VadEvent:
    """``kind`` "started" at ``sample`` (the onset minus the prefix padding) or
    "stopped" at ``sample`` (the end of the silence that ended the turn)."""

    kind: str
    sample: int


class EnergyVad:
    """Level-based turn detection on a pcm16 stream; time is the sample count.

    ``start_sample`` is where the stream's time stands when the VAD is made;
    :meth:`reset` forgets a turn in progress and sets the earliest sample a
    later ``audio_start`` may report (audio before it was committed or cleared).
    """

    def __init__(self, threshold: float, prefix_padding_ms: int, silence_duration_ms: int,
                 rate: int = RATE, start_sample: int = 0, frame_ms: int = VAD_FRAME_MS):
        self.level_dbfs = threshold_dbfs(threshold)
        self._rate = rate
        self._frame = rate * frame_ms // 1000
        self._prefix = prefix_padding_ms * rate // 1000
        self._silence = silence_duration_ms * rate // 1000
        self._pending = bytearray()
        self._at = start_sample       # end of the last judged frame
        self._floor = start_sample
        self._last_loud = start_sample
        self.speaking = False

    @property
    def at_sample(self) -> int:
        """End of the last frame judged (samples)."""
        return self._at

    def ms(self, sample: int) -> int:
        """Milliseconds since the stream began at ``sample`` (floored)."""
        return sample * 1000 // self._rate

    def reset(self, floor_sample: int) -> None:
        """Back to idle; a later onset reports no audio from before ``floor_sample``."""
        self.speaking = False
        self._floor = floor_sample

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """Judge every whole frame now available; returns the events, in order."""
        self._pending += pcm
        frame_bytes = self._frame * 2
        whole = len(self._pending) // frame_bytes * frame_bytes
        if not whole:
            return []
        frames = np.frombuffer(bytes(self._pending[:whole]), dtype="<i2").astype(np.float64)
        del self._pending[:whole]
        power = np.mean((frames.reshape(-1, self._frame) / 32768.0) ** 2, axis=1)
        events: list[VadEvent] = []
        for p in power:
            start, self._at = self._at, self._at + self._frame
            loud = p > 0.0 and 10.0 * math.log10(p) >= self.level_dbfs
            if loud:
                if not self.speaking:
                    self.speaking = True
                    events.append(VadEvent("started", max(self._floor, start - self._prefix)))
                self._last_loud = self._at
            elif self.speaking and self._at - self._last_loud >= self._silence:
                self.speaking = False
                self._floor = self._at
                events.append(VadEvent("stopped", self._at))
        return events


@dataclass
class _Item:
    role: str
    audio_bytes: int = 0          # wire bytes of the item's audio (sent, or kept by a truncate)
    fmt: AudioFormat = PCM16      # ... in this format


@dataclass
class _Response:
    response_id: str
    item_id: str
    audio: bytes                  # wire bytes, in the output format of when it started
    chunk_bytes: int
    pos: int = 0


def chime(rate: int = RATE) -> np.ndarray:
    """Two soft notes (E5 then A5, 150 + 250 ms, peaks at -14 dBFS, faded): the embedded
    model's voice when it has nothing to echo yet, so a greeting is heard on an offline call."""
    notes = []
    for freq, ms in ((659.25, 150), (880.0, 250)):
        t = np.arange(rate * ms // 1000) / rate
        fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
        notes.append(0.2 * np.sin(2 * np.pi * freq * t) * fade)
    return (np.concatenate(notes) * 32767).astype(np.int16)


BEEP_HZ, BEEP_MS, GAP_MS = 1000.0, 120, 120     # tool_answer's beeps ...
BUZZ_HZ, BUZZ_MS = 300.0, 600                   # ... and its error buzz
MAX_BEEPS = 8
BUILT_IN = ("end_call", "transfer_call")        # outputs the bridge answers itself: not spoken


def _tone(freq: float, ms: int, rate: int) -> np.ndarray:
    t = np.arange(rate * ms // 1000) / rate
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    return 0.3 * np.sin(2 * np.pi * freq * t) * fade


def _beeps(output: str) -> int | None:
    """Beeps a successful function output asks for; None when the output is an error."""
    try:
        value = json.loads(output)
    except ValueError:
        return None
    if isinstance(value, dict) and "error" in value:
        return None
    n = value.get("beeps") if isinstance(value, dict) else None
    if isinstance(n, int) and not isinstance(n, bool):
        return max(1, min(MAX_BEEPS, n))
    return 1


def tool_answer(outputs: list[str], rate: int = RATE) -> np.ndarray:
    """The embedded model's spoken answer to function outputs: a beep (1 kHz, 120 ms, 120 ms
    apart) per successful output (``{"beeps": n}``: n of them), then a 600 ms 300 Hz buzz if
    any output was an error. pcm16 at ``rate``."""
    counts = [_beeps(o) for o in outputs]
    gap = np.zeros(rate * GAP_MS // 1000)
    parts: list[np.ndarray] = []
    for _ in range(min(MAX_BEEPS * 4, sum(c for c in counts if c))):
        parts += [_tone(BEEP_HZ, BEEP_MS, rate), gap]
    if any(c is None for c in counts):
        parts += [_tone(BUZZ_HZ, BUZZ_MS, rate), gap]
    return (np.concatenate(parts or [gap]) * 32767).astype(np.int16)


def _convert(samples: np.ndarray, rate: int, fmt: AudioFormat) -> bytes:
    """Linear int16 ``samples`` at ``rate`` as wire bytes of ``fmt`` (resampled if need be)."""
    if rate != fmt.rate and samples.size:
        samples = StreamResampler(rate, fmt.rate).process_array(samples)
    return fmt.encode(samples)


class EchoCore:
    """The echo model's state machine for one connection (see module docstring)."""

    def __init__(self, model: str = "embedded-echo", reply_pcm: bytes | None = None, chunk_ms: int = 100,
                 call_tool: str | None = None, tool_args: str = "{}"):
        self._ids = itertools.count(1)
        self._call_tools = [n.strip() for n in (call_tool or "").split(",") if n.strip()]
        self._tool_args = tool_args
        self._outputs: list[str] = []      # function outputs the next response speaks
        self.session: dict[str, Any] = default_session(self._id("sess"), model)
        self._reply_pcm = reply_pcm
        self._chunk_ms = chunk_ms
        self._in_fmt = input_format_of(self.session)
        self._buffer = bytearray()  # linear pcm16 LE at the input format's rate
        self._buffer_start = 0   # session sample index of the buffer's first sample
        self._samples_in = 0     # samples appended since the session began (input rate)
        self._last_utterance = np.zeros(0, dtype=np.int16)
        self._last_rate = self._in_fmt.rate
        self._items: dict[str, _Item] = {}
        self._calls: dict[str, str] = {}   # call id -> name of the function calls made
        self._last_item_id: str | None = None
        self.active: _Response | None = None
        self.vad: EnergyVad | None = None
        self._vad_item: str | None = None  # the user item the turn in progress will become
        self.spoke = False       # an audio delta went out: the voice is fixed from now on

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def _ev(self, etype: str, **fields: Any) -> Event:
        return {"type": etype, "event_id": self._id("event"), **fields}

    def _error(self, code: str | None, message: str, client_event_id: Any, param: str | None = None,
               kind: str = "invalid_request_error") -> list[Event]:
        err = {"type": kind, "code": code, "message": message, "param": param,
               "event_id": client_event_id if isinstance(client_event_id, str) else None}
        return [self._ev("error", error=err)]

    def greeting(self) -> list[Event]:
        """``session.created``: "Emitted automatically when a new connection is
        established as the first server event"."""
        return [self._ev("session.created", session=self.session)]

    def malformed(self, reason: str) -> list[Event]:
        """The answer to a frame that is not a JSON object."""
        return self._error("invalid_json", f"The server could not parse the event: {reason}", None)

    def handle(self, event: Event) -> list[Event]:
        """Apply one client event; return the server events to send, in order."""
        etype, eid = event.get("type"), event.get("event_id")
        handler = _HANDLERS.get(etype) if isinstance(etype, str) else None
        if handler is None:
            return self._error("invalid_value", f"Invalid value: {etype!r}. Unsupported event type.", eid, "type")
        extra = sorted(set(event) - {"type", "event_id"} - EVENT_FIELDS[etype])
        unknown = extra[0] if extra else (
            unknown_key(event.get("session"), "session") if etype == "session.update" else
            unknown_key(event.get("response"), "response", RESPONSE_KEYS) if etype == "response.create"
            else None)
        if unknown is not None:
            return self._error("unknown_parameter", f"Unknown parameter: '{unknown}'.", eid, unknown)
        return handler(self, event, eid)

    def _session_update(self, event: Event, eid: Any) -> list[Event]:
        update = event.get("session")
        if self.spoke and isinstance(update, dict) and (
                "voice" in update or "voice" in ((update.get("audio") or {}).get("output") or {})):
            return self._error("cannot_update_voice", "Cannot update a conversation's voice if assistant "
                               "audio is present.", eid, "session.audio.output.voice")
        before = turn_detection_of(self.session)
        problem = apply_session_update(self.session, event.get("session"))
        if problem:
            return self._error("invalid_value", problem, eid, "session")
        td = turn_detection_of(self.session)
        fmt = input_format_of(self.session)
        if fmt != self._in_fmt:  # session time goes on at the new rate; old-format audio is gone
            old, self._in_fmt = self._in_fmt, fmt
            self._samples_in = self._samples_in * fmt.rate // old.rate
            self._buffer_start = self._samples_in
            self._buffer.clear()
        elif td == before:  # an unrelated update keeps the turn
            return [self._ev("session.updated", session=self.session)]
        self._vad_item = None  # a changed VAD (or rate) starts from idle
        self.vad = None if td is None else EnergyVad(
            td["threshold"], td["prefix_padding_ms"], td["silence_duration_ms"],
            rate=fmt.rate, start_sample=self._samples_in)
        if self.vad is not None:
            self.vad.reset(self._buffer_start)
        return [self._ev("session.updated", session=self.session)]

    def _append(self, event: Event, eid: Any) -> list[Event]:
        audio = event.get("audio")
        try:
            pcm = base64.b64decode(audio, validate=True) if isinstance(audio, str) else None
        except (binascii.Error, ValueError):
            pcm = None
        if pcm is None:
            return self._error("invalid_value", "'audio' must be a base64 string", eid, "audio")
        fmt = self._in_fmt
        if len(pcm) % fmt.sample_bytes:
            return self._error("invalid_value", f"'audio' is not whole {fmt.name} samples", eid, "audio")
        if not fmt.linear:
            pcm = fmt.decode(pcm).astype("<i2", copy=False).tobytes()
        self._buffer += pcm
        self._samples_in += len(pcm) // 2
        if self.vad is None:
            return []
        out: list[Event] = []
        for vad_event in self.vad.feed(pcm):
            out += self._on_vad(vad_event)
        return out

    def _on_vad(self, vad_event: VadEvent) -> list[Event]:
        td = turn_detection_of(self.session)
        ms = self.vad.ms(vad_event.sample)
        if vad_event.kind == "started":
            self._vad_item = self._id("item")
            out = [self._ev("input_audio_buffer.speech_started", audio_start_ms=ms, item_id=self._vad_item)]
            if td["interrupt_response"] and self.active is not None:
                out += self._finish(self.active, "cancelled", "turn_detected")
            return out
        item_id, self._vad_item = self._vad_item or self._id("item"), None
        out = [self._ev("input_audio_buffer.speech_stopped", audio_end_ms=ms, item_id=item_id)]
        out += self._commit_buffer(item_id, vad_event.sample)
        if td["create_response"] and self.active is None:
            out += self._start_response()
        return out

    def _commit(self, event: Event, eid: Any) -> list[Event]:
        have_ms = len(self._buffer) // 2 * 1000 / self._in_fmt.rate
        if have_ms < MIN_COMMIT_MS:
            return self._error(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {have_ms:.2f}ms of audio.", eid)
        out = self._commit_buffer(self._id("item"))
        self._reset_vad()
        return out

    def _commit_buffer(self, item_id: str, upto_sample: int | None = None) -> list[Event]:
        """Turn the buffered audio (all, or that before session sample ``upto_sample``) into user
        item ``item_id``; the rest stays buffered."""
        cut = len(self._buffer)
        if upto_sample is not None:
            cut = min(cut, max(0, (upto_sample - self._buffer_start) * 2))
        previous = self._last_item_id
        self._last_utterance = np.frombuffer(bytes(self._buffer[:cut]), dtype="<i2").astype(np.int16)
        self._last_rate = self._in_fmt.rate
        del self._buffer[:cut]
        self._buffer_start += cut // 2
        self._items[item_id] = _Item("user", cut, PCM16)
        self._last_item_id = item_id
        item = {"id": item_id, "object": "realtime.item", "type": "message", "status": "completed",
                "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
        return [self._ev("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id),
                self._ev("conversation.item.created", previous_item_id=previous, item=item)]

    def _reset_vad(self) -> None:
        """The buffer was committed or cleared by the client: any turn in progress is gone."""
        self._vad_item = None
        if self.vad is not None:
            self.vad.reset(self._buffer_start)

    def _clear(self, event: Event, eid: Any) -> list[Event]:
        self._buffer_start += len(self._buffer) // 2
        self._buffer.clear()
        self._reset_vad()
        return [self._ev("input_audio_buffer.cleared")]

    def _response_create(self, event: Event, eid: Any) -> list[Event]:
        if self.active is not None:
            return self._error("conversation_already_has_active_response",
                               f"Conversation already has an active response in progress: "
                               f"{self.active.response_id}.", eid)
        return self._start_response()

    def _start_response(self) -> list[Event]:
        fmt = output_format_of(self.session)
        if self._outputs:  # the answer to function outputs: beeps (and a buzz for an error)
            audio = _convert(tool_answer(self._outputs), RATE, fmt)
            self._outputs = []
        elif self._reply_pcm is not None:
            audio = _convert(np.frombuffer(self._reply_pcm, dtype="<i2").astype(np.int16), RATE, fmt)
        elif self._last_utterance.size:
            audio = _convert(self._last_utterance, self._last_rate, fmt)
        else:  # nothing heard yet: the greeting
            audio = _convert(chime(), RATE, fmt)
        resp = _Response(self._id("resp"), self._id("item"), audio,
                         max(fmt.sample_bytes, self._chunk_ms * fmt.bytes_per_ms))
        self._items[resp.item_id] = _Item("assistant", 0, fmt)
        self._last_item_id = resp.item_id
        self.active = resp
        body = {"id": resp.response_id, "object": "realtime.response", "status": "in_progress",
                "status_details": None, "output": [], "output_modalities": ["audio"]}
        item = {"id": resp.item_id, "object": "realtime.item", "type": "message",
                "status": "in_progress", "role": "assistant", "content": []}
        where = {"response_id": resp.response_id, "item_id": resp.item_id, "output_index": 0}
        return [self._ev("response.created", response=body),
                self._ev("response.output_item.added", response_id=resp.response_id, output_index=0, item=item),
                self._ev("response.content_part.added", **where, content_index=0,
                         part={"type": "audio", "transcript": ""})]

    def next_chunk(self, response_id: str) -> list[Event]:
        """The next ``response.output_audio.delta`` of ``response_id``, followed by
        the closing events once its audio is exhausted. ``[]`` when that
        response is no longer active (finished or cancelled): stop pacing."""
        resp = self.active
        if resp is None or resp.response_id != response_id:
            return []
        out: list[Event] = []
        if resp.pos < len(resp.audio):
            chunk = resp.audio[resp.pos:resp.pos + resp.chunk_bytes]
            resp.pos += len(chunk)
            self._items[resp.item_id].audio_bytes = resp.pos
            self.spoke = True
            out.append(self._ev("response.output_audio.delta", response_id=resp.response_id,
                                item_id=resp.item_id, output_index=0, content_index=0,
                                delta=base64.b64encode(chunk).decode("ascii")))
        if resp.pos >= len(resp.audio):
            out += self._finish(resp, "completed", None)
        return out

    def _finish(self, resp: _Response, status: str, reason: str | None) -> list[Event]:
        self.active = None
        where = {"response_id": resp.response_id, "item_id": resp.item_id, "output_index": 0}
        item_status = "completed" if status == "completed" else "incomplete"
        item = {"id": resp.item_id, "object": "realtime.item", "type": "message", "status": item_status,
                "role": "assistant", "content": [{"type": "output_audio", "transcript": ""}]}
        details = None if reason is None else {"type": status, "reason": reason}
        events = [self._ev("response.output_audio.done", **where, content_index=0),
                  self._ev("response.content_part.done", **where, content_index=0,
                           part={"type": "audio", "transcript": ""}),
                  self._ev("response.output_item.done", response_id=resp.response_id, output_index=0,
                           item=item)]
        output = [item]
        calling = [n for n in self._call_tools if self._offers(n)]
        if status == "completed" and not self._calls and calling:
            for index, name in enumerate(calling, start=1):
                call = self._function_call(resp.response_id, name, index)
                events += call
                output.append(call[-1]["item"])
        body = {"id": resp.response_id, "object": "realtime.response", "status": status,
                "status_details": details, "output": output, "output_modalities": ["audio"]}
        return events + [self._ev("response.done", response=body)]

    def _offers(self, name: str | None) -> bool:
        tools = self.session.get("tools") or []
        return name is not None and any(isinstance(t, dict) and t.get("name") == name for t in tools)

    def _function_call(self, response_id: str, name: str, index: int = 1) -> list[Event]:
        """The events of a ``function_call`` item (output ``index``) calling ``name``."""
        item_id, call_id = self._id("item"), self._id("call")
        self._items[item_id] = _Item("function_call")
        self._calls[call_id] = name
        args = self._tool_args
        item = {"id": item_id, "object": "realtime.item", "type": "function_call", "status": "completed",
                "name": name, "call_id": call_id, "arguments": args}
        return [self._ev("response.output_item.added", response_id=response_id, output_index=index,
                         item={**item, "status": "in_progress", "arguments": ""}),
                self._ev("response.function_call_arguments.done", response_id=response_id,
                         item_id=item_id, output_index=index, call_id=call_id, name=name,
                         arguments=args),
                self._ev("response.output_item.done", response_id=response_id, output_index=index,
                         item=item)]

    def _item_create(self, event: Event, eid: Any) -> list[Event]:
        item = event.get("item")
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "function_call_output":
            call_id = item.get("call_id")
            known = isinstance(call_id, str) and call_id in self._calls
            if not known or not isinstance(item.get("output"), str):
                return self._error("invalid_value", f"No function call {item.get('call_id')!r} to answer "
                                   "(or output is not a string).", eid, "item.call_id")
            if self._calls[call_id] not in BUILT_IN:  # the bridge's own answers are not spoken
                self._outputs.append(item["output"])
        elif kind != "message":
            return self._error("invalid_value", f"Item type {kind!r} is not supported by the embedded "
                               "model (message, function_call_output).", eid, "item.type")
        item_id = item.get("id") if isinstance(item.get("id"), str) else self._id("item")
        self._items[item_id] = _Item(item.get("role") or kind)
        stored = {**item, "id": item_id, "object": "realtime.item", "status": "completed"}
        return [self._ev("conversation.item.created", previous_item_id=None, item=stored)]

    def _response_cancel(self, event: Event, eid: Any) -> list[Event]:
        want = event.get("response_id")
        resp = self.active
        if resp is None or (want is not None and want != resp.response_id):
            return self._error("response_cancel_not_active", "Cancellation failed: no active response found", eid)
        return self._finish(resp, "cancelled", "client_cancelled")

    def _truncate(self, event: Event, eid: Any) -> list[Event]:
        item_id, end_ms = event.get("item_id"), event.get("audio_end_ms")
        item = self._items.get(item_id) if isinstance(item_id, str) else None
        if item is None or item.role != "assistant":
            return self._error("invalid_value", f"Assistant item {item_id!r} not found.", eid, "item_id")
        if event.get("content_index", 0) != 0:
            return self._error("invalid_value", "content_index must be 0", eid, "content_index")
        if isinstance(end_ms, bool) or not isinstance(end_ms, int) or end_ms < 0:
            return self._error("invalid_value", "audio_end_ms must be an integer >= 0", eid, "audio_end_ms")
        sent_ms = item.fmt.ms(item.audio_bytes)
        if end_ms > sent_ms:
            return self._error("invalid_value", f"Audio content of {sent_ms}ms is already shorter than "
                               f"{end_ms}ms", eid, "audio_end_ms")
        item.audio_bytes = end_ms * item.fmt.bytes_per_ms
        return [self._ev("conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=end_ms)]

    def _delete(self, event: Event, eid: Any) -> list[Event]:
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or self._items.pop(item_id, None) is None:
            return self._error("invalid_value", f"Item {item_id!r} not found.", eid, "item_id")
        return [self._ev("conversation.item.deleted", item_id=item_id)]


_HANDLERS = {
    "session.update": EchoCore._session_update,
    "input_audio_buffer.append": EchoCore._append,
    "input_audio_buffer.commit": EchoCore._commit,
    "input_audio_buffer.clear": EchoCore._clear,
    "response.create": EchoCore._response_create,
    "response.cancel": EchoCore._response_cancel,
    "conversation.item.truncate": EchoCore._truncate,
    "conversation.item.delete": EchoCore._delete,
    "conversation.item.create": EchoCore._item_create,
}
