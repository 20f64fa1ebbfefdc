"""Suite-wide setup for the Python child processes the tests start (the bridge, a cell's workers,
the embedded model server, the support servers: a few hundred per run)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def pytest_configure(config):
    """Child Pythons keep their compiled bytecode. Where the environment turns writing it off
    (``PYTHONDONTWRITEBYTECODE``, as container images often do), every child compiled every sipbridge
    module again: about 0.1 s of CPU per start, most of a bridge's start-up after imports. They
    write it under one directory outside the working tree instead (``PYTHONPYCACHEPREFIX``), so
    the tree stays as clean as the setting meant; the pytest process itself is unchanged."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    os.environ["PYTHONPYCACHEPREFIX"] = str(
        Path(tempfile.gettempdir()) / f"sipbridge-test-pycache-{os.getuid()}")
