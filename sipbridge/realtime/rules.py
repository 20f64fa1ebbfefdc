"""What the OpenAI Realtime server refuses, kept on the client side: pure, no I/O, no clock.

The real server enforces rules that a loose test server would let pass; breaking them costs the
caller an answer or the rest of an update. :class:`ResponseGate` and :class:`VoiceLock` apply
them to the client events the session sends, so the session itself never has to know:

* **One response at a time.** A ``response.create`` while a response is active is refused with
  ``conversation_already_has_active_response`` ("Wait until the response is finished before
  creating a new one"). A turn committed while the previous response is still starting (asked
  for, no ``response.created`` yet) or still finishing its cancel (``response.cancel`` sent, no
  ``response.done`` yet) would leave the caller unanswered. The gate holds such a create and
  releases it, in order, at the active response's ``response.done``. A response the server
  starts on its own (server VAD with ``create_response``) counts as active too; a create the
  server refused anyway (its response was unknown to us) goes back to the head of the queue.
* **Voice fixed after the first audio.** "Voice cannot be changed during the session once the
  model has responded with audio at least once": a ``session.update`` carrying ``voice`` after
  that is refused whole (``cannot_update_voice``), so instructions or tools sent with it would be
  lost. The lock drops the voice from such an update and says whether it differed (a real
  change the provider cannot make; the caller keeps the first voice).

A queued create is released only by the server's ``response.done`` (or the refusal of the
create in flight); a reconnect starts a new client, and with it a new gate.
"""

from __future__ import annotations

import copy
from collections import deque
from typing import Any

ACTIVE_RESPONSE = "conversation_already_has_active_response"
UNKNOWN = "?"   # an active response whose id we have not seen

Event = dict[str, Any]


class ResponseGate:
    """Lets one ``response.create`` through at a time (see the module docstring)."""

    def __init__(self) -> None:
        self.active: str | None = None       # the response the server is working on
        self.asked: Event | None = None      # a create sent, no response.created for it yet
        self.sent: Event | None = None       # the last create sent (a refusal may come late)
        self.waiting: deque[Event] = deque()
        self.held = 0                        # creates that had to wait (for the log)

    @property
    def busy(self) -> bool:
        return self.active is not None or self.asked is not None

    def offer(self, event: Event) -> bool:
        """A ``response.create`` the session wants sent: True to send it now, False when it
        was queued behind the response in progress."""
        if self.busy or self.waiting:
            self.waiting.append(event)
            self.held += 1
            return False
        self.asked = self.sent = event
        return True

    def created(self, response_id: str) -> None:
        """``response.created``: ours (the one asked for) or the server's own."""
        self.asked = None
        self.active = response_id

    def done(self, response_id: str) -> Event | None:
        """``response.done`` of ``response_id``: the next create to send now, if one waits."""
        if self.active not in (None, UNKNOWN) and self.active != response_id:
            return None  # a late done of an older response: the active one still runs
        self.active = None
        return self._next()

    def refused(self, event_id: str | None, code: str | None) -> Event | None:
        """An ``error`` event. When it refuses our last create (``event_id`` names it, or the
        server left it null on an active-response refusal of the create in flight): refused
        for an active response we did not know of, it goes back to the head of the queue and
        waits for that response's done; refused for another reason, the gate frees up and the
        next create, if any, is returned to be sent now."""
        target = self.sent
        if target is None:
            return None
        if event_id is not None and event_id != target.get("event_id"):
            return None
        if event_id is None and not (code == ACTIVE_RESPONSE and self.asked is target):
            return None
        self.sent = None
        if self.asked is target:
            self.asked = None
        if code == ACTIVE_RESPONSE:
            self.waiting.appendleft(target)
            if self.active is None:
                self.active = UNKNOWN  # the server's own response: its done frees the gate
            return None
        return self._next()

    def _next(self) -> Event | None:
        if self.busy or not self.waiting:
            return None
        self.asked = self.sent = self.waiting.popleft()
        return self.asked


class VoiceLock:
    """Keeps ``voice`` out of ``session.update`` once the model has spoken."""

    def __init__(self, voice: str | None) -> None:
        self.voice = voice            # the voice the session was opened with (None: provider's)
        self.spoken = False           # assistant audio has been received

    def heard_audio(self) -> None:
        self.spoken = True

    def filter(self, event: Event) -> tuple[Event, str | None]:
        """``(event to send, refused voice)``: after audio, a copy without the voice (GA
        ``session.audio.output.voice``, beta ``session.voice``); the second value is the voice
        asked for when it differs from the one in use (a change the provider refuses), else
        None. Before audio the voice goes through and becomes the one in use."""
        session = event.get("session")
        if not isinstance(session, dict):
            return event, None
        output = (session.get("audio") or {}).get("output") or {}
        where = output if "voice" in output else session if "voice" in session else None
        if where is None:
            return event, None
        if not self.spoken:
            self.voice = where["voice"]
            return event, None
        asked = where["voice"]
        event = copy.deepcopy(event)
        if where is output:
            del event["session"]["audio"]["output"]["voice"]
        else:
            del event["session"]["voice"]
        return event, (asked if asked != self.voice else None)
