"""realtime.tools / realtime.tools_url: the app's function declarations, validated once."""

from __future__ import annotations

import pytest

from sipbridge import config
from sipbridge.app.signing import new_secret
from sipbridge.app.tooldecl import check_url, parse_tools
from sipbridge.errors import ConfigError
from sipbridge.realtime.protocol import Tool

LOOKUP = {"name": "order_status", "description": "Look up an order.",
          "parameters": {"type": "object", "properties": {"order": {"type": "string"}},
                         "required": ["order"]}}


SECRET = {"SIPBRIDGE_WEBHOOK_SECRET": new_secret()}


def build(realtime: dict, env: dict | None = None, **sections):
    return config.build({"realtime": realtime, **sections}, environ=SECRET if env is None else env)


def test_declarations_become_tools_offered_with_their_schema():
    """A list of {name, description, parameters} parses into Tools with the schema as given."""
    (tool,) = parse_tools([LOOKUP])
    assert tool == Tool("order_status", "Look up an order.", LOOKUP["parameters"])
    assert tool.wire() == {"type": "function", **LOOKUP}


def test_a_declaration_without_parameters_takes_no_arguments_and_type_function_is_accepted():
    """parameters may be left out (an empty object schema) and type: function is tolerated."""
    (tool,) = parse_tools([{"type": "function", "name": "ping"}])
    assert tool.parameters == {"type": "object", "properties": {}} and tool.description == ""


@pytest.mark.parametrize("entries, key, words", [
    ([LOOKUP, {"name": "bad name"}], "realtime.tools[1].name", "letters"),
    ([{"name": "x" * 65}], "realtime.tools[0].name", "1-64"),
    ([{"name": ""}], "realtime.tools[0].name", "1-64"),
    ([{"name": 5}], "realtime.tools[0].name", "1-64"),
    ([{"name": "end_call"}], "realtime.tools[0].name", "bridge's own"),
    ([{"name": "transfer_call"}], "realtime.tools[0].name", "bridge's own"),
    ([LOOKUP, LOOKUP], "realtime.tools[1].name", "twice"),
    ([{"name": "a", "parameters": {"type": "string"}}], "realtime.tools[0].parameters.type", "object"),
    ([{"name": "a", "parameters": ["type", "object"]}], "realtime.tools[0].parameters", "mapping"),
    ([{"name": "a", "parameters": {"type": "object", "properties": []}}],
     "realtime.tools[0].parameters.properties", "mapping"),
    ([{"name": "a", "parameters": {"type": "object", "default": float("nan")}}],
     "realtime.tools[0].parameters", "JSON"),
    ([{"name": "a", "description": 7}], "realtime.tools[0].description", "text"),
    ([{"name": "a", "colour": "red"}], "realtime.tools[0].colour", "unknown key"),
    ([{"name": "a", "type": "code_interpreter"}], "realtime.tools[0].type", "function"),
    (["order_status"], "realtime.tools[0]", "mapping"),
    ({"name": "a"}, "realtime.tools", "list"),
])
def test_a_bad_declaration_is_refused_naming_the_entry_and_key(entries, key, words):
    """Every malformed declaration raises ConfigError with the dotted key of the bad entry."""
    with pytest.raises(ConfigError) as err:
        build({"tools": entries, "tools_url": "http://127.0.0.1:9/tools"})
    assert err.value.key == key and words in err.value.reason, err.value


def test_tools_and_tools_url_load_from_the_yaml_section():
    """The config carries the parsed tools and the URL; the defaults are none and null."""
    cfg = build({"tools": [LOOKUP], "tools_url": "https://app.example/tools"})
    assert [t.name for t in cfg.realtime.tools] == ["order_status"]
    assert cfg.realtime.tools_url == "https://app.example/tools"
    default = config.build({}, environ={}).realtime
    assert default.tools == () and default.tools_url is None


def test_tools_without_a_url_are_refused():
    """Declaring functions with nowhere to call them is a config error on realtime.tools_url."""
    with pytest.raises(ConfigError) as err:
        build({"tools": [LOOKUP]})
    assert err.value.key == "realtime.tools_url" and "order_status" in err.value.reason


@pytest.mark.parametrize("url", ["ftp://app/tools", "app.example/tools", "http://", "ws://h/x",
                                 "http://h:99999/x", "http://h/a b", 42])
def test_a_tools_url_that_is_not_http_is_refused(url):
    """tools_url must be an http:// or https:// URL with a host."""
    with pytest.raises(ConfigError) as err:
        build({"tools_url": url})
    assert err.value.key == "realtime.tools_url"


def test_check_url_accepts_http_and_https():
    """Plain and TLS URLs with ports and paths pass unchanged."""
    for url in ("http://127.0.0.1:8081/tools", "https://app.example/v1/tools?x=1"):
        assert check_url(url) == url


def test_tools_can_come_from_the_environment_in_yaml_syntax():
    """SIPBRIDGE_REALTIME__TOOLS holds the list in YAML syntax, like any other key."""
    cfg = build({}, env={"SIPBRIDGE_REALTIME__TOOLS": "[{name: ping, description: Ping.}]",
                         "SIPBRIDGE_REALTIME__TOOLS_URL": "http://127.0.0.1:8081/t", **SECRET})
    assert [t.name for t in cfg.realtime.tools] == ["ping"]


def test_a_route_style_coercion_reuses_the_same_validator():
    """coerce_key (used for routes and webhook replies) checks tools exactly as the YAML does."""
    assert config.coerce_key("realtime", "tools", [LOOKUP])[0].name == "order_status"
    with pytest.raises(ConfigError) as err:
        config.coerce_key("realtime", "tools", [{"name": "end_call"}])
    assert err.value.key == "realtime.tools[0].name"


@pytest.mark.parametrize("env", [{}, {"SIPBRIDGE_WEBHOOK_SECRET": "not base64!"},
                                 {"SIPBRIDGE_WEBHOOK_SECRET": "whsec_c2hvcnQ="}])
def test_a_tools_url_needs_the_signing_secret(env):
    """Tool requests are always signed: a tools_url with the secret's variable unset, not base64
    or too short is a config error naming app.webhook_secret_env."""
    with pytest.raises(ConfigError) as err:
        build({"tools": [LOOKUP], "tools_url": "http://127.0.0.1:9/t"}, env=env)
    assert err.value.key == "app.webhook_secret_env" and "tools_url" in err.value.reason


def test_a_routes_tools_url_needs_the_signing_secret_too():
    """A route that sets its own tools_url is held to the same rule."""
    route = {"name": "shop", "match": {"number": "100"}, "tools": [LOOKUP],
             "tools_url": "http://127.0.0.1:9/t"}
    with pytest.raises(ConfigError) as err:
        build({}, env={}, routes=[route])
    assert err.value.key == "app.webhook_secret_env"
    assert build({}, routes=[route]).routes[0].agent.realtime["tools_url"] == "http://127.0.0.1:9/t"
