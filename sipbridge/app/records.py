"""Call records, folded from the log events a call already produces (pure: no I/O, no clock).

:class:`CallBook` takes the tap's event dicts one by one (:mod:`sipbridge.app.tap`; each carries
``ts``, epoch seconds) and keeps one record per call, keyed by the SIP Call-ID that every line of
a call carries (``call_id``); ``call_incoming`` opens it and names the bridge's own id (``uid``).
:meth:`CallBook.feed` answers with an :class:`Update` when the stored row must change: ``open``
(INVITE accepted for handling), ``answer``, ``end`` (the call is over: the record is complete
but for the session's own counters) and ``update`` (those counters arrived after the end).
Events of calls it never saw opened, and events it does not know, change nothing.

The events folded, and where they come from:

====================  ============  =====================================================
event                 logged by     record fields
====================  ============  =====================================================
call_incoming         worker        uid, parties, trunk, source, route, invite_at
outbound_progress     outbound      opens an outbound call; answered / failed / busy
call_answered         worker        answer_at
call_rejected         worker/route  status rejected, sip_status, end_reason
upstream_unavailable  worker        status failed (503), end_reason
call_hangup           worker        ended_by (agent, api, transfer, bridge), end_reason
call_transfer(_status) worker       transfer target and its final status
call_ended            worker        end_at, sip_status, rtp counters, outcome
speech_started/stopped session      turns; ``eou_ms`` -> end-of-utterance p50/p95
barge_in              session       barge_ins by source
response.done         session       responses by status
upstream_lost/restored link         upstream outages and reconnects
function_call         session       tools (name, when)
tool_called           app tools     tools (latency, outcome)
transcript            session       transcript (caller and agent text)
session_closed        session       underruns, pauses, held_ms, upstream counters
====================  ============  =====================================================
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

OPEN, ANSWER, END, UPDATE = "open", "answer", "end", "update"
IN_PROGRESS, LOST = "in_progress", "lost"
STATUSES = (IN_PROGRESS, "completed", "cancelled", "rejected", "failed", "busy", "no_answer",
            LOST)
"""A record's ``status``: its outcome (``lost``: the worker died while the call was up)."""

MAX_TOOLS = 100
MAX_TRANSCRIPT_CHARS = 32000
MAX_EOU = 1000
_TOOL_FIELDS = ("latency_ms", "ok", "error", "status", "timed_out", "outcome", "detail")
_SESSION_FIELDS = ("underruns", "frames_out", "pauses", "held_ms")
_API_REASONS = ("api", "api_hangup")


@dataclass(frozen=True)
class Update:
    """A change to persist: ``kind`` is open | answer | end | update; ``record`` a snapshot."""

    kind: str
    record: dict


def new_record(uid: str, sip_call_id: str | None, direction: str, at: float) -> dict:
    """An open record with every field present (JSON-ready)."""
    return {
        "uid": uid, "sip_call_id": sip_call_id, "direction": direction, "status": IN_PROGRESS,
        "caller": None, "called": None, "remote": None, "local": None, "trunk": None,
        "route": None, "source": None, "worker": None,
        "invite_at": at, "answer_at": None, "end_at": None,
        "setup_ms": None, "talk_s": None, "total_s": None,
        "sip_status": None, "ended_by": None, "end_reason": None, "transfer": None,
        "turns": 0, "server_turns": 0, "eou_ms": [], "eou_p50_ms": None, "eou_p95_ms": None,
        "barge_ins": {}, "responses": {}, "upstream_outages": 0, "upstream_reconnects": 0,
        "upstream_gave_up": False, "tools": [], "rtp": {}, "session": {}, "transcript": [],
    }


