"""cell.workers: auto and cell.front: auto: the cell sized from the machine's cores, memory and
whether Kamailio is installed (sipbridge/cell/plan.py), and settled when the config is built."""

import pytest

from sipbridge import config
from sipbridge.cell import machine as machine_mod
from sipbridge.cell.plan import Machine, auto_workers, resolve_cell
from sipbridge.errors import ConfigError

BIG_MEMORY = 64 * 1024


def box(cores=2, memory_mb=BIG_MEMORY, kamailio=True):
    return Machine(cores=cores, memory_mb=memory_mb, kamailio=kamailio)


@pytest.mark.parametrize("cores, rate, workers", [
    (2, 16000, 6),     # 2 cores x 12 calls = 24 calls, 4 per worker
    (2, 8000, 8),      # 2 x 16 = 32 calls
    (1, 16000, 3),
    (4, 16000, 12),
    (3, 8000, 12),
    (32, 16000, 64),   # 96 workers' worth: clamped to 64
])
def test_workers_are_the_sustainable_calls_over_four_per_worker(cores, rate, workers):
    """auto gives ceil(cores x calls-per-core at the media rate / 4), at most 64."""
    assert auto_workers(box(cores), rate) == workers


def test_a_small_machine_still_gets_two_workers():
    """Never fewer than 2 workers from the CPU figure (one crash leaves the other answering)."""
    assert auto_workers(box(cores=1), 16000, calls_per_worker=4) == 3
    assert auto_workers(box(cores=1), 16000, calls_per_worker=100) == 2


def test_memory_caps_the_workers_at_half_of_it():
    """Workers at 140 MB each fill at most half the memory: 2 GB holds 7, 512 MB one."""
    assert auto_workers(box(cores=16, memory_mb=2048), 16000) == 7
    assert auto_workers(box(cores=16, memory_mb=512), 16000) == 1


def test_fewer_calls_per_worker_means_more_workers():
    """sip.max_calls below the library's 4 spreads the same calls over more workers."""
    assert resolve_cell("auto", "auto", box(), max_calls=2) == (16, "kamailio")
    assert resolve_cell("auto", "auto", box(), max_calls=50) == (8, "kamailio")


@pytest.mark.parametrize("workers, front, machine, want", [
    ("auto", "auto", box(), (8, "kamailio")),                 # the default (8 kHz) on this kind of box
    ("auto", "auto", box(kamailio=False), (1, "none")),       # nothing to front a cell: one process
    (4, "auto", box(), (4, "kamailio")),
    (4, "auto", box(kamailio=False), (4, "none")),            # the user's own front (kamailio-config)
    (1, "auto", box(), (1, "none")),                          # one plain process
    ("auto", "none", box(), (8, "none")),                     # sized, behind the user's own front
    ("auto", "kamailio", box(), (8, "kamailio")),
    (3, "none", box(), (3, "none")),                          # explicit values are kept
])
def test_front_and_workers_choice(workers, front, machine, want):
    """front auto is Kamailio when there are several workers and it is installed, else none;
    workers auto is one process when no front can stand before the cell."""
    assert resolve_cell(workers, front, machine) == want


def test_tls_makes_auto_one_process():
    """A TLS listener cannot be a cell (the front speaks UDP): auto is one process."""
    assert resolve_cell("auto", "auto", box(), tls=True) == (1, "none")


def test_build_settles_auto_for_the_given_machine():
    """config.build turns the auto defaults into numbers for the machine it is given."""
    cfg = config.build({}, environ={}, machine=box(cores=4))
    assert (cfg.cell.workers, cfg.cell.front) == (16, "kamailio")   # 8 kHz: 4 x 16 calls / 4
    cfg = config.build({"sip": {"media_rate": 16000}}, environ={}, machine=box())
    assert (cfg.cell.workers, cfg.cell.front) == (6, "kamailio")
    cfg = config.build({}, environ={}, machine=box(kamailio=False))
    assert (cfg.cell.workers, cfg.cell.front) == (1, "none")


def test_auto_comes_from_the_file_and_the_environment():
    """`auto` is accepted in the file and in SIPBRIDGE_CELL__WORKERS; one key makes one process."""
    cfg = config.build({"cell": {"workers": 1}}, environ={"SIPBRIDGE_CELL__WORKERS": "auto"},
                       machine=box())
    assert cfg.cell.workers == 8
    cfg = config.build({"cell": {"workers": "auto"}}, environ={"SIPBRIDGE_CELL__WORKERS": "1"},
                       machine=box())
    assert (cfg.cell.workers, cfg.cell.front) == (1, "none")


@pytest.mark.parametrize("value", ["lots", "", 0, 65, 2.5, True])
def test_a_bad_workers_value_names_the_key(value):
    """cell.workers is an integer in [1, 64] or auto; anything else names cell.workers."""
    with pytest.raises(ConfigError) as err:
        config.build({"cell": {"workers": value}}, environ={}, machine=box())
    assert err.value.key == "cell.workers"


def test_auto_sized_ports_are_checked():
    """An auto cell too big for the RTP range is refused naming sip.rtp_port_range."""
    with pytest.raises(ConfigError) as err:
        config.build({"sip": {"rtp_port_range": 40}}, environ={}, machine=box())
    assert err.value.key == "sip.rtp_port_range"


def test_the_machine_probe_reads_this_machine():
    """The probe finds at least one core, some memory, and Kamailio where its binary is."""
    from sipbridge.kamailio import kamailio_binary
    m = machine_mod.probe()
    assert m.cores >= 1 and m.memory_mb > 0
    assert m.kamailio == (kamailio_binary() is not None)


def test_check_config_prints_the_resolved_cell(monkeypatch, tmp_path, capsys):
    """`sipbridge check-config` prints the size auto came to, or one process."""
    from sipbridge import cli
    monkeypatch.setattr(machine_mod, "probe", lambda: box(cores=1))
    path = tmp_path / "c.yaml"
    path.write_text("sip: {rtp_port_range: 120}\n")
    assert cli.main(["check-config", str(path)]) == 0
    assert "cell: 4 workers (16 calls) on SIP 5061-5064, 30 RTP ports each, front kamailio" \
        in capsys.readouterr().out
    path.write_text("cell: {workers: 1}\n")
    assert cli.main(["check-config", str(path)]) == 0
    assert "cell: one process (4 calls) on SIP 5060, no front" in capsys.readouterr().out
