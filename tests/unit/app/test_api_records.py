"""GET /v1/records, /v1/records/{uid} and the /v1/events stream on a real local aiohttp server
(sipbridge/app/api_records.py)."""

import asyncio
from types import SimpleNamespace

import aiohttp
from aiohttp import web

from sipbridge.app.api_records import routes
from sipbridge.app.events import EventHub
from sipbridge.app.records import END, Update, new_record
from sipbridge.app.recordstore import RecordStore


def make_store(path):
    store = RecordStore(str(path), 30, worker=0, clock=lambda: 2000.0)
    store.start()
    for i in range(5):
        rec = new_record(f"c_{i}", f"s{i}", "inbound", 1000.0 + i)
        rec.update(caller="alice" if i % 2 else "bob", called="sales",
                   status="completed" if i != 3 else "busy", sip_status=200 if i != 3 else 486)
        store.submit(Update(END, rec))
    store.stop()
    return store


async def serve(ctx):
    app = web.Application()
    app.router.add_routes(routes(ctx))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


def test_records_are_listed_filtered_paged_and_fetched(tmp_path):
    """Filters by number, status (name or SIP code) and time, pages by cursor, one by uid, 404."""
    store = make_store(tmp_path / "r.db")

    async def main():
        runner, base = await serve(SimpleNamespace(extra={"records": store}))
        out = {}
        async with aiohttp.ClientSession() as http:
            async def get(path, **params):
                async with http.get(base + path, params=params) as resp:
                    return resp.status, await resp.json()
            out["all"] = await get("/v1/records")
            out["alice"] = await get("/v1/records", number="alice")
            out["busy"] = await get("/v1/records", status="busy")
            out["486"] = await get("/v1/records", status="486")
            out["range"] = await get("/v1/records", since="1001", until="1970-01-01T00:16:43Z")
            page1 = await get("/v1/records", limit="2")
            page2 = await get("/v1/records", limit="2", cursor=page1[1]["next_cursor"])
            out["pages"] = (page1, page2)
            out["one"] = await get("/v1/records/c_2")
            out["missing"] = await get("/v1/records/c_nope")
            out["bad_limit"] = await get("/v1/records", limit="lots")
            out["bad_status"] = await get("/v1/records", status="happy")
            out["bad_time"] = await get("/v1/records", since="yesterday")
            out["unknown"] = await get("/v1/records", colour="red")
        await runner.cleanup()
        return out

    out = asyncio.run(main())
    uids = lambda res: [r["uid"] for r in res[1]["records"]]
    assert out["all"][0] == 200 and uids(out["all"]) == ["c_4", "c_3", "c_2", "c_1", "c_0"]
    assert out["all"][1]["next_cursor"] is None
    assert uids(out["alice"]) == ["c_3", "c_1"]
    assert uids(out["busy"]) == uids(out["486"]) == ["c_3"]
    assert uids(out["range"]) == ["c_2", "c_1"]
    page1, page2 = out["pages"]
    assert uids(page1) == ["c_4", "c_3"] and uids(page2) == ["c_2", "c_1"]
    assert out["one"] == (200, store.get("c_2"))
    assert out["missing"][0] == 404 and out["missing"][1]["error"] == "not_found"
    for key, field in (("bad_limit", "limit"), ("bad_status", "status"), ("bad_time", "since"),
                       ("unknown", "colour")):
        assert out[key][0] == 400 and out[key][1]["field"] == field, out[key]


def test_records_off_answers_503():
    """records.path null: the records routes say so with 503."""
    async def main():
        runner, base = await serve(SimpleNamespace(extra={}))
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/v1/records") as resp:
                status = resp.status
        await runner.cleanup()
        return status

    assert asyncio.run(main()) == 503


def test_the_event_stream_carries_published_events_as_sse():
    """A client of /v1/events receives each published event as id / event / data lines."""
    async def main():
        hub = EventHub(asyncio.get_running_loop())
        runner, base = await serve(SimpleNamespace(extra={"event_hub": hub}))
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/v1/events") as resp:
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                await resp.content.readline()          # the opening comment
                await resp.content.readline()
                hub.publish_threadsafe({"id": "msg_1", "type": "call.answered",
                                        "data": {"uid": "c_1"}})
                lines = [await asyncio.wait_for(resp.content.readline(), 2) for _ in range(4)]
        for _ in range(40):            # an idle stream notices within POLL_S
            if not hub.streams:
                break
            await asyncio.sleep(0.05)
        streams_left = len(hub.streams)
        await runner.cleanup()
        return lines, streams_left

    lines, left = asyncio.run(main())
    assert [l.decode() for l in lines] == [
        "id: msg_1\n", "event: call.answered\n",
        'data: {"id":"msg_1","type":"call.answered","data":{"uid":"c_1"}}\n', "\n"]
    assert left == 0        # the stream's queue is gone with its client


def test_closing_the_hub_ends_live_streams_so_the_server_can_stop():
    """close_streams (the worker's shutdown) ends each /v1/events response: the client sees EOF."""
    async def main():
        hub = EventHub(asyncio.get_running_loop())
        runner, base = await serve(SimpleNamespace(extra={"event_hub": hub}))
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/v1/events") as resp:
                await resp.content.readline()
                await resp.content.readline()
                hub.close_streams()
                rest = await asyncio.wait_for(resp.content.read(), 2)
        left = len(hub.streams)
        await runner.cleanup()
        return rest, left

    rest, left = asyncio.run(main())
    assert rest == b"" and left == 0


def test_streams_beyond_the_limit_get_503_and_a_closed_one_frees_its_slot():
    """With MAX_STREAMS open, another /v1/events is refused with 503; after one closes, it works."""
    async def main():
        hub = EventHub(asyncio.get_running_loop())
        hub.MAX_STREAMS = 2
        runner, base = await serve(SimpleNamespace(extra={"event_hub": hub}))
        statuses = []
        async with aiohttp.ClientSession() as http:
            first = await http.get(base + "/v1/events")
            second = await http.get(base + "/v1/events")
            async with http.get(base + "/v1/events") as third:
                statuses.append(third.status)
            first.close()
            for _ in range(40):
                if len(hub.streams) < 2:
                    break
                await asyncio.sleep(0.05)
            async with http.get(base + "/v1/events") as fourth:
                statuses.append(fourth.status)
            second.close()
        await runner.cleanup()
        return statuses

    assert asyncio.run(main()) == [503, 200]
