"""Tests for tests/support/kamailio_base.py and the two configurations built on it."""

import subprocess

import pytest

from sipbridge.kamailio import kamailio_binary
from tests.support.kamailio_base import check_password, dialog_routing, preamble
from tests.support.kamailio_carrier import carrier_config
from tests.support.kamailio_registrar import registrar_config


def _kamailio_check(cfg: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "kamailio.cfg"
    path.write_text(cfg)
    return subprocess.run([kamailio_binary(), "-c", "-f", str(path)], capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize("cfg", [
    carrier_config("127.0.0.1", 5099, "pw", {"100": 5071, "486": 5072}),
    registrar_config("127.0.0.1", 5098, "s3cret"),
    registrar_config("127.0.0.1", 5098, "s3cret", min_expires=5, max_expires=60,
                     bad_password="forbidden"),
], ids=["carrier", "registrar", "registrar-forbidden"])
def test_kamailio_accepts_both_configurations(cfg, tmp_path):
    """Kamailio's own check (kamailio -c) accepts the carrier and the registrar configurations."""
    check = _kamailio_check(cfg, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def test_kamailio_check_refuses_a_broken_route(tmp_path):
    """The check above can fail: an unknown function in the shared routing is refused."""
    cfg = registrar_config("127.0.0.1", 5098, "s3cret").replace("t_relay();", "t_relay_nope();")
    assert _kamailio_check(cfg, tmp_path).returncode != 0


@pytest.mark.parametrize("password", ['a"b', "a\\b"])
def test_a_password_kamailio_cannot_quote_is_refused(password):
    """A quote or backslash in the password is a ValueError, for both configurations."""
    with pytest.raises(ValueError, match="quotes or backslashes"):
        check_password(password)
    with pytest.raises(ValueError):
        carrier_config("127.0.0.1", 5099, password, {})
    with pytest.raises(ValueError):
        registrar_config("127.0.0.1", 5098, password)


def test_preamble_sets_expiry_limits_only_when_given():
    """min_expires is always set; max_expires appears only when it is not None."""
    plain = preamble("127.0.0.1", 5060, mpath="/m")
    assert 'modparam("registrar", "min_expires", 1)' in plain
    assert "max_expires" not in plain
    limited = preamble("127.0.0.1", 5060, min_expires=5, max_expires=60, mpath="/m")
    assert 'modparam("registrar", "min_expires", 5)' in limited
    assert 'modparam("registrar", "max_expires", 60)' in limited
    assert 'mpath="/m"' in limited and "listen=udp:127.0.0.1:5060" in limited


def test_dialog_routing_runs_on_route_just_before_relaying_along_the_route_set():
    """The on_route statement stands inside loose_route(), right before its t_relay()."""
    text = dialog_routing('xlog("L_NOTICE", "relayed\\n");')
    assert 'if (loose_route()) {\n            xlog("L_NOTICE", "relayed\\n");\n' \
           '            t_relay();' in text
    assert "xlog" not in dialog_routing()


def test_each_configuration_keeps_its_own_log_lines():
    """The registrar logs relays along a route, the carrier logs every REGISTER."""
    reg = registrar_config("127.0.0.1", 5098, "s3cret")
    carrier = carrier_config("127.0.0.1", 5099, "pw", {"100": 5071})
    assert reg.count("registrar_relayed") == 2 and "carrier_register" not in reg
    assert "carrier_register user=$tU src=$si:$sp" in carrier and "registrar_" not in carrier


OUTPUT = """\
 0(123) NOTICE: <script>: carrier_register user=acme src=127.0.0.1:5060
 0(123) NOTICE: <script>: carrier_challenged method=INVITE user=100 reason=-1
 0(123) INFO: <core> something else entirely
 0(123) NOTICE: <script>: carrier_authorized method=INVITE user=100 auth=acme from=<sip:+4930@127.0.0.1:5099>
 0(123) NOTICE: <script>: registrar_saved user=alice expires=300 contact=<sip:alice@127.0.0.1:5071;ob>
 0(123) NOTICE: <script>: registrar_relayed method=BYE user=alice to=sip:127.0.0.1:5071
"""


def test_log_lines_are_read_oldest_first_by_each_helper():
    """carrier_lines, register_lines, saved_bindings and relayed each read only their lines."""
    from tests.support.kamailio_carrier import carrier_lines, register_lines
    from tests.support.kamailio_registrar import relayed, saved_bindings
    assert carrier_lines(OUTPUT) == [
        {"event": "carrier_challenged", "method": "INVITE", "user": "100", "reason": "-1"},
        {"event": "carrier_authorized", "method": "INVITE", "user": "100", "auth": "acme",
         "from": "<sip:+4930@127.0.0.1:5099>"}]
    assert register_lines(OUTPUT) == [{"user": "acme", "src": "127.0.0.1:5060"}]
    assert saved_bindings(OUTPUT) == [{"user": "alice", "expires": "300",
                                       "contact": "<sip:alice@127.0.0.1:5071;ob>"}]
    assert relayed(OUTPUT) == [{"method": "BYE", "user": "alice", "to": "sip:127.0.0.1:5071"}]
