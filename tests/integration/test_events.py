"""Call events end to end: ``sipbridge run`` POSTs signed events to a real local receiver
(an aiohttp app on 127.0.0.1, verified with the standardwebhooks library); a dead receiver
delays no call and its drops are counted."""

import asyncio
import json
import socket
import statistics
import threading
import time

from aiohttp import web
from standardwebhooks.webhooks import Webhook

from sipbridge.app.signing import new_secret
from tests.support.bridge import Bridge, Upstream
from tests.support.sipp import run_sipp

SECRET_ENV = "EVENTS_TEST_SECRET"


class Receiver:
    """An aiohttp app on its own thread and loop, keeping every POST (headers, body)."""

    def __init__(self):
        self.got: list[tuple[dict, bytes]] = []
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        assert self._ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def handler(request):
            self.got.append((dict(request.headers), await request.read()))
            return web.Response(status=204)

        async def start():
            app = web.Application()
            app.router.add_post("/events", handler)
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/events"

        self.loop.run_until_complete(start())
        self._ready.set()
        self.loop.run_forever()

    def wait_for(self, etype: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(json.loads(body)["type"] == etype for _, body in list(self.got)):
                return
            time.sleep(0.05)
        raise AssertionError(f"no {etype} received: {[json.loads(b)['type'] for _, b in self.got]}")

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)


def test_the_receiver_gets_signed_incoming_answered_ended_in_order(tmp_path):
    """One call: call.incoming, call.answered, then call.ended carrying the call's record, each
    signed (verified by standardwebhooks with the secret from app.webhook_secret_env)."""
    secret = new_secret()
    receiver = Receiver()
    try:
        with Upstream(tmp_path) as upstream, Bridge(
                tmp_path, upstream.url, env={SECRET_ENV: secret},
                extra={"app": {"events_url": receiver.url, "webhook_secret_env": SECRET_ENV}}) as bridge:
            res = run_sipp("uac_pcmu", bridge.target, hold_ms=1500, timeout=20)
            assert res.returncode == 0 and res.final_code == 200, res.stderr
            uid = bridge.wait_log("call_incoming")["uid"]
            receiver.wait_for("call.ended")
            assert bridge.stop() == 0
    finally:
        receiver.stop()
    verifier = Webhook(secret)
    events = [verifier.verify(body, headers) for headers, body in receiver.got]
    calls = [e for e in events if e["type"].startswith("call.")]   # barge_in may come between
    assert [e["type"] for e in calls] == ["call.incoming", "call.answered", "call.ended"]
    assert all(e["data"]["uid"] == uid for e in events)
    assert [h["webhook-id"] for h, _ in receiver.got] == [e["id"] for e in events]
    assert len({e["id"] for e in events}) == len(events)
    events = calls
    assert events[0]["data"]["caller"] == "sipp" and events[0]["data"]["called"] == "sipbridge"
    record = events[2]["data"]["record"]
    assert record["uid"] == uid and record["status"] == "completed" and record["ended_by"] == "caller"


def setup_ms(bridge: Bridge) -> list[float]:
    """INVITE accepted -> 200 sent, per call, from the bridge's own log timestamps."""
    from datetime import datetime
    t = lambda r: datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
    incoming = {r["call_id"]: t(r) for r in bridge.logs("call_incoming")}
    return [(t(r) - incoming[r["call_id"]]) * 1000 for r in bridge.logs("call_answered")]


