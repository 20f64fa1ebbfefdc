"""The cell's one interface, for real: ``sipbridge run --workers 3 --front kamailio`` (embedded
model) takes SIPp calls through Kamailio while the tests talk only to the supervisor's API
(``api.listen``, with a bearer token): calls listed across workers, a call on worker 2 read,
interrupted and hung up, metrics added up, records of every worker read, outbound calls placed
(to a sip: URI, and through the trunk ``carrier``: a Kamailio that registers it for the front
and digest-challenges the workers' INVITEs), events merged (the live stream) and signed once each (a local receiver, checked with the
standardwebhooks library), and a SIGKILLed worker's call closed as ``lost`` at once.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading

import pytest
from standardwebhooks.webhooks import Webhook

from sipbridge.app.signing import new_secret
from sipbridge.cell.uids import worker_of
from sipbridge.kamailio import Kamailio
from tests.integration.test_cell import CellProcess
from tests.integration.test_events import Receiver
from tests.support import waiting
from tests.support.capture import RtpCapture
from tests.support.http_api import request, samples
from tests.support.kamailio_carrier import carrier_config, carrier_lines, register_lines
from tests.support.ports import free_udp_port
from tests.support.sipp import SippUas, run_sipp

TOKEN = "cell-test-token-7f3a"
SECRET_ENV = "CELL_EVENTS_SECRET"
CARRIER_PASSWORD = "carrier-Cell-8b2c"
FINAL = ("ended", "failed", "no-answer", "busy", "cancelled")


def api(cell, method, path, body=None, raw=None, token=TOKEN):
    """(status, JSON or text, headers) of one request to the cell's API."""
    return request(cell.api_url + path, method, body, raw, token,
                   {"Content-Type": "application/json"}, timeout=15)


def metrics(cell) -> dict:
    status, text, _ = api(cell, "GET", "/metrics")
    assert status == 200, text
    return samples(text)


def total(scraped: dict, name: str) -> float:
    return sum(v for (n, _labels), v in scraped.items() if n == name)


def wait(probe, timeout: float, what: str):
    """Poll ``probe`` every 0.1 s (its probes ask the cell over HTTP)."""
    return waiting.wait(probe, timeout, what, every=0.1)


def answered_calls(cell, n: int):
    """The cell's call list once it holds ``n`` answered calls."""
    def probe():
        status, body, _ = api(cell, "GET", "/v1/calls")
        assert status == 200, body
        calls = [c for c in body["calls"] if c["state"] == "answered"]
        return calls if len(calls) >= n else None
    return wait(probe, 30, f"{n} answered calls in the cell's list")


class EventStream:
    """``GET /v1/events`` of the cell on a thread: every event (``id``, ``type``, ``data``)."""

    def __init__(self, cell):
        host, port = cell.api_url[len("http://"):].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.conn.request("GET", "/v1/events", headers={"Authorization": f"Bearer {TOKEN}"})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        fields = {}
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if not line:
                    if "data" in fields:   # the event as app.events_url gets it
                        event = json.loads(fields["data"])
                        assert (event["id"], event["type"]) == (fields["id"], fields["event"])
                        self.events.append(event)
                    fields = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    fields[key] = value
        except (OSError, ValueError, AttributeError, http.client.HTTPException):  # closed
            pass

    def close(self):
        self.conn.close()


