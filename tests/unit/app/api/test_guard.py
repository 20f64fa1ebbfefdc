"""api.listen parsing, the token rule, bearer checks and the per-client rate gate."""

import pytest

from sipbridge.app.guard import RateGate, api_token, is_loopback, parse_listen, token_ok
from sipbridge.errors import ConfigError


def test_listen_addresses_parse_into_host_and_port():
    """host:port and [v6]:port split into their host and integer port."""
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)


@pytest.mark.parametrize("text", ["8080", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", ":80",
                                  "127.0.0.1:http"])
def test_a_malformed_listen_address_is_a_config_error_naming_api_listen(text):
    """Anything but host:port with a port 1-65535 is refused naming api.listen."""
    with pytest.raises(ConfigError) as exc:
        parse_listen(text)
    assert exc.value.key == "api.listen"


def test_loopback_means_127_slash_8_ipv6_loopback_and_localhost():
    """127.x, ::1 and localhost are loopback; wildcards, LAN addresses and other names are not."""
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.5", "api.example.com"]))


def test_off_loopback_the_token_is_required_naming_api_token_env():
    """A non-loopback listen address without the token variable set is a config error on api.token_env."""
    with pytest.raises(ConfigError) as exc:
        api_token("0.0.0.0:8080", "SIPBRIDGE_API_TOKEN", {})
    assert exc.value.key == "api.token_env" and "SIPBRIDGE_API_TOKEN" in exc.value.reason
    assert api_token("0.0.0.0:8080", "TOK", {"TOK": "s3cret"}) == "s3cret"


def test_on_loopback_the_token_is_optional_and_no_listen_needs_none():
    """On loopback an unset token means no token; api.listen null needs nothing."""
    assert api_token("127.0.0.1:8080", "TOK", {}) is None
    assert api_token("127.0.0.1:8080", "TOK", {"TOK": "t"}) == "t"
    assert api_token(None, "TOK", {}) is None


def test_config_build_applies_the_token_rule():
    """config.build refuses a public api.listen with no token, naming api.token_env."""
    from sipbridge import config
    with pytest.raises(ConfigError) as exc:
        config.build({"api": {"listen": "0.0.0.0:8080"}}, environ={})
    assert exc.value.key == "api.token_env"
    cfg = config.build({"api": {"listen": "0.0.0.0:8080"}}, environ={"SIPBRIDGE_API_TOKEN": "x"})
    assert cfg.api.listen == "0.0.0.0:8080"


def test_bearer_tokens_must_match_exactly():
    """Only 'Bearer <token>' (scheme case-insensitive) passes; no token set lets everything pass."""
    assert token_ok("Bearer abc", "abc") and token_ok("bearer abc", "abc")
    assert not token_ok(None, "abc") and not token_ok("", "abc")
    assert not token_ok("Bearer abd", "abc") and not token_ok("Basic abc", "abc")
    assert not token_ok("Bearer ", "abc") and not token_ok("abc", "abc")
    assert token_ok(None, None) and token_ok("Bearer whatever", None)


def test_the_rate_gate_allows_a_second_of_burst_then_refuses_with_retry_after():
    """rate 5/s: 5 requests at once pass, the 6th is refused for about 0.2 s; other clients are unaffected."""
    gate = RateGate(5)
    assert all(gate.take("10.0.0.1", 100.0).allowed for _ in range(5))
    refused = gate.take("10.0.0.1", 100.0)
    assert not refused.allowed and 0.15 < refused.retry_after_s <= 0.2 and refused.retry_after == 1
    assert gate.take("10.0.0.2", 100.0).allowed
    assert gate.take("10.0.0.1", 100.2).allowed
    assert gate.refused == 1