def test_a_dead_receiver_delays_no_call_and_its_drops_are_counted(tmp_path):
    """Events to a port nobody listens on, with room for 2: calls set up as fast as with no
    events at all, and what could not be kept is counted (events_dropped, events_closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}/events"
    s.close()
    calls = 3
    timings = {}
    with Upstream(tmp_path) as upstream:
        for name, app in (("baseline", {}), ("dead", {"events_url": dead, "events_queue": 2})):
            with Bridge(tmp_path, upstream.url, extra={"app": app},
                        env={"SIPBRIDGE_WEBHOOK_SECRET": new_secret()}) as bridge:
                res = run_sipp("uac_pcmu", bridge.target, calls=calls, hold_ms=300, timeout=40,
                               extra_args=["-r", "2"])
                assert res.returncode == 0 and res.successful_calls == calls, res.stderr
                for _ in range(calls):
                    bridge.wait_log("session_closed")
                time.sleep(0.3)
                timings[name] = setup_ms(bridge)
                assert bridge.stop() == 0
                if name == "dead":
                    dropped = bridge.wait_log("events_dropped")
                    closed = bridge.wait_log("events_closed")
    assert len(timings["dead"]) == len(timings["baseline"]) == calls
    base, slow = statistics.median(timings["baseline"]), statistics.median(timings["dead"])
    print("setup_ms", timings)
    assert slow <= base + 50, timings          # ms; setup is the model's connect, not the events
    assert dropped["dropped"] >= 1
    # 3 calls x (incoming, answered, ended): what was not delivered is dropped, given up or left
    assert closed["delivered"] == 0
    assert closed["dropped"] + closed["given_up"] + closed["left"] == 3 * calls


def test_an_app_tool_call_is_an_event_and_part_of_the_record(tmp_path, monkeypatch):
    """The embedded model calls the app's lookup tool: the receiver gets tool.called (name,
    latency, outcome ok) between call.answered and call.ended, and the record in call.ended
    lists the tool with the same latency."""
    from tests.integration.test_app_tools import ARGS, SECRET_ENV as TOOLS_SECRET_ENV
    from tests.integration.test_app_tools import bridge_extra, prompt, quiet_wav
    from tests.support.rtp_peer import ExternalMediaCall, RtpPeer
    from tests.support.tools_backend import Behaviour, ToolsBackend
    secret = new_secret()
    monkeypatch.setenv(TOOLS_SECRET_ENV, secret)
    receiver = Receiver()
    try:
        with ToolsBackend({"lookup": Behaviour(reply={"beeps": 1})}) as backend, \
                Upstream(tmp_path, reply_wav=quiet_wav(tmp_path), call_tool="lookup",
                         tool_args=ARGS) as upstream:
            extra = bridge_extra(backend)
            extra["app"]["events_url"] = receiver.url
            extra["records"] = {"path": str(tmp_path / "records.db")}
            with Bridge(tmp_path, upstream.url, extra=extra) as bridge, RtpPeer() as peer:
                with ExternalMediaCall(bridge.target, peer, hold_ms=6000, timeout=30) as call:
                    call.connect_peer(timeout=10)
                    peer.play(prompt("hello-world"), at_s=1.0)
                    res = call.wait()
                assert res.returncode == 0, res.stderr
                logged = bridge.wait_log("tool_called")
                receiver.wait_for("call.ended")
                assert bridge.stop() == 0
    finally:
        receiver.stop()
    events = [Webhook(secret).verify(body, headers) for headers, body in receiver.got]
    types = [e["type"] for e in events]
    assert types.index("call.answered") < types.index("tool.called") < types.index("call.ended")
    (tool,) = [e["data"] for e in events if e["type"] == "tool.called"]
    assert tool["name"] == "lookup" and tool["outcome"] == "ok" and tool["ok"] is True
    assert tool["latency_ms"] == logged["latency_ms"]
    record = events[types.index("call.ended")]["data"]["record"]
    (entry,) = record["tools"]
    assert entry["name"] == "lookup" and entry["latency_ms"] == logged["latency_ms"]
    assert entry["fn_call_id"] == logged["tool_call_id"] and entry["outcome"] == "ok"


def test_a_barge_in_is_an_event_and_the_end_at_shutdown_is_still_delivered(tmp_path, monkeypatch):
    """The caller speaks over the agent: the receiver gets barge_in (the source the bridge
    logged); SIGTERM then hangs the call up, and call.ended, queued during the shutdown, is
    still delivered with the record counting the barge-in and naming the bridge as who ended it."""
    from tests.support.barge import run_call
    secret = new_secret()
    monkeypatch.setenv(SECRET_ENV, secret)
    receiver = Receiver()
    try:
        res = run_call(tmp_path / "call", barge_after_s=1.0, bridge_extra={
            "app": {"events_url": receiver.url, "webhook_secret_env": SECRET_ENV}})
        receiver.wait_for("call.ended", timeout=5)
    finally:
        receiver.stop()
    assert len(res.barge_ins) == 1, res.barge_ins
    events = [Webhook(secret).verify(body, headers) for headers, body in receiver.got]
    (barge,) = [e["data"] for e in events if e["type"] == "barge_in"]
    assert barge["source"] == res.barge_ins[0]["source"] and barge["reason"] == "interrupted"
    record = events[-1]["data"]["record"]
    assert events[-1]["type"] == "call.ended"
    assert record["barge_ins"] == {barge["source"]: 1}
    assert (record["ended_by"], record["end_reason"]) == ("bridge", "shutdown")
