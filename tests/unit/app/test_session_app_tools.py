"""The app's own tools in a CallSession: a real EmbeddedModel socket calls them, a real aiohttp
tools backend on 127.0.0.1 answers, the test thread is the media clock (see test_session.py).

The embedded model (``call_tool``) ends its first completed answer with calls of the app's
functions; the response after their outputs speaks them: a 1 kHz beep per answer
(``{"beeps": n}``: n), a 300 Hz buzz for an error output. So "the caller heard the answer" is
counted in the agent frames the session hands to RTP.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from standardwebhooks import Webhook

from sipbridge.app import signing
from sipbridge.embedded.echo_core import BEEP_HZ, BUZZ_HZ
from sipbridge.embedded import EmbeddedModel
from tests.support.tools_backend import Behaviour, ToolsBackend
from tests.unit.app.harness import SessionHarness
from tests.unit.app.test_session import GOODBYE, HELLO, RATE, REPLY, Call, frames_of, quiet
from tests.unit.embedded.test_echo_tools import bursts

SECRET = signing.new_secret()
SECRET_ENV = "SIPBRIDGE_TEST_TOOLS_SECRET"
LOOKUP = {"name": "lookup", "description": "Look an order up.",
          "parameters": {"type": "object", "properties": {"order": {"type": "string"}}}}
BOOK = {"name": "book", "description": "Book a slot."}


class AppCall(Call):
    """A Call whose model calls the app's functions ``call_tool`` with ``tool_args``."""

    def __init__(self, loop, vad_model, *, backend: ToolsBackend, tools=(LOOKUP,),
                 call_tool: str = "lookup", tool_args: str = '{"order": "42"}', reply=b"",
                 pace: float = 50.0, timeout_ms: int = 2000):
        self.record: list[dict] = []
        model = EmbeddedModel(record=self.record, reply_pcm=reply, pace=pace, call_tool=call_tool,
                              tool_args=tool_args)
        SessionHarness.__init__(self, loop, model, vad_model=vad_model,
                                realtime={"tools": list(tools), "tools_url": backend.url},
                                app={"tool_timeout_ms": timeout_ms, "webhook_secret_env": SECRET_ENV},
                                environ={SECRET_ENV: SECRET})
        self.session.metadata = {"account": "A-7"}
        self.ticks = 0

    def outputs(self) -> list[dict]:
        return [e["item"] for e in self.sent("conversation.item.create")
                if e["item"]["type"] == "function_call_output"]

    def hear(self, responses: int, limit_ms: int = 15000) -> list[tuple[int, float]]:
        """Tick (the caller quiet) until ``responses`` responses are done and played out; the
        bursts of tone (ms, Hz) the caller heard meanwhile."""
        out: list[bytes] = []
        deadline = time.monotonic() + limit_ms / 1000
        while len(self.log_events("response.done")) < responses or self.session.playout.playing:
            assert time.monotonic() < deadline, f"{responses} answers were never heard"
            if not self.session.playout.playing and self.session.response_id is None:
                time.sleep(0.005)  # waiting for the app or the model: the clock idles on quiet
            out.append(self.tick())
        return bursts(np.frombuffer(b"".join(out), dtype="<i2"), rate=RATE)


@pytest.fixture
def backend():
    with ToolsBackend() as app:
        yield app


