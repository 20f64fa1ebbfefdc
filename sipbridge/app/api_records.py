"""HTTP routes for call records and the live event stream.

* ``GET /v1/records``: newest first; filters ``since`` / ``until`` (the INVITE time, epoch
  seconds or ISO 8601), ``number`` (caller or called), ``status`` (an outcome such as
  ``completed``, ``lost``, or a SIP code such as ``486``), ``limit`` (1-500, default 50) and
  ``cursor`` (``next_cursor`` of the previous page). Answers ``{"records": [...],
  "next_cursor": str | null}``.
* ``GET /v1/records/{uid}``: one record, 404 when there is none.
* ``GET /v1/events``: Server-Sent Events, one per call event (``id``, ``event`` = the type,
  ``data`` = the JSON event, exactly what ``app.events_url`` receives); a comment line every
  15 s keeps proxies from closing it. A client reading too slowly loses events (counted); at
  most 32 streams at once (then 503).

SQLite is read in the loop's default executor, never on the loop itself. The handlers find the
store and the hub in ``ctx.extra["records"]`` and ``ctx.extra["event_hub"]``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

from aiohttp import web

from . import sse
from .recordstore import DEFAULT_LIMIT, Query, QueryError, build_query

KEEPALIVE_S = 15.0
POLL_S = 0.5        # how often an idle stream checks that its client is still there


def _error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    body = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status)


def _event_block(event: dict) -> bytes:
    """One call event as an SSE block: its id, its type as the event name, the JSON as data."""
    data = json.dumps(event, separators=(",", ":"), default=str)
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {data}\n\n".encode()


def _time(field: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise QueryError(field, "epoch seconds or an ISO 8601 time") from None


def parse_query(params) -> Query:
    """A :class:`Query` from the request's query string; :class:`QueryError` names the field."""
    unknown = set(params) - {"since", "until", "number", "status", "limit", "cursor"}
    if unknown:
        raise QueryError(sorted(unknown)[0], "unknown filter")
    limit = params.get("limit", str(DEFAULT_LIMIT))
    if not limit.isdigit():
        raise QueryError("limit", "an integer 1..500")
    return Query(since=_time("since", params.get("since")), until=_time("until", params.get("until")),
                 number=params.get("number") or None, status=params.get("status") or None,
                 limit=int(limit), cursor=params.get("cursor") or None)


def routes(ctx) -> list[web.RouteDef]:
    """The routes, bound to ``ctx`` (its ``extra`` holds ``records`` and ``event_hub``)."""

    def store():
        found = ctx.extra.get("records")
        if found is None:
            raise web.HTTPServiceUnavailable(reason="records are off (records.path: null)")
        return found

    async def list_records(request: web.Request) -> web.Response:
        try:
            query = parse_query(request.query)
            build_query(query)   # a bad filter is a 400 before any I/O
        except QueryError as exc:
            return _error(400, "bad_request", exc.reason, exc.field)
        loop = asyncio.get_running_loop()
        rows, cursor = await loop.run_in_executor(None, store().query, query)
        return web.json_response({"records": rows, "next_cursor": cursor})

    async def one_record(request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        loop = asyncio.get_running_loop()
        rec = await loop.run_in_executor(None, store().get, uid)
        if rec is None:
            return _error(404, "not_found", f"no record {uid!r}")
        return web.json_response(rec)

    async def event_stream(request: web.Request) -> web.StreamResponse:
        hub = ctx.extra.get("event_hub")
        if hub is None:
            return _error(503, "unavailable", "no event hub in this process")
        q = hub.open_stream()
        if q is None:
            return _error(503, "unavailable", f"{hub.MAX_STREAMS} event streams are open already")
        resp = sse.response()
        try:
            await resp.prepare(request)
        except BaseException:
            hub.close_stream(q)
            raise
        try:
            await sse.relay(request, resp, q, b": sipbridge events\n\n", _event_block,
                            poll_s=POLL_S, keepalive_s=KEEPALIVE_S)
        finally:
            hub.close_stream(q)
        return resp

    return [web.get("/v1/records", list_records), web.get("/v1/records/{uid}", one_record),
            web.get("/v1/events", event_stream)]
