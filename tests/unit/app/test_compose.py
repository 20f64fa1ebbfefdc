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
    for name in ("uac_pcmu.xml", "pcmu_speech.pcap"):
        assert f"/scenarios/{name}" in script and (ROOT / "sipp-scenarios" / name).exists()


def test_compose_environment_is_valid_bridge_configuration():
    """The compose file's default environment overrides form a valid bridge configuration."""
    env = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["sipbridge"]["environment"]
    defaults = {k: v.split(":-", 1)[1].rstrip("}") for k, v in env.items() if ":-" in v}
    cfg = config.build({}, environ=defaults)
    assert cfg.sip.port == 5060 and cfg.sip.allow_from == ("127.0.0.1/32",)
