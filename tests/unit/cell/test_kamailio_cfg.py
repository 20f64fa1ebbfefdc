"""The generated Kamailio front: its content, the shipped example, and the CLI that prints it."""

import subprocess
from pathlib import Path

from sipbridge import cli, config
from sipbridge.cell.kamailio_cfg import Registration, front_spec, render
from sipbridge.kamailio import kamailio_binary

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_DIR = ROOT / "deploy" / "kamailio"


def cell(workers=3, **sip):
    return config.build({"cell": {"workers": workers, "front": "kamailio"}, "sip": sip},
                        environ={})


def test_dispatcher_list_has_one_destination_per_worker():
    """Every worker is a destination of set 1, active, at its own SIP port."""
    files = render(front_spec(cell(3), "/etc/kamailio/sipbridge"))
    rows = [line.split() for line in files["dispatcher.list"].splitlines()
            if not line.startswith("#")]
    assert [r[:3] for r in rows] == [["1", f"sip:127.0.0.1:{p}", "0"] for p in (5061, 5062, 5063)]


def test_config_listens_on_the_cell_address_and_dispatches_with_failover():
    """The front listens on sip.host:sip.port (advertising public_host), probes with OPTIONS,
    round-robins, and fails over on 486/503/408 and timeouts."""
    text = render(front_spec(cell(2, host="10.1.2.3", port=5070, public_host="203.0.113.9"),
                             "/srv/front"))["kamailio.cfg"]
    assert "listen=udp:10.1.2.3:5070 advertise 203.0.113.9:5070" in text
    assert 'modparam("dispatcher", "list_file", "/srv/front/dispatcher.list")' in text
    assert 'ds_select_dst("1", "4")' in text and "ds_next_dst()" in text
    assert 't_check_status("486|503|408")' in text and "t_branch_timeout()" in text
    assert '"ds_ping_interval", 5' in text and '"ds_probing_mode", 1' in text
    assert "record_route();" in text and 'modparam("tm", "fr_timer", 2000)' in text


def test_allow_from_is_enforced_by_the_front():
    """Each sip.allow_from network becomes a source check; an empty list refuses everyone."""
    text = render(front_spec(cell(2, allow_from=["10.0.0.0/8", "192.0.2.7/32"]), "/x"))["kamailio.cfg"]
    assert '!is_in_subnet("$si", "10.0.0.0/8") && !is_in_subnet("$si", "192.0.2.7/32")' in text
    assert "if (1 == 1) {" in render(front_spec(cell(2, allow_from=[]), "/x"))["kamailio.cfg"]


def test_trunk_registration_is_one_uac_reg_record_per_trunk_with_the_front_as_contact():
    """Registrations become uacreg rows in db_text and load the uac module with the front's
    address as the contact; no registration, no uac module."""
    spec = front_spec(cell(2, port=5080), "/srv/front", registrations=(
        Registration("carrier", "4930123", "sip.carrier.example", "pa:ss"),))
    files = render(spec)
    assert 'modparam("uac", "reg_contact_addr", "127.0.0.1:5080")' in files["kamailio.cfg"]
    assert 'modparam("uac", "reg_db_url", "text:///srv/front/db")' in files["kamailio.cfg"]
    row = files["db/uacreg"].splitlines()[1].split(":")
    assert row[1:6] == ["carrier", "4930123", "127.0.0.1", "4930123", "sip.carrier.example"]
    assert r"pa\:ss" in files["db/uacreg"]  # db_text escapes its separator
    assert files["db/version"].splitlines()[1] == "uacreg:5"
    assert "uac.so" not in render(front_spec(cell(2), "/x"))["kamailio.cfg"]


def test_trunks_from_the_config_become_registrations(monkeypatch):
    """A trunks: entry (password from its variable) is registered by the front."""
    cfg = config.build({"cell": {"workers": 2, "front": "kamailio"},
                        "trunks": [{"name": "carrier", "registrar": "sip:sip.carrier.example",
                                    "username": "4930123", "password_env": "PW"}]},
                       environ={"PW": "secret"})
    [reg] = front_spec(cfg, "/x").registrations
    assert (reg.name, reg.user, reg.domain, reg.password) == (
        "carrier", "4930123", "sip.carrier.example", "secret")


def test_shipped_example_is_the_generator_output():
    """deploy/kamailio/ holds exactly what `sipbridge kamailio-config --workers 4 --out` writes."""
    files = render(front_spec(cell(4), "/etc/kamailio/sipbridge"))
    shipped = {p.name: p.read_text() for p in EXAMPLE_DIR.iterdir()
               if p.name in ("kamailio.cfg", "dispatcher.list")}
    assert shipped == files


def test_shipped_example_parses():
    """Kamailio accepts the shipped configuration (kamailio -c)."""
    check = subprocess.run([kamailio_binary(), "-c", "-f", str(EXAMPLE_DIR / "kamailio.cfg")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr[-2000:]


def test_kamailio_config_command_prints_the_config_and_list(capsys):
    """`sipbridge kamailio-config --workers 2` prints kamailio.cfg and the dispatcher list."""
    assert cli.main(["kamailio-config", "--workers", "2", "--conf-dir", "/srv/f"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#!KAMAILIO") and "# 1 sip:127.0.0.1:5062 0 0 worker=1" in out
    assert "/srv/f/dispatcher.list" in out


def test_kamailio_config_command_writes_files(tmp_path, capsys):
    """--out DIR writes every file of the front."""
    assert cli.main(["kamailio-config", "--workers", "3", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "kamailio.cfg").exists() and (tmp_path / "dispatcher.list").exists()


def test_run_with_an_impossible_cell_exits_2_naming_the_key(capsys):
    """`sipbridge run --workers 0` is a configuration error on cell.workers."""
    assert cli.main(["run", "--workers", "0"]) == 2
    assert "cell.workers" in capsys.readouterr().err


def test_front_kamailio_without_kamailio_is_a_config_error(monkeypatch, capsys):
    """Asking for the Kamailio front where it is not installed exits 2 naming cell.front."""
    monkeypatch.setattr("sipbridge.cell.supervisor.kamailio_binary", lambda: None)
    monkeypatch.setattr("sipbridge.logs.configure", lambda *a, **k: None)
    assert cli.main(["run", "--workers", "2", "--front", "kamailio"]) == 2
    err = capsys.readouterr().err
    assert "cell.front" in err and "not installed" in err
