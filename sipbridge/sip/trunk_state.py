"""What one trunk's registration is doing, and what each REGISTER result means. Pure logic.

pjsua sends the REGISTERs and refreshes them before they expire; this class only interprets
the outcome of each transaction (status code, reason, granted expiry) and says what to log
and when to try again, with a :class:`~sipbridge.backoff.Backoff` for the waits.

Phases::

    REGISTERING --2xx, expires > 0--> REGISTERED --refresh 2xx--> REGISTERED (no log line)
         |                               |
         +--- failure ---> WAITING <-----+ failure (refresh timed out, 403, ...), or the
                             |             binding expired while the refresh goes unanswered
                             |  retry_in_s later: attempt() -> REGISTERING
    any --stop()--> UNREGISTERING --result--> STOPPED

Each result maps to an :class:`Outcome`: the log event (``trunk_registered``,
``trunk_registration_failed``, ``trunk_unregistered``, or ``trunk_refreshed`` at debug level),
its fields, and ``retry_in_s`` when a new attempt must be scheduled.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from ..backoff import Backoff


class Phase(enum.Enum):
    REGISTERING = "registering"
    REGISTERED = "registered"
    WAITING = "waiting"            # failed; a retry is scheduled
    UNREGISTERING = "unregistering"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Outcome:
    event: str | None
    level: str = "info"
    fields: dict = field(default_factory=dict)
    retry_in_s: float | None = None


_REASONS = {
    401: "authentication failed: check the password",
    407: "authentication failed at the proxy: check the password",
    403: "forbidden by the registrar: check the username and password",
    404: "the registrar does not know this user: check the username",
    408: "the registrar did not answer (timeout)",
}


def failure_reason(code: int, reason: str) -> str:
    """A sentence for the operator saying why a REGISTER failed."""
    if code in _REASONS:
        return _REASONS[code]
    if code == 0:
        return f"could not send the REGISTER: {reason or 'transport error'}"
    if 200 <= code < 300:
        return "the registrar answered but kept no binding for our contact"
    if code >= 500:
        return f"registrar unavailable: {code} {reason}".rstrip()
    return f"registrar refused: {code} {reason}".rstrip()


_CONTACT_HEADER = re.compile(r"^(?:contact|m)\s*:(.*)$", re.IGNORECASE | re.MULTILINE)
_URI = re.compile(r"<([^>]*)>")


def own_contact(message: str, host: str, port: int) -> str | None:
    """Our binding among the Contact headers of a REGISTER's 200 (the registrar's view).

    The 200 lists every contact bound to the address of record; ours is the one naming our
    ``host:port``. Falls back to the first contact, or None when there is none.
    """
    uris = [u for line in _CONTACT_HEADER.findall(message or "") for u in _URI.findall(line)]
    mine = f"@{host}:{port}"
    for uri in uris:
        if mine in uri or uri.split(";")[0].endswith(f"{host}:{port}"):
            return uri
    return uris[0] if uris else None


class TrunkState:
    """The registration state of one trunk; every method takes the current time."""

    def __init__(self, name: str, backoff: Backoff):
        self.name = name
        self.backoff = backoff
        self.phase = Phase.REGISTERING
        self.expires: int | None = None
        self.contact: str | None = None
        self.failures = 0          # failed attempts since the last success (for the log)
        self.registered_at: float | None = None   # time of the last 2xx that granted a binding

    def attempt(self, now: float) -> bool:
        """A retry is due: True if a REGISTER should be sent now (not when stopping)."""
        if self.phase is not Phase.WAITING or not self.backoff.due(now):
            return False
        self.phase = Phase.REGISTERING
        return True

    def stop(self) -> bool:
        """Shutdown begins: True if we hold a binding that should be removed (REGISTER 0)."""
        registered = self.phase is Phase.REGISTERED
        self.phase = Phase.UNREGISTERING if registered else Phase.STOPPED
        self.backoff.next_at = None
        return registered

    def result(self, code: int, reason: str, expiration: int, now: float,
               contact: str | None = None) -> Outcome:
        """Interpret the end of a REGISTER transaction (pjsua's ``onRegState``)."""
        if self.phase is Phase.STOPPED:
            return Outcome(None)
        if self.phase is Phase.UNREGISTERING:
            self.phase = Phase.STOPPED
            return Outcome("trunk_unregistered", fields={
                "trunk": self.name, "status": code, "was_registered": True,
                "ok": 200 <= code < 300})
        if 200 <= code < 300 and expiration > 0:
            was = self.phase
            changed = (was is not Phase.REGISTERED or expiration != self.expires
                       or contact != self.contact)
            self.phase, self.expires, self.contact = Phase.REGISTERED, expiration, contact
            self.registered_at = now
            self.backoff.success()
            self.failures = 0
            fields = {"trunk": self.name, "expires": expiration, "contact": contact}
            if changed:
                return Outcome("trunk_registered", fields=fields)
            return Outcome("trunk_refreshed", level="debug", fields=fields)
        return self._failed(code, reason, now)

    def check_expiry(self, now: float) -> Outcome:
        """The binding's lifetime is over with no answer to the refresh: we are not registered.

        A REGISTER to a dead registrar is retransmitted for 32 s (timer F) before pjsua reports
        408; the binding lapses long before. This says so at the lapse; the retry with backoff
        follows the 408 (a new REGISTER cannot be sent while one is pending).
        """
        if (self.phase is not Phase.REGISTERED or self.registered_at is None
                or self.expires is None or now < self.registered_at + self.expires):
            return Outcome(None)
        self.phase = Phase.WAITING
        self.expires = self.contact = self.registered_at = None
        return Outcome("trunk_registration_failed", level="warning", fields={
            "trunk": self.name, "status": 408,
            "reason": "the registration expired: the registrar did not answer the refresh",
            "sip_reason": None, "retry_in_s": None, "attempt": self.failures + 1})

    def send_failed(self, error: str, now: float) -> Outcome:
        """Sending the REGISTER failed locally (pjsua raised): retry like any failure."""
        if self.phase in (Phase.UNREGISTERING, Phase.STOPPED):
            return Outcome(None)
        return self._failed(0, error, now)

    def _failed(self, code: int, reason: str, now: float) -> Outcome:
        self.phase = Phase.WAITING
        self.expires = self.contact = self.registered_at = None
        self.failures += 1
        wait = self.backoff.failure(now)
        return Outcome("trunk_registration_failed", level="warning", retry_in_s=wait, fields={
            "trunk": self.name, "status": code, "reason": failure_reason(code, reason),
            "sip_reason": reason, "retry_in_s": round(wait, 3), "attempt": self.failures})
