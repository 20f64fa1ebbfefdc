"""An outbound call request: the target, caller id, ring timeout, headers and agent, or a named refusal."""

import pytest

from sipbridge.app.outbound import (ALLOWED_HEADERS, RING_TIMEOUT_DEFAULT_S, OutboundError,
                                    parse_request)
from sipbridge.app.validate import BadRequest
from sipbridge.config import build


@pytest.fixture(scope="module")
def config():
    trunks = [{"name": "carrier", "registrar": "sip:sip.carrier.example:5080", "username": "acme",
               "password_env": "PW"}]
    return build({"trunks": trunks, "realtime": {"voice": "alloy", "instructions": "Be brief."}},
                 {"PW": "secret"})


def refused(body, config) -> OutboundError:
    with pytest.raises(OutboundError) as info:
        parse_request(body, config)
    return info.value


def test_a_number_is_dialled_at_the_trunks_registrar_host(config):
    """to=number with trunk gives sip:<number>@<registrar host:port> and the default ring timeout."""
    r = parse_request({"to": "+4930123456", "trunk": "carrier"}, config)
    assert r.uri == "sip:+4930123456@sip.carrier.example:5080" and r.trunk == "carrier"
    assert r.ring_timeout_s == RING_TIMEOUT_DEFAULT_S == 30 and r.called == "+4930123456"
    assert r.config is config and r.from_uri("h") is None


def test_a_sip_uri_is_dialled_as_given_with_or_without_a_trunk(config):
    """A sip: URI is the Request-URI itself; a trunk may be named for its credentials."""
    r = parse_request({"to": "sip:alice@10.0.0.5:5062;transport=udp"}, config)
    assert r.uri == "sip:alice@10.0.0.5:5062;transport=udp" and r.trunk is None
    assert r.called == "alice"
    assert parse_request({"to": "sip:bob@h", "trunk": "carrier"}, config).trunk == "carrier"


def test_caller_id_becomes_a_from_header_with_a_quoted_name(config):
    """from and from_name give From: "Name" <sip:user@host>; without from_name the bare URI."""
    r = parse_request({"to": "sip:a@h", "from": "+4930999", "from_name": "Acme Support"}, config)
    assert r.from_uri("sip.carrier.example:5080") == '"Acme Support" <sip:+4930999@sip.carrier.example:5080>'
    assert parse_request({"to": "sip:a@h", "from": "100"}, config).from_uri("h") == "<sip:100@h>"


@pytest.mark.parametrize("body, field", [
    ({}, "to"),
    ({"to": "100"}, "trunk"),
    ({"to": "100", "trunk": "other"}, "trunk"),
    ({"to": "sip:a b@h"}, "to"),
    ({"to": "sip:a@h>x"}, "to"),
    ({"to": "sips:a@h"}, "to"),                       # no TLS transport configured
    ({"to": "tel:+49"}, "to"),
    ({"to": 4930}, "to"),
    ({"to": "sip:a@h", "from": "a@b"}, "from"),
    ({"to": "sip:a@h", "from": "1", "from_name": 'x" <sip:evil>'}, "from_name"),
    ({"to": "sip:a@h", "from_name": "Acme"}, "from_name"),
    ({"to": "sip:a@h", "ring_timeout_s": 0.5}, "ring_timeout_s"),
    ({"to": "sip:a@h", "ring_timeout_s": 301}, "ring_timeout_s"),
    ({"to": "sip:a@h", "ring_timeout_s": True}, "ring_timeout_s"),
    ({"to": "sip:a@h", "headers": ["X-A: 1"]}, "headers"),
    ({"to": "sip:a@h", "headers": {"Via": "x"}}, "headers.Via"),
    ({"to": "sip:a@h", "headers": {"X-A": "1\r\nVia: x"}}, "headers.X-A"),
    ({"to": "sip:a@h", "headers": {"X-A": 1}}, "headers.X-A"),
    ({"to": "sip:a@h", "headers": {"X A": "1"}}, "headers.X A"),
    ({"to": "sip:a@h", "headers": {"X-A": "x" * 513}}, "headers.X-A"),
    ({"to": "sip:a@h", "headers": {f"X-{i}": "1" for i in range(17)}}, "headers"),
    ({"to": "sip:a@h", "voice": 7}, "voice"),
    ({"to": "sip:a@h", "audio_format": "mp3"}, "audio_format"),
    ({"to": "sip:a@h", "turn_detection": {"silence_threshold_ms": -1}},
     "turn_detection.silence_threshold_ms"),
    ({"to": "sip:a@h", "turn_detection": "sleepy"}, "turn_detection.profile"),
    ({"to": "sip:a@h", "instructions_file": "/etc/passwd"}, "instructions_file"),
    ({"to": "sip:a@h", "metadata": [1]}, "metadata"),
    ({"to": "sip:a@h", "colour": "red"}, "colour"),
])
def test_each_bad_field_is_refused_by_name(config, body, field):
    """A bad value is refused with the field it is in (a 400 through the API's BadRequest)."""
    err = refused(body, config)
    assert err.field == field, err
    assert isinstance(err, BadRequest) and err.reason


def test_a_body_that_is_not_an_object_is_refused():
    """A JSON array or string body is refused as body."""
    cfg = build({}, {})
    assert refused(["to"], cfg).field == "body"


def test_x_headers_and_the_allow_list_pass_with_canonical_names(config):
    """X- headers pass as written; allow-listed ones pass in any case, named canonically."""
    r = parse_request({"to": "sip:a@h", "headers": {"X-Campaign": " spring ",
                                                    "p-asserted-identity": "<sip:+4930@h>",
                                                    "user-to-user": "00ab"}}, config)
    assert r.headers == (("X-Campaign", "spring"), ("P-Asserted-Identity", "<sip:+4930@h>"),
                         ("User-to-User", "00ab"))
    assert "Diversion" in ALLOWED_HEADERS and "Via" not in ALLOWED_HEADERS


def test_agent_overrides_give_the_call_its_own_config(config):
    """instructions, voice, greeting, turn profile and metadata lay over the defaults, not into them."""
    r = parse_request({"to": "sip:a@h", "instructions": "Confirm the booking.", "voice": "verse",
                       "greeting": "Hello {called}", "turn_detection": "patient",
                       "metadata": {"order": 42}}, config)
    rc = r.config.realtime
    assert (rc.instructions, rc.voice, rc.greeting) == ("Confirm the booking.", "verse", "Hello {called}")
    assert r.config.turn_detection.silence_threshold_ms > config.turn_detection.silence_threshold_ms
    assert dict(r.agent.metadata) == {"order": 42}
    assert config.realtime.voice == "alloy" and config.realtime.instructions == "Be brief."
