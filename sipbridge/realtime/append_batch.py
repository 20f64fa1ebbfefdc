"""Caller audio for ``input_audio_buffer.append``, sent in batches instead of every 20 ms.

Each append costs the event loop a thread hop, a base64 encode, a JSON dump and a WebSocket
frame; at one per 20 ms frame that was ~0.58 ms of loop CPU per frame per call (bench/README.md,
"Where the time goes"), more than the whole media path should cost. :class:`AppendBatcher`
collects the session's upstream audio (16 kHz caller frames; the session resamples each batch
to the model's rate in one call, which also costs the resampler a fifth of its per-call
overhead) until ``batch_bytes`` are held, then hands them out as one payload. :meth:`flush` hands out what is held at once: the
session calls it before anything that must follow the audio upstream (commit, clear, a
barge-in's cancel), so batching never delays the end of a turn.

Pure and single-threaded: the session serialises callers with its own lock.
"""

from __future__ import annotations


class AppendBatcher:
    """Concatenates PCM payloads; releases them once ``batch_bytes`` are held, or on flush."""

    def __init__(self, batch_bytes: int):
        if batch_bytes < 1:
            raise ValueError(f"batch_bytes must be positive, got {batch_bytes}")
        self.batch_bytes = batch_bytes
        self._parts: list[bytes] = []
        self._held = 0
        self.batches = 0

    @classmethod
    def for_ms(cls, append_ms: int, rate: int, frame_ms: int = 20) -> "AppendBatcher":
        """A batcher releasing every ``append_ms`` of 16-bit mono audio at ``rate`` Hz, rounded
        up to whole ``frame_ms`` frames (a frame is never split)."""
        frames = max(1, -(-append_ms // frame_ms))
        return cls(frames * frame_ms * rate // 1000 * 2)

    @property
    def held_bytes(self) -> int:
        """Bytes waiting for the next batch."""
        return self._held

    def add(self, payload: bytes) -> bytes | None:
        """Hold ``payload``; returns the batch (everything held) once it reaches ``batch_bytes``."""
        if payload:
            self._parts.append(payload)
            self._held += len(payload)
        if self._held >= self.batch_bytes:
            return self.flush()
        return None

    def flush(self) -> bytes | None:
        """Everything held, as one payload (None when nothing is held)."""
        if not self._held:
            return None
        parts, self._parts, self._held = self._parts, [], 0
        self.batches += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)
