"""The outbound playout buffer: model audio waiting to be sent to the caller.

The media thread pulls one 20 ms frame at a time (:meth:`PlayoutBuffer.pull`); the network
thread pushes decoded model audio (:meth:`PlayoutBuffer.push`). Every sample is tagged with the
assistant item it belongs to, so the cancel path can say exactly how much of an item the caller
heard (``conversation.item.truncate`` wants ``audio_end_ms``): we count samples handed to RTP,
we do not estimate from wall clocks.

Verbs, after livekit's split: :meth:`pause`/:meth:`resume` hold queued audio without losing a
sample (a cough must not cost the caller the answer), :meth:`clear` drops it and bumps the
generation so that late deltas of the cancelled response are refused. ``push`` compares the
generation under the same lock as ``clear``, so nothing of a cancelled response can slip in
between the flush and the next packet.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Cleared:
    """What :meth:`PlayoutBuffer.clear` dropped.

    ``item_id`` is the item the caller was hearing (or was about to hear), ``played_ms`` how
    much of it went out, ``received_ms`` how much of it had arrived, ``dropped_ms`` what was
    queued and is now gone. ``item_id`` is None when nothing was queued or played.
    """

    item_id: str | None
    played_ms: int
    received_ms: int
    dropped_ms: int


class PlayoutBuffer:
    """A sample-exact FIFO of 16-bit mono PCM, drained one frame at a time."""

    def __init__(self, sample_rate: int = 16000, frame_ms: int = 20):
        self.sample_rate = sample_rate
        self.frame_bytes = sample_rate * frame_ms // 1000 * 2
        self._silence = bytes(self.frame_bytes)
        self._lock = threading.Lock()
        self._queue: deque[list] = deque()  # [item_id, bytes, offset]
        self._queued_bytes = 0
        self._played: dict[str, int] = {}    # item -> samples handed out
        self._received: dict[str, int] = {}  # item -> samples pushed
        self.generation = 0
        self.paused = False
        self.frames_out = 0
        self.frames_audio = 0
        self.underruns = 0
        self.dropped_late = 0
        self._open_item: str | None = None   # item still streaming in (underrun accounting)
        # what the last few pulls handed out, per frame ((item, samples), ...): a port that queues
        # frames ahead of the wire (the native port) gives back the unsent ones at a clear
        self._recent: deque[tuple] = deque(maxlen=4)

    # -- producer side (network thread) -------------------------------------------------------
    def push(self, pcm: bytes, item_id: str, generation: int) -> bool:
        """Queue ``pcm`` of ``item_id``; refused (False) when ``generation`` is stale."""
        if len(pcm) % 2:
            raise ValueError("PCM16 needs an even number of bytes")
        with self._lock:
            if generation != self.generation:
                self.dropped_late += 1
                return False
            if pcm:
                self._queue.append([item_id, bytes(pcm), 0])
                self._queued_bytes += len(pcm)
            self._received[item_id] = self._received.get(item_id, 0) + len(pcm) // 2
            self._open_item = item_id
            return True

    def end_item(self, item_id: str) -> None:
        """The item's audio is complete: running dry after it is not an underrun."""
        with self._lock:
            if self._open_item == item_id:
                self._open_item = None

    # -- consumer side (media thread) ---------------------------------------------------------
    def pull(self) -> bytes:
        """Return exactly one frame: queued audio, padded with silence, or silence."""
        with self._lock:
            self.frames_out += 1
            if self.paused or not self._queue:
                if not self.paused and self._open_item is not None:
                    self.underruns += 1
                if not self.paused:   # a paused pull is never queued by the native port (pump.py)
                    self._recent.append(())
                return self._silence
            need = self.frame_bytes
            parts = []
            taken: list[tuple[str, int]] = []
            self._recent.append(taken)   # filled below
            while need and self._queue:
                seg = self._queue[0]
                item, data, off = seg
                take = min(need, len(data) - off)
                parts.append(data[off:off + take])
                self._played[item] = self._played.get(item, 0) + take // 2
                taken.append((item, take // 2))
                need -= take
                if off + take == len(data):
                    self._queue.popleft()
                else:
                    seg[2] = off + take
            self._queued_bytes -= self.frame_bytes - need
            self.frames_audio += 1
            if need and self._open_item is not None:
                self.underruns += 1
            if need:
                parts.append(self._silence[:need])
            return b"".join(parts)

    # -- control (any thread) -----------------------------------------------------------------
    def pause(self) -> None:
        """Send silence from the next frame on, keeping every queued sample."""
        with self._lock:
            self.paused = True

    def resume(self) -> None:
        """Continue with the sample after the last one sent."""
        with self._lock:
            self.paused = False

    def clear(self, unsent: int = 0) -> Cleared:
        """Drop everything queued, refuse later pushes of this generation, report what was heard.

        The reported item is the one at the head of the queue (partly heard or not yet started),
        else the one still streaming in; None when the agent had nothing left to say. ``unsent``:
        how many of the last frames pulled never reached the wire (queued in the native port,
        dropped there by its clear): they count as dropped, not played. Pulls while paused
        (silence the native port drops instead of queuing) are not among them.
        """
        with self._lock:
            item = self._queue[0][0] if self._queue else self._open_item
            dropped = self._queued_bytes // 2
            recent = list(self._recent)
            for taken in recent[len(recent) - min(unsent, len(recent)):]:
                for it, samples in taken:
                    self._played[it] -= samples
                    dropped += samples
                    item = item or it
            self._recent.clear()
            self._queue.clear()
            self._queued_bytes = 0
            self._open_item = None
            self.paused = False
            self.generation += 1
            played = self._played.get(item, 0) if item else 0
            received = self._received.get(item, 0) if item else 0
            return Cleared(item, self._ms(played), self._ms(received), self._ms(dropped))

    # -- observation --------------------------------------------------------------------------
    @property
    def queued_ms(self) -> int:
        return self._ms(self._queued_bytes // 2)

    @property
    def playing(self) -> bool:
        """True while the agent has audio queued or still streaming in."""
        return bool(self._queue) or self._open_item is not None

    def played_ms(self, item_id: str) -> int:
        return self._ms(self._played.get(item_id, 0))

    def received_ms(self, item_id: str) -> int:
        return self._ms(self._received.get(item_id, 0))

    def _ms(self, samples: int) -> int:
        return samples * 1000 // self.sample_rate
