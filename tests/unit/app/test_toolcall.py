"""The tool call's request and reply, sans I/O: signed JSON out, the model's output back."""

from __future__ import annotations

import json
import time

import pytest
from standardwebhooks import Webhook

from sipbridge.app import signing, toolcall

SECRET = signing.new_secret()


def request(**over):
    args = dict(uid="c_0123456789abcdef", sip_call_id="abc@1.2.3.4", name="order_status",
                arguments={"order": "42"}, function_call_id="call_7", metadata={"tier": "gold"},
                key=signing.secret_key(SECRET), msg_id="msg_1", timestamp=int(time.time()),
                caller="+4930123", called="100")
    args.update(over)
    return toolcall.build_request(**args)


def test_the_request_verifies_with_the_standard_webhooks_library_and_holds_the_call():
    """An independent Standard Webhooks verifier accepts the signature; the body names the call,
    the function, its parsed arguments, the model's call id and the call's metadata."""
    req = request()
    body = Webhook(SECRET).verify(req.body, req.headers)
    assert body == {"call_id": "c_0123456789abcdef", "sip_call_id": "abc@1.2.3.4",
                    "name": "order_status", "arguments": {"order": "42"},
                    "function_call_id": "call_7", "caller": "+4930123", "called": "100",
                    "metadata": {"tier": "gold"}}
    assert req.headers["webhook-id"] == "msg_1" and req.headers["content-type"] == "application/json"


def test_a_tampered_body_fails_verification():
    """The signature covers the body: changing one argument breaks it."""
    req = request()
    with pytest.raises(Exception):
        Webhook(SECRET).verify(req.body.replace(b'"42"', b'"43"'), req.headers)


def test_without_a_secret_the_request_goes_unsigned_with_empty_metadata():
    """No key: no webhook-signature header; absent metadata is sent as {}."""
    req = request(key=None, metadata=None)
    assert "webhook-signature" not in req.headers
    assert json.loads(req.body)["metadata"] == {}


@pytest.mark.parametrize("text, expected", [('{"order": "42"}', {"order": "42"}), ("", {}),
                                            ("  ", {})])
def test_arguments_parse_to_a_dict(text, expected):
    """JSON object arguments (or none at all) are the arguments sent to the app."""
    assert toolcall.parse_arguments(text) == expected


@pytest.mark.parametrize("text", ['{"order": ', "not json", "[1, 2]", '"42"', "[" * 100000])
def test_arguments_that_are_not_a_json_object_are_an_error_output(text):
    """Broken or non-object arguments give the model an error output naming bad_arguments."""
    out = toolcall.parse_arguments(text)
    assert isinstance(out, toolcall.Outcome) and not out.ok
    assert json.loads(out.output)["error"] == "bad_arguments"


@pytest.mark.parametrize("body, output", [(b'{"status": "shipped"}', '{"status":"shipped"}'),
                                          (b"[1, 2]", "[1,2]"), (b'"plain text"', '"plain text"'),
                                          (b"7", "7"), (b"null", "null"),
                                          ('{"name": "Zoë"}'.encode(), '{"name":"Zoë"}')])
def test_any_json_reply_is_the_output(body, output):
    """A 2xx JSON body of any JSON value goes to the model, compactly re-serialised."""
    out = toolcall.read_reply(200, body)
    assert out.ok and out.output == output and out.status == 200


@pytest.mark.parametrize("status, body, kind", [
    (200, b"<html>oops</html>", toolcall.BAD_REPLY),
    (200, b"", toolcall.BAD_REPLY),
    (200, b"\xff\xfe{}", toolcall.BAD_REPLY),
    (200, b'{"a": ' + b"[" * 100000, toolcall.BAD_REPLY),
    (200, b'"' + b"x" * toolcall.MAX_REPLY_BYTES + b'"', toolcall.BAD_REPLY),
    (500, b'{"fine": true}', toolcall.HTTP_ERROR),
    (404, b"", toolcall.HTTP_ERROR),
    (302, b"", toolcall.HTTP_ERROR),
])
def test_garbage_huge_and_failed_replies_are_error_outputs(status, body, kind):
    """Non-JSON, undecodable, too deep, over 64 KB or non-2xx replies become an error output the
    model can apologise with; the app's body is never passed on."""
    out = toolcall.read_reply(status, body)
    assert out.kind == kind and not out.ok
    parsed = json.loads(out.output)
    assert parsed["error"] == kind and "Apologise" in parsed["message"]
    assert "fine" not in out.output and "oops" not in out.output


def test_a_timeout_is_an_error_output_naming_the_wait():
    """timed_out says how long was waited, in the output and the detail."""
    out = toolcall.timed_out(5000)
    assert out.kind == "tool_timeout" and "5 s" in json.loads(out.output)["message"]
    assert out.detail == "no reply within 5000 ms"


def test_latency_is_whole_milliseconds_of_the_monotonic_readings():
    """latency_ms rounds the difference of two monotonic readings, never negative."""
    assert toolcall.latency_ms(10.0, 10.2504) == 250
    assert toolcall.latency_ms(10.0, 9.0) == 0
