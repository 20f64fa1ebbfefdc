"""Who speaks after an app tool answers: when its output is followed by ``response.create``. Pure.

The output of every tool call always goes to the model (``function_call_output``), whenever it
arrives: the conversation must hold an answer for each call. Whether a ``response.create``
follows obeys two rules:

* **One response at a time.** The Realtime API refuses ``response.create`` while a response is
  in progress (``conversation_already_has_active_response``). An output arriving while one is in
  progress, or asked for and not yet created, is answered once that response is done.
* **The caller's turn is theirs.** If the caller barged in (the one cancel path,
  :meth:`~sipbridge.session.CallSession.interrupt`) while a tool was running, the caller has the
  turn: the output is added to the conversation but no response is asked for; the response to
  the caller's committed turn (the bridge's commit, or the provider's with ``server_vad``) is made
  with the output already in the model's context. Once that turn is committed, outputs arriving
  later are answered as usual. (A DTMF or API interrupt hands the turn over the same way: the
  agent speaks again when the caller's next turn is committed.)

Parallel calls (several ``function_call`` items in one response) are answered together: one
``response.create`` once the last of the calls running has its output. Each call has its
timeout, so this never waits longer than the slowest call's ``app.tool_timeout_ms``.

:class:`ToolTurns` is fed the session's events on the event loop and answers with a bool: send
``response.create`` now.
"""

from __future__ import annotations


class ToolTurns:
    """The turn state around the app's tool calls of one call session (event loop only)."""

    def __init__(self) -> None:
        self.running: set[str] = set()   # function call ids whose output has not arrived
        self.active = False              # a response is in progress upstream
        self.expecting = False           # response.create sent (by the bridge), not yet created
        self.caller_turn = False         # the caller barged in while a tool ran: they speak next
        self.owed = False                # outputs arrived that no response has answered yet
        self.ours = False                # the response.create in flight is ours (an answer)

    def called(self, call_id: str) -> None:
        """An app tool call started."""
        self.running.add(call_id)

    def finished(self, call_id: str) -> bool:
        """Its output was sent to the model: True when ``response.create`` must follow now."""
        if call_id not in self.running:
            return False  # forgotten (a new upstream session): the output was not for it
        self.running.discard(call_id)
        if self.caller_turn:
            return False
        self.owed = True
        return self._release()

    def _release(self) -> bool:
        if self.owed and not self.running and not self.active and not self.expecting:
            self.owed = False
            self.expecting = self.ours = True
            return True
        return False

    def interrupted(self) -> None:
        """The one cancel path ran: with a tool running or an answer owed, the caller has the turn."""
        if self.running or self.owed:
            self.caller_turn = True
            self.owed = False

    def committed(self) -> None:
        """The caller's turn was committed: its response will see every output sent so far."""
        self.caller_turn = False
        self.owed = False

    def requested(self) -> None:
        """The bridge sent ``response.create`` (the caller's turn, a greeting, ...)."""
        self.expecting = True

    def response_created(self) -> None:
        self.active, self.expecting, self.ours = True, False, False

    def refused(self) -> None:
        """The server refused a ``response.create`` (a response was already in progress, e.g.
        one asked for by the API's ``say``): if it was ours, the answer is owed again and asked
        for when that response is done."""
        self.expecting = False
        if self.ours:
            self.ours = False
            self.owed = not self.caller_turn

    def response_done(self) -> bool:
        """A response ended: True when an owed ``response.create`` must be sent now."""
        self.active = False
        return self._release()

    def reset(self) -> None:
        """A new upstream session: the old one's calls and responses are gone."""
        self.__init__()
