"""Registering with SIP trunks: one pjsua2 ``Account`` per ``trunks:`` entry.

pjsua sends the REGISTER (``regConfig.registrarUri``, ``timeoutSec`` = ``expires``), answers
the digest challenge with the trunk's ``AuthCredInfo`` and refreshes the binding before it
expires, by itself. pjsua's own retry is switched off (``retryIntervalSec = 0``): it would not
retry after a 401/403 at all, and after a timeout only at a fixed interval. Instead every
failure goes through :class:`~sipbridge.sip.trunk_state.TrunkState` and a capped exponential
:class:`~sipbridge.backoff.Backoff`; the retry is a timer that posts the new REGISTER to the
control thread (pjsua2 calls only from pjlib-registered threads), so the trunk comes back by
itself when the registrar does.

Threads: ``onRegState`` runs on pjsua's worker and only updates the pure state under a lock and
logs; ``start``/``unregister``/``close`` and the retries run on the control thread, never
holding that lock while calling pjsua (pjsua may call back synchronously).

INVITEs sent to a trunk's registered Contact match that trunk's account (pjsua picks the
account by the request URI), so its ``onIncomingCall`` hands them to the same policy as the
local account's, with the account, so the call belongs to it.

A trunk with ``register`` off (every trunk of a cell's worker: the cell's front registers it,
see :func:`sipbridge.cli.worker_config`) gets the same account without a registrar: it never
sends REGISTER (nor REGISTER 0 at shutdown) and serves only to place INVITEs through the trunk
(its outbound proxy, its From domain) and answer the carrier's 401/407 with its credentials.

Log lines: ``trunk_registered`` (trunk, expires, contact), ``trunk_registration_failed``
(trunk, status, reason, retry_in_s), ``trunk_unregistered`` (at shutdown), ``trunk_dial_only``
(trunk, aor, proxy: an account that never registers). Passwords are never logged.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pjsua2 as pj
import structlog

from ..trunk_config import TrunkConfig
from ..backoff import Backoff
from .trunk_state import Outcome, Phase, TrunkState, own_contact

log = structlog.get_logger("sipbridge.trunk")

JITTER = 0.1              # retries wait 90-100 % of the backoff delay (never below retry_min_s)
UNREGISTER_WAIT_S = 2.0   # how long shutdown waits for the registrar to confirm REGISTER 0


class TrunkAccount(pj.Account):
    """A trunk's pjsua2 account: forwards registration results and incoming calls."""

    def __init__(self, owner: "TrunkRegistration"):
        super().__init__()
        self.owner = owner
        self.trunk_name = owner.trunk.name

    def onRegState(self, prm):  # noqa: N802 - pjsua2 naming
        try:
            code, reason, expiration = int(prm.code), str(prm.reason), int(prm.expiration)
            message = ""
            if 200 <= code < 300 and expiration > 0:
                try:
                    message = prm.rdata.wholeMsg
                except Exception:  # noqa: BLE001 - no rdata (e.g. a local error)
                    message = ""
            self.owner.on_reg_state(code, reason, expiration, message)
        except Exception:  # noqa: BLE001 - never into SWIG
            log.exception("trunk_reg_state_handler_failed", trunk=self.trunk_name)

    def onIncomingCall(self, prm):  # noqa: N802
        try:
            self.owner.on_incoming(prm, self)
        except Exception:  # noqa: BLE001
            log.exception("incoming_call_handler_failed", trunk=self.trunk_name)