def place(cell, calls: int, hold_ms: int, trace_dir, out: dict) -> threading.Thread:
    def run():
        out["sipp"] = run_sipp("uac_proxy", f"127.0.0.1:{cell.sip_port}", calls=calls,
                               rtp_echo=True, hold_ms=hold_ms, timeout=60, trace_dir=trace_dir,
                               extra_args=["-l", str(calls), "-r", "20"])
    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cellapi")
    receiver = Receiver()
    secret = new_secret()
    # the carrier: registrar for the front, digest-checking proxy for the workers' INVITEs
    kport = free_udp_port()
    uas_ports = {"100": free_udp_port(), "486": free_udp_port()}
    carrier = Kamailio(carrier_config("127.0.0.1", kport, CARRIER_PASSWORD, uas_ports),
                       tmp / "carrier", sip=("127.0.0.1", kport)).start()
    pw = tmp / "carrier.pw"
    pw.write_text(CARRIER_PASSWORD + "\n")
    # a carrier domain of its own (not 127.0.0.1, the cell's) reached through its proxy
    trunk = {"name": "carrier", "registrar": "sip:carrier.test", "username": "acme",
             "password_file": str(pw), "outbound_proxy": f"sip:127.0.0.1:{kport};lr",
             "expires": 60}
    c = None
    try:   # the carrier and the receiver are stopped even when the cell fails to start
        c = CellProcess(tmp, extra={"app": {"events_url": receiver.url,
                                            "webhook_secret_env": SECRET_ENV},
                                    "trunks": [trunk]},
                        environ={"SIPBRIDGE_API_TOKEN": TOKEN, SECRET_ENV: secret},
                        restart_backoff_ms=1000)
        c.receiver, c.secret, c.tmp = receiver, secret, tmp
        c.carrier, c.uas_ports = carrier, uas_ports
        c.wait("cell_ready", timeout=90)
        yield c
    finally:
        if c is not None:
            c.stop()
        receiver.stop()
        carrier.stop()


def test_bad_input_at_the_cell_front(cell):
    """No or a wrong token is 401 (probes stay open), unknown calls 404, bad bodies 400/413, and
    the workers' own sockets refuse a request without the cell's internal token."""
    assert api(cell, "GET", "/v1/calls", token=None)[0] == 401
    assert api(cell, "GET", "/v1/calls", token="wrong")[0] == 401
    assert api(cell, "POST", "/v1/calls/c_1_" + "0" * 16 + "/hangup", {}, token="wrong")[0] == 401
    status, body, _ = api(cell, "GET", "/healthz", token=None)
    assert status == 200 and body["status"] == "alive" and body["workers_running"] == 3
    status, body, _ = api(cell, "GET", "/readyz", token=None)
    assert status == 200 and body["workers_ready"] == 3, body
    for uid in ("c_1_" + "0" * 16, "c_7_" + "0" * 16, "c_" + "0" * 16, "nope"):
        status, body, _ = api(cell, "GET", f"/v1/calls/{uid}")
        assert status == 404 and body["error"] == "not_found", (uid, body)
    status, body, _ = api(cell, "POST", "/v1/calls/c_2_" + "0" * 16 + "/interrupt", {})
    assert status == 404 and body["error"] == "not_found", body   # worker 2 says so
    status, body, _ = api(cell, "POST", "/v1/calls", {"to": 5})
    assert status == 400 and body["field"] == "to", body
    status, body, _ = api(cell, "POST", "/v1/calls", raw=b"{not json")
    assert status == 400, body
    status, body, _ = api(cell, "POST", "/v1/calls", raw=b"{" + b" " * 70000 + b"}")
    assert status == 413, body
    status, body, _ = api(cell, "GET", "/v1/records?limit=lots")
    assert status == 400 and body["field"] == "limit", body

    # the channel behind the front: a worker's unix socket wants the supervisor's token
    pid = cell.events("worker_started")[0]["pid"]
    environ = dict(v.split("=", 1) for v in
                   open(f"/proc/{pid}/environ", "rb").read().decode().split("\0") if "=" in v)
    sock, internal = environ["SIPBRIDGE_CELL_CONTROL_SOCKET"], environ["SIPBRIDGE_CELL_CONTROL_TOKEN"]
    assert len(internal) >= 32 and internal not in "\n".join(cell.out.lines)   # never logged
    import socket as socketlib
    for auth, want in ((None, b" 401 "), (f"Bearer {internal}", b" 200 ")):
        s = socketlib.socket(socketlib.AF_UNIX)
        s.connect(sock)
        s.sendall(b"GET /v1/calls HTTP/1.1\r\nHost: w\r\nConnection: close\r\n"
                  + (f"Authorization: {auth}\r\n".encode() if auth else b"") + b"\r\n")
        assert want in s.recv(200).split(b"\r\n")[0] + b" ", auth
        s.close()


