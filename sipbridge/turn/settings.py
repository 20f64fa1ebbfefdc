"""Turn-detection settings: one frozen dataclass, four named profiles, strict parsing.

:class:`TurnSettings` validates itself on construction, so an instance in hand is
always usable. :func:`resolve` turns a config mapping (the ``turn_detection:``
section) into settings: an optional ``profile`` key picks a profile's values,
explicit keys override them, and anything unknown, mistyped or out of range
raises :class:`~sipbridge.errors.ConfigError` naming the dotted key.

``release_threshold`` defaults to ``threshold - 0.15`` but never below 0.05
(nor, for a threshold at or under 0.05, above half the threshold), so the
hysteresis band stays sensible whatever threshold a profile or user picks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from sipbridge.errors import ConfigError

DEFAULT_PREFIX = "turn_detection"
DETECTION_TYPES = ("silero", "server_vad", "none")
DTMF_DIGITS = "0123456789*#ABCD"
RELEASE_GAP = 0.15
RELEASE_FLOOR = 0.05
# Upper bounds: generous, but they keep typos (5000 for 500) and the engine's
# history buffer (prefix padding + min speech) in check.
MAX_MS = {"min_speech_ms": 2000, "silence_threshold_ms": 10000, "prefix_padding_ms": 2000}

TurnType = Literal["silero", "server_vad", "none"]


def default_release(threshold: float) -> float:
    """``threshold - 0.15``, floored at 0.05, and kept below a threshold that is itself tiny."""
    return max(threshold - RELEASE_GAP, min(RELEASE_FLOOR, threshold / 2))


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """When a caller's turn starts and ends; all times in milliseconds, levels in dBFS.

    ``type`` picks the detector: ``"silero"`` (on-box, this package),
    ``"server_vad"`` (the realtime model's own) or ``"none"`` (DTMF commit only).
    A chunk counts as speech when its probability reaches ``threshold`` and its
    level reaches ``silence_floor_dbfs``; once in speech it stays until the
    probability drops under ``release_threshold`` (``None`` = derived, see
    :func:`default_release`). ``commit_digit`` / ``clear_digit`` are the DTMF keys
    that end a turn by hand or discard it.
    """

    type: TurnType = "silero"
    threshold: float = 0.5
    release_threshold: float | None = None
    min_speech_ms: int = 300
    silence_threshold_ms: int = 500
    prefix_padding_ms: int = 200
    silence_floor_dbfs: float = -45.0
    commit_digit: str = "#"
    clear_digit: str = "*"

    def __post_init__(self) -> None:
        problem = _type_problem(self) or _range_problem(self)
        if problem is not None:
            raise ConfigError(f"{DEFAULT_PREFIX}.{problem[0]}", problem[1])

    @property
    def release(self) -> float:
        """The effective release threshold (explicit or derived)."""
        return default_release(self.threshold) if self.release_threshold is None else self.release_threshold

    def with_changes(self, **changes: Any) -> TurnSettings:
        """A validated copy with some fields replaced (``release_threshold`` re-derives unless given)."""
        if "threshold" in changes and "release_threshold" not in changes:
            changes["release_threshold"] = None
        return replace(self, **changes)


PROFILES: Mapping[str, Mapping[str, Any]] = {
    "fast": {"threshold": 0.6, "prefix_padding_ms": 200, "silence_threshold_ms": 300},
    "balanced": {"threshold": 0.5, "prefix_padding_ms": 300, "silence_threshold_ms": 500},
    "patient": {"threshold": 0.4, "prefix_padding_ms": 400, "silence_threshold_ms": 800},
    "noisy": {"threshold": 0.7, "prefix_padding_ms": 300, "silence_threshold_ms": 600},
}

_FIELDS = {f.name for f in fields(TurnSettings)}
_FLOAT_FIELDS = ("threshold", "release_threshold", "silence_floor_dbfs")
_INT_FIELDS = tuple(MAX_MS)
_STR_FIELDS = ("type", "commit_digit", "clear_digit")


def _type_problem(s: TurnSettings) -> tuple[str, str] | None:
    for name in _FLOAT_FIELDS:
        value = getattr(s, name)
        if value is None and name == "release_threshold":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return name, f"expected a number, got {type(value).__name__} {value!r}"
        if not math.isfinite(value):
            return name, f"expected a finite number, got {value!r}"
    for name in _INT_FIELDS:
        value = getattr(s, name)
        if isinstance(value, bool) or not isinstance(value, int):
            return name, f"expected an integer number of milliseconds, got {type(value).__name__} {value!r}"
    for name in _STR_FIELDS:
        value = getattr(s, name)
        if not isinstance(value, str):
            return name, f"expected a string, got {type(value).__name__} {value!r}"
    return None


def _range_problem(s: TurnSettings) -> tuple[str, str] | None:
    if s.type not in DETECTION_TYPES:
        return "type", f"must be one of {', '.join(DETECTION_TYPES)}, got {s.type!r}"
    if not 0.0 < s.threshold < 1.0:
        return "threshold", f"must be strictly between 0 and 1, got {s.threshold}"
    if s.release_threshold is not None and not 0.0 < s.release_threshold < s.threshold:
        return "release_threshold", f"must be above 0 and below threshold {s.threshold}, got {s.release_threshold}"
    for name, upper in MAX_MS.items():
        value = getattr(s, name)
        if not 0 <= value <= upper:
            return name, f"must be between 0 and {upper} ms, got {value}"
    if not -120.0 <= s.silence_floor_dbfs <= 0.0:
        return "silence_floor_dbfs", f"must be between -120 and 0 dBFS, got {s.silence_floor_dbfs}"
    for name in ("commit_digit", "clear_digit"):
        value = getattr(s, name)
        if len(value) != 1 or value not in DTMF_DIGITS:
            return name, f"must be one DTMF digit of {DTMF_DIGITS}, got {value!r}"
    if s.commit_digit == s.clear_digit:
        return "clear_digit", f"must differ from commit_digit {s.commit_digit!r}"
    return None


def resolve(mapping: Mapping[str, Any] | None, key_prefix: str = DEFAULT_PREFIX) -> TurnSettings:
    """Settings from a config mapping: ``profile`` (optional) first, explicit keys on top.

    ``None`` or an empty mapping gives the defaults. Raises :class:`ConfigError`
    with ``key_prefix.<key>`` for an unknown key or profile, a wrong type or an
    out-of-range value, and with ``key_prefix`` itself when the section is not a
    mapping. DTMF digits may be written as YAML integers (``commit_digit: 5``).
    """
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise ConfigError(key_prefix, f"expected a mapping of turn-detection keys, got {type(mapping).__name__}")
    values: dict[str, Any] = {}
    for key in mapping:
        if not isinstance(key, str) or (key != "profile" and key not in _FIELDS):
            known = ", ".join(["profile", *sorted(_FIELDS)])
            raise ConfigError(f"{key_prefix}.{key}", f"unknown key; known keys are {known}")
    if mapping.get("profile") is not None:  # `profile: null` (the documented default): none
        profile = mapping["profile"]
        if not isinstance(profile, str) or profile not in PROFILES:
            raise ConfigError(
                f"{key_prefix}.profile", f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}"
            )
        values.update(PROFILES[profile])
    for key, value in mapping.items():
        if key == "profile":
            continue
        if key in ("commit_digit", "clear_digit") and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # YAML reads `commit_digit: 5` as an int
        values[key] = value
    try:
        return TurnSettings(**values)
    except ConfigError as exc:
        raise ConfigError(key_prefix + exc.key[len(DEFAULT_PREFIX) :], exc.reason) from None