def percentile(values: list, q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class CallBook:
    """The records of calls in progress, folded from log events."""

    def __init__(self, max_open: int = 10000, max_closing: int = 512):
        self._open: OrderedDict[str, dict] = OrderedDict()      # sip call id -> record
        self._closing: OrderedDict[str, dict] = OrderedDict()   # ended, counters may follow
        self.max_open, self.max_closing = max_open, max_closing
        self.evicted = 0      # open records dropped to stay bounded (a call never seen ending)

    def uid_of(self, call_id: str | None) -> str | None:
        rec = self.get(call_id)
        return rec["uid"] if rec else None

    def get(self, call_id: str | None) -> dict | None:
        if call_id is None:
            return None
        return self._open.get(call_id) or self._closing.get(call_id)

    @property
    def open_count(self) -> int:
        return len(self._open)

    def feed(self, ev: dict) -> Update | None:
        """Fold one event; the change to persist, if any."""
        name, call_id = ev.get("event"), ev.get("call_id")
        if not isinstance(call_id, str) or not isinstance(name, str):
            return None
        at = ev.get("ts")
        at = float(at) if isinstance(at, (int, float)) else None
        if name == "call_incoming" and isinstance(ev.get("uid"), str):
            return self._opened(call_id, ev, "inbound", at)
        if name == "outbound_progress" and call_id not in self._open:
            if not isinstance(ev.get("uid"), str):
                return None
            self._opened(call_id, ev, "outbound", at)
            update = self._outbound(self._open[call_id], ev, at)
            return update or Update(OPEN, snapshot(self._open[call_id]))
        rec = self._open.get(call_id)
        if rec is None:
            late = self._closing.get(call_id)
            if late is not None and name == "session_closed":
                self._session_closed(late, ev)
                del self._closing[call_id]
                return Update(UPDATE, snapshot(late))
            return None
        handler = _HANDLERS.get(name)
        if handler is None:
            return None
        return handler(self, rec, ev, at)

    # -- opening and ending ---------------------------------------------------------------------
    def _opened(self, call_id: str, ev: dict, direction: str, at: float | None) -> Update:
        rec = new_record(ev["uid"], call_id, direction, at)
        for key in ("caller", "called", "remote", "local", "trunk", "route", "source", "worker"):
            if ev.get(key) is not None:
                rec[key] = ev[key]
        if direction == "outbound":
            rec["caller"] = rec["caller"] or _str(ev.get("from"))
            rec["called"] = rec["called"] or _str(ev.get("to"))
        self._open[call_id] = rec
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)
            self.evicted += 1
        return Update(OPEN, snapshot(rec))

    def _answered(self, rec: dict, ev: dict, at: float | None) -> Update | None:
        if rec["answer_at"] is not None:
            return None
        rec["answer_at"] = at
        if at is not None and rec["invite_at"] is not None:
            rec["setup_ms"] = round((at - rec["invite_at"]) * 1000, 1)
        return Update(ANSWER, snapshot(rec))

    def _ended(self, rec: dict, ev: dict, at: float | None) -> Update:
        call_id = rec["sip_call_id"]
        self._open.pop(call_id, None)
        rec["end_at"] = at
        status = ev.get("status")
        if isinstance(status, int) and not isinstance(status, bool):
            rec["sip_status"] = rec["sip_status"] if rec["status"] != IN_PROGRESS else status
        if rec["status"] == IN_PROGRESS:
            rec["status"] = _outcome(rec, status)
        if rec["ended_by"] is None:
            rec["ended_by"] = "caller" if rec["status"] in ("completed", "cancelled") else "bridge"
        if rec["end_reason"] is None and isinstance(ev.get("reason"), str):
            rec["end_reason"] = ev["reason"]
        rtp = {k[4:]: v for k, v in ev.items() if k.startswith("rtp_")}
        if rtp:
            rec["rtp"] = rtp
        if at is not None:
            if rec["invite_at"] is not None:
                rec["total_s"] = round(at - rec["invite_at"], 3)
            if rec["answer_at"] is not None:
                rec["talk_s"] = round(at - rec["answer_at"], 3)
        self._closing[call_id] = rec
        while len(self._closing) > self.max_closing:
            self._closing.popitem(last=False)
        return Update(END, snapshot(rec))

    def _outbound(self, rec: dict, ev: dict, at: float | None) -> Update | None:
        state = ev.get("state") or ev.get("progress")
        if state == "answered":
            return self._answered(rec, ev, at)
        if state in ("failed", "busy", "no-answer", "no_answer", "cancelled"):
            rec["status"] = "no_answer" if state in ("no-answer", "no_answer") else state
            status = ev.get("status")
            rec["sip_status"] = status if isinstance(status, int) else None
            rec["ended_by"] = "callee" if state != "failed" else "bridge"
            rec["end_reason"] = _str(ev.get("reason")) or state
            return self._ended(rec, {}, at)
        return None

    # -- the call's life -----------------------------------------------------------------------
    def _rejected(self, rec: dict, ev: dict, at: float | None) -> Update:
        rec["status"] = "rejected"
        rec["sip_status"] = ev.get("status") if isinstance(ev.get("status"), int) else None
        rec["ended_by"] = "bridge"
        rec["end_reason"] = _str(ev.get("why")) or _str(ev.get("reason"))
        return self._ended(rec, {}, at)

    def _unavailable(self, rec: dict, ev: dict, at: float | None) -> None:
        rec["status"], rec["sip_status"], rec["ended_by"] = "failed", 503, "bridge"
        rec["end_reason"] = "upstream_unavailable: " + (_str(ev.get("reason")) or "")

    def _hangup(self, rec: dict, ev: dict, at: float | None) -> None:
        reason = _str(ev.get("reason")) or "hangup"
        if rec["ended_by"] is None:
            rec["ended_by"] = ("agent" if reason == "agent_ended_call" else
                               "transfer" if reason == "transferred" else
                               "api" if reason in _API_REASONS else "bridge")
            rec["end_reason"] = reason

    def _transfer(self, rec: dict, ev: dict, at: float | None) -> None:
        transfer = rec["transfer"] or {}
        if ev.get("event") == "call_transfer":
            transfer = {"target": _str(ev.get("target")), "status": None}
        elif ev.get("final"):
            transfer["status"] = ev.get("status")
        rec["transfer"] = transfer

    def _speech_stopped(self, rec: dict, ev: dict, at: float | None) -> None:
        if ev.get("source") == "server":
            rec["server_turns"] += 1
            return
        rec["turns"] += 1
        eou = ev.get("eou_ms")
        if isinstance(eou, (int, float)) and not isinstance(eou, bool) and len(rec["eou_ms"]) < MAX_EOU:
            rec["eou_ms"].append(eou)
            rec["eou_p50_ms"] = percentile(rec["eou_ms"], 50)
            rec["eou_p95_ms"] = percentile(rec["eou_ms"], 95)

    def _barge_in(self, rec: dict, ev: dict, at: float | None) -> None:
        source = _str(ev.get("source")) or "unknown"
        rec["barge_ins"][source] = rec["barge_ins"].get(source, 0) + 1

    def _response_done(self, rec: dict, ev: dict, at: float | None) -> None:
        status = _str(ev.get("status")) or "unknown"
        rec["responses"][status] = rec["responses"].get(status, 0) + 1

    def _upstream(self, rec: dict, ev: dict, at: float | None) -> None:
        name = ev["event"]
        if name == "upstream_lost":
            rec["upstream_outages"] += 1
        elif name == "upstream_restored":
            rec["upstream_reconnects"] += 1
        else:
            rec["upstream_gave_up"] = True

    def _function_call(self, rec: dict, ev: dict, at: float | None) -> None:
        if len(rec["tools"]) < MAX_TOOLS:
            rec["tools"].append({"name": _str(ev.get("function")), "fn_call_id":
                                 _str(ev.get("fn_call_id")), "at": at})

    def _tool_called(self, rec: dict, ev: dict, at: float | None) -> None:
        name = _str(ev.get("function")) or _str(ev.get("tool")) or _str(ev.get("name"))
        fn_id = _str(ev.get("fn_call_id")) or _str(ev.get("tool_call_id"))
        entry = next((t for t in reversed(rec["tools"]) if "latency_ms" not in t and (
            (fn_id and t.get("fn_call_id") == fn_id) or (not fn_id and t["name"] == name))), None)
        if entry is None:
            if len(rec["tools"]) >= MAX_TOOLS:
                return
            entry = {"name": name, "fn_call_id": fn_id, "at": at}
            rec["tools"].append(entry)
        for key in _TOOL_FIELDS:
            if key in ev:
                entry[key] = ev[key]
        entry.setdefault("latency_ms", None)

    def _transcript(self, rec: dict, ev: dict, at: float | None) -> None:
        text = ev.get("text")
        if not isinstance(text, str):
            return
        used = sum(len(t["text"]) for t in rec["transcript"])
        if used >= MAX_TRANSCRIPT_CHARS:
            return
        rec["transcript"].append({"role": _str(ev.get("role")) or "unknown",
                                  "text": text[:MAX_TRANSCRIPT_CHARS - used],
                                  "item_id": _str(ev.get("item_id")), "at": at})

    def _session_closed(self, rec: dict, ev: dict, at: float | None = None) -> None:
        rec["session"] = {k: ev[k] for k in _SESSION_FIELDS if k in ev}
        for key in ("upstream_outages", "upstream_reconnects"):
            if isinstance(ev.get(key), int):
                rec[key] = ev[key]


