"""routes: parsing every entry with errors naming the key, matching in order, per-call configs."""

from __future__ import annotations

import pytest

from sipbridge import config
from sipbridge.app.routes import for_call, match
from sipbridge.errors import ConfigError

TRUNK = {"name": "carrier", "registrar": "sip:127.0.0.1:5999", "username": "u", "password_env": "PW"}
ENV = {"PW": "secret"}


def build(routes, **extra):
    return config.build({"routes": routes, **extra}, environ=ENV)


def error(routes, **extra) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        build(routes, **extra)
    return exc.value


def test_no_routes_is_an_empty_tuple():
    """Without routes: (or with an empty list) the config has no routes and every call gets the defaults."""
    assert config.build({}, environ={}).routes == ()
    assert build([]).routes == ()
    assert match((), "+1555", None) is None


def test_matching_is_in_order_exact_prefix_and_glob():
    """The first route whose number matches wins: exact, prefix* and glob patterns."""
    cfg = build([{"name": "exact", "match": {"number": "+15550001"}, "voice": "a"},
                 {"name": "prefix", "match": {"number": "+1555*"}, "voice": "b"},
                 {"name": "glob", "match": {"number": "+49[0-9]?"}, "voice": "c"},
                 {"name": "any", "voice": "d"}])
    assert match(cfg.routes, "+15550001", None).name == "exact"
    assert match(cfg.routes, "+155500011", None).name == "prefix"
    assert match(cfg.routes, "+4912", None).name == "glob"
    assert match(cfg.routes, "+49x1", None).name == "any"
    assert match(cfg.routes, "bot", None).name == "any"


def test_an_exact_number_is_not_a_prefix():
    """A number without glob characters must be equal, not merely start the called number."""
    cfg = build([{"name": "exact", "match": {"number": "+1555"}, "voice": "a"}])
    assert match(cfg.routes, "+15551", None) is None
    assert match(cfg.routes, "+1555", None).name == "exact"


def test_trunk_restricts_a_route_to_calls_from_that_trunk():
    """match.trunk matches only calls that arrived on that trunk's registration."""
    cfg = build([{"name": "t", "match": {"number": "1*", "trunk": "carrier"}, "voice": "a"}],
                trunks=[TRUNK])
    assert match(cfg.routes, "123", "carrier").name == "t"
    assert match(cfg.routes, "123", None) is None
    assert match(cfg.routes, "123", "other") is None


def test_a_reject_route_carries_its_status_and_reason():
    """reject: <status> with a reason refuses the call; no agent is set."""
    cfg = build([{"name": "no", "match": {"number": "+1900*"}, "reject": 403, "reason": "Not Here"}])
    route = match(cfg.routes, "+1900555", None)
    assert (route.reject, route.reason) == (403, "Not Here") and route.agent.empty


def test_for_call_lays_the_route_over_the_defaults():
    """A route's instructions, voice, turn profile and metadata become the call's own Config."""
    cfg = build([{"name": "sales", "match": {"number": "1"}, "instructions": "Sell.", "voice": "marin",
                  "turn_detection": "patient", "audio_format": "g711_ulaw", "greeting": "Hi",
                  "transfer_to": "sip:desk@127.0.0.1", "end_call_tool": True,
                  "metadata": {"team": "sales", "n": [1, 2]}}],
                realtime={"instructions": "Default.", "model": "m"},
                turn_detection={"type": "server_vad", "min_speech_ms": 250})
    call_cfg, meta = for_call(cfg, cfg.routes[0])
    rc = call_cfg.realtime
    assert (rc.instructions, rc.voice, rc.audio_format, rc.greeting, rc.transfer_to, rc.end_call_tool,
            rc.model) == ("Sell.", "marin", "g711_ulaw", "Hi", "sip:desk@127.0.0.1", True, "m")
    td = call_cfg.turn_detection
    # the profile's values on top of the top-level section's, which keeps its other keys
    assert (td.type, td.min_speech_ms, td.threshold, td.silence_threshold_ms) == ("server_vad", 250, 0.4, 800)
    assert meta == {"team": "sales", "n": [1, 2]}
    assert cfg.realtime.instructions == "Default." and cfg.turn_detection.threshold == 0.5


def test_turn_detection_mapping_with_profile_and_keys():
    """A turn_detection mapping applies its profile, then its explicit keys."""
    cfg = build([{"name": "r", "turn_detection": {"profile": "fast", "silence_threshold_ms": 900,
                                                   "commit_digit": 5}}])
    td = for_call(cfg, cfg.routes[0])[0].turn_detection
    assert (td.threshold, td.silence_threshold_ms, td.commit_digit) == (0.6, 900, "5")


