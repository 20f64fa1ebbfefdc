"""docker-compose.yml: Docker is not on these machines, so its shape is checked here."""

from pathlib import Path

import yaml

from sipbridge import config

ROOT = Path(__file__).resolve().parents[3]


def test_compose_services_run_the_real_cli_and_scenarios():
    """The bridge service runs `sipbridge run`, and the caller uses files that exist in the repo."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    bridge = compose["services"]["sipbridge"]
    assert bridge["network_mode"] == "host" and bridge["command"] == ["run"]
    assert (ROOT / bridge["build"] / "Dockerfile").exists()
    caller = compose["services"]["caller"]
    script = caller["command"][0]
    for name in ("uac_proxy.xml", "pcmu_speech.pcap"):
        assert f"/scenarios/{name}" in script and (ROOT / "sipp-scenarios" / name).exists()


def test_compose_environment_is_valid_bridge_configuration():
    """The compose file's default environment overrides form a valid bridge configuration."""
    env = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["sipbridge"]["environment"]
    defaults = {k: v.split(":-", 1)[1].rstrip("}") for k, v in env.items() if ":-" in v}
    cfg = config.build({}, environ=defaults)
    assert cfg.sip.port == 5060 and cfg.sip.allow_from == ("127.0.0.1/32",)
    assert cfg.cell.workers == 4 and cfg.cell.front == "none"  # the kamailio service is the front


def test_compose_kamailio_fronts_the_workers_with_the_shipped_config():
    """The kamailio service runs deploy/kamailio/kamailio.cfg, which is exactly the front that
    `sipbridge kamailio-config` generates for the sipbridge service's environment."""
    from sipbridge.cell.kamailio_cfg import front_spec, render
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    kam = compose["services"]["kamailio"]
    assert kam["network_mode"] == "host"
    assert "./deploy/kamailio:/etc/kamailio/sipbridge:ro" in kam["volumes"]
    assert "kamailio -DD -E -f /etc/kamailio/sipbridge/kamailio.cfg" in kam["command"][0]
    env = compose["services"]["sipbridge"]["environment"]
    defaults = {k: v.split(":-", 1)[1].rstrip("}") for k, v in env.items() if ":-" in v}
    cfg = config.build({}, environ={**defaults, "SIPBRIDGE_CELL__FRONT": "kamailio"})
    files = render(front_spec(cfg, "/etc/kamailio/sipbridge"))
    for name in ("kamailio.cfg", "dispatcher.list"):
        assert (ROOT / "deploy" / "kamailio" / name).read_text() == files[name]
    caller = compose["services"]["caller"]
    assert set(caller["depends_on"]) == {"kamailio", "sipbridge"}
    assert "-rtp_echo" in caller["command"][0]
