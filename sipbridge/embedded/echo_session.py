"""Session object of the embedded echo model: its default and ``session.update`` merging.

"Only the fields that are present in the session.update are updated. [...] To
clear a field like turn_detection, pass null." The echo model speaks the API's
three formats (:mod:`sipbridge.realtime.audio_format`): pcm16 at 24 kHz only (the
real API: "Only a 24kHz sample rate is supported"), G.711 µ-law and A-law at
8 kHz; anything else is refused with a reason. A format (GA
``audio.{input,output}.format``, or beta ``input_audio_format`` /
``output_audio_format``, stored at the GA path) replaces the previous one whole;
the session object always announces it in GA shape.

``turn_detection`` (GA: ``audio.input.turn_detection``; beta: top-level
``turn_detection``, stored at the GA path) is ``null`` (the client commits) or a
``server_vad`` object, which the echo core honours with an energy VAD (see
:mod:`sipbridge.embedded.echo_core`). Its effective value, defaults filled in,
is what ``session.updated`` announces: ``threshold`` 0.5, ``prefix_padding_ms``
300, ``silence_duration_ms`` 500 (the provider's documented defaults),
``create_response`` true and ``interrupt_response`` false -- unlike the
provider, the embedded model leaves cancelling a response on barge-in to the
client unless asked. ``semantic_vad`` and other keys are refused.

Like the real server, a key the API does not define is refused (``unknown_parameter``, naming
it: "Unknown parameter: 'session.foo'."), wherever it sits: :func:`unknown_key` knows the GA
session keys (and the beta spellings the embedded model also reads).
"""

from __future__ import annotations

import copy
import math
from typing import Any

from sipbridge.realtime.audio_format import NAMES, PCM16, AudioFormat, by_ga_type, by_name

PCM_FORMAT = PCM16.ga()
VAD_DEFAULTS: dict[str, Any] = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                "silence_duration_ms": 500, "create_response": True,
                                "interrupt_response": False}
MAX_VAD_MS = 10000
# the session object's keys, GA and beta spellings; nested objects by their path
SESSION_KEYS = {
    "session": {"type", "model", "instructions", "output_modalities", "audio", "tools", "tool_choice",
                "max_output_tokens", "tracing", "truncation", "prompt", "include",
                # beta
                "modalities", "input_audio_format", "output_audio_format", "turn_detection", "voice",
                "temperature", "max_response_output_tokens", "input_audio_transcription",
                "input_audio_noise_reduction", "speed"},
    "session.audio": {"input", "output"},
    "session.audio.input": {"format", "turn_detection", "transcription", "noise_reduction"},
    "session.audio.output": {"format", "voice", "speed"},
}


def unknown_key(obj: Any, path: str, known: dict[str, set[str]] = SESSION_KEYS) -> str | None:
    """The dotted path of the first key of ``obj`` (at ``path``) that ``known`` does not list,
    looking into the nested objects ``known`` describes; None when every key is known."""
    if not isinstance(obj, dict) or path not in known:
        return None
    for key in obj:
        if key not in known[path]:
            return f"{path}.{key}"
        deeper = unknown_key(obj[key], f"{path}.{key}", known)
        if deeper is not None:
            return deeper
    return None


def default_session(session_id: str, model: str) -> dict[str, Any]:
    """The effective configuration announced in ``session.created`` (GA shape)."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "audio": {
            "input": {"format": dict(PCM_FORMAT), "turn_detection": None},
            "output": {"format": dict(PCM_FORMAT), "voice": "alloy"},
        },
    }


def _format_problem(fmt: Any, where: str) -> str | None:
    if not isinstance(fmt, dict):
        return f"{where} must be an object"
    known = by_ga_type(fmt.get("type"))
    if known is None:
        return (f"{where}.type {fmt.get('type')!r} is not supported by the embedded model "
                f"(audio/pcm, audio/pcmu or audio/pcma)")
    if fmt.get("rate", known.rate) != known.rate:
        return f"{where}.rate {fmt.get('rate')!r} is not supported for {known.ga_type}: only {known.rate}"
    return None


def _pop_formats(update: dict[str, Any]) -> dict[str, AudioFormat]:
    """Take the (already checked) formats out of ``update``, by side, so that they replace the
    session's whole instead of being merged key by key (pcmu has no ``rate``)."""
    out: dict[str, AudioFormat] = {}
    audio = update.get("audio") or {}
    for side in ("input", "output"):
        part = audio.get(side) or {}
        if "format" in part:
            out[side] = by_ga_type(part.pop("format")["type"])
        if f"{side}_audio_format" in update:  # beta spelling
            out[side] = by_name(update.pop(f"{side}_audio_format"))
    return out


