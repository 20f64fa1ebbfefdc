"""Configuration: defaults, YAML, environment overrides, and errors that name the key."""

import subprocess
import sys

import pytest

from sipbridge import config
from sipbridge.errors import ConfigError


def test_defaults_are_safe_and_use_the_embedded_model_without_a_key():
    """With no file and no key the bridge listens on loopback only and uses the embedded model."""
    cfg = config.build({}, environ={})
    assert (cfg.sip.host, cfg.sip.port, cfg.sip.allow_from) == ("127.0.0.1", 5060, ("127.0.0.1/32",))
    assert cfg.upstream(environ={}) == ("embedded", None)
    assert cfg.turn_detection.type == "silero"


def test_an_api_key_selects_openai_unless_a_url_is_given():
    """The key's variable picks OpenAI's endpoint when realtime.url is unset, else the URL wins."""
    env = {"OPENAI_API_KEY": "sk-test"}
    assert config.build({}, environ=env).upstream(env) == (config.OPENAI_URL, "sk-test")
    cfg = config.build({"realtime": {"url": "ws://127.0.0.1:9/x", "api_key_env": "K"}}, environ={})
    assert cfg.upstream({"K": "abc"}) == ("ws://127.0.0.1:9/x", "abc")


def test_environment_overrides_use_yaml_values():
    """SIPBRIDGE_SECTION__KEY overrides the file, with YAML syntax for lists and numbers."""
    env = {"SIPBRIDGE_SIP__PORT": "5070", "SIPBRIDGE_SIP__ALLOW_FROM": "[10.0.0.0/8, 127.0.0.1]",
           "SIPBRIDGE_TURN_DETECTION__PROFILE": "patient"}
    cfg = config.build({"sip": {"port": 5080}}, environ=env)
    assert cfg.sip.port == 5070
    assert cfg.sip.allow_from == ("10.0.0.0/8", "127.0.0.1")
    assert cfg.turn_detection.silence_threshold_ms == 800


@pytest.mark.parametrize("raw,key", [
    ({"sip": {"port": 70000}}, "sip.port"),
    ({"sip": {"port": "5060"}}, "sip.port"),
    ({"sip": {"prot": 5060}}, "sip.prot"),
    ({"sip": {"allow_from": ["10.0.0.0/33"]}}, "sip.allow_from[0]"),
    ({"realtime": {"api": "v2"}}, "realtime.api"),
    ({"realtime": {"audio_format": "opus"}}, "realtime.audio_format"),
    ({"sip": {"media_rate": 11025}}, "sip.media_rate"),
    ({"sip": {"media_rate": "8000"}}, "sip.media_rate"),
    ({"barge_in": {"vad_hop_ms": 20}}, "barge_in.vad_hop_ms"),
    ({"realtime": {"url": "http://x"}}, "realtime.url"),
    ({"realtime": {"greeting": ""}}, "realtime.greeting"),
    ({"realtime": {"end_call_tool": "yes"}}, "realtime.end_call_tool"),
    ({"realtime": {"transfer_to": "desk@pbx"}}, "realtime.transfer_to"),
    ({"realtime": {"transfer_to": "tel:+15551234567"}}, "realtime.transfer_to"),
    ({"realtime": {"transfer_to": "sip:"}}, "realtime.transfer_to"),
    ({"realtime": {"transfer_to": "sip:a b@pbx"}}, "realtime.transfer_to"),
    ({"log": {"level": "loud"}}, "log.level"),
    ({"turn_detection": {"type": "magic"}}, "turn_detection.type"),
    ({"turn_detection": {"threshold": 1.5}}, "turn_detection.threshold"),
    ({"sipp": {}}, "sipp"),
    ({"sip": [1, 2]}, "sip"),
])
def test_bad_values_name_their_key(raw, key):
    """Every invalid value raises ConfigError carrying the dotted key."""
    with pytest.raises(ConfigError) as err:
        config.build(raw, environ={})
    assert err.value.key == key


def test_agent_keys_load():
    """greeting, end_call_tool and a sip:/sips: transfer_to are taken as given."""
    rc = config.build({"realtime": {"greeting": "Hi", "end_call_tool": True,
                                    "transfer_to": "sips:desk@pbx.example:5061"}}, environ={}).realtime
    assert (rc.greeting, rc.end_call_tool, rc.transfer_to) == ("Hi", True, "sips:desk@pbx.example:5061")


def test_check_config_cli_exits_2_naming_the_key(tmp_path):
    """`sipbridge check-config` on a bad file prints the key and the reason and exits 2."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("sip:\n  port: -1\n")
    r = subprocess.run([sys.executable, "-m", "sipbridge", "check-config", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "sip.port" in r.stderr and "between 1 and 65535" in r.stderr
    good = tmp_path / "good.yaml"
    good.write_text("sip: {port: 5070}\nturn_detection: {profile: fast}\n")
    r = subprocess.run([sys.executable, "-m", "sipbridge", "check-config", str(good)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "5070" in r.stdout


def test_unreadable_or_invalid_yaml_is_a_config_error(tmp_path):
    """A missing file or broken YAML is reported as a config error, not a traceback."""
    with pytest.raises(ConfigError):
        config.load(tmp_path / "missing.yaml", environ={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("sip: [unclosed\n")
    with pytest.raises(ConfigError):
        config.load(broken, environ={})


def test_media_rate_is_8000_unless_set_to_16000():
    """``sip.media_rate`` defaults to G.711's 8 kHz; 16000 (wideband) is the only other rate, and
    a wrong one names both choices."""
    assert config.build({}, environ={}).sip.media_rate == 8000
    assert config.build({"sip": {"media_rate": 16000}}, environ={}).sip.media_rate == 16000
    with pytest.raises(ConfigError, match="one of 8000, 16000"):
        config.build({"sip": {"media_rate": 44100}}, environ={})


def test_media_port_is_native_unless_set_to_python():
    """``sip.media_port`` defaults to the C port; ``python`` (pjsua2's port) is the fallback."""
    assert config.build({}, environ={}).sip.media_port == "native"
    assert config.build({"sip": {"media_port": "python"}}, environ={}).sip.media_port == "python"
    with pytest.raises(ConfigError, match="sip.media_port"):
        config.build({"sip": {"media_port": "c"}}, environ={})
