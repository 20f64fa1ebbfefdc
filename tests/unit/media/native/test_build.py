"""The worker never compiles the native port: a missing or stale library stops ``sipbridge run``
with a config error on ``sip.media_port`` (exit 2) that says how to build it."""

import os

import pytest

from sipbridge import cli
from sipbridge.media.native import build


def test_require_answers_the_built_library(tmp_path):
    """A library newer than its source is answered as it is."""
    src, lib = tmp_path / "port.c", tmp_path / "_sbport.so"
    src.write_text("int x;\n")
    lib.write_bytes(b"\x7fELF")
    os.utime(src, (1000, 1000))
    assert build.require(lib, src) == lib


def test_require_refuses_a_missing_or_stale_library(tmp_path):
    """Missing, or older than port.c: BuildError naming ./bootstrap and the python fallback."""
    src, lib = tmp_path / "port.c", tmp_path / "_sbport.so"
    src.write_text("int x;\n")
    with pytest.raises(build.BuildError, match="is not built: run ./bootstrap") as err:
        build.require(lib, src)
    assert "sip.media_port: python" in str(err.value)
    lib.write_bytes(b"\x7fELF")
    os.utime(lib, (1000, 1000))
    with pytest.raises(build.BuildError, match="older than port.c"):
        build.require(lib, src)
    assert lib.read_bytes() == b"\x7fELF"   # nothing was compiled over it


def test_run_without_the_library_exits_2_naming_the_key(tmp_path, monkeypatch, capsys):
    """`sipbridge run` with the default native port and no library stops before starting
    anything: exit 2, one line naming sip.media_port; the python port needs no library."""
    monkeypatch.setattr(build, "LIBRARY", tmp_path / "_sbport.so")
    monkeypatch.setenv("SIPBRIDGE_CELL__WORKERS", "1")
    monkeypatch.setattr("sipbridge.logs.configure", lambda *a, **k: None)   # keep the suite's
    started = []

    class Worker:   # stands in for the real one: only whether it was started matters
        def __init__(self, cfg, worker_index=None):
            started.append(cfg)

        def run(self):
            return 0

    import sipbridge.worker as worker_mod
    monkeypatch.setattr(worker_mod, "Worker", Worker)
    assert cli.main(["run"]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "config error: sip.media_port: native port unavailable" in err
    assert "is not built: run ./bootstrap" in err and not started
    monkeypatch.setenv("SIPBRIDGE_SIP__MEDIA_PORT", "python")
    assert cli.main(["run"]) == 0 and len(started) == 1
