"""The call control API against a real CallSession and a real aiohttp server on loopback.

The session is test_session's ``Call`` (an EmbeddedModel recording every client event; the test
thread plays the media clock). The worker is a stand-in holding that one call: pjsua2 may not be
imported in pytest, so the SIP side of ``hangup``/``transfer``/``dtmf`` is recorded by a
``SipCall`` double run on a real control thread (``post``), as the worker runs it.
"""

from __future__ import annotations

import json
import queue
import threading
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from sipbridge import config
from sipbridge.app import control, health
from sipbridge.app.server import ApiContext, ApiServer
from tests.support.ports import free_tcp_port
from tests.unit.app.test_session import GOODBYE, REPLY, SILENT, quiet

import numpy as np


class SipCall:
    """What the API reads and does of a BridgeCall, minus pjsua."""

    def __init__(self, session, uid="c_00112233aabbccdd"):
        self.uid, self.sip_call_id, self.session = uid, "sip-call-1", session
        self.disconnected, self.confirmed, self.rtp_stats, self.route = False, True, None, "sales"
        self.refers: list[str] = []
        self.digits: list[str] = []
        self.threads: set[str] = set()

    def transfer_op(self, target):
        self.threads.add(threading.current_thread().name)
        self.refers.append(target)

    def dialDtmf(self, digits):  # noqa: N802 - pjsua2's name
        self.threads.add(threading.current_thread().name)
        self.digits.append(digits)


class Worker:
    """A control thread running posted commands, the calls table, and ``_end``."""

    def __init__(self, call):
        self.calls = {0: call}
        self._calls_lock = threading.Lock()
        self.ended: list[tuple[str, str]] = []
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self.ready, self._stopping, self.embedded, self.counters = True, False, object(), {}
        self.stack = SimpleNamespace(capacity=4)
        self.vad_batch = None
        threading.Thread(target=self._run, name="control", daemon=True).start()

    def _run(self):
        while (cmd := self._commands.get()) is not None:
            cmd()

    def post(self, command):
        self._commands.put(command)

    def _end(self, call, reason):
        self.ended.append((threading.current_thread().name, reason))


class Api:
    def __init__(self, harness, token=None, rate=1000, max_body_kb=4):
        self.harness = harness
        self.call = SipCall(harness.session)
        self.worker = Worker(self.call)
        cfg = config.build({"api": {"rate_per_s": rate, "max_body_kb": max_body_kb}}, environ={})
        port = free_tcp_port()
        ctx = ApiContext(self.worker, cfg, token=token)
        self.server = ApiServer(ctx, f"127.0.0.1:{port}", [health.routes, control.routes])
        harness.run(self.server.start())
        self.url = f"http://127.0.0.1:{port}"
        self.token = token

    def request(self, method, path, body=None, raw: bytes | None = None, headers=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=dict(headers or {}))
        if self.token and "Authorization" not in req.headers:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, _decode(r.read()), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, _decode(e.read()), dict(e.headers)

    def close(self):
        self.harness.run(self.server.stop())
        self.worker.post(None)


