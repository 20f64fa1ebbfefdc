"""The supported Pythons are said once, in pyproject.toml; everything else follows it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def supported() -> list[str]:
    """The minor versions ``requires-python = ">=3.A,<3.B"`` admits, e.g. ["3.11", "3.12"]."""
    text = (ROOT / "pyproject.toml").read_text()
    lo, hi = re.search(r'^requires-python = ">=3\.(\d+),<3\.(\d+)"', text, re.M).groups()
    return [f"3.{m}" for m in range(int(lo), int(hi))]


def test_bootstrap_reads_the_range_from_pyproject():
    """bootstrap names no Python version of its own: it reads requires-python."""
    text = (ROOT / "bootstrap").read_text()
    assert "requires-python" in text
    assert not re.findall(r".*\b3\.1\d\b.*", text)


def test_readme_and_dockerfile_agree_with_pyproject():
    """README's run line names exactly the supported versions; the image uses one of them."""
    run_line = next(line for line in (ROOT / "README.md").read_text().splitlines()
                    if line.startswith("**Run the bridge**"))
    assert set(re.findall(r"\b3\.1\d\b", run_line)) == set(supported()), run_line
    image = re.search(r"^FROM python:(3\.\d+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    assert image in supported()
