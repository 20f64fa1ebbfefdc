"""Call events: mapping, the bounded retrying outbox, and the signed sender against a real
local receiver verified by the standardwebhooks library (sipbridge/app/events.py)."""

import asyncio
import json

from aiohttp import web
from standardwebhooks.webhooks import Webhook

from sipbridge.app import signing
from sipbridge.app.callfeed import CallFeed
from sipbridge.app.events import (EventHub, EventSender, Message, Outbox, backoff_s, to_event)
from sipbridge.app.records import CallBook

CID = "x@127.0.0.1"


def ids():
    n = iter(range(1000))
    return lambda: f"msg_{next(n)}"


def test_a_calls_log_maps_to_incoming_answered_transferred_barge_in_tool_ended():
    """Folded through the book, a call's log gives the public events in order, each with its uid."""
    book, make_id, out = CallBook(), ids(), []
    log = [
        {"event": "call_incoming", "uid": "c_1", "caller": "alice", "called": "sales",
         "source": "127.0.0.1:5060"},
        {"event": "call_answered"},
        {"event": "speech_stopped", "eou_ms": 500},
        {"event": "barge_in", "source": "local_vad", "reason": "interrupted", "echo_mode": "x"},
        {"event": "tool_called", "function": "lookup", "latency_ms": 12.0, "ok": True},
        {"event": "call_transfer_status", "status": 100, "final": False},
        {"event": "call_transfer_status", "status": 200, "reason": "OK", "final": True},
        {"event": "call_ended", "status": 200},
    ]
    for i, e in enumerate(log):
        e = {**e, "call_id": CID, "ts": 1000.0 + i}
        update = book.feed(e)
        mapped = to_event(e, update, book.uid_of(CID), make_id)
        if mapped:
            out.append(mapped)
    assert [e["type"] for e in out] == ["call.incoming", "call.answered", "barge_in", "tool.called",
                                        "call.transferred", "call.ended"]
    assert all(e["data"]["uid"] == "c_1" for e in out)
    assert [e["id"] for e in out] == [f"msg_{i}" for i in range(6)]
    assert out[0]["data"]["caller"] == "alice" and out[0]["timestamp"] == "1970-01-01T00:16:40.000+00:00"
    assert out[1]["data"]["setup_ms"] == 1000.0
    assert out[2]["data"] == {"uid": "c_1", "source": "local_vad", "reason": "interrupted"}
    assert out[4]["data"]["ok"] is True
    assert out[5]["data"]["record"]["status"] == "completed"
    assert out[5]["data"]["record"]["barge_ins"] == {"local_vad": 1}


def test_events_without_a_known_call_are_not_published():
    """No uid (a call never opened) means no event."""
    assert to_event({"event": "barge_in", "source": "dtmf"}, None, None) is None
    assert to_event({"event": "speech_started"}, None, "c_1") is None