def input_format_of(session: dict[str, Any]) -> AudioFormat:
    """The effective input audio format of a session object (GA path)."""
    return by_ga_type(session["audio"]["input"]["format"]["type"])


def output_format_of(session: dict[str, Any]) -> AudioFormat:
    """The effective output audio format of a session object (GA path)."""
    return by_ga_type(session["audio"]["output"]["format"]["type"])


def _check(update: dict[str, Any]) -> str | None:
    if update.get("type", "realtime") != "realtime":
        return f"session.type {update.get('type')!r} is not supported (realtime only)"
    audio = update.get("audio", {})
    if not isinstance(audio, dict):
        return "session.audio must be an object"
    for side in ("input", "output"):
        part = audio.get(side, {})
        if not isinstance(part, dict):
            return f"session.audio.{side} must be an object"
        if "format" in part:
            problem = _format_problem(part["format"], f"session.audio.{side}.format")
            if problem:
                return problem
    for key in ("input_audio_format", "output_audio_format"):  # beta spelling
        if key in update and update[key] not in NAMES:
            return f"session.{key} {update[key]!r} is not supported ({', '.join(NAMES)})"
    return None


def normalize_turn_detection(td: Any, where: str = "session.audio.input.turn_detection"
                             ) -> tuple[dict[str, Any] | None, str | None]:
    """``(effective turn_detection, None)`` with defaults filled in, or ``(None, reason)``."""
    if td is None:
        return None, None
    if not isinstance(td, dict):
        return None, f"{where} must be null or an object"
    if td.get("type") != "server_vad":
        return None, (f"{where}.type {td.get('type')!r} is not supported by the embedded model "
                      f"(server_vad or null only)")
    unknown = sorted(set(td) - set(VAD_DEFAULTS))
    if unknown:
        return None, f"{where}: unsupported key(s) {', '.join(map(str, unknown))}"
    out = {**VAD_DEFAULTS, **td}
    threshold = out["threshold"]
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
            or not math.isfinite(threshold) or not 0.0 <= threshold <= 1.0):
        return None, f"{where}.threshold must be a number between 0 and 1, got {threshold!r}"
    for key in ("prefix_padding_ms", "silence_duration_ms"):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VAD_MS:
            return None, f"{where}.{key} must be an integer between 0 and {MAX_VAD_MS}, got {value!r}"
    for key in ("create_response", "interrupt_response"):
        if not isinstance(out[key], bool):
            return None, f"{where}.{key} must be true or false, got {out[key]!r}"
    return out, None


def turn_detection_of(session: dict[str, Any]) -> dict[str, Any] | None:
    """The effective ``turn_detection`` of a session object (GA path)."""
    return session["audio"]["input"].get("turn_detection")


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def apply_session_update(session: dict[str, Any], update: Any) -> str | None:
    """Merge ``update`` into ``session`` in place; return a reason string instead
    when the update is refused (then ``session`` is unchanged)."""
    if not isinstance(update, dict):
        return "'session' must be an object"
    problem = _check(update)
    if problem is not None:
        return problem
    update = copy.deepcopy(update)
    formats = _pop_formats(update)
    where = "session.audio.input.turn_detection"
    if "turn_detection" in update:  # beta spelling: stored where GA keeps it
        where = "session.turn_detection"
        update.setdefault("audio", {}).setdefault("input", {})["turn_detection"] = update.pop("turn_detection")
    merged = copy.deepcopy(session)
    _merge(merged, update)
    for side, fmt in formats.items():
        merged["audio"][side]["format"] = fmt.ga()
    td, problem = normalize_turn_detection(turn_detection_of(merged), where)
    if problem is not None:
        return problem
    merged["audio"]["input"]["turn_detection"] = td
    session.clear()
    session.update(merged)
    return None
