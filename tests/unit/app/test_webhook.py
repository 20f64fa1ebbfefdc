"""The incoming-call webhook's pure parts: config checks, carrier headers, payload, replies, failures."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from sipbridge import config
from sipbridge.app import signing
from sipbridge.app.routes import for_call
from sipbridge.app.webhook import (MAX_HEADERS, MAX_REPLY_BYTES, WebhookFailure, carrier_headers,
                                   on_failure, parse_reply, payload)
from sipbridge.errors import ConfigError

SECRET = signing.new_secret()
INVITE = (
    "INVITE sip:+15552223333@10.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1\r\n"
    "From: <sip:+15550001111@carrier>;tag=1\r\n"
    "To: <sip:+15552223333@10.0.0.1>\r\n"
    "P-Asserted-Identity: <sip:+15550001111@carrier>\r\n"
    "Diversion: <sip:+15559990000@carrier>;reason=no-answer\r\n"
    "diversion: <sip:+15559990001@carrier>;reason=busy\r\n"
    "X-Campaign: spring\r\n"
    "x-account-id:  42 \r\n"
    "X-Folded: first\r\n second\r\n"
    "Authorization: Digest secret\r\n"
    "Content-Length: 0\r\n\r\n"
    "X-Body: not a header\r\n"
)


def reply(obj) -> bytes:
    return json.dumps(obj).encode()


def test_webhook_url_needs_its_secret():
    """webhook_url without the secret variable (or with a non-base64 one) is a config error naming it."""
    raw = {"app": {"webhook_url": "http://127.0.0.1:9/hook"}}
    for env in ({}, {"SIPBRIDGE_WEBHOOK_SECRET": "not base64!"}):
        with pytest.raises(ConfigError) as exc:
            config.build(raw, environ=env)
        assert exc.value.key == "app.webhook_secret_env"
    config.build(raw, environ={"SIPBRIDGE_WEBHOOK_SECRET": SECRET})


def test_webhook_url_must_be_http():
    """A webhook_url that is not http(s) is refused, naming the key."""
    with pytest.raises(ConfigError) as exc:
        config.build({"app": {"webhook_url": "ftp://x"}}, environ={"SIPBRIDGE_WEBHOOK_SECRET": SECRET})
    assert exc.value.key == "app.webhook_url"


def test_carrier_headers_are_picked_lowercased_and_kept_in_order():
    """P-Asserted-Identity, every Diversion and X- header are kept (folded lines unfolded); others are not."""
    assert carrier_headers(INVITE) == {
        "p-asserted-identity": ["<sip:+15550001111@carrier>"],
        "diversion": ["<sip:+15559990000@carrier>;reason=no-answer",
                      "<sip:+15559990001@carrier>;reason=busy"],
        "x-campaign": ["spring"], "x-account-id": ["42"], "x-folded": ["first second"]}


def test_carrier_headers_are_bounded():
    """At most MAX_HEADERS headers and 1024 characters per value are forwarded."""
    msg = "INVITE sip:a@b SIP/2.0\r\n" + "".join(f"X-H{i}: {'v' * 5000}\r\n" for i in range(100))
    out = carrier_headers(msg)
    assert len(out) == MAX_HEADERS and all(len(v[0]) == 1024 for v in out.values())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_carrier_headers_never_raise_on_junk(text):
    """Any text at all gives a dict of lists of strings, never an exception."""
    out = carrier_headers(text)
    assert all(isinstance(k, str) and all(isinstance(v, str) for v in vs) for k, vs in out.items())


def test_payload_carries_the_call():
    """The payload names the call (uid and SIP Call-ID), its parties, trunk, source, route and headers."""
    body = payload(call_id="c_1", sip_call_id="abc@h", from_uri="<sip:a@h>", to_uri="<sip:b@h>",
                   caller="+1", called="+2", trunk=None, source="127.0.0.1:5060", route="sales",
                   headers={"x-a": ["1"]}, timestamp=1700000000.7)
    assert body == {"type": "call.incoming", "call_id": "c_1", "sip_call_id": "abc@h",
                    "from": "<sip:a@h>", "to": "<sip:b@h>", "caller": "+1", "called": "+2",
                    "trunk": None, "source": "127.0.0.1:5060", "route": "sales",
                    "timestamp": 1700000000, "headers": {"x-a": ["1"]}}
    json.dumps(body)


def test_accept_with_overrides_becomes_the_calls_config():
    """An accept's keys are validated like a route's and laid over the route's agent."""
    cfg = config.build({"routes": [{"name": "r", "voice": "a", "metadata": {"k": 1, "j": 2}}]},
                       environ={})
    decision = parse_reply(200, reply({"action": "accept", "instructions": "VIP caller",
                                       "turn_detection": "patient", "metadata": {"k": 3}}))
    assert decision.action == "accept" and decision.failure is None
    call_cfg, meta = for_call(cfg, cfg.routes[0], decision.agent)
    assert (call_cfg.realtime.instructions, call_cfg.realtime.voice) == ("VIP caller", "a")
    assert call_cfg.turn_detection.silence_threshold_ms == 800
    assert meta == {"k": 3, "j": 2}


