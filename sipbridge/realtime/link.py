"""Keep one call's model session alive: watch the socket, reconnect after a drop, or give up.

:class:`UpstreamLink` is the asyncio shell around :mod:`sipbridge.realtime.retry`. It reads the
current :class:`~sipbridge.realtime.upstream.Upstream` (any provider's adapter) until it ends, then:

* a deliberate close (code 1000) ends the conversation: ``upstream_closed``, then
  ``on_end("upstream_closed")`` (the call is hung up with BYE);
* anything else is a drop (no close frame, 1001, 1011 after a ping timeout, any other code, a
  failed read, or an ``error`` event the adapter calls fatal, reported through :meth:`drop`):
  ``upstream_lost`` (reason, code), ``on_lost()`` (the session silences the agent and may start
  a prompt), then up to ``attempts`` reconnects, each after its backoff delay
  (``upstream_reconnecting`` attempt, delay_ms; a failure logs ``upstream_reconnect_failed``).
  A new client comes from ``make_client()`` (the session builds it with the session
  configuration in force now) and is handed over with ``on_restored(client)`` once its
  ``session.updated`` arrived (``upstream_restored`` attempt, outage_ms). When the attempts are
  spent: ``upstream_gave_up`` (attempts, outage_ms), then ``on_end("upstream_lost")``.

The caller's media never waits for any of this: the media clock keeps pulling frames (silence or
the prompt) and RTP keeps flowing both ways while the link reconnects. Everything here runs on
the event loop thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sipbridge.realtime.retry import Outage, classify_close, is_fatal_error
from sipbridge.realtime.upstream import Upstream, UpstreamError
from sipbridge.backoff import Backoff


class UpstreamLink:
    """Supervises the upstream session of one call; see the module docstring."""

    def __init__(self, *, make_client: Callable[[], Upstream], attempts: int, backoff: Backoff,
                 log, on_lost: Callable[[], None], on_restored: Callable[[Upstream], None],
                 on_end: Callable[[str], None]):
        self._make_client = make_client
        self.attempts = attempts
        self.backoff = backoff
        self.log = log
        self._on_lost = on_lost
        self._on_restored = on_restored
        self._on_end = on_end
        self._closing = False
        self._watched: Upstream | None = None
        self._connecting: Upstream | None = None
        self._fatal: str | None = None
        self.outages = 0
        self.reconnects = 0

    def fatal(self, code: str | None, message: str, kind: str | None = None) -> bool:
        """An ``error`` event arrived (``kind`` is its ``error.type``); if it is of a fatal kind
        or code, drop the current socket. Returns that."""
        if not is_fatal_error(code, kind):
            return False
        return self.drop(f"server error {kind or 'error'}/{code}: {message}")

    def drop(self, reason: str) -> bool:
        """The current session is unusable though its socket is open (the adapter judged an
        error fatal): close it and reconnect as after any drop. Returns whether it was dropped."""
        if self._watched is None or self._fatal is not None:
            return False
        self._fatal = reason
        asyncio.ensure_future(self._watched.close())
        return True

    async def close(self) -> None:
        """Stop supervising (the call is over); a connect in progress is abandoned."""
        self._closing = True
        if self._connecting is not None:
            await self._connecting.close()

    async def supervise(self, client: Upstream) -> None:
        """Run until the call ends or the session is closed (see the module docstring)."""
        while True:
            kind, reason, code = await self._watch(client)
            if self._closing:
                return
            if kind == "normal":
                self.log.info("upstream_closed", reason=reason, code=code)
                self._on_end("upstream_closed")
                return
            self.outages += 1
            self.log.warning("upstream_lost", reason=reason, code=code, attempts=self.attempts)
            self._on_lost()  # the agent goes silent first; the dead socket is tidied after
            await client.close()
            client = await self._reconnect()
            if client is None:
                return

    async def _watch(self, client: Upstream) -> tuple[str, str, int | None]:
        self._watched, self._fatal = client, None
        try:
            info = await client.run()
        except UpstreamError as exc:
            return "drop", str(exc), exc.close_code
        except Exception as exc:  # noqa: BLE001 - a failed read is a drop like any other
            return "drop", f"{type(exc).__name__}: {exc}", None
        finally:
            self._watched = None
        if self._fatal is not None:
            return "drop", self._fatal, info.code
        return classify_close(info.code), info.reason or "closed by the model server", info.code

    async def _reconnect(self) -> Upstream | None:
        loop = asyncio.get_running_loop()
        outage = Outage(self.backoff, self.attempts, loop.time() * 1000)
        while (delay := outage.next_delay_ms(loop.time() * 1000)) is not None:
            self.log.info("upstream_reconnecting", attempt=outage.attempt, delay_ms=delay)
            await asyncio.sleep(delay / 1000)
            if self._closing:
                return None
            client = self._connecting = self._make_client()
            try:
                await client.connect()
            except UpstreamError as exc:
                self.log.warning("upstream_reconnect_failed", attempt=outage.attempt, reason=str(exc),
                                 status=exc.status, code=exc.close_code)
                continue
            finally:
                self._connecting = None
            if self._closing:
                await client.close()
                return None
            self.reconnects += 1
            self.log.info("upstream_restored", attempt=outage.attempt,
                          outage_ms=outage.restored(loop.time() * 1000))
            self._on_restored(client)
            return client
        if self._closing:
            return None
        self.log.warning("upstream_gave_up", attempts=self.attempts,
                         outage_ms=outage.restored(loop.time() * 1000))
        self._on_end("upstream_lost")
        return None