def _decode(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


@pytest.fixture
def api(make_call):
    made = []

    def make(**kwargs):
        call_kwargs = {k: kwargs.pop(k) for k in ("reply", "pace", "turn", "realtime") if k in kwargs}
        made.append(Api(make_call(**call_kwargs), **kwargs))
        return made[-1]
    yield make
    for a in made:
        a.close()


def test_the_call_list_and_one_call_show_parties_route_state_turns_and_playout(api):
    """GET /v1/calls lists the call; GET /v1/calls/{uid} shows its state, turn settings and idle playout."""
    a = api()
    status, body, _ = a.request("GET", "/v1/calls")
    assert status == 200 and [c["uid"] for c in body["calls"]] == [a.call.uid]
    assert body["calls"][0]["route"] == "sales" and body["calls"][0]["state"] == "answered"
    status, one, _ = a.request("GET", f"/v1/calls/{a.call.uid}")
    assert status == 200
    assert one["playout"] == {"state": "idle", "queued_ms": 0, "underruns": 0}
    assert one["speaking"] == {"caller": False, "agent": False}
    assert one["turn_detection"]["silence_threshold_ms"] == 500
    assert one["counters"]["barge_ins"] == 0 and one["counters"]["rtp"] is None
    assert one["direction"] == "inbound" and one["sip_call_id"] == "sip-call-1"


def test_an_unknown_call_is_404_on_every_path(api):
    """Reading or acting on a uid that is not in progress answers 404 JSON."""
    a = api()
    for method, path in [("GET", "/v1/calls/c_nope"), ("POST", "/v1/calls/c_nope/hangup"),
                         ("POST", "/v1/calls/c_nope/dtmf")]:
        status, body, _ = a.request(method, path, {})
        assert status == 404 and body["error"] == "not_found", (path, body)
    status, body, _ = a.request("POST", f"/v1/calls/{a.call.uid}/explode", {})
    assert status == 404 and body["error"] == "not_found"


def test_interrupt_silences_the_next_frame_through_the_one_cancel_path(api):
    """POST interrupt mid-reply: the next frame is silent, the model gets cancel + truncate, the barge-in is the API's."""
    a = api(reply=REPLY, pace=2)
    a.harness.take_turn()
    a.harness.wait_playing()
    assert all(a.harness.tick() != SILENT for _ in range(5))
    status, one, _ = a.request("GET", f"/v1/calls/{a.call.uid}")
    assert one["playout"]["state"] == "playing" and one["speaking"]["agent"] is True
    status, body, _ = a.request("POST", f"/v1/calls/{a.call.uid}/interrupt")
    assert status == 202 and body == {"uid": a.call.uid, "action": "interrupt", "was_playing": True}
    assert a.harness.session.next_frame() == SILENT
    a.harness.wait_for("conversation.item.truncate")
    assert "response.cancel" in a.harness.turn_events()
    barge = a.harness.wait_log("barge_in")
    assert barge["source"] == "api" and barge["reason"] == "client_cancelled"
    done = a.harness.wait_log("response.done")
    assert done["status_details"]["reason"] == "client_cancelled"


def test_session_switches_the_turn_profile_and_the_models_instructions(api):
    """POST session with profile patient: the engine's silence threshold becomes 800 ms and the model gets the new instructions."""
    a = api(reply=b"")
    status, body, _ = a.request("POST", f"/v1/calls/{a.call.uid}/session",
                                {"turn_detection": {"profile": "patient"},
                                 "instructions": "Listen to the card number; do not interrupt."})
    assert status == 200 and body["turn_detection"]["silence_threshold_ms"] == 800
    assert a.harness.session.engine.settings.silence_threshold_ms == 800
    update = a.harness.wait_for("session.update", 2)[-1]
    assert update["session"]["instructions"] == "Listen to the card number; do not interrupt."
    # an 600 ms pause no longer ends the turn; 800 ms does
    a.harness.feed(np.concatenate([quiet(300), GOODBYE, quiet(600)]))
    a.harness.barrier()
    assert a.harness.sent("input_audio_buffer.commit") == []
    a.harness.feed(quiet(400))
    a.harness.wait_for("input_audio_buffer.commit")


def test_a_bad_turn_value_is_400_naming_the_key_and_changes_nothing(api):
    """session with silence_threshold_ms -5 answers 400 naming turn_detection.silence_threshold_ms; nothing is sent."""
    a = api(reply=b"")
    status, body, _ = a.request("POST", f"/v1/calls/{a.call.uid}/session",
                                {"turn_detection": {"silence_threshold_ms": -5}, "instructions": "x"})
    assert status == 400 and body["field"] == "turn_detection.silence_threshold_ms"
    a.harness.barrier()
    assert len(a.harness.sent("session.update")) == 1   # the one at connect
    assert a.harness.session.settings.silence_threshold_ms == 500


def test_session_tools_replace_the_app_functions_and_keep_the_built_ins(api):
    """session tools reach the model in session.update next to the built-in end_call."""
    a = api(realtime={"end_call_tool": True}, reply=b"")
    # as if the call had a tools_url (its signing secret would come from the environment the
    # harness does not pass): the API only checks that function calls have somewhere to go
    a.harness.session.app_tools.client = object()
    try:
        status, _, _ = a.request("POST", f"/v1/calls/{a.call.uid}/session",
                                 {"tools": [{"name": "lookup_order", "description": "Find an order"}]})
        assert status == 200
        update = a.harness.wait_for("session.update", 2)[-1]
    finally:
        a.harness.session.app_tools.client = None
    assert [t["name"] for t in update["session"]["tools"]] == ["end_call", "lookup_order"]


def test_session_tools_on_a_call_without_tools_url_are_400(api):
    """A call with nowhere to send function calls refuses new tools, naming 'tools'; nothing is sent."""
    a = api(reply=b"")
    status, body, _ = a.request("POST", f"/v1/calls/{a.call.uid}/session",
                                {"tools": [{"name": "lookup_order"}], "instructions": "x"})
    assert status == 400 and body["field"] == "tools", body
    a.harness.barrier()
    assert len(a.harness.sent("session.update")) == 1


def test_say_commit_and_clear_reach_the_model(api):
    """say sends response.create with its instructions; commit sends commit + response.create; clear sends clear."""
    a = api(reply=b"")
    assert a.request("POST", f"/v1/calls/{a.call.uid}/say", {"instructions": "Say it shipped."})[0] == 202
    create = a.harness.wait_for("response.create")[-1]
    assert create["response"]["instructions"] == "Say it shipped."
    assert a.request("POST", f"/v1/calls/{a.call.uid}/clear", {})[0] == 202
    a.harness.wait_for("input_audio_buffer.clear")
    assert a.request("POST", f"/v1/calls/{a.call.uid}/commit")[0] == 202
    a.harness.wait_for("input_audio_buffer.commit")
    assert a.harness.turn_events()[-3:] == ["input_audio_buffer.clear", "input_audio_buffer.commit",
                                            "response.create"]


def test_hangup_transfer_and_dtmf_run_on_the_control_thread(api):
    """The SIP actions reach the call on the control thread with the validated values."""
    a = api()
    assert a.request("POST", f"/v1/calls/{a.call.uid}/transfer", {"to": "sip:desk@pbx"})[0] == 202
    assert a.request("POST", f"/v1/calls/{a.call.uid}/dtmf", {"digits": "12#"})[0] == 202
    assert a.request("POST", f"/v1/calls/{a.call.uid}/hangup", {})[0] == 202
    assert a.call.refers == ["sip:desk@pbx"] and a.call.digits == ["12#"]
    assert a.call.threads == {"control"} and a.worker.ended == [("control", "api_hangup")]


def test_sip_actions_on_a_call_not_answered_or_ended_are_409(api):
    """transfer/dtmf before the answer, and hangup after the end, answer 409 and do nothing."""
    a = api()
    a.call.confirmed = False
    for action, body in (("transfer", {"to": "sip:x@y"}), ("dtmf", {"digits": "1"})):
        status, reply, _ = a.request("POST", f"/v1/calls/{a.call.uid}/{action}", body)
        assert status == 409 and "not answered" in reply["message"]
    assert a.call.refers == [] and a.call.digits == []


@pytest.mark.parametrize("action,body,field", [
    ("transfer", {"to": 5}, "to"), ("transfer", {}, "to"), ("say", {"instructions": []}, "instructions"),
    ("dtmf", {"digits": "9z"}, "digits"), ("session", {"voice": {}}, "voice"),
    ("session", {"turn_detection": {"profile": "sleepy"}}, "turn_detection.profile"),
    ("hangup", {"force": True}, "force"), ("interrupt", [], "body")])
def test_bad_bodies_are_400_naming_the_field(api, action, body, field):
    """Wrong types, missing and unknown fields answer 400 with the field's name."""
    a = api()
    status, reply, _ = a.request("POST", f"/v1/calls/{a.call.uid}/{action}", body)
    assert status == 400 and reply["error"] == "bad_request" and reply["field"] == field, reply


def test_malformed_json_and_huge_bodies_are_refused_cleanly(api):
    """Broken JSON is 400 'body'; a body over max_body_kb is 413, declared or chunked; the API still answers."""
    a = api(max_body_kb=1)
    status, reply, _ = a.request("POST", f"/v1/calls/{a.call.uid}/say", raw=b'{"instructions": ',
                                 headers={"Content-Type": "application/json"})
    assert status == 400 and reply["field"] == "body"
    status, reply, _ = a.request("POST", f"/v1/calls/{a.call.uid}/say",
                                 {"instructions": "x" * 5000})
    assert status == 413 and reply["error"] == "body_too_large"
    chunks = iter([b'{"instructions": "', b"y" * 3000, b'"}'])
    status, reply, _ = a.request("POST", f"/v1/calls/{a.call.uid}/say", raw=chunks,
                                 headers={"Transfer-Encoding": "chunked"})
    assert status == 413
    assert a.request("GET", "/v1/calls")[0] == 200


def test_the_token_is_needed_everywhere_but_the_probes(api):
    """With a token, missing or wrong bearer is 401 on the calls and metrics paths; /healthz and /readyz stay open."""
    a = api(token="s3cret")
    for path in ("/v1/calls", f"/v1/calls/{a.call.uid}", "/v1/openapi.yaml"):
        assert a.request("GET", path, headers={"Authorization": "Bearer nope"})[0] == 401
        assert a.request("GET", path, headers={"Authorization": ""})[0] == 401
        assert a.request("GET", path)[0] == 200
    status, body, headers = a.request("POST", f"/v1/calls/{a.call.uid}/hangup", {},
                                      headers={"Authorization": "Bearer s3cre"})
    assert status == 401 and body["error"] == "unauthorized" and "Bearer" in headers["WWW-Authenticate"]
    assert a.worker.ended == []
    assert a.request("GET", "/healthz", headers={"Authorization": "Bearer nope"})[0] == 200
    assert a.request("GET", "/readyz", headers={"Authorization": "Bearer nope"})[0] == 200


def test_a_flood_gets_429_with_retry_after_and_the_call_is_unharmed(api):
    """Over rate_per_s a client gets 429 with Retry-After; the call is still listed afterwards."""
    a = api(rate=5)
    codes = [a.request("GET", "/v1/calls")[0] for _ in range(12)]
    assert codes[:5] == [200] * 5 and 429 in codes[5:]
    status, body, headers = a.request("GET", "/v1/calls")
    if status == 429:
        assert int(headers["Retry-After"]) >= 1 and body["error"] == "too_many_requests"
    assert a.harness.session.closed is False and a.worker.ended == []


def test_the_openapi_document_covers_every_route_served(api):
    """GET /v1/openapi.yaml parses as OpenAPI 3.1 and lists each path and method the server routes."""
    import yaml
    a = api()
    status, text, headers = a.request("GET", "/v1/openapi.yaml")
    assert status == 200 and headers["Content-Type"].startswith("application/yaml")
    doc = yaml.safe_load(text)
    assert doc["openapi"].startswith("3.1")
    routed = set()
    for route in a.server.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method == "HEAD":
            continue
        if path.endswith("/{action}"):
            for action in control.ACTIONS:
                routed.add((f"/v1/calls/{{uid}}/{action}", route.method.lower()))
        else:
            routed.add((path, route.method.lower()))
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}
    assert routed <= documented, routed - documented


def test_every_route_the_worker_serves_is_in_the_openapi_document():
    """Each path and method of the worker's API_ROUTES modules is documented in openapi.yaml."""
    import ast
    import importlib
    from importlib import resources
    from pathlib import Path

    import yaml

    from sipbridge.app.server import build_app
    source = Path(__file__).resolve().parents[4] / "sipbridge" / "worker.py"
    (names,) = [ast.literal_eval(node.value) for node in ast.parse(source.read_text()).body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "API_ROUTES"]
    assert {"health", "control"} <= set(names)
    cfg = config.build({}, environ={})
    app = build_app(ApiContext(SimpleNamespace(), cfg),
                    [importlib.import_module(f"sipbridge.app.{n}").routes for n in names])
    doc = yaml.safe_load(resources.files("sipbridge.app").joinpath("openapi.yaml").read_text())
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter")
        paths = ([f"/v1/calls/{{uid}}/{a}" for a in control.ACTIONS] if path.endswith("/{action}")
                 else [path])
        for p in paths:
            assert (p, route.method.lower()) in documented, (p, route.method)
