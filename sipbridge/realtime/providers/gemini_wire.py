"""Google Gemini Live (``BidiGenerateContent``) on the wire: client message builders and
:class:`ServerMapper`, which turns server messages into the neutral events of
:mod:`sipbridge.realtime.upstream`. Pure: no I/O, no clock (a ``goAway``'s time left is
returned, the adapter keeps time). The adapter is :mod:`sipbridge.realtime.providers.gemini`,
where the protocol is described with its sources.

Gemini has no response or item ids: the mapper makes up one response (``gemini_resp_<n>``) and
one item (``gemini_item_<n>``) per model turn, opened by the turn's first audio or tool call and
closed by ``turnComplete`` (``completed``), ``interrupted`` (``cancelled``, reason
``turn_detected``) or a ``toolCall`` (the call ends that response: what the model says after the
``toolResponse`` is a new one).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sipbridge.realtime.events import (AudioDelta, AudioDone, FunctionCall, Malformed, ResponseCreated,
                                       ResponseDone, ServerEvent, SpeechStarted, Transcript, Unknown)
from sipbridge.realtime.sessionconfig import SessionConfig

INPUT_RATE = 16000
OUTPUT_RATE = 24000
INPUT_MIME = f"audio/pcm;rate={INPUT_RATE}"
OUTPUT_MIME = f"audio/pcm;rate={OUTPUT_RATE}"
SERVER_KEYS = ("setupComplete", "serverContent", "toolCall", "toolCallCancellation", "goAway",
               "sessionResumptionUpdate", "usageMetadata")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


def model_path(model: str) -> str:
    """``models/<model>``, as ``setup.model`` names it."""
    return model if model.startswith("models/") else f"models/{model}"


def setup(config: SessionConfig, model: str, handle: str | None = None) -> dict[str, Any]:
    """The first client message. Turn detection: ``config.turn_detection`` None (the bridge's
    own) disables the server's automatic activity detection (the adapter sends
    ``activityStart``/``activityEnd``); server_vad keeps it with the bridge's padding and silence.
    ``sessionResumption`` is always asked for (``handle``: resume that session)."""
    body: dict[str, Any] = {"model": model_path(model),
                            "generationConfig": {"responseModalities": ["AUDIO"]}}
    if config.voice:
        body["generationConfig"]["speechConfig"] = {
            "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": config.voice}}}
    if config.instructions:
        body["systemInstruction"] = {"parts": [{"text": config.instructions}]}
    if config.tools:
        body["tools"] = [{"functionDeclarations": [
            {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
            for t in config.tools]}]
    td = config.turn_detection
    if td is None:
        detection: dict[str, Any] = {"disabled": True}
    else:
        detection = {"disabled": False}
        if td.get("prefix_padding_ms") is not None:
            detection["prefixPaddingMs"] = int(td["prefix_padding_ms"])
        if td.get("silence_duration_ms") is not None:
            detection["silenceDurationMs"] = int(td["silence_duration_ms"])
    body["realtimeInputConfig"] = {"automaticActivityDetection": detection,
                                   "activityHandling": "START_OF_ACTIVITY_INTERRUPTS"}
    body["inputAudioTranscription"] = {}
    body["outputAudioTranscription"] = {}
    body["sessionResumption"] = {"handle": handle} if handle else {}
    return {"setup": body}


def audio(pcm16k: bytes) -> dict[str, Any]:
    """``realtimeInput.audio``: caller PCM16 LE at 16 kHz."""
    return {"realtimeInput": {"audio": {"data": base64.b64encode(pcm16k).decode("ascii"),
                                        "mimeType": INPUT_MIME}}}


def activity_start() -> dict[str, Any]:
    return {"realtimeInput": {"activityStart": {}}}


def activity_end() -> dict[str, Any]:
    return {"realtimeInput": {"activityEnd": {}}}


def user_text(text: str) -> dict[str, Any]:
    """A complete user turn of text (``clientContent``): how a response is asked for without
    caller audio (the greeting, the API's say)."""
    return {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                              "turnComplete": True}}


def tool_response(call_id: str, name: str, output: str) -> dict[str, Any]:
    """``toolResponse`` answering call ``call_id`` of function ``name``. ``response`` is an
    object: a JSON object output as is, any other output as ``{"result": ...}``."""
    try:
        value: Any = json.loads(output)
    except ValueError:
        value = output
    response = value if isinstance(value, dict) else {"result": value}
    return {"toolResponse": {"functionResponses": [{"id": call_id, "name": name, "response": response}]}}


def duration_ms(text: Any) -> int | None:
    """A protobuf Duration in JSON (``"12.5s"``) in milliseconds, or None if it is not one."""
    m = _DURATION.match(text) if isinstance(text, str) else None
    return None if m is None else int(float(m.group(1)) * 1000)


@dataclass
class Mapped:
    """What one server message said: neutral ``events``, and the session-level news."""

    events: list[ServerEvent] = field(default_factory=list)
    setup_complete: bool = False
    handle: str | None = None        # a new resumable handle
    go_away_ms: int | None = None    # the server closes this connection in that long


