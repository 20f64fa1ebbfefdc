"""Which caller audio goes upstream when ``realtime.send_silence`` is false.

Providers bill input audio by the second. With the gate, only speech is streamed: from
``prefix_padding_ms`` before an onset (held back in a short ring, since onsets are detected
after the fact) through the trailing silence that ends the turn. Time is the caller's sample
count at each frame's end, never a wall clock.
"""

from __future__ import annotations

from collections import deque


class SpeechGate:
    """Holds caller frames back until speech begins; then passes them through until it ends."""

    def __init__(self, keep_samples: int = 16000):
        self.keep_samples = keep_samples
        self._ring: deque[tuple[int, bytes]] = deque()
        self.open = False
        self.frames_passed = 0
        self.frames_held = 0

    def offer(self, end_sample: int, payload: bytes) -> list[bytes]:
        """One frame ending at ``end_sample``: returned (to send now) when open, else held."""
        if self.open:
            self.frames_passed += 1
            return [payload]
        self._ring.append((end_sample, payload))
        while self._ring and self._ring[0][0] <= end_sample - self.keep_samples:
            self._ring.popleft()
            self.frames_held += 1
        return []

    def start(self, audio_start_sample: int) -> list[bytes]:
        """Speech began at ``audio_start_sample`` (prefix included): release the held frames after it."""
        self.open = True
        out = [p for end, p in self._ring if end > audio_start_sample]
        self.frames_held += len(self._ring) - len(out)
        self.frames_passed += len(out)
        self._ring.clear()
        return out

    def stop(self) -> None:
        """The turn ended (or the candidate was rejected): hold frames again."""
        self.open = False
