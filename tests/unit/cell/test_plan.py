"""Cell planning: worker SIP ports, RTP splits, worker environment, and config errors."""

import pytest

from sipbridge import config
from sipbridge.cell.plan import is_cell, plan, worker_environment
from sipbridge.errors import ConfigError


def build(cell=None, sip=None):
    return config.build({"cell": cell or {}, "sip": sip or {}}, environ={})


def test_one_worker_is_one_plain_process_on_sip_port():
    """workers 1 (front auto: none) is not a cell: one worker on sip.port with every RTP port."""
    cfg = build({"workers": 1})
    assert not is_cell(cfg)
    [w] = plan(cfg)
    assert (w.sip_port, w.rtp_port, w.rtp_port_range) == (5060, 40000, 1000)


def test_workers_listen_after_sip_port_and_split_rtp_evenly():
    """Worker i listens on sip.port + 1 + i and gets an even, disjoint share of the RTP ports."""
    cfg = build({"workers": 3}, {"rtp_port": 30000, "rtp_port_range": 100})
    ws = plan(cfg)
    assert [w.sip_port for w in ws] == [5061, 5062, 5063]
    assert [(w.rtp_port, w.rtp_port_range) for w in ws] == [(30000, 32), (30032, 32), (30064, 32)]


def test_worker_port_base_moves_the_workers():
    """cell.worker_port_base sets the first worker's SIP port."""
    cfg = build({"workers": 2, "worker_port_base": 7000})
    assert [w.sip_port for w in plan(cfg)] == [7000, 7001]


def test_a_front_alone_makes_a_cell_of_one():
    """front kamailio with one worker still moves the worker off sip.port."""
    cfg = build({"workers": 1, "front": "kamailio"})
    assert is_cell(cfg) and [w.sip_port for w in plan(cfg)] == [5061]


def test_worker_environment_pins_ports_and_behind_a_front_trusts_only_the_front():
    """A worker's overrides give its own ports, make it a plain process, and with a front
    accept INVITEs only from the front's address."""
    cfg = build({"workers": 2, "front": "kamailio"}, {"host": "10.0.0.5",
                                                      "allow_from": ["192.0.2.0/24"]})
    env = worker_environment(cfg, plan(cfg)[1])
    assert env["SIPBRIDGE_SIP__PORT"] == "5062"
    assert env["SIPBRIDGE_CELL__WORKERS"] == "1" and env["SIPBRIDGE_CELL__FRONT"] == "none"
    assert env["SIPBRIDGE_SIP__ALLOW_FROM"] == "[10.0.0.5/32]"
    worker_cfg = config.build({"sip": {"host": "10.0.0.5"}}, environ=env)
    assert not is_cell(worker_cfg) and worker_cfg.sip.port == 5062
    assert worker_cfg.sip.rtp_port == plan(cfg)[1].rtp_port
    no_front = build({"workers": 2, "front": "none"})
    assert "SIPBRIDGE_SIP__ALLOW_FROM" not in worker_environment(no_front, plan(no_front)[0])


@pytest.mark.parametrize("cell, sip, key", [
    ({"workers": 2, "worker_port_base": 5059}, {}, "cell.worker_port_base"),   # covers sip.port
    ({"workers": 3, "worker_port_base": 65534}, {}, "cell.worker_port_base"),  # past 65535
    ({"workers": 2, "worker_port_base": 40010}, {}, "cell.worker_port_base"),  # inside RTP
    ({"workers": 64}, {"rtp_port_range": 100}, "sip.rtp_port_range"),          # 1 port each
    ({"workers": 0}, {}, "cell.workers"),
    ({"front": "nginx"}, {}, "cell.front"),
    ({"probe_interval_s": 0}, {}, "cell.probe_interval_s"),
    ({"colour": 1}, {}, "cell.colour"),
])
def test_bad_cell_configuration_names_the_key(cell, sip, key):
    """An impossible cell raises ConfigError naming the dotted key."""
    with pytest.raises(ConfigError) as err:
        build(cell, sip)
    assert err.value.key == key


def test_cell_keys_come_from_the_environment():
    """SIPBRIDGE_CELL__WORKERS / __FRONT override the file like every other key."""
    cfg = config.build({}, environ={"SIPBRIDGE_CELL__WORKERS": "4",
                                    "SIPBRIDGE_CELL__FRONT": "kamailio"})
    assert (cfg.cell.workers, cfg.cell.front) == (4, "kamailio")


def test_check_config_describes_the_cell(tmp_path, capsys):
    """`sipbridge check-config` prints the workers, the calls they hold, their SIP ports, RTP
    share and front."""
    from sipbridge import cli
    path = tmp_path / "c.yaml"
    path.write_text("cell: {workers: 2, front: kamailio}\nsip: {rtp_port_range: 100}\n")
    assert cli.main(["check-config", str(path)]) == 0
    assert "cell: 2 workers (8 calls) on SIP 5061-5062, 50 RTP ports each, front kamailio" in \
        capsys.readouterr().out


def test_tls_is_refused_in_a_cell(tmp_path):
    """sip.tls_cert with several workers is a ConfigError on sip.tls_cert."""
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError) as err:
        build({"workers": 2}, {"tls_cert": str(cert), "tls_key": str(cert)})
    assert err.value.key == "sip.tls_cert" and "cell" in err.value.reason
