"""Gemini Live's wire: the client message builders and the server messages' neutral events."""

from __future__ import annotations

import base64
import json

from sipbridge.realtime.events import (AudioDelta, AudioDone, FunctionCall, Malformed, ResponseCreated,
                                       ResponseDone, SpeechStarted, Transcript, Unknown)
from sipbridge.realtime.providers import gemini_wire as w
from sipbridge.realtime.sessionconfig import SessionConfig, Tool


def _audio(pcm: bytes, mime: str = w.OUTPUT_MIME) -> str:
    return json.dumps({"serverContent": {"modelTurn": {"parts": [
        {"inlineData": {"mimeType": mime, "data": base64.b64encode(pcm).decode()}}]}}})


def test_setup_with_local_turns_disables_activity_detection_and_asks_for_resumption():
    """The bridge's own turns: automaticActivityDetection disabled, tools as functionDeclarations, transcriptions, sessionResumption."""
    cfg = SessionConfig(model="m", instructions="Be brief.", voice="Puck",
                        tools=(Tool("lookup", "Find it", {"type": "object", "properties": {}}),))
    s = w.setup(cfg, "gemini-live-x")["setup"]
    assert s["model"] == "models/gemini-live-x"
    assert s["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert s["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"] == "Puck"
    assert s["tools"] == [{"functionDeclarations": [{"name": "lookup", "description": "Find it",
                                                      "parameters": {"type": "object", "properties": {}}}]}]
    assert s["realtimeInputConfig"]["automaticActivityDetection"] == {"disabled": True}
    assert s["inputAudioTranscription"] == {} and s["outputAudioTranscription"] == {}
    assert s["sessionResumption"] == {}
    assert w.setup(cfg, "models/x", handle="h1")["setup"]["sessionResumption"] == {"handle": "h1"}


def test_setup_with_server_turns_keeps_detection_with_the_bridge_padding_and_silence():
    """server_vad: detection on, with prefixPaddingMs and silenceDurationMs from the turn settings."""
    cfg = SessionConfig(model="m", turn_detection={"type": "server_vad", "threshold": 0.5,
                                                   "prefix_padding_ms": 300, "silence_duration_ms": 600})
    aad = w.setup(cfg, "x")["setup"]["realtimeInputConfig"]["automaticActivityDetection"]
    assert aad == {"disabled": False, "prefixPaddingMs": 300, "silenceDurationMs": 600}


def test_audio_and_activity_messages():
    """Caller audio is realtimeInput.audio with mimeType audio/pcm;rate=16000; activity markers are empty objects."""
    msg = w.audio(b"\x01\x00\x02\x00")
    assert msg == {"realtimeInput": {"audio": {"data": "AQACAA==", "mimeType": "audio/pcm;rate=16000"}}}
    assert w.activity_start() == {"realtimeInput": {"activityStart": {}}}
    assert w.activity_end() == {"realtimeInput": {"activityEnd": {}}}


def test_tool_response_wraps_non_object_output():
    """A JSON object output is the response as is; anything else becomes {"result": ...}."""
    assert w.tool_response("c1", "f", '{"ok": true}') == {
        "toolResponse": {"functionResponses": [{"id": "c1", "name": "f", "response": {"ok": True}}]}}
    assert w.tool_response("c1", "f", "plain")["toolResponse"]["functionResponses"][0]["response"] == {"result": "plain"}
    assert w.tool_response("c1", "f", "[1]")["toolResponse"]["functionResponses"][0]["response"] == {"result": [1]}


def test_a_model_turn_gets_one_made_up_response_id_and_completes():
    """The first audio opens gemini_resp_1 (ResponseCreated), deltas carry it, turnComplete ends it: AudioDone, Transcript, ResponseDone completed."""
    m = w.ServerMapper(server_turns=False)
    assert m.feed(json.dumps({"setupComplete": {}})).setup_complete
    m.feed(json.dumps({"serverContent": {"inputTranscription": {"text": "hello"}}}))
    ev = m.feed(_audio(b"\x01\x00" * 4)).events
    assert ev[0] == Transcript("caller", "gemini_user_1", "hello")
    assert ev[1] == ResponseCreated("gemini_resp_1")
    assert ev[2] == AudioDelta("gemini_resp_1", "gemini_item_1", 0, b"\x01\x00" * 4)
    assert m.feed(_audio(b"\x02\x00")).events == [AudioDelta("gemini_resp_1", "gemini_item_1", 0, b"\x02\x00")]
    m.feed(json.dumps({"serverContent": {"outputTranscription": {"text": "hi there"}}}))
    ev = m.feed(json.dumps({"serverContent": {"turnComplete": True}})).events
    assert ev == [AudioDone("gemini_resp_1", "gemini_item_1"), Transcript("agent", "gemini_item_1", "hi there"),
                  ResponseDone("gemini_resp_1", "completed", None)]
    assert m.feed(_audio(b"\x01\x00")).events[0] == ResponseCreated("gemini_resp_2")


def test_interrupted_cancels_and_with_server_turns_is_the_callers_speech_first():
    """interrupted: SpeechStarted (server turns only) then AudioDone and ResponseDone cancelled/turn_detected."""
    for server_turns in (True, False):
        m = w.ServerMapper(server_turns=server_turns)
        m.feed(_audio(b"\x01\x00"))
        ev = m.feed(json.dumps({"serverContent": {"interrupted": True}})).events
        tail = [AudioDone("gemini_resp_1", "gemini_item_1"), ResponseDone("gemini_resp_1", "cancelled", "turn_detected")]
        assert ev == ([SpeechStarted("gemini_item_1", 0)] + tail if server_turns else tail)
        assert m.response_id is None


def test_tool_call_becomes_function_calls_and_ends_the_response():
    """toolCall: a response with one FunctionCall per call (arguments as JSON text), then ResponseDone; names are kept for the answer."""
    m = w.ServerMapper(server_turns=False)
    ev = m.feed(json.dumps({"toolCall": {"functionCalls": [
        {"id": "a", "name": "end_call", "args": {"reason": "done"}}, {"id": "b", "name": "f"}]}})).events
    assert ev[0] == ResponseCreated("gemini_resp_1")
    assert ev[1] == FunctionCall("gemini_resp_1", "gemini_item_1_call1", "a", "end_call", '{"reason": "done"}')
    assert ev[2] == FunctionCall("gemini_resp_1", "gemini_item_1_call2", "b", "f", "{}")
    assert ev[3] == ResponseDone("gemini_resp_1", "completed", None)
    assert m.tool_names == {"a": "end_call", "b": "f"}


def test_go_away_and_resumption_handles():
    """goAway's timeLeft in ms; only a resumable update's newHandle is a handle."""
    m = w.ServerMapper(server_turns=False)
    assert m.feed(json.dumps({"goAway": {"timeLeft": "2.5s"}})).go_away_ms == 2500
    assert m.feed(json.dumps({"sessionResumptionUpdate": {"newHandle": "h9", "resumable": True}})).handle == "h9"
    assert m.feed(json.dumps({"sessionResumptionUpdate": {"resumable": False}})).handle is None
    assert w.duration_ms("10s") == 10000 and w.duration_ms("soon") is None


def test_bad_input_is_refused_and_counted_never_raised():
    """Not JSON, wrong audio rate, bad base64: Malformed events, counted; unknown keys pass as Unknown."""
    m = w.ServerMapper(server_turns=False)
    assert isinstance(m.feed("{nope").events[0], Malformed)
    assert isinstance(m.feed(_audio(b"\x01\x00", "audio/pcm;rate=16000")).events[0], Malformed)
    bad = json.dumps({"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": w.OUTPUT_MIME,
                                                                                "data": "!!"}}]}}})
    assert isinstance(m.feed(bad).events[0], Malformed)
    assert m.malformed == 3 and m.response_id is None
    assert m.feed(json.dumps({"usageMetadata": {"totalTokenCount": 3}})).events == [
        Unknown("usageMetadata", {"totalTokenCount": 3})]