def test_calls_on_every_worker_through_one_api(cell):
    """6 calls through Kamailio land on all 3 workers; the cell lists them all (uids naming their
    worker), reads, interrupts and hangs up one on worker 2, adds the workers' metrics up, serves
    every worker's records, merges the live events, and each event is POSTed signed once."""
    before = metrics(cell)
    stream = EventStream(cell)
    out: dict = {}
    runner = place(cell, 6, 8000, cell.tmp / "b1", out)
    try:
        calls = answered_calls(cell, 6)
        by_worker = {}
        for c in calls:
            assert worker_of(c["uid"]) == c["worker"], c
            by_worker.setdefault(c["worker"], []).append(c["uid"])
        assert sorted(by_worker) == [0, 1, 2], calls

        uid = by_worker[2][0]
        status, view, _ = api(cell, "GET", f"/v1/calls/{uid}")
        assert status == 200 and view["uid"] == uid and view["state"] == "answered", view
        assert view["sip_call_id"] and "playout" in view and "turn_detection" in view
        status, body, _ = api(cell, "POST", f"/v1/calls/{uid}/interrupt", {})
        assert status == 202 and body["action"] == "interrupt", body
        status, body, _ = api(cell, "POST", f"/v1/calls/{uid}/hangup", {})
        assert status == 202 and body == {"uid": uid, "action": "hangup"}, body
        wait(lambda: uid not in [c["uid"] for c in api(cell, "GET", "/v1/calls")[1]["calls"]],
             10, "the hung-up call to leave the list")
        actions = [(r["worker"], r["action"]) for r in cell.events("api_action") if r["uid"] == uid]
        assert actions == [(2, "interrupt"), (2, "hangup")], actions
        assert api(cell, "GET", f"/v1/calls/{uid}")[0] == 404
    finally:
        runner.join(90)
    uids = {c["uid"] for c in calls}

    # metrics: the three workers' counters add up to the 6 calls
    def settled():
        m = metrics(cell)
        ended = total(m, "sipbridge_calls_ended_total") - total(before, "sipbridge_calls_ended_total")
        return m if ended >= 6 else None
    after = wait(settled, 20, "6 ended calls in the cell's metrics")
    for name in ("sipbridge_calls_incoming_total", "sipbridge_calls_answered_total",
                 "sipbridge_calls_ended_total", "sipbridge_call_setup_seconds_count"):
        assert total(after, name) - total(before, name) == 6, name
    assert after[("sipbridge_calls_active", ())] == 0
    assert after[("sipbridge_call_slots", ())] == 12
    assert after[("sipbridge_cell_workers_up", ())] == 3
    assert after[("sipbridge_worker_restarts_total", ())] == 0

    # records: every worker's calls, from the one shared store, through the cell's API
    def recorded():
        status, body, _ = api(cell, "GET", "/v1/records?limit=100")
        assert status == 200, body
        done = {r["uid"]: r for r in body["records"] if r["uid"] in uids and r["end_at"]}
        return done if len(done) == 6 else None
    records = wait(recorded, 20, "6 finished records")
    assert {worker_of(u) for u in records} == {0, 1, 2}
    assert records[uid]["ended_by"] == "api", records[uid]
    assert all(r["status"] == "completed" for r in records.values()), records
    status, one, _ = api(cell, "GET", f"/v1/records/{by_worker[1][0]}")
    assert status == 200 and one["uid"] == by_worker[1][0]

    # events: the live stream merges the workers'; the receiver got each signed, once
    wait(lambda: sum(e["type"] == "call.ended" and e["data"]["uid"] in uids
                     for e in stream.events) >= 6, 15, "6 call.ended on the cell's stream")
    stream.close()
    mine = [e for e in stream.events if e["data"]["uid"] in uids]
    assert len({e["id"] for e in mine}) == len(mine)
    assert {worker_of(e["data"]["uid"]) for e in mine if e["type"] == "call.incoming"} == {0, 1, 2}
    wait(lambda: sum(json.loads(b)["type"] == "call.ended" and json.loads(b)["data"]["uid"] in uids
                     for _, b in list(cell.receiver.got)) >= 6, 15, "6 call.ended POSTed")
    verifier = Webhook(cell.secret)
    posted = [(h, b) for h, b in list(cell.receiver.got) if json.loads(b)["data"]["uid"] in uids]
    ids = [h["webhook-id"] for h, _ in posted]
    assert len(ids) == len(set(ids)), "an event was POSTed twice"
    for headers, body in posted:
        verifier.verify(body, {k.lower(): v for k, v in headers.items()})
    ended = [json.loads(b)["data"]["uid"] for _, b in posted if json.loads(b)["type"] == "call.ended"]
    assert sorted(ended) == sorted(uids)