class ServerMapper:
    """Server messages -> neutral events, one per call (it outlives a resumed connection).
    ``server_turns``: Gemini's own activity detection is on, so its ``interrupted`` is the
    caller's speech (a ``SpeechStarted`` before the cancel)."""

    def __init__(self, server_turns: bool):
        self.server_turns = server_turns
        self.response_id: str | None = None   # the model turn in progress
        self.item_id: str | None = None
        self._n = 0
        self._audio = False
        self._heard: list[str] = []           # caller transcription chunks
        self._said: list[str] = []            # agent transcription chunks
        self.tool_names: dict[str, str] = {}  # call id -> function name
        self.malformed = 0

    def feed(self, message: str | bytes) -> Mapped:
        out = Mapped()
        try:
            msg = json.loads(message)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._bad(out, f"not JSON: {exc}")
        if not isinstance(msg, dict) or not msg:
            return self._bad(out, "not a JSON object")
        for key, value in msg.items():
            if key == "setupComplete":
                out.setup_complete = True
            elif key == "serverContent" and isinstance(value, dict):
                self._content(value, out)
            elif key == "toolCall" and isinstance(value, dict):
                self._tool_call(value, out)
            elif key == "goAway" and isinstance(value, dict):
                out.go_away_ms = duration_ms(value.get("timeLeft"))
                if out.go_away_ms is None:
                    out.go_away_ms = 0
            elif key == "sessionResumptionUpdate" and isinstance(value, dict):
                if value.get("resumable") and isinstance(value.get("newHandle"), str) and value["newHandle"]:
                    out.handle = value["newHandle"]
            elif key in SERVER_KEYS:
                if not isinstance(value, dict):
                    self._bad(out, f"{key} is not an object")
                else:
                    out.events.append(Unknown(key, value))
            else:
                out.events.append(Unknown(key, {key: value}))
        return out

    def _bad(self, out: Mapped, reason: str) -> Mapped:
        self.malformed += 1
        out.events.append(Malformed(reason))
        return out

    def _open(self, out: Mapped) -> None:
        if self.response_id is None:
            self._n += 1
            self.response_id, self.item_id = f"gemini_resp_{self._n}", f"gemini_item_{self._n}"
            self._audio = False
            self._flush_caller(out)
            out.events.append(ResponseCreated(self.response_id))

    def _flush_caller(self, out: Mapped) -> None:
        if self._heard:
            text, self._heard = "".join(self._heard).strip(), []
            if text:
                out.events.append(Transcript("caller", f"gemini_user_{self._n}", text))

    def _close(self, out: Mapped, status: str, reason: str | None) -> None:
        rid, item = self.response_id, self.item_id
        if rid is None or item is None:
            return
        if self._audio:
            out.events.append(AudioDone(rid, item))
        said, self._said = "".join(self._said).strip(), []
        if said:
            out.events.append(Transcript("agent", item, said))
        out.events.append(ResponseDone(rid, status, reason))
        self.response_id = self.item_id = None

    def _content(self, sc: dict[str, Any], out: Mapped) -> None:
        heard = sc.get("inputTranscription")
        if isinstance(heard, dict) and isinstance(heard.get("text"), str):
            self._heard.append(heard["text"])
        if sc.get("interrupted") is True:
            if self.server_turns:
                out.events.append(SpeechStarted(self.item_id or "gemini_user", 0))
            self._close(out, "cancelled", "turn_detected")
        turn = sc.get("modelTurn")
        if isinstance(turn, dict):
            for part in turn.get("parts") or ():
                blob = part.get("inlineData") if isinstance(part, dict) else None
                if not isinstance(blob, dict):
                    continue
                if blob.get("mimeType") != OUTPUT_MIME or not isinstance(blob.get("data"), str):
                    self._bad(out, f"model audio must be {OUTPUT_MIME}, got {blob.get('mimeType')!r}")
                    continue
                try:
                    pcm = base64.b64decode(blob["data"], validate=True)
                except (binascii.Error, ValueError):
                    self._bad(out, "model audio is not base64")
                    continue
                self._open(out)
                self._audio = True
                out.events.append(AudioDelta(self.response_id, self.item_id, 0, pcm[:len(pcm) & ~1]))
        said = sc.get("outputTranscription")
        if isinstance(said, dict) and isinstance(said.get("text"), str) and self.response_id is not None:
            self._said.append(said["text"])
        if sc.get("turnComplete") is True:
            self._close(out, "completed", None)
            self._flush_caller(out)

    def _tool_call(self, tc: dict[str, Any], out: Mapped) -> None:
        calls = [c for c in tc.get("functionCalls") or () if isinstance(c, dict)
                 and isinstance(c.get("id"), str) and isinstance(c.get("name"), str)]
        if not calls:
            self._bad(out, "toolCall without a functionCall with id and name")
            return
        self._open(out)
        for i, call in enumerate(calls, 1):
            self.tool_names[call["id"]] = call["name"]
            out.events.append(FunctionCall(self.response_id, f"{self.item_id}_call{i}", call["id"],
                                           call["name"], json.dumps(call.get("args") or {})))
        self._close(out, "completed", None)
