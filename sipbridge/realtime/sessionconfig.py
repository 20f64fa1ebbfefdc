"""What the bridge asks of a model session, whatever the provider: :class:`SessionConfig` and
:class:`Tool`. Pure data with validation; each adapter (:mod:`sipbridge.realtime.providers`)
turns it into its own wire shape.

Provider-neutral meaning of the fields: ``turn_detection`` is ``None`` (the bridge takes the
turns: it commits and asks for responses) or ``{"type": "server_vad", "threshold",
"prefix_padding_ms", "silence_duration_ms"}`` (the provider's detector takes them); an adapter
adds what its protocol needs to say about it (OpenAI's ``create_response``/``interrupt_response``)
and may refuse a mode it cannot do. ``api`` is the dialect for a provider that has two (OpenAI
Realtime GA and beta); others ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sipbridge.errors import ConfigError
from sipbridge.realtime.audio_format import NAMES as AUDIO_FORMATS
from sipbridge.realtime.audio_format import AudioFormat, by_name

Api = Literal["ga", "beta"]


@dataclass(frozen=True)
class Tool:
    """A function the model may call (``{"type": "function", ...}`` in ``session.tools``,
    the same in both dialects). ``parameters`` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def wire(self) -> dict[str, Any]:
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": dict(self.parameters)}


@dataclass(frozen=True)
class SessionConfig:
    """What we ask of the model session.

    ``audio_format`` is ``pcm16``, ``g711_ulaw`` or ``g711_alaw`` (both directions); the
    config's ``auto`` is settled per call before (:mod:`sipbridge.realtime.format_choice`).
    ``input_rate``/``output_rate`` are the sample rates; ``None`` (the default) means the
    format's own: 24000 for pcm16 (the API documents "Only a 24kHz sample rate is
    supported"; beta cannot express any other rate, so beta insists on 24000), 8000 for
    G.711, which has no other. After construction they hold the effective rate.
    ``turn_detection=None`` sends an
    explicit ``null``: "To clear a field like turn_detection, pass null" -- the
    server default is server VAD, so omitting it would let the model take turns
    on its own. Otherwise pass a server VAD dict, e.g. ``{"type": "server_vad",
    "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}``.
    ``model`` is informative here: the model is chosen by the URL's ``?model=``.
    ``tools`` are offered with ``tool_choice: "auto"``; none sends neither key.
    """

    model: str
    instructions: str | None = None
    voice: str | None = None
    input_rate: int | None = None
    output_rate: int | None = None
    api: Api = "ga"
    turn_detection: dict[str, Any] | None = field(default=None)
    audio_format: str = "pcm16"
    tools: tuple[Tool, ...] = ()

    def __post_init__(self) -> None:
        if self.api not in ("ga", "beta"):
            raise ConfigError("realtime.api", f"must be 'ga' or 'beta', got {self.api!r}")
        if self.audio_format not in AUDIO_FORMATS:
            raise ConfigError("realtime.audio_format",
                              f"must be one of {', '.join(AUDIO_FORMATS)}, got {self.audio_format!r}")
        fmt = self.format
        for key in ("input_rate", "output_rate"):
            rate = getattr(self, key)
            if rate is None:
                object.__setattr__(self, key, fmt.rate)
                continue
            if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
                raise ConfigError(f"realtime.{key}", f"must be a positive int, got {rate!r}")
            if not fmt.linear and rate != fmt.rate:
                raise ConfigError(f"realtime.{key}", f"{fmt.name} is {fmt.rate} Hz only, got {rate}")
            if self.api == "beta" and rate != fmt.rate:
                raise ConfigError(f"realtime.{key}", f"the beta API only speaks {fmt.name} at {fmt.rate} Hz")
        td = self.turn_detection
        if td is not None and not (isinstance(td, dict) and isinstance(td.get("type"), str)):
            raise ConfigError("realtime.turn_detection", "must be null or a dict with a 'type'")

    @property
    def format(self) -> AudioFormat:
        """The :class:`~sipbridge.realtime.audio_format.AudioFormat` of both directions."""
        return by_name(self.audio_format)
