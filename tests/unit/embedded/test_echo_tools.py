"""The embedded model calls the app's functions (``call_tool``/``tool_args``) and speaks their
outputs: a beep per answer, a buzz for an error, so a wire test hears the round trip."""

from __future__ import annotations

import json

import numpy as np

from sipbridge.realtime import protocol as p
from sipbridge.embedded.echo_core import (BEEP_HZ, BEEP_MS, BUZZ_HZ, BUZZ_MS, GAP_MS, RATE, EchoCore,
                                          tool_answer)
from sipbridge.realtime.tools import END_CALL

from tests.unit.realtime.helpers import pcm_ramp
from .test_echo_core import audio_of, commit, drain, start_response

LOOKUP = p.Tool("lookup", "Look something up.")
BOOK = p.Tool("book", "Book a slot.")


def bursts(pcm: np.ndarray, rate: int = RATE) -> list[tuple[int, float]]:
    """(length ms, dominant frequency Hz) of each run of 10 ms blocks above -40 dBFS."""
    block = rate // 100
    n = len(pcm) // block
    blocks = pcm[: n * block].astype(np.float64).reshape(n, block) / 32768
    loud = np.sqrt((blocks ** 2).mean(axis=1)) > 0.01
    runs, start = [], None
    for i, on in enumerate(list(loud) + [False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            seg = pcm[start * block: i * block].astype(np.float64)
            freq = np.fft.rfftfreq(len(seg), 1 / rate)[np.argmax(np.abs(np.fft.rfft(seg)))]
            runs.append(((i - start) * 10, float(freq)))
            start = None
    return runs


def test_tool_answer_is_a_beep_per_answer_and_a_buzz_for_an_error():
    """{"beeps": 3} is three 1 kHz beeps; a plain answer one; an error output adds a 300 Hz buzz;
    a beeps count is clamped to 1-8."""
    three = bursts(tool_answer(['{"beeps": 3}']))
    assert [round(f) for _, f in three] == [BEEP_HZ] * 3
    assert all(abs(ms - BEEP_MS) <= 20 for ms, _ in three)
    assert len(bursts(tool_answer(['{"status": "shipped"}']))) == 1
    assert len(bursts(tool_answer(['{"beeps": 99}']))) == 8
    mixed = bursts(tool_answer(['{"beeps": 2}', '{"error": "tool_timeout"}']))
    assert [round(f) for _, f in mixed] == [BEEP_HZ, BEEP_HZ, BUZZ_HZ]
    assert abs(mixed[-1][0] - BUZZ_MS) <= 20
    (buzz,) = bursts(tool_answer(["not json"]))
    assert round(buzz[1]) == BUZZ_HZ
    assert len(tool_answer(['{"beeps": 1}'])) == RATE * (BEEP_MS + GAP_MS) // 1000


def test_the_call_carries_tool_args_and_the_next_response_speaks_the_output():
    """The first completed response calls the function with tool_args; after its output the next
    response's audio is the answer's beeps (not the echo); the response after that echoes again."""
    core = EchoCore(call_tool="lookup", tool_args='{"order": "42"}')
    core.handle(p.session_update(p.SessionConfig(model="m", tools=(LOOKUP,))))
    commit(core, pcm_ramp(200))
    events = drain(core, start_response(core))
    call = p.parse_server_event(json.dumps(events[-2]))
    assert isinstance(call, p.FunctionCall) and call.name == "lookup"
    assert json.loads(call.arguments) == {"order": "42"}
    core.handle(p.function_output(call.call_id, '{"beeps": 2}'))
    answer = np.frombuffer(audio_of(drain(core, start_response(core))), dtype="<i2")
    assert [round(f) for _, f in bursts(answer)] == [BEEP_HZ, BEEP_HZ]
    echo = audio_of(drain(core, start_response(core)))
    assert echo == pcm_ramp(200), "after the answer the model echoes the caller again"


def test_several_names_are_parallel_calls_in_one_response_answered_together():
    """call_tool "lookup,book": one response carries both calls (output indexes 1 and 2); the next
    response speaks both outputs (beeps summed)."""
    core = EchoCore(call_tool="lookup,book")
    core.handle(p.session_update(p.SessionConfig(model="m", tools=(LOOKUP, BOOK))))
    commit(core, pcm_ramp(200))
    events = drain(core, start_response(core))
    calls = [e["item"] for e in events if e["type"] == "response.output_item.done"
             and e["item"]["type"] == "function_call"]
    assert [c["name"] for c in calls] == ["lookup", "book"]
    assert [o["type"] for o in events[-1]["response"]["output"]] == ["message", "function_call",
                                                                     "function_call"]
    core.handle(p.function_output(calls[0]["call_id"], '{"beeps": 1}'))
    core.handle(p.function_output(calls[1]["call_id"], '{"beeps": 2}'))
    answer = np.frombuffer(audio_of(drain(core, start_response(core))), dtype="<i2")
    assert len(bursts(answer)) == 3


def test_the_bridges_own_end_call_output_is_not_spoken():
    """An end_call output (the hang-up called off) leaves the next response an echo, as before."""
    core = EchoCore(call_tool="end_call")
    core.handle(p.session_update(p.SessionConfig(model="m", tools=(END_CALL,))))
    commit(core, pcm_ramp(200))
    call = p.parse_server_event(json.dumps(drain(core, start_response(core))[-2]))
    core.handle(p.function_output(call.call_id, '{"ended": false}'))
    assert audio_of(drain(core, start_response(core))) == pcm_ramp(200)
