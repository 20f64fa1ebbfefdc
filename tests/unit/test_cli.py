"""``sipbridge.cli.worker_config``: what a cell's worker runs with, derived from the cell's config."""

import pytest

from sipbridge import config
from sipbridge.cli import worker_config
from sipbridge.errors import ConfigError

TRUNKS = [{"name": "carrier", "registrar": "sip:sip.carrier.example", "username": "acme",
           "password_env": "CARRIER_PW", "outbound_proxy": "sip:10.0.0.9:5060;lr"},
          {"name": "backup", "registrar": "sip:10.1.2.3:5080", "username": "4930",
           "password_env": "BACKUP_PW", "realm": "backup.example"}]
ENV = {"CARRIER_PW": "pw-carrier-1", "BACKUP_PW": "pw-backup-2"}


def cell_config():
    return config.build({"trunks": TRUNKS, "api": {"listen": "127.0.0.1:8080"}}, environ=ENV)


def test_a_worker_keeps_every_trunk_to_dial_through_but_never_registers():
    """Each trunk reaches the worker with its credentials, proxy and realm, register off."""
    cfg = cell_config()
    assert all(t.register for t in cfg.trunks)          # a single process registers
    worker = worker_config(cfg)
    assert [t.name for t in worker.trunks] == ["carrier", "backup"]
    assert not any(t.register for t in worker.trunks)
    for mine, theirs in zip(worker.trunks, cfg.trunks):
        assert (mine.username, mine.password, mine.registrar, mine.outbound_proxy, mine.realm,
                mine.aor, mine.registrar_hostport) == (
            theirs.username, theirs.password, theirs.registrar, theirs.outbound_proxy,
            theirs.realm, theirs.aor, theirs.registrar_hostport)


def test_a_worker_has_no_api_listener_and_the_cell_config_is_untouched():
    """The worker serves its channel, not api.listen; the supervisor's config is not changed."""
    cfg = cell_config()
    worker = worker_config(cfg)
    assert worker.api.listen is None and cfg.api.listen == "127.0.0.1:8080"
    assert all(t.register for t in cfg.trunks)
    assert worker_config(config.build({}, environ={})).trunks == ()


def test_register_is_not_a_key_a_user_can_set():
    """``register`` is the cell's own flag: in the YAML it is an unknown key, named."""
    with pytest.raises(ConfigError) as err:
        config.build({"trunks": [{**TRUNKS[0], "register": False}]}, environ=ENV)
    assert err.value.key == "trunks[0].register"
