"""The tap subscriber that turns a process's log events into records and call events.

Runs on the tap's thread (:mod:`sipbridge.app.tap`), never on the media clock: each event is
folded into the :class:`~sipbridge.app.records.CallBook`; a record change is queued to the
SQLite writer (:class:`~sipbridge.app.recordstore.RecordStore`), and the public event it maps
to (:func:`~sipbridge.app.events.to_event`) is handed to the loop's
:class:`~sipbridge.app.events.EventHub`. Both hand-offs return at once.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3

from ..errors import ConfigError
from . import signing
from .events import EventHub, EventSender, to_event
from .records import CallBook
from .recordstore import RecordStore
from .tap import TAP


class CallFeed:
    """``feed(event_dict)``: one tap event in; rows and events out."""

    def __init__(self, store, hub: EventHub | None):
        # store: a RecordStore, a cell worker's RecordPusher (both ``submit``), or None
        self.book = CallBook()
        self.store, self.hub = store, hub

    def __call__(self, ev: dict) -> None:
        update = self.book.feed(ev)
        if update is not None and self.store is not None:
            self.store.submit(update)
        if self.hub is not None:
            uid = update.record["uid"] if update is not None else self.book.uid_of(ev.get("call_id"))
            if uid is None and ev.get("event") == "outbound_progress":  # no Call-ID yet
                uid = ev.get("uid") if isinstance(ev.get("uid"), str) else None
            event = to_event(ev, update, uid)
            if event is not None:
                self.hub.publish_threadsafe(event)


class Recording:
    """A worker's records and events: the SQLite writer, the event hub and sender, and the
    tap subscription that feeds them. ``start`` (control thread, the loop running) before
    calls arrive; ``stop`` after the calls are drained, before the loop stops."""

    def __init__(self, config, loop, worker_index: int | None = None, environ=None, sink=None):
        self.config, self.loop = config, loop
        self.store = (RecordStore(config.records.path, config.records.keep_days, worker_index)
                      if config.records.path and sink is None else None)
        self.pusher = None   # a cell's worker: its records go to the supervisor, the one writer
        if sink is not None:
            from ..cell.records_push import RecordPusher
            self.pusher = RecordPusher(loop, *sink, worker_index)
        self.sender = None
        app = config.app
        if app.events_url:
            self.sender = EventSender(app.events_url, _signing_key(app, environ), app.events_queue)
        self.hub = EventHub(loop, self.sender)
        self.feed = CallFeed(self.store or self.pusher, self.hub)
        self._unsubscribe = None
        self.serves_api = False   # a cell's worker serving its supervisor (no api.listen of its own)

    def start(self) -> None:
        if self.store is not None:
            try:
                self.store.start()
            except (OSError, sqlite3.Error, RuntimeError) as exc:
                raise ConfigError("records.path", f"{self.config.records.path}: {exc}") from None
        if self.pusher is not None:
            self.pusher.start()
        if self.sender is not None:
            asyncio.run_coroutine_threadsafe(_on_loop(self.sender.start), self.loop).result(5)
        if (self.store is not None or self.pusher is not None or self.sender is not None
                or self.config.api.listen or self.serves_api):
            self._unsubscribe = TAP.subscribe(self.feed)   # else nobody would read the output

    def stop(self, deadline_s: float = 2.0) -> None:
        """Fold what was logged so far, write it, and give the receiver ``deadline_s``."""
        if self._unsubscribe is not None:
            TAP.flush(deadline_s)
            self._unsubscribe()
            self._unsubscribe = None
        if self.store is not None:
            self.store.stop(deadline_s)
        if self.pusher is not None and not self.loop.is_closed():
            self.pusher.stop(deadline_s)
        if self.sender is not None and not self.loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(self.sender.close(deadline_s),
                                                 self.loop).result(deadline_s + 2)
            except Exception:  # noqa: BLE001 - shutting down: what is left is counted as left
                pass


async def _on_loop(fn) -> None:
    fn()


def _signing_key(app, environ=None) -> bytes:
    """The events' signing key from ``app.webhook_secret_env``; ConfigError naming that key when
    it is unset or unusable (events carry call records: they are always signed)."""
    env = os.environ if environ is None else environ
    secret = env.get(app.webhook_secret_env)
    if not secret:
        raise ConfigError("app.webhook_secret_env", f"app.events_url is set but "
                          f"${app.webhook_secret_env} is empty or unset (events must be signed)")
    try:
        return signing.secret_key(secret)
    except ValueError as exc:
        raise ConfigError("app.webhook_secret_env", f"${app.webhook_secret_env} {exc}") from None