def _step(method):
    """A handler that changes the record in memory only (persisted with the next row write)."""
    def handler(book, rec, ev, at):
        method(book, rec, ev, at)
        return None
    return handler


_HANDLERS = {
    "call_answered": lambda b, r, e, t: b._answered(r, e, t),
    "outbound_progress": lambda b, r, e, t: b._outbound(r, e, t),
    "call_rejected": lambda b, r, e, t: b._rejected(r, e, t),
    "call_ended": lambda b, r, e, t: b._ended(r, e, t),
    "upstream_unavailable": _step(CallBook._unavailable),
    "call_hangup": _step(CallBook._hangup),
    "call_transfer": _step(CallBook._transfer),
    "call_transfer_status": _step(CallBook._transfer),
    "speech_stopped": _step(CallBook._speech_stopped),
    "barge_in": _step(CallBook._barge_in),
    "response.done": _step(CallBook._response_done),
    "upstream_lost": _step(CallBook._upstream),
    "upstream_restored": _step(CallBook._upstream),
    "upstream_gave_up": _step(CallBook._upstream),
    "function_call": _step(CallBook._function_call),
    "tool_called": _step(CallBook._tool_called),
    "transcript": _step(CallBook._transcript),
    "session_closed": _step(CallBook._session_closed),
}


