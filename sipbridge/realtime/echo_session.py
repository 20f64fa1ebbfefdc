"""Session object of the embedded echo model: its default and ``session.update`` merging.

"Only the fields that are present in the session.update are updated. [...] To
clear a field like turn_detection, pass null." The echo model speaks pcm16 at
24 kHz only (the real API: "Only a 24kHz sample rate is supported"), so other
formats are refused with a reason. It accepts a ``turn_detection`` setting but
has no server VAD: it never commits or answers on its own.
"""

from __future__ import annotations

from typing import Any

PCM_FORMAT = {"type": "audio/pcm", "rate": 24000}


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
    if fmt.get("type") != "audio/pcm":
        return f"{where}.type {fmt.get('type')!r} is not supported by the embedded model (audio/pcm only)"
    if fmt.get("rate", 24000) != 24000:
        return f"{where}.rate {fmt.get('rate')!r} is not supported: only 24000"
    return None


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
        if key in update and update[key] != "pcm16":
            return f"session.{key} {update[key]!r} is not supported (pcm16 only)"
    return None


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
    if problem is None:
        _merge(session, update)
    return problem
