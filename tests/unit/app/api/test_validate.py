"""Call control request bodies: parsed or refused naming the field."""

import pytest

from sipbridge.app import validate
from sipbridge.app.validate import BadRequest


def field_of(fn, *args) -> str:
    with pytest.raises(BadRequest) as exc:
        fn(*args)
    return exc.value.field


@pytest.mark.parametrize("raw", [b"{", b"nul", b"\xff\xfe", b'{"a": 1,}'])
def test_malformed_json_is_refused_as_the_body(raw):
    """A body that is not JSON is a 400 on 'body'."""
    assert field_of(validate.parse_json, raw) == "body"


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"3", b"null"])
def test_json_that_is_not_an_object_is_refused_as_the_body(raw):
    """Lists, strings, numbers and null are not request objects."""
    assert field_of(validate.parse_json, raw) == "body"


def test_an_empty_body_is_an_empty_object():
    """No body at all (or whitespace) reads as {}."""
    assert validate.parse_json(b"") == {} and validate.parse_json(b"  \n") == {}


def test_actions_without_fields_refuse_any_field():
    """hangup/interrupt/commit/clear take {} and name an unexpected key."""
    validate.empty({})
    assert field_of(validate.empty, {"now": True}) == "now"


def test_transfer_needs_a_sip_uri_in_to():
    """transfer takes a sip:/sips: URI; missing, wrong type, other schemes and spaces are refused on 'to'."""
    assert validate.transfer({"to": "sip:desk@pbx.example.com"}) == "sip:desk@pbx.example.com"
    assert validate.transfer({"to": "sips:desk@pbx.example.com"}).startswith("sips:")
    for bad in ({}, {"to": 5}, {"to": ""}, {"to": "tel:+123"}, {"to": "sip:a b@c"}, {"to": "sip:"},
                {"to": "sip:<x>"}, {"to": "sip:x\r\nVia: y"}):
        assert field_of(validate.transfer, bad) == "to", bad
    assert field_of(validate.transfer, {"to": "sip:a@b", "via": 1}) == "via"


def test_say_needs_non_empty_instructions():
    """say takes a non-empty string of instructions, at most 16000 characters."""
    assert validate.say({"instructions": "Tell them it shipped."}) == "Tell them it shipped."
    for bad in ({}, {"instructions": None}, {"instructions": 3}, {"instructions": "  "},
                {"instructions": "x" * 16001}):
        assert field_of(validate.say, bad) == "instructions"


def test_dtmf_takes_up_to_32_dtmf_digits_upper_cased():
    """dtmf accepts 0-9 * # A-D (a-d upper-cased) and names 'digits' for anything else."""
    assert validate.dtmf({"digits": "12*#ad"}) == "12*#AD"
    for bad in ({}, {"digits": 12}, {"digits": ""}, {"digits": "1x"}, {"digits": "1" * 33}):
        assert field_of(validate.dtmf, bad) == "digits"


def test_session_takes_any_of_its_four_parts():
    """session parses instructions, voice, tools and turn_detection; None leaves a part alone."""
    change = validate.session({"instructions": "Be brief.", "turn_detection": {"profile": "patient"}})
    assert change.instructions == "Be brief." and change.voice is None and change.tools is None
    assert change.turn_detection == {"profile": "patient"}
    change = validate.session({"tools": [{"name": "lookup_order", "description": "Find an order",
                                          "parameters": {"type": "object"}}]})
    assert [t.name for t in change.tools] == ["lookup_order"]


def test_session_refusals_name_the_field():
    """Empty changes, unknown keys, wrong types and bad tools are refused naming where."""
    assert field_of(validate.session, {}) == "body"
    assert field_of(validate.session, {"instruction": "x"}) == "instruction"
    assert field_of(validate.session, {"voice": 1}) == "voice"
    assert field_of(validate.session, {"turn_detection": "patient"}) == "turn_detection"
    assert field_of(validate.session, {"tools": {}}) == "tools"
    assert field_of(validate.session, {"tools": ["x"]}) == "tools[0]"
    assert field_of(validate.session, {"tools": [{"name": "ok"}, {"name": "no spaces"}]}) == "tools[1].name"
    assert field_of(validate.session, {"tools": [{"name": "a"}, {"name": "a"}]}) == "tools[1].name"
    assert field_of(validate.session, {"tools": [{"name": "end_call"}]}) == "tools[0].name"
    assert field_of(validate.session, {"tools": [{"name": "a", "parameters": []}]}) == "tools[0].parameters"
    assert field_of(validate.session, {"tools": [{"name": "a", "url": "x"}]}) == "tools[0].url"