def test_for_call_without_route_is_the_config_itself():
    """A call no route matches runs on the top-level config and has no metadata."""
    cfg = build([])
    assert for_call(cfg, None) == (cfg, {})


def test_instructions_file_is_read_at_load(tmp_path):
    """instructions_file is read when the config loads and becomes the route's instructions."""
    prompt = tmp_path / "p.txt"
    prompt.write_text("You are the support line.\n")
    cfg = build([{"name": "r", "instructions_file": str(prompt)}])
    prompt.unlink()
    assert for_call(cfg, cfg.routes[0])[0].realtime.instructions == "You are the support line.\n"


@pytest.mark.parametrize("routes, key", [
    ({"name": "x"}, "routes"),
    ([{"name": "a"}, "text"], "routes[1]"),
    ([{"match": {"number": "1"}}], "routes[0].name"),
    ([{"name": "a b"}], "routes[0].name"),
    ([{"name": "a"}, {"name": "a"}], "routes[1].name"),
    ([{"name": "a", "colour": "red"}], "routes[0].colour"),
    ([{"name": "a", "match": "123"}], "routes[0].match"),
    ([{"name": "a", "match": {"number": 15551234}}], "routes[0].match.number"),
    ([{"name": "a", "match": {"number": "a b"}}], "routes[0].match.number"),
    ([{"name": "a", "match": {"number": "sip:1@h"}}], "routes[0].match.number"),
    ([{"name": "a", "match": {"numbr": "1"}}], "routes[0].match.numbr"),
    ([{"name": "a", "match": {"trunk": "nope"}}], "routes[0].match.trunk"),
    ([{"name": "a", "reject": 200}], "routes[0].reject"),
    ([{"name": "a", "reject": "486"}], "routes[0].reject"),
    ([{"name": "a", "reject": 486, "reason": "bad\r\nX: y"}], "routes[0].reason"),
    ([{"name": "a", "reject": 486, "voice": "v"}], "routes[0].voice"),
    ([{"name": "a", "reason": "why"}], "routes[0].reason"),
    ([{"name": "a", "voice": ""}], "routes[0].voice"),
    ([{"name": "a", "audio_format": "mp3"}], "routes[0].audio_format"),
    ([{"name": "a", "end_call_tool": "yes"}], "routes[0].end_call_tool"),
    ([{"name": "a", "transfer_to": "desk"}], "routes[0].transfer_to"),
    ([{"name": "a", "turn_detection": "sleepy"}], "routes[0].turn_detection.profile"),
    ([{"name": "a", "turn_detection": {"threshold": 2}}], "routes[0].turn_detection.threshold"),
    ([{"name": "a", "turn_detection": {"speed": 1}}], "routes[0].turn_detection.speed"),
    ([{"name": "a", "turn_detection": 3}], "routes[0].turn_detection"),
    ([{"name": "a", "metadata": [1]}], "routes[0].metadata"),
    ([{"name": "a", "metadata": {"x": float("nan")}}], "routes[0].metadata"),
    ([{"name": "a", "instructions": "x", "instructions_file": "/etc/hostname"}],
     "routes[0].instructions_file"),
    ([{"name": "a", "instructions_file": "/nonexistent/prompt.txt"}], "routes[0].instructions_file"),
    ([{"name": "a", "tools": [{"name": "end_call"}]}], "routes[0].tools[0].name"),
])
def test_bad_routes_name_the_key(routes, key):
    """Every malformed entry is refused with a ConfigError naming the exact key."""
    assert error(routes).key == key


def test_commit_and_clear_digit_clash_with_the_defaults_is_refused():
    """A route whose turn keys clash with the top-level ones is refused at load, naming the route."""
    exc = error([{"name": "a", "turn_detection": {"commit_digit": "*"}}])
    assert exc.key == "routes[0].turn_detection.clear_digit"


def test_routes_cannot_come_from_the_environment():
    """SIPBRIDGE_ROUTES__* is refused: routes are a list in the file."""
    with pytest.raises(ConfigError) as exc:
        config.build({}, environ={"SIPBRIDGE_ROUTES__X": "1"})
    assert exc.value.key == "routes"


def test_check_config_lists_the_routes_in_order(tmp_path, capsys):
    """check-config prints each route (what it matches, what it does), never a secret."""
    from sipbridge.cli import main

    path = tmp_path / "c.yaml"
    path.write_text('routes:\n  - {name: a, match: {number: "12*"}, voice: v, turn_detection: fast}\n'
                    '  - {name: b, reject: 486}\n')
    assert main(["check-config", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("cell: ")   # the size the cell came to (cell.workers: auto)
    assert lines[2:] == ["route a: number 12*, trunk *, agent: voice, turn_detection",
                         "route b: number *, trunk *, reject 486"]