def test_outbound_call_through_the_cell(cell):
    """POST /v1/calls at the cell: a worker with a free slot dials SIPp, which answers; its
    progress and its record are read through the cell by the uid naming that worker."""
    with SippUas("uas_hangup", rtp_echo=False, hold_ms=2000, trace_dir=cell.tmp / "uas") as uas:
        status, body, headers = api(cell, "POST", "/v1/calls", {"to": f"sip:200@{uas.target}"})
        assert status == 201, body
        uid = body["uid"]
        assert worker_of(uid) in (0, 1, 2) and headers["Location"] == f"/v1/calls/{uid}"

        def final():
            s, p, _ = api(cell, "GET", f"/v1/calls/{uid}/progress")
            assert s == 200, p
            return p if p["state"] in ("ended", "failed", "no-answer", "busy") else None
        progress = wait(final, 20, "the outbound call to end")
        result = uas.stop()
    assert progress["state"] == "ended" and progress["times"]["answered"], progress
    assert result.returncode == 0, result.describe() if hasattr(result, "describe") else result
    rec = wait(lambda: (lambda s, r, _h: r if s == 200 and r.get("end_at") else None)(
        *api(cell, "GET", f"/v1/records/{uid}")), 10, "the outbound call's record")
    assert rec["direction"] == "outbound" and rec["status"] == "completed", rec


def test_outbound_calls_through_a_named_trunk_from_the_cell(cell):
    """A number through the trunk: a worker's INVITE is challenged (407) by the carrier and sent
    again with the trunk's credentials and caller id, answered, the agent's greeting reaches
    SIPp; a 486 number is reported busy; only the front ever REGISTERs the trunk."""
    def final(uid, states=FINAL):
        def probe():
            s, p, _ = api(cell, "GET", f"/v1/calls/{uid}/progress")
            assert s == 200, p
            return p if p["state"] in states else None
        return wait(probe, 20, f"the outbound call to reach {states}")

    before = len(carrier_lines(cell.carrier.output()))
    with SippUas("uas_proxied_hangup", port=cell.uas_ports["100"], rtp_echo=False, hold_ms=3000,
                 trace_dir=cell.tmp / "trunk-uas") as uas, \
            RtpCapture(ports=[uas.media_port]) as cap:
        status, body, _ = api(cell, "POST", "/v1/calls", {
            "to": "100", "trunk": "carrier", "from": "+4930555", "greeting": "Greet {called}."})
        assert status == 201, body
        uid = body["uid"]
        assert worker_of(uid) in (0, 1, 2)
        assert final(uid, ("answered",) + FINAL)["state"] == "answered"
        progress = final(uid)
        result = uas.stop()
    assert progress["state"] == "ended", progress
    lines = [r for r in carrier_lines(cell.carrier.output())[before:] if r.get("user") == "100"]
    assert [r["event"] for r in lines] == ["carrier_challenged", "carrier_authorized"], lines
    assert lines[1]["auth"] == "acme" and "sip:+4930555@carrier.test" in lines[1]["from"]
    invite = next(t for d, t in result.messages if d == "R" and t.startswith("INVITE"))
    assert "<sip:+4930555@carrier.test>" in invite, invite
    down = [st for st in cap.streams().values() if st.dst[1] == uas.media_port]
    assert len(down) == 1, list(cap.streams())
    assert down[0].active_mask(-40.0).sum() * 20 >= 300, "no agent audio reached the callee"
    states = [r["state"] for r in cell.events("outbound_progress") if r["uid"] == uid]
    assert states == ["queued", "ringing", "answered", "ended"], states

    with SippUas(reject=486, port=cell.uas_ports["486"], rtp_echo=False,
                 trace_dir=cell.tmp / "busy-uas") as uas:
        status, body, _ = api(cell, "POST", "/v1/calls", {"to": "486", "trunk": "carrier"})
        assert status == 201, body
        busy = final(body["uid"])
        result = uas.stop()
    assert (busy["state"], busy["status"]) == ("busy", 486), busy
    assert 486 in result.sent_codes
    status, body, _ = api(cell, "POST", "/v1/calls", {"to": "100", "trunk": "other"})
    assert status == 400 and body["field"] == "trunk", body

    # REGISTER: the carrier saw the front's (its own SIP port) and never a worker's
    registers = wait(lambda: register_lines(cell.carrier.output()), 15, "the front's REGISTER")
    assert {r["src"] for r in registers} == {f"127.0.0.1:{cell.sip_port}"}, registers
    assert all(r["user"] == "acme" for r in registers), registers
    assert sorted(r["worker"] for r in cell.events("trunk_dial_only")) == [0, 1, 2]
    assert cell.events("trunk_registering") == [] and cell.events("trunk_registered") == []