def test_plain_accept_changes_nothing():
    """{"action": "accept"} runs the call on the route's (or default) agent."""
    cfg = config.build({}, environ={})
    decision = parse_reply(201, b'{"action":"accept"}')
    assert for_call(cfg, None, decision.agent) == (cfg, {})


def test_reject_with_status_and_reason():
    """{"action": "reject"} carries the SIP status and reason phrase."""
    d = parse_reply(200, reply({"action": "reject", "status": 486, "reason": "Busy Here"}))
    assert (d.action, d.status, d.reason) == ("reject", 486, "Busy Here")
    assert parse_reply(200, reply({"action": "reject", "status": 603})).reason is None


@pytest.mark.parametrize("status, body, reason", [
    (500, b'{"action":"accept"}', "status"),
    (302, b"", "status"),
    (404, b"", "status"),
    (200, b"", "malformed"),
    (200, b"<html>oops</html>", "malformed"),
    (200, b"\xff\xfe", "malformed"),
    (200, b"[1, 2]", "malformed"),
    (200, b'"accept"', "malformed"),
    (200, b"{}", "malformed"),
    (200, b'{"action": "maybe"}', "malformed"),
    (200, b'{"action": "reject"}', "malformed"),
    (200, b'{"action": "reject", "status": 200}', "malformed"),
    (200, b'{"action": "reject", "status": 486, "reason": "a\\r\\nX-Evil: 1"}', "malformed"),
    (200, b'{"action": "reject", "status": 486, "voice": "x"}', "malformed"),
    (200, b'{"action": "accept", "volume": 11}', "malformed"),
    (200, b'{"action": "accept", "voice": 7}', "malformed"),
    (200, b'{"action": "accept", "instructions_file": "/etc/passwd"}', "malformed"),
    (200, b'{"action": "accept", "turn_detection": {"threshold": 9}}', "malformed"),
    (200, b'{"action": "accept", "tools": [{"name": "bad name"}]}', "malformed"),
    (200, b'{"action": "accept", "metadata": "x"}', "malformed"),
    (200, b'{"action": "accept", "instructions": "' + b"x" * MAX_REPLY_BYTES + b'"}', "malformed"),
])
def test_unusable_replies_are_failures_with_a_reason(status, body, reason):
    """A non-2xx, non-JSON, wrong-shape or invalid reply is a WebhookFailure with its reason."""
    with pytest.raises(WebhookFailure) as exc:
        parse_reply(status, body)
    assert exc.value.reason == reason and exc.value.detail


def test_failure_policy():
    """default_agent accepts on the defaults; reject refuses with 503; both keep the failure reason."""
    d = on_failure("default_agent", "timeout")
    assert (d.action, d.agent, d.failure) == ("accept", None, "timeout")
    d = on_failure("reject", "malformed")
    assert (d.action, d.status, d.failure) == ("reject", 503, "malformed")


def test_overrides_that_clash_with_the_route_are_refused_naming_the_reply_key():
    """A reply valid alone but not over its route (same DTMF digit twice) is a ConfigError on reply.*."""
    cfg = config.build({"routes": [{"name": "r", "turn_detection": {"commit_digit": "5"}}]}, environ={})
    decision = parse_reply(200, reply({"action": "accept", "turn_detection": {"clear_digit": "5"}}))
    with pytest.raises(ConfigError) as exc:
        for_call(cfg, cfg.routes[0], decision.agent)
    assert exc.value.key == "reply.turn_detection.clear_digit"
