"""Functions the bridge offers the model, and when to act on those that end its part in a call.

``end_call`` (``realtime.end_call_tool``) lets the agent hang up, the way a person does: it says
goodbye, then puts the phone down once the caller has heard it. The model calls the function in
the response that carries the goodbye; the bridge hangs up (BYE) when that response is done, its
audio has been handed to RTP and :data:`TAIL_MS` of silence has followed (the caller's jitter
buffer still holds the last words when the packet leaves). If the caller speaks over the goodbye
(a confirmed barge-in), the hang-up is called off and the model is told so in the function's
output: the call goes on. :class:`Hangup` is that decision, one 20 ms frame at a time.

``transfer_call`` (``realtime.transfer_to``) waits the same way, then asks the caller's side to
call the transfer target (a blind transfer, SIP REFER). The BYE follows the far end's report
that the new call was answered; a refusal or failure goes back to the model as the function's
output, and the agent carries on.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

from .protocol import Tool


def _reason(why: str) -> dict:
    """Parameters of a function whose only (optional) argument is a short ``reason``."""
    return {"type": "object",
            "properties": {"reason": {"type": "string", "description": f"{why}, in a few words"}}}


END_CALL = Tool(
    name="end_call",
    description=("End the phone call. Say goodbye in the same response first: the line is hung "
                 "up once the caller has heard it. If the caller speaks over the goodbye, the "
                 "call goes on."),
    parameters=_reason("why the call ends"),
)

TRANSFER_CALL = Tool(
    name="transfer_call",
    description=("Transfer the caller to a human colleague. Tell the caller first, in the same "
                 "response; the transfer starts once they have heard it. If it fails you get the "
                 "reason and stay on the call."),
    parameters=_reason("why the caller is transferred"),
)

TAIL_MS = 300            # silence after the goodbye's last sample before the BYE
MAX_WAIT_MS = 30_000     # hang up this long after the call at the latest, talking or not
FRAME_MS = 20


def call_reason(arguments: str) -> str | None:
    """The ``reason`` argument of a call, if the model gave a readable one."""
    try:
        args = json.loads(arguments) if arguments else {}
    except ValueError:
        return None
    reason = args.get("reason") if isinstance(args, dict) else None
    return reason[:200] if isinstance(reason, str) else None


@dataclass
class Hangup:
    """The agent asked (in ``response_id``) to end or transfer the call; :meth:`tick` says when.

    Written by the event loop (:meth:`response_done`), read by the media clock (:meth:`tick`):
    each field has one writer, except ``fired``: whoever acts first (the clock's :meth:`tick`,
    or :meth:`claim` when the model's socket drops) takes it, under a lock, exactly once.
    """

    response_id: str
    call_id: str
    reason: str | None = None
    action: str = END_CALL.name   # or TRANSFER_CALL.name
    tail_ms: int = TAIL_MS
    max_wait_ms: int = MAX_WAIT_MS
    done: bool = False        # the response that asked is over (its audio all received)
    _quiet_ms: int = 0
    _waited_ms: int = 0
    fired: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def response_done(self, response_id: str) -> None:
        if response_id == self.response_id:
            self.done = True

    def tick(self, playing: bool) -> bool:
        """One 20 ms frame went out; ``playing``: agent audio is still queued or arriving.

        True exactly once: hang up now.
        """
        if self.fired:
            return False
        self._waited_ms += FRAME_MS
        self._quiet_ms = self._quiet_ms + FRAME_MS if self.done and not playing else 0
        if self._quiet_ms >= self.tail_ms or self._waited_ms >= self.max_wait_ms:
            return self.claim()
        return False

    def claim(self) -> bool:
        """Take the action now (True), unless it was taken already (False)."""
        with self._lock:
            if self.fired:
                return False
            self.fired = True
            return True


def called_off_output(action: str = END_CALL.name) -> str:
    """The function output telling the model its hang-up (or transfer) did not happen."""
    key = "ended" if action == END_CALL.name else "transferred"
    return json.dumps({key: False, "why": "the caller spoke over you; the call goes on"})


def transfer_failed_output(status: int, reason: str) -> str:
    """The function output telling the model the transfer was refused or failed."""
    return json.dumps({"transferred": False, "status": status, "why": reason or "failed",
                       "next": "tell the caller, and go on helping them"})


def unknown_output(name: str) -> str:
    return json.dumps({"error": f"no function named {name!r} is available"})


def busy_output() -> str:
    return json.dumps({"error": "the call is already being ended or transferred"})