def open_files(pid: int) -> set[str]:
    """The paths process ``pid`` holds open (its /proc fd links)."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:   # closed meanwhile
            pass
    return found


def test_a_killed_workers_call_is_closed_as_lost_at_once_by_the_cells_one_writer(cell):
    """Only the supervisor holds the records file open, never a worker; SIGKILL worker 1 while
    it holds a call: the cell answers 404 for that call and its record reads lost (closed by the
    supervisor when it reaped the worker, before the restart); the cell's metrics count the
    restart and the restarted worker does not open the file either."""
    db = os.path.realpath(cell.records_path)

    def holds_db(pid):
        return any(path.startswith(db) for path in open_files(pid))   # the file, -wal, -shm
    out: dict = {}
    runner = place(cell, 3, 15000, cell.tmp / "b3", out)
    try:
        calls = answered_calls(cell, 3)
        victim = next(c["uid"] for c in calls if c["worker"] == 1)
        pids = {r["worker"]: r["pid"] for r in cell.events("worker_started")}   # the latest
        wait(lambda: api(cell, "GET", f"/v1/records/{victim}")[1].get("answer_at"), 10,
             "the answered call's record, handed over by its worker")
        assert holds_db(cell.proc.pid)
        assert [w for w, p in sorted(pids.items()) if holds_db(p)] == []
        mark = cell.mark()
        os.kill(pids[1], signal.SIGKILL)
        cell.wait("worker_exited", after=mark, worker=1)
        assert api(cell, "GET", f"/v1/calls/{victim}")[0] == 404
        status, body, _ = api(cell, "GET", "/readyz", token=None)
        assert status == 200 and body["workers"]["1"]["ready"] is False, body
        rec = wait(lambda: (lambda s, r, _h: r if s == 200 and r["status"] == "lost" else None)(
            *api(cell, "GET", f"/v1/records/{victim}")), 10, "the victim's record to read lost")
        assert rec["end_reason"] == "worker_exited" and rec["ended_by"] == "bridge", rec
        assert rec["end_at"] >= rec["answer_at"] and rec["talk_s"] >= 0, rec
        closed = cell.wait("cell_records_lost", after=mark, worker=1)
        assert victim in closed["uids"] and closed["pid"] == pids[1]
        restarted = cell.wait("worker_restarted", timeout=20, after=mark, worker=1)
        logged = [r.get("event") for r in cell.out.records[mark:]]
        assert logged.index("cell_records_lost") < logged.index("worker_restarted"), logged
        scraped = metrics(cell)
        assert scraped[("sipbridge_worker_restarts_total", ())] == 1
        assert scraped[("sipbridge_cell_records_lost_calls_total", ())] >= 1
        assert scraped[("sipbridge_cell_records_dropped_total", ())] == 0
        wait(lambda: api(cell, "GET", "/readyz", token=None)[1]["workers_ready"] == 3, 30,
             "the restarted worker to be ready")
        assert not holds_db(restarted["pid"]) and not cell.events("records_opened", mark)
    finally:
        runner.join(90)
    others = [c["uid"] for c in calls if c["worker"] != 1]
    recs = wait(lambda: (lambda rs: rs if all(r.get("end_at") for r in rs) else None)(
        [api(cell, "GET", f"/v1/records/{u}")[1] for u in others]), 20, "the others' records")
    assert {r["status"] for r in recs} == {"completed"}, recs
