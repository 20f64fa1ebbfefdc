"""Which caller audio goes upstream when ``realtime.send_silence`` is false.

Providers bill input audio by the second. With the gate, only speech is streamed: from
``prefix_padding_ms`` before an onset (held back in a short ring, since onsets are detected
after the fact) through the trailing silence that ends the turn. Time is the caller's sample
count at each frame's end, never a wall clock.

The ring keeps the last ``keep_samples`` of audio whether the gate is open or not: when a
candidate is rejected and its audio cleared upstream, a new onset a moment later may start
before the rejection point (Silero often rejects and re-detects the start of a word), and that
audio must be sent again rather than lost.
"""

from __future__ import annotations

from collections import deque


class SpeechGate:
    """Holds caller frames back until speech begins; then passes them through until it ends."""

    def __init__(self, keep_samples: int = 16000):
        self.keep_samples = keep_samples
        self._ring: deque[tuple[int, bytes]] = deque()
        self._sent_end = 0  # end sample of the last frame still upstream (not cleared)
        self.open = False
        self.frames_passed = 0

    def offer(self, end_sample: int, payload: bytes) -> list[bytes]:
        """One frame ending at ``end_sample``: returned (to send now) when open, else held."""
        self._ring.append((end_sample, payload))
        while self._ring and self._ring[0][0] <= end_sample - self.keep_samples:
            self._ring.popleft()
        if not self.open:
            return []
        self._sent_end = end_sample
        self.frames_passed += 1
        return [payload]

    def start(self, audio_start_sample: int) -> list[bytes]:
        """Speech began at ``audio_start_sample`` (prefix included): release what is not upstream yet."""
        self.open = True
        after = max(audio_start_sample, self._sent_end)
        out = [p for end, p in self._ring if end > after]
        if out:
            self._sent_end = self._ring[-1][0]
        self.frames_passed += len(out)
        return out

    def stop(self, cleared: bool = False) -> None:
        """The turn ended; ``cleared``: the audio sent so far was dropped upstream (rejected candidate)."""
        self.open = False
        if cleared:
            self._sent_end = 0