def test_backoff_doubles_from_half_a_second_up_to_eight():
    """Waits after failed tries: 0.5, 1, 2, 4, 8, 8 s."""
    assert [backoff_s(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_the_outbox_retries_the_head_in_order_and_gives_up_after_its_attempts():
    """A failing head waits its backoff (time passed in) and blocks the next; after the last
    attempt it is given up (counted) and the next one goes."""
    box = Outbox(maxsize=10, attempts=3)
    box.push(Message("m1", b"1"))
    box.push(Message("m2", b"2"))
    assert box.wait_s(0.0) == 0.0 and box.head().id == "m1"
    box.sent(False, now=10.0)
    assert box.head().id == "m1" and box.wait_s(10.0) == 0.5 and box.wait_s(10.5) == 0.0
    box.sent(False, now=10.5)
    assert box.wait_s(10.5) == 1.0
    box.sent(False, now=11.5)                  # third attempt: given up
    assert box.given_up == 1 and box.head().id == "m2" and box.wait_s(11.5) == 0.0
    box.sent(True, now=11.6)
    assert box.delivered == 1 and box.wait_s(12.0) is None


def test_a_full_outbox_drops_its_oldest_waiting_event_and_counts_it():
    """Memory stays bounded: beyond maxsize the oldest event after the head (which may be in
    flight) goes, counted; the newest are kept, in order."""
    box = Outbox(maxsize=3)
    accepted = [box.push(Message(f"m{i}", b"")) for i in range(5)]
    assert accepted == [True] * 5 and box.dropped == 2
    assert [m.id for m in box.pending] == ["m0", "m3", "m4"]
    one = Outbox(maxsize=1)
    assert one.push(Message("a", b"")) and not one.push(Message("b", b""))
    assert [m.id for m in one.pending] == ["a"] and one.dropped == 1


async def _receiver(statuses):
    """A local receiver answering each POST with the next status; records (headers, body)."""
    got = []

    async def handler(request):
        got.append((dict(request.headers), await request.read()))
        return web.Response(status=statuses[min(len(got), len(statuses)) - 1])
    app = web.Application()
    app.router.add_post("/events", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}/events", got


def test_the_sender_signs_and_retries_with_the_same_webhook_id():
    """A 500 then a 200: two POSTs, the same webhook-id, both verified by standardwebhooks."""
    secret = signing.new_secret()

    async def main():
        runner, url, got = await _receiver([500, 200])
        sender = EventSender(url, signing.secret_key(secret), maxsize=10)
        sender.start()
        sender.push({"id": "msg_abc", "type": "call.answered", "timestamp": "t",
                     "data": {"uid": "c_1"}})
        for _ in range(100):
            if sender.box.delivered:
                break
            await asyncio.sleep(0.05)
        await sender.close(0.5)
        await runner.cleanup()
        return got, sender

    got, sender = asyncio.run(main())
    assert len(got) == 2 and sender.box.delivered == 1
    verifier = Webhook(secret)
    for headers, body in got:
        assert headers["webhook-id"] == "msg_abc"
        assert verifier.verify(body, headers) == {"id": "msg_abc", "type": "call.answered",
                                                  "timestamp": "t", "data": {"uid": "c_1"}}


def test_a_dead_receiver_never_blocks_the_caller_and_drops_are_counted():
    """Nothing listens: push returns at once every time, the box holds at most maxsize, the
    rest is counted as dropped, and close gives up at its deadline."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                   # a port nobody listens on

    async def main():
        sender = EventSender(f"http://127.0.0.1:{port}/", None, maxsize=5)
        sender.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(50):
            sender.push({"id": f"m{i}", "type": "barge_in", "data": {}})
        pushed_s = loop.time() - started
        await asyncio.sleep(0.3)
        t0 = loop.time()
        await sender.close(0.5)
        return sender, pushed_s, loop.time() - t0

    sender, pushed_s, close_s = asyncio.run(main())
    assert pushed_s < 0.05, pushed_s
    assert sender.box.dropped == 45 and len(sender.box.pending) <= 5
    assert close_s < 1.5


def test_the_feed_and_hub_publish_on_the_loop_to_streams():
    """The tap subscriber folds events and the hub hands the mapped ones to a live stream queue."""
    async def main():
        loop = asyncio.get_running_loop()
        hub = EventHub(loop)
        q = hub.open_stream()
        feed = CallFeed(None, hub)
        feed({"event": "call_incoming", "call_id": CID, "uid": "c_9", "ts": 1.0})
        feed({"event": "call_ended", "call_id": CID, "ts": 2.0, "status": 200})
        first = await asyncio.wait_for(q.get(), 1)
        second = await asyncio.wait_for(q.get(), 1)
        hub.close_stream(q)
        return first, second

    first, second = asyncio.run(main())
    assert (first["type"], second["type"]) == ("call.incoming", "call.ended")
    assert json.loads(json.dumps(second))["data"]["record"]["uid"] == "c_9"


def test_an_outbound_call_gives_progress_then_answered_then_ended():
    """The dialer's lines: call.progress for queued (no Call-ID yet) and ringing, then
    call.answered and call.ended; never call.incoming."""
    async def main():
        loop = asyncio.get_running_loop()
        hub = EventHub(loop)
        q = hub.open_stream()
        feed = CallFeed(None, hub)
        base = {"event": "outbound_progress", "uid": "c_o", "called": "+1555", "trunk": "t"}
        feed({**base, "call_id": None, "state": "queued", "ts": 1.0})
        feed({**base, "call_id": "o@x", "state": "ringing", "ts": 1.5})
        feed({**base, "call_id": "o@x", "state": "answered", "status": 200, "ts": 2.0})
        feed({"event": "call_answered", "call_id": "o@x", "ts": 2.0})
        feed({"event": "call_ended", "call_id": "o@x", "status": 200, "ts": 5.0})
        out = []
        while not q.empty() or len(out) < 4:
            out.append(await asyncio.wait_for(q.get(), 1))
        return out

    out = asyncio.run(main())
    assert [(e["type"], e["data"].get("state")) for e in out] == [
        ("call.progress", "queued"), ("call.progress", "ringing"), ("call.answered", None),
        ("call.ended", None)]
    assert all(e["data"]["uid"] == "c_o" for e in out)
    assert out[-1]["data"]["record"]["direction"] == "outbound"
