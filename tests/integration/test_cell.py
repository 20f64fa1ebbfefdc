"""A cell for real: Kamailio in front of sipbridge workers, on 127.0.0.1 with free ports.

The front's routing is tested against scripted UDP endpoints standing in for workers (486,
silence, 200); the whole cell (``sipbridge run --workers 3 --front kamailio``, embedded model)
takes SIPp calls through Kamailio while one worker is SIGKILLed and restarted.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from sipbridge import config
from sipbridge.cell.kamailio_cfg import Registration, front_spec, render
from sipbridge.kamailio import Kamailio, module_dir
from tests.support.bridge import _LineReader, terminate
from tests.support.ports import free_port_block, free_tcp_port, free_udp_port
from tests.support.sipp import run_sipp

# ----------------------------------------------------------------------------- front alone


class ScriptedWorker:
    """A UDP endpoint playing a worker: OPTIONS -> 200; INVITE -> ``invite_code`` (None: silent)."""

    def __init__(self, invite_code: int | None):
        self.invite_code = invite_code
        self.invites: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            text = data.decode(errors="replace")
            method = text.split(" ", 1)[0]
            if method == "INVITE":
                self.invites.append(text)
            code = 200 if method == "OPTIONS" else self.invite_code if method == "INVITE" else None
            if code is not None:
                self.sock.sendto(reply(text, code).encode(), addr)

    def close(self) -> None:
        self.sock.close()


def reply(request: str, code: int) -> str:
    """A response to ``request`` copying its Via, From, To (+ tag), Call-ID and CSeq."""
    head = request.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    keep = [h for h in head if h.split(":", 1)[0].lower() in ("via", "from", "to", "call-id",
                                                              "cseq", "record-route")]
    keep = [h + ";tag=w" if h.lower().startswith("to:") and "tag=" not in h else h for h in keep]
    extra = ["Contact: <sip:w@127.0.0.1>"] if code == 200 else []
    return f"SIP/2.0 {code} Scripted\r\n" + "\r\n".join(keep + extra) + "\r\nContent-Length: 0\r\n\r\n"


def invite(front_port: int, timeout: float = 8.0) -> int | None:
    """Send one INVITE to the front; return its final response code (None: none came)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        lport = s.getsockname()[1]
        tag = os.urandom(4).hex()
        s.sendto((f"INVITE sip:bot@127.0.0.1:{front_port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{tag};rport\r\n"
                  f"From: <sip:caller@127.0.0.1>;tag={tag}\r\nTo: <sip:bot@127.0.0.1>\r\n"
                  f"Call-ID: {tag}@test\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
                  f"Contact: <sip:caller@127.0.0.1:{lport}>\r\nContent-Length: 0\r\n\r\n").encode(),
                 ("127.0.0.1", front_port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                code = int(s.recv(65535).split(b" ", 2)[1])
            except socket.timeout:
                return None
            if code >= 200:
                return code
    return None


def start_front(tmp_path: Path, workers: list[ScriptedWorker], **sip) -> Kamailio:
    port = free_udp_port()
    cfg = config.build({"sip": {"port": port, **sip},
                        "cell": {"workers": len(workers), "front": "kamailio",
                                 "failover_timeout_ms": 500, "probe_interval_s": 1}}, environ={})
    spec = front_spec(cfg, str(tmp_path), mpath=module_dir())
    spec = type(spec)(**{**spec.__dict__, "workers": tuple(("127.0.0.1", w.port) for w in workers)})
    files = render(spec)
    (tmp_path / "dispatcher.list").write_text(files["dispatcher.list"])
    return Kamailio(files["kamailio.cfg"], tmp_path, sip=("127.0.0.1", port)).start()


def test_front_fails_over_from_busy_and_silent_workers(tmp_path):
    """INVITEs that meet a 486 or a silent worker are answered by the next worker: all get 200."""
    workers = [ScriptedWorker(486), ScriptedWorker(None), ScriptedWorker(200)]
    front = start_front(tmp_path, workers)
    try:
        codes = [invite(front.sip[1]) for _ in range(3)]
    finally:
        front.stop()
        for w in workers:
            w.close()
    assert codes == [200, 200, 200], front.output()[-3000:]
    assert len(workers[2].invites) == 3
    assert "Record-Route:" in workers[2].invites[0]


def test_front_passes_on_busy_when_every_worker_is_busy(tmp_path):
    """With every worker answering 486, the caller gets 486 after each was tried once."""
    workers = [ScriptedWorker(486), ScriptedWorker(486)]
    front = start_front(tmp_path, workers)
    try:
        code = invite(front.sip[1])
    finally:
        front.stop()
        for w in workers:
            w.close()
    assert code == 486
    assert [len(w.invites) for w in workers] == [1, 1]


def test_front_refuses_sources_outside_allow_from(tmp_path):
    """An INVITE from outside sip.allow_from gets 403 from the front and reaches no worker."""
    workers = [ScriptedWorker(200)]
    front = start_front(tmp_path, workers, allow_from=["10.0.0.0/8"])
    try:
        code = invite(front.sip[1])
    finally:
        front.stop()
        workers[0].close()
    assert code == 403 and workers[0].invites == []


def test_front_registers_each_trunk_once_with_its_own_contact(tmp_path):
    """With a trunk configured, the front sends REGISTER for it with the front as the contact."""
    registrar = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    registrar.bind(("127.0.0.1", 0))
    registrar.settimeout(10)
    port = free_udp_port()
    cfg = config.build({"sip": {"port": port},
                        "cell": {"workers": 2, "front": "kamailio",
                                 "worker_port_base": free_port_block(2, align=1)}}, environ={})
    reg = Registration("carrier", "4930123", "sip.carrier.example", "secret",
                       proxy=f"sip:127.0.0.1:{registrar.getsockname()[1]}")
    files = render(front_spec(cfg, str(tmp_path), mpath=module_dir(), registrations=(reg,)))
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    with Kamailio(files["kamailio.cfg"], tmp_path, sip=("127.0.0.1", port)):
        data = registrar.recv(65535).decode()
    registrar.close()
    assert data.startswith("REGISTER sip:sip.carrier.example SIP/2.0")
    assert "To: <sip:4930123@sip.carrier.example>" in data
    assert f"Contact: <sip:carrier@127.0.0.1:{port}>" in data


# ----------------------------------------------------------------------------- the whole cell

HOLD_MS = 7000           # first batch: long enough to kill a worker while its calls are up
RESTART_BACKOFF_MS = 12000 # the killed worker stays down through the BYEs and the second batch


class CellProcess:
    """``sipbridge run --workers N --front kamailio`` (N = 3 unless told) as a subprocess with
    its JSON log."""

    def __init__(self, tmp_path: Path, extra: dict | None = None, environ: dict | None = None,
                 restart_backoff_ms: int = RESTART_BACKOFF_MS, workers: int = 3):
        self.sip_port = free_udp_port()
        self.api_url = f"http://127.0.0.1:{free_tcp_port()}"   # the cell's one API
        base = free_port_block(workers, align=1)
        rtp = free_port_block(20 * workers)   # 20 a worker: its 4 calls' RTP/RTCP pairs and spares
        cfg = {"sip": {"host": "127.0.0.1", "port": self.sip_port, "rtp_port": rtp,
                       "rtp_port_range": 20 * workers, "allow_from": ["127.0.0.1/32"]},
               "realtime": {"url": "embedded"},
               "cell": {"worker_port_base": base, "probe_interval_s": 1,
                        "failover_timeout_ms": 2000, "restart_backoff_ms": restart_backoff_ms},
               "log": {"format": "json", "level": "info"},
               # one file for the cell's workers (WAL), never the repo's working directory
               "records": {"path": str(tmp_path / "records.db")},
               "api": {"listen": self.api_url[len("http://"):]}}
        for section, keys in (extra or {}).items():   # laid over the sections above
            cfg[section] = {**cfg.get(section, {}), **keys} if isinstance(keys, dict) else keys
        self.records_path = tmp_path / "records.db"
        path = tmp_path / "cell.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SIPBRIDGE_") and k != "OPENAI_API_KEY"}
        env["PYTHONUNBUFFERED"] = "1"
        env.update(environ or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sipbridge", "run", "-c", str(path), "--workers", str(workers),
             "--front", "kamailio"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        self.out = _LineReader(self.proc.stdout)

    def wait(self, event: str, timeout: float = 30.0, after: int = 0, **match) -> dict:
        def hit(r):
            return r.get("event") == event and all(r.get(k) == v for k, v in match.items())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rec in self.out.records[after:]:
                if hit(rec):
                    return rec
            time.sleep(0.05)
        raise AssertionError(f"no {event} {match} in the cell's log:\n" + self.tail())

    def events(self, event: str, after: int = 0) -> list[dict]:
        return [r for r in self.out.records[after:] if r.get("event") == event]

    def mark(self) -> int:
        return len(self.out.records)

    def tail(self) -> str:
        return "\n".join(line for line in self.out.lines if '"pjsip"' not in line)[-6000:]

    def stop(self, timeout: float = 30.0) -> int:
        terminate(self.proc, timeout)
        self.out._thread.join(5)
        return self.proc.returncode


def place_calls(target: str, calls: int, hold_ms: int, trace_dir: Path, result: dict) -> None:
    result["sipp"] = run_sipp("uac_proxy", target, calls=calls, rtp_echo=True, hold_ms=hold_ms,
                              timeout=40, trace_dir=trace_dir,
                              extra_args=["-l", str(calls), "-r", "20"])


def outcome(res) -> dict[str, tuple[int | None, int | None]]:
    """Call-ID -> (final INVITE code, final code of the scenario's BYE) as SIPp received them.

    Only ``CSeq: 2 BYE`` counts: after a failed BYE SIPp's default behaviour sends another
    (CSeq 3) without the route set, which the front answers 404."""
    out: dict[str, list] = {}
    for m in res.shortmsgs:
        if m.direction != "R" or not m.is_response or (m.code or 0) < 200:
            continue
        slot = out.setdefault(m.call_id, [None, None])
        if "INVITE" in m.cseq:
            slot[0] = m.code
        elif m.cseq.split(":")[-1].strip() == "2 BYE":
            slot[1] = m.code
    return {k: tuple(v) for k, v in out.items()}


def calls_by_worker(cell: CellProcess, after: int = 0) -> dict[int, set[str]]:
    by: dict[int, set[str]] = {}
    for r in cell.events("media_active", after):
        by.setdefault(r["worker"], set()).add(r["call_id"])
    return by


def records_by_call_id(path: Path) -> dict[str, str]:
    """SIP Call-ID -> the record's status, read from the cell's records file."""
    import sqlite3
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT sip_call_id, status FROM records"))
    finally:
        conn.close()


@pytest.fixture
def cell(tmp_path):
    c = CellProcess(tmp_path)
    try:
        c.wait("cell_ready", timeout=60)
        yield c
    finally:
        c.stop()


def test_cell_spreads_calls_survives_a_killed_worker_and_takes_it_back(cell, tmp_path):
    """12 concurrent calls through Kamailio are spread 4/4/4 over 3 workers with media; a
    SIGKILLed worker's calls fail (their BYE times out at the front: 408) while the others end
    normally, new calls go to the survivors, and the restarted worker takes calls again."""
    target = f"127.0.0.1:{cell.sip_port}"
    pids = {r["worker"]: r["pid"] for r in cell.events("worker_started")}
    assert sorted(pids) == [0, 1, 2]

    # -- batch 1: 12 calls, 4 per worker (the library's ceiling), audio both ways
    first: dict = {}
    runner = threading.Thread(target=place_calls,
                              args=(target, 12, HOLD_MS, tmp_path / "b1", first))
    runner.start()
    deadline = time.monotonic() + 20
    while sum(map(len, calls_by_worker(cell).values())) < 12:
        assert time.monotonic() < deadline, cell.tail()
        time.sleep(0.05)
    answered_at = time.monotonic()
    by_worker = calls_by_worker(cell)
    assert {w: len(c) for w, c in by_worker.items()} == {0: 4, 1: 4, 2: 4}

    # -- kill worker 1 shortly before the callers hang up
    time.sleep(max(0.0, HOLD_MS / 1000 - 2.5 - (time.monotonic() - answered_at)))
    os.kill(pids[1], signal.SIGKILL)
    killed_at = cell.mark()
    runner.join(60)
    res1 = first["sipp"]
    exited = cell.wait("worker_exited", worker=1)
    assert exited["signal"] == "SIGKILL" and exited["pid"] == pids[1] and not exited["expected"]
    ends = outcome(res1)
    assert len(ends) == 12, res1.describe()
    for call_id, (inv, bye) in ends.items():
        assert inv == 200, (call_id, res1.describe())
        # the dead worker's calls: the front relays the BYE into silence and answers 408
        assert bye == (408 if call_id in by_worker[1] else 200), (call_id, ends, cell.tail())
    # the bridge's audio flowed all call long (the media clock may skip ticks on a busy box)
    for r in cell.events("session_closed"):
        assert r["frames_out"] >= 0.5 * HOLD_MS / 20, r
    assert not cell.events("worker_restarted", killed_at)  # still inside its backoff

    # -- batch 2 while worker 1 is down: all answered by workers 0 and 2
    mark2 = cell.mark()
    second: dict = {}
    place_calls(target, 6, 1500, tmp_path / "b2", second)
    ends2 = outcome(second["sipp"])
    assert len(ends2) == 6 and all(v == (200, 200) for v in ends2.values()), second["sipp"].describe()
    by2 = calls_by_worker(cell, mark2)
    assert set(by2) <= {0, 2} and sum(map(len, by2.values())) == 6
    assert not cell.events("worker_restarted", killed_at)

    # -- worker 1 comes back and takes its share of a full batch again
    restarted = cell.wait("worker_restarted", timeout=20, worker=1)
    assert restarted["pid"] != pids[1]
    cell.wait("ready", timeout=30, after=killed_at, worker=1)
    # the killed worker's calls were closed as lost by the supervisor (the cell's one records
    # writer) when it reaped the worker; the others completed
    assert len(cell.wait("cell_records_lost", after=killed_at, worker=1)["uids"]) == 4
    status = records_by_call_id(cell.records_path)
    assert {status[c] for c in by_worker[1]} == {"lost"}
    assert {status[c] for c in by_worker[0] | by_worker[2]} == {"completed"}
    time.sleep(2.5)  # a probe interval or two: the front sees it answer OPTIONS again
    mark3 = cell.mark()
    third: dict = {}
    place_calls(target, 12, 2500, tmp_path / "b3", third)
    ends3 = outcome(third["sipp"])
    assert len(ends3) == 12 and all(v == (200, 200) for v in ends3.values()), third["sipp"].describe()
    by3 = calls_by_worker(cell, mark3)
    assert {w: len(c) for w, c in by3.items()} == {0: 4, 1: 4, 2: 4}

    # -- SIGTERM: every worker drains and exits, then the supervisor exits 0
    assert cell.stop() == 0
    stopped = cell.events("worker_exited", mark3)
    assert sorted(r["worker"] for r in stopped if r["expected"]) == [0, 1, 2]
    assert cell.events("cell_stopped")[-1]["code"] == 0