def _outcome(rec: dict, status) -> str:
    if rec["answer_at"] is not None:
        return "completed"
    if status == 487:
        return "cancelled"
    if status in (486, 600):
        return "busy"
    if rec["direction"] == "outbound" and status in (408, 480):
        return "no_answer"
    return "failed"


def _str(value) -> str | None:
    return value if isinstance(value, str) else None


def lost_record(rec: dict, now: float, reason: str) -> dict:
    """A copy of an ``in_progress`` record closed as ``lost`` at ``now``: its worker died with
    the call up (``reason``: ``worker_restarted`` at the worker's next start, ``worker_exited``
    when a cell's supervisor saw it go)."""
    out = snapshot(rec)
    out.update(status=LOST, ended_by="bridge", end_reason=reason, end_at=now)
    if out.get("invite_at") is not None:
        out["total_s"] = round(now - out["invite_at"], 3)
    if out.get("answer_at") is not None:
        out["talk_s"] = round(now - out["answer_at"], 3)
    return out


def snapshot(rec: dict) -> dict:
    """A copy safe to hand to another thread (the lists and dicts inside are copied too)."""
    out = dict(rec)
    for key, value in rec.items():
        if isinstance(value, list):
            out[key] = [dict(v) if isinstance(v, dict) else v for v in value]
        elif isinstance(value, dict):
            out[key] = dict(value)
    return out
