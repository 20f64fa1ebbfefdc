"""The ``trunks:`` section: defaults, password resolution, errors naming the key, no leaks."""

import subprocess
import sys

import pytest

from sipbridge import config
from sipbridge.errors import ConfigError

BASE = {"name": "carrier", "registrar": "sip:sip.carrier.example", "username": "4930123456",
        "password_env": "CARRIER_PW"}
ENV = {"CARRIER_PW": "pa55-w0rd-Zq"}


def build(*entries, environ=ENV):
    return config.build({"trunks": list(entries)}, environ=environ)


def test_no_trunks_by_default():
    """Without a trunks section the bridge registers nowhere."""
    assert config.build({}, environ={}).trunks == ()


def test_defaults_and_the_resolved_password():
    """A minimal entry gets expires 300, retries 1..60 s, realm '*', and the variable's password."""
    (t,) = build(BASE).trunks
    assert (t.name, t.username, t.expires, t.retry_min_s, t.retry_max_s, t.realm,
            t.outbound_proxy) == ("carrier", "4930123456", 300, 1.0, 60.0, "*", None)
    assert t.password == "pa55-w0rd-Zq"
    assert t.aor == "sip:4930123456@sip.carrier.example"


def test_every_key_is_read():
    """Explicit expires, proxy, retry bounds and realm are kept; the AOR takes the registrar's port."""
    (t,) = build({**BASE, "registrar": "sip:10.1.2.3:5080;transport=udp", "expires": 600,
                  "outbound_proxy": "sip:proxy.example:5060;lr", "retry_min_s": 2,
                  "retry_max_s": 30.5, "realm": "carrier.example", "username": 4930123456}).trunks
    assert (t.expires, t.outbound_proxy, t.retry_min_s, t.retry_max_s, t.realm) == (
        600, "sip:proxy.example:5060;lr", 2.0, 30.5, "carrier.example")
    assert t.aor == "sip:4930123456@10.1.2.3:5080"


def test_password_file_drops_the_trailing_newline(tmp_path):
    """password_file is read at start-up; its line ending is not part of the password."""
    f = tmp_path / "pw"
    f.write_text("from-a-file\n")
    entry = {k: v for k, v in BASE.items() if k != "password_env"}
    (t,) = build({**entry, "password_file": str(f)}, environ={}).trunks
    assert t.password == "from-a-file"


def test_the_password_is_never_in_repr_or_str():
    """repr() of the config (what a log line or a traceback would show) has no password."""
    cfg = build(BASE)
    assert "pa55-w0rd-Zq" not in repr(cfg) and "pa55-w0rd-Zq" not in str(cfg.trunks[0])


@pytest.mark.parametrize("entry,key", [
    ({**BASE, "password_env": "MISSING"}, "trunks[0].password_env"),
    ({k: v for k, v in BASE.items() if k != "password_env"}, "trunks[0].password_env"),
    ({**BASE, "password_file": "/nonexistent/pw"}, "trunks[0]"),
    ({k: v for k, v in BASE.items() if k != "password_env"} | {"password_file": "/nonexistent/pw"},
     "trunks[0].password_file"),
    ({**BASE, "registrar": "carrier.example"}, "trunks[0].registrar"),
    ({**BASE, "registrar": "sips:carrier.example"}, "trunks[0].registrar"),
    ({**BASE, "outbound_proxy": "http://x"}, "trunks[0].outbound_proxy"),
    ({k: v for k, v in BASE.items() if k != "username"}, "trunks[0].username"),
    ({k: v for k, v in BASE.items() if k != "name"}, "trunks[0].name"),
    ({**BASE, "name": "has space"}, "trunks[0].name"),
    ({**BASE, "expires": 5}, "trunks[0].expires"),
    ({**BASE, "expires": "300"}, "trunks[0].expires"),
    ({**BASE, "retry_min_s": 0}, "trunks[0].retry_min_s"),
    ({**BASE, "retry_min_s": 10, "retry_max_s": 5}, "trunks[0].retry_min_s"),
    ({**BASE, "retry_max_s": True}, "trunks[0].retry_max_s"),
    ({**BASE, "realm": ""}, "trunks[0].realm"),
    ({**BASE, "pasword": "x"}, "trunks[0].pasword"),
    ("carrier", "trunks[0]"),
])
def test_bad_entries_name_their_key(entry, key):
    """Every invalid trunk entry raises ConfigError carrying the dotted, indexed key."""
    with pytest.raises(ConfigError) as err:
        build(entry)
    assert err.value.key == key


def test_missing_variable_says_which():
    """A missing password variable is named in the reason."""
    with pytest.raises(ConfigError) as err:
        build({**BASE, "password_env": "NOT_SET_ANYWHERE"}, environ={})
    assert "NOT_SET_ANYWHERE" in err.value.reason


def test_duplicate_names_and_non_lists_are_refused():
    """Trunk names are unique; trunks must be a list; the environment cannot set trunks."""
    with pytest.raises(ConfigError) as err:
        build(BASE, dict(BASE))
    assert err.value.key == "trunks[1].name"
    with pytest.raises(ConfigError) as err:
        config.build({"trunks": BASE}, environ=ENV)
    assert err.value.key == "trunks"
    with pytest.raises(ConfigError) as err:
        config.build({}, environ={"SIPBRIDGE_TRUNKS__NAME": "x"})
    assert err.value.key == "trunks"


def test_check_config_shows_trunks_but_never_the_password(tmp_path):
    """`sipbridge check-config` lists each trunk and where its password comes from, not the password."""
    f = tmp_path / "trunks.yaml"
    f.write_text("trunks:\n  - name: carrier\n    registrar: sip:127.0.0.1:5070\n"
                 "    username: alice\n    password_env: CHECK_CONFIG_TRUNK_PW\n")
    env = {"PATH": "/usr/bin:/bin", "CHECK_CONFIG_TRUNK_PW": "Secret-For-Check-42"}
    r = subprocess.run([sys.executable, "-m", "sipbridge", "check-config", str(f)],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert "trunk carrier: sip:alice@127.0.0.1:5070" in r.stdout
    assert "$CHECK_CONFIG_TRUNK_PW" in r.stdout
    assert "Secret-For-Check-42" not in r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "sipbridge", "check-config", str(f)],
                       capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 2
    assert "trunks[0].password_env" in r.stderr and "CHECK_CONFIG_TRUNK_PW" in r.stderr