class TrunkRegistration:
    """One trunk: its account, its registration state and its retry timer."""

    def __init__(self, trunk: TrunkConfig, stack, post: Callable, on_incoming: Callable,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None):
        self.trunk = trunk
        self.stack = stack
        self.post = post
        self.on_incoming = on_incoming
        self.clock = clock
        self.state = TrunkState(trunk.name, Backoff(trunk.retry_min_s, trunk.retry_max_s,
                                                    jitter=JITTER, rng=rng or random.Random()))
        self.account: TrunkAccount | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._timer: threading.Timer | None = None
        self._expiry_timer: threading.Timer | None = None
        self._timers_lock = threading.Lock()   # _act runs on pjsua's, timer and control threads
        host = stack.sip.public_host or stack.sip.host
        self._our_hostport = (host, stack.sip.port)

    # -- control thread -----------------------------------------------------------------------
    def account_config(self) -> "pj.AccountConfig":
        t = self.trunk
        acfg = pj.AccountConfig()
        acfg.idUri = t.aor
        rc = acfg.regConfig
        rc.registrarUri = t.registrar if t.register else ""   # dial only: pjsua never REGISTERs
        rc.timeoutSec = t.expires
        rc.retryIntervalSec = 0          # retries are ours (backoff), not pjsua's
        rc.firstRetryIntervalSec = 0
        rc.registerOnAdd = t.register
        rc.unregWaitMsec = int(UNREGISTER_WAIT_S * 1000)
        if t.outbound_proxy:
            acfg.sipConfig.proxies.append(t.outbound_proxy)
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", t.realm, t.username, 0,
                                                        t.password))
        self.stack.configure_media(acfg)
        return acfg

    def start(self) -> None:
        """Create the account; pjsua sends the first REGISTER at once (unless dial-only)."""
        if self.trunk.register:
            log.info("trunk_registering", trunk=self.trunk.name, registrar=self.trunk.registrar,
                     aor=self.trunk.aor, expires=self.trunk.expires)
        else:
            log.info("trunk_dial_only", trunk=self.trunk.name, aor=self.trunk.aor,
                     proxy=self.trunk.outbound_proxy)
        account = TrunkAccount(self)
        self.stack.track(account)
        self.account = account
        account.create(self.account_config(), True)

    def retry(self) -> None:
        """A backoff timer fired: send a new REGISTER if the trunk still needs one."""
        if not self.trunk.register:
            return
        with self._lock:
            send = self.account is not None and self.state.attempt(self.clock())
        if not send:
            return
        try:
            self.account.setRegistration(True)
        except Exception as exc:  # noqa: BLE001 - e.g. the transport is gone; retry later
            with self._lock:
                outcome = self.state.send_failed(_error_text(exc), self.clock())
            self._act(outcome)

    def unregister(self) -> None:
        """Shutdown: cancel retries, send REGISTER with expires 0 if we hold a binding."""
        self._cancel_timer()
        if not self.trunk.register:   # no binding to remove, nothing to report
            return
        with self._lock:
            registered = self.state.stop()
        if self.account is None:  # never started (start-up failed) or already closed
            return
        if not registered:
            log.info("trunk_unregistered", trunk=self.trunk.name, was_registered=False)
            return
        try:
            self.account.setRegistration(False)
        except Exception as exc:  # noqa: BLE001 - e.g. a refresh in flight (busy)
            with self._lock:
                self.state.phase = Phase.STOPPED
                self._changed.notify_all()
            log.warning("trunk_unregistered", trunk=self.trunk.name, was_registered=True,
                        ok=False, reason=_error_text(exc))

    def wait_unregistered(self, deadline: float) -> None:
        """Wait (until the monotonic ``deadline``) for the registrar to confirm REGISTER 0."""
        with self._lock:
            while self.state.phase is Phase.UNREGISTERING:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.state.phase = Phase.STOPPED
                    log.warning("trunk_unregistered", trunk=self.trunk.name, was_registered=True,
                                ok=False, reason="no answer from the registrar")
                    break
                self._changed.wait(left)

    def close(self) -> None:
        """Delete the account (before the library goes); safe to call twice."""
        self._cancel_timer()
        account, self.account = self.account, None
        if account is not None:
            try:
                account.shutdown()
            except Exception:  # noqa: BLE001
                log.exception("trunk_account_shutdown_failed", trunk=self.trunk.name)

    # -- pjsua worker thread ------------------------------------------------------------------
    def on_reg_state(self, code: int, reason: str, expiration: int, message: str) -> None:
        contact = own_contact(message, *self._our_hostport) if message else None
        with self._lock:
            outcome = self.state.result(code, reason, expiration, self.clock(), contact)
            self._changed.notify_all()
        self._act(outcome)

    # -- both ---------------------------------------------------------------------------------
    def _check_expiry(self) -> None:
        """Timer thread, at the end of a binding's lifetime: pure state only, no pjsua calls."""
        with self._lock:
            outcome = self.state.check_expiry(self.clock())
        self._act(outcome)

    def _act(self, outcome: Outcome) -> None:
        if outcome.event is not None:
            getattr(log, outcome.level)(outcome.event, **outcome.fields)
        with self._timers_lock:
            if outcome.retry_in_s is not None:
                self._timer = self._restart(self._timer, outcome.retry_in_s, self.post,
                                            (self.retry,))
            if outcome.event in ("trunk_registered", "trunk_refreshed"):
                self._expiry_timer = self._restart(self._expiry_timer,
                                                   outcome.fields["expires"] + 0.5,
                                                   self._check_expiry, ())

    def _restart(self, old: threading.Timer | None, delay: float, fn, args) -> threading.Timer:
        if old is not None:
            old.cancel()
        timer = threading.Timer(delay, fn, args=args)
        timer.daemon = True
        timer.name = f"trunk-{self.trunk.name}"
        timer.start()
        return timer

    def _cancel_timer(self) -> None:
        with self._timers_lock:
            for timer in (self._timer, self._expiry_timer):
                if timer is not None:
                    timer.cancel()
            self._timer = self._expiry_timer = None


class Registrations:
    """Every trunk of the worker. ``start`` after the stack; ``unregister`` when shutdown
    begins (the registrar stops routing new calls to us while ours drain); ``close`` before the
    library is destroyed."""

    def __init__(self, trunks: tuple[TrunkConfig, ...], stack, post: Callable,
                 on_incoming: Callable):
        self.trunks = [TrunkRegistration(t, stack, post, on_incoming) for t in trunks]
        self._unregister_sent_at: float | None = None

    def start(self) -> None:
        for reg in self.trunks:
            reg.start()

    def unregister(self) -> None:
        if self._unregister_sent_at is not None:
            return
        self._unregister_sent_at = time.monotonic()
        for reg in self.trunks:
            reg.unregister()

    def close(self) -> None:
        self.unregister()
        deadline = self._unregister_sent_at + UNREGISTER_WAIT_S
        for reg in self.trunks:
            reg.wait_unregistered(deadline)
        for reg in self.trunks:
            reg.close()


def _error_text(exc: Exception) -> str:
    info = getattr(exc, "info", None)
    if callable(info):
        try:
            return str(info())
        except Exception:  # noqa: BLE001
            pass
    return str(exc) or type(exc).__name__
