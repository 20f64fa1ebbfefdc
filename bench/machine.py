"""What a benchmark ran on, for its JSON: cores, CPU model, Python, load, package versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path


def machine(*packages: str) -> dict:
    """Machine facts plus the installed version of each named package."""
    cpu = None
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in
                    Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
                   None)
    except OSError:
        pass
    out = {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
           "loadavg_1m": round(os.getloadavg()[0], 2)}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out
