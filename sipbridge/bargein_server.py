"""The provider's turn detector (``server_vad``: OpenAI, Hydra, ...) in the barge-in policy.

Shared by both pause triggers (:mod:`sipbridge.bargein`, :mod:`sipbridge.bargein_voice`): the
provider's ``speech_started`` pauses too (it fires on noise as well) and holds the pause; only
a confirmation cancels (the provider cancelled its response or created a new one, or Silero
confirmed a voice), and the provider's discarded turn, or ``resume_window_ms`` with no
confirmation (counted from the provider's last turn event or the caller's last active frame,
whichever is later), resumes the answer where it paused. The host class provides
``enabled``, ``paused_at``, ``last_loud``, ``resume_window``, ``_pause``, ``_resume`` and
``_cancel``, and calls :meth:`_server_hold` for frames while ``server_at`` is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .bargein import Decision


class ServerHold:
    """The ``on_server_*`` decisions, mixed into a barge-in policy."""

    server_at: int | None = None   # sample of the provider's speech_started holding the pause

    def on_server_speech(self, at_sample: int, agent_talking: bool) -> Decision | None:
        """The provider's ``speech_started`` (it also fires on noise): pause, never cancel.

        While it holds, the local detector's own resumes are ignored; only a confirmation
        (:meth:`on_server_confirm`, or the local detector's confirmed speech) cancels, and
        :meth:`on_server_discard` or ``resume_window_ms`` without a confirmation resumes."""
        if not self.enabled or (not agent_talking and self.paused_at is None):
            return None
        if self.paused_at is not None:   # already paused by the local detector: now held too
            self.server_at = at_sample
            return None
        decision = self._pause("server_vad", at_sample)
        self.server_at = at_sample
        return decision

    def on_server_confirm(self, at_sample: int, agent_talking: bool) -> Decision | None:
        """The provider confirmed the caller's turn: it cancelled the response itself, or
        created a new one. The agent's queued audio is stale: cancel (even with barge-in off,
        the provider's response is gone)."""
        if self.paused_at is None and not agent_talking:
            return None
        return self._cancel("server_vad", at_sample)

    def on_server_discard(self, at_sample: int) -> Decision | None:
        """The provider dropped the turn its ``speech_started`` began (noise): resume where the
        agent paused."""
        if self.server_at is None:
            return None
        self.server_at = None
        return self._resume("server_discarded", at_sample)

    def _server_hold(self, end_sample: int, speechlike: bool = False) -> Decision | None:
        """A frame while the provider's pause holds: no confirmation within the window resumes.
        The window runs from the later of the provider's last turn event and the caller's last
        active frame: a caller still talking (a provider that confirms only with its answer,
        like OpenAI's server_vad without interrupt_response) keeps the agent paused. (Silero
        does not run in server_vad mode; its confirmation, when it runs, comes by on_turn.)"""
        if end_sample - max(self.server_at, self.last_loud) >= self.resume_window:
            return self._resume("server_timeout", end_sample)
        return None

    def on_server_speech_stopped(self, at_sample: int) -> None:
        """The provider ended the caller's turn: its answer (a confirmation) should follow
        within the window, which starts again here."""
        if self.server_at is not None:
            self.server_at = at_sample