@pytest.fixture
def app_call(loop, vad_model, backend, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    calls: list[AppCall] = []

    def make(**kwargs) -> AppCall:
        calls.append(AppCall(loop, vad_model, backend=backend, **kwargs))
        return calls[-1]

    yield make
    for call in calls:
        call.close()


def test_the_apps_functions_are_offered_next_to_nothing_else(app_call):
    """session.update offers the declared functions with their schemas (tool_choice auto)."""
    call = app_call()
    (update,) = call.sent("session.update")
    assert update["session"]["tools"] == [{"type": "function", **LOOKUP}]


def test_a_tool_round_trip_reaches_the_app_signed_and_its_answer_reaches_the_caller(app_call, backend):
    """The model's call is POSTed signed (verified by the standardwebhooks library) with the parsed
    arguments, the model's call id and the call's metadata; the app's reply goes back as the
    function_call_output, then one response.create, and the caller hears the answer (2 beeps)."""
    backend.behaviours["lookup"] = Behaviour(reply={"beeps": 2, "status": "shipped"})
    call = app_call()
    call.take_turn(HELLO)
    answer = call.hear(2)
    (req,) = backend.wait_requests(1)
    body = Webhook(SECRET).verify(req["body"], req["headers"])
    call.wait_for("response.create", 2)
    (output,) = call.outputs()
    assert body["name"] == "lookup" and body["arguments"] == {"order": "42"}
    assert body["call_id"] == call.session.uid and body["sip_call_id"] == "call-1"
    assert body["function_call_id"] == output["call_id"] and body["metadata"] == {"account": "A-7"}
    assert json.loads(output["output"]) == {"beeps": 2, "status": "shipped"}
    creates = call.sent("response.create")
    item = call.sent("conversation.item.create")[0]
    assert creates[1]["_recv_t"] >= item["_recv_t"], "response.create before the output"
    assert [round(f) for _, f in answer] == [BEEP_HZ, BEEP_HZ], answer
    done = call.wait_log("tool_called")
    assert done["outcome"] == "ok" and done["ok"] is True and done["name"] == "lookup"
    assert done["uid"] == call.session.uid and done["status"] == 200 and done["latency_ms"] >= 0
    call.barrier()
    assert len(call.sent("response.create")) == 2


def test_a_tool_that_never_answers_gives_an_error_output_after_the_timeout(app_call, backend):
    """The app hangs: after app.tool_timeout_ms the model gets {"error": "tool_timeout"} and a
    response.create, and the caller hears the agent again (the buzz): the call is not stuck."""
    backend.behaviours["lookup"] = Behaviour(hang=True)
    call = app_call(timeout_ms=300)
    call.take_turn(HELLO)
    heard = call.hear(2)
    backend.wait_requests(1)
    done = call.wait_log("tool_called", timeout=5)
    assert done["outcome"] == "tool_timeout" and 290 <= done["latency_ms"] < 2000, done
    call.wait_for("conversation.item.create")
    (output,) = call.outputs()
    assert json.loads(output["output"])["error"] == "tool_timeout"
    call.wait_for("response.create", 2)
    assert [round(f) for _, f in heard] == [BUZZ_HZ]


@pytest.mark.parametrize("behaviour, outcome", [(Behaviour(status=500, reply={"x": 1}), "tool_http_error"),
                                                (Behaviour(reply=None, status=204), "tool_bad_reply")])
def test_a_failing_app_is_an_error_output_and_the_agent_goes_on(app_call, backend, behaviour, outcome):
    """A 500 or an empty reply: an error output, a response.create, the buzz is heard."""
    backend.behaviours["lookup"] = behaviour
    call = app_call()
    call.take_turn(HELLO)
    heard = call.hear(2)
    assert call.wait_log("tool_called")["outcome"] == outcome
    call.wait_for("response.create", 2)
    assert json.loads(call.outputs()[0]["output"])["error"] == outcome
    assert [round(f) for _, f in heard] == [BUZZ_HZ]


def test_arguments_that_are_not_json_are_refused_without_calling_the_app(app_call, backend):
    """The model wrote broken arguments: an error output at once, the app is never called."""
    call = app_call(tool_args='{"order": 4')
    call.take_turn(HELLO)
    assert [round(f) for _, f in call.hear(2)] == [BUZZ_HZ]
    call.wait_for("response.create", 2)
    assert json.loads(call.outputs()[0]["output"])["error"] == "bad_arguments"
    assert call.wait_log("tool_called")["outcome"] == "bad_arguments"
    assert backend.requests == []


def test_parallel_calls_run_together_and_are_answered_with_one_response(app_call, backend):
    """Two functions called in one response: both requests are in flight at once; the first
    output asks for nothing, the second is followed by one response.create; 1 + 2 beeps heard."""
    backend.behaviours["lookup"] = Behaviour(reply={"beeps": 1}, delay_s=0.4)
    backend.behaviours["book"] = Behaviour(reply={"beeps": 2})
    call = app_call(tools=(LOOKUP, BOOK), call_tool="lookup,book")
    call.take_turn(HELLO)
    heard = call.hear(2)
    reqs = backend.wait_requests(2)
    assert abs(reqs[0]["t"] - reqs[1]["t"]) < 0.3, "the calls ran one after the other"
    call.wait_for("response.create", 2)
    outputs = call.outputs()
    assert len(outputs) == 2
    creates = call.sent("response.create")
    items = call.sent("conversation.item.create")
    assert creates[1]["_recv_t"] >= max(i["_recv_t"] for i in items)
    assert [round(f) for _, f in heard] == [BEEP_HZ] * 3
    call.barrier()
    assert len(call.sent("response.create")) == 2


def test_a_barge_in_while_a_tool_runs_lets_the_caller_speak_and_the_model_answers_with_it(app_call, backend):
    """The caller talks over the agent while the tool runs: the one cancel path (barge_in); the
    tool's output still reaches the model but asks for no response of its own; the caller's
    turn, once committed, gets the only response, and that answer carries the tool's output."""
    backend.behaviours["lookup"] = Behaviour(reply={"beeps": 3}, hold=True)
    call = app_call(reply=REPLY, pace=20)
    call.take_turn(HELLO)
    call.wait_playing()
    backend.wait_requests(1)                         # the tool runs; the agent is still talking
    for frame in frames_of(np.concatenate([quiet(100), HELLO])):
        call.tick(frame)
    barge = call.wait_log("barge_in")
    assert barge["source"] == "local_vad"
    backend.release("lookup")
    call.wait_log("tool_output_held")
    call.wait_for("conversation.item.create")       # the output is on its way to the model
    (output,) = call.outputs()
    assert json.loads(output["output"]) == {"beeps": 3}
    call.barrier()
    assert len(call.sent("response.create")) == 1, "a response was asked for over the caller"
    call.feed(quiet(800))                            # the caller's turn ends: commit + response
    call.wait_for("response.create", 2)
    assert [round(f) for _, f in call.hear(2)] == [BEEP_HZ] * 3
    call.barrier()
    types = call.turn_events()
    assert types.count("response.create") == 2 and types[-2:] == ["input_audio_buffer.commit",
                                                                  "response.create"]


def test_a_call_that_ends_while_a_tool_runs_cancels_it_and_sends_nothing(app_call, backend):
    """Hang-up during the request: the request is abandoned (logged cancelled), no output sent."""
    backend.behaviours["lookup"] = Behaviour(hang=True)
    call = app_call()
    call.take_turn(HELLO)
    backend.wait_requests(1)
    call.run(call.session.close())
    assert call.wait_log("tool_called")["outcome"] == "cancelled"
    assert call.outputs() == []



def test_an_answer_arriving_while_the_agent_answers_the_caller_waits_for_that_response(app_call, backend):
    """The caller spoke while the tool ran (the agent was silent: no barge-in) and the model is
    answering them when the tool's output arrives: the output goes in at once, the response.create
    only after that answer is done (one response at a time); then the caller hears the beeps."""
    backend.behaviours["lookup"] = Behaviour(reply={"beeps": 2}, hold=True)
    call = app_call(reply=REPLY, pace=2.0)
    call.take_turn(HELLO)
    call.hear(1)                                       # the first answer, with the call at its end
    backend.wait_requests(1)
    call.take_turn(GOODBYE)                            # the caller's next turn: the second answer
    deadline = time.monotonic() + 5
    while call.session.response_id is None:
        assert time.monotonic() < deadline, "the second answer never started"
        time.sleep(0.002)
    backend.release("lookup")
    call.wait_for("conversation.item.create")
    call.barrier()
    assert call.session.response_id is not None, "the answer ended before the output: no test"
    assert len(call.sent("response.create")) == 2, "a response.create during a response"
    heard = call.hear(3)
    assert len(call.sent("response.create")) == 3
    assert [round(f) for _, f in heard][-2:] == [BEEP_HZ, BEEP_HZ]


def test_without_the_secret_at_run_time_no_request_goes_out_unsigned(app_call, backend, monkeypatch):
    """The signing secret is gone from the worker's environment: the model gets a tool_unavailable
    error output and a response; the app is never called unsigned."""
    monkeypatch.delenv(SECRET_ENV)
    call = app_call()
    call.take_turn(HELLO)
    assert [round(f) for _, f in call.hear(2)] == [BUZZ_HZ]
    assert json.loads(call.outputs()[0]["output"])["error"] == "tool_unavailable"
    assert call.wait_log("tool_called")["outcome"] == "tool_unavailable"
    assert backend.requests == []
