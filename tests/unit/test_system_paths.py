"""Guard: every system path the tests and benches read belongs to a package bootstrap installs.

CI once passed only because its machines had a link (``/usr/share/asterisk/sounds/en``) that
no package ``./bootstrap --test`` installs makes; a brand-new machine failed at collection.
These tests make that class of bug fail on any machine: each path in
:func:`tests.support.system.read_paths` must exist and be owned (``dpkg -S``) by a package of
bootstrap's ``run_pkgs`` or ``test_pkgs`` lists (both installed by ``--test``) or one of their
dependencies, and no test or bench may name a
system path anywhere but tests/support/system.py.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import system

ROOT = Path(__file__).resolve().parents[2]
# strings that name the system but are not files the suite reads
ALLOWED_LITERALS = ("/usr/bin/env", "/usr/bin:/bin")
# where packages install what the suite reads (/etc holds no test data: paths there are inputs
# the bridge must refuse, or names written into generated configs)
SYSTEM_LITERAL = re.compile(r"""["'](/(?:usr|opt|var/lib)/[^"']*)["']""")


def bootstrap_packages() -> list[str]:
    """The ``run_pkgs=(...)`` and ``test_pkgs=(...)`` lists of ./bootstrap (``--test`` installs
    both; plain bootstrap the first)."""
    text = (ROOT / "bootstrap").read_text()
    names = []
    for var in ("run_pkgs", "test_pkgs"):
        found = re.search(rf"^{var}=\(([^)]*)\)", text, re.M)
        assert found, f"bootstrap has no {var}=(...) line"
        names += found.group(1).split()
    return names


@functools.lru_cache(maxsize=1)
def _installed_depends() -> dict[str, frozenset[str]]:
    """Every installed package's Depends and Pre-Depends names (alternatives included), from
    one ``dpkg-query`` for all of them (one per package took ~1.5 s per closure)."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Depends}, ${Pre-Depends}\n"],
                         capture_output=True, text=True, timeout=30).stdout
    table: dict[str, set[str]] = {}
    for line in out.splitlines():
        package, _, deps = line.partition("\t")
        names = table.setdefault(package, set())   # a package of two architectures: both
        for clause in deps.split(","):
            for alt in clause.split("|"):
                name = alt.strip().split(" ")[0].split(":")[0]
                if name:
                    names.add(name)
    return {package: frozenset(names) for package, names in table.items()}


def _depends(package: str) -> set[str]:
    """What ``package`` depends on; nothing for a name no installed package has (a virtual
    package, or one not installed)."""
    return set(_installed_depends().get(package, ()))


def closure(packages: list[str]) -> set[str]:
    """The packages and everything they depend on (installed alternatives included)."""
    seen: set[str] = set()
    todo = list(packages)
    while todo:
        pkg = todo.pop()
        if pkg not in seen:
            seen.add(pkg)
            todo.extend(_depends(pkg) - seen)
    return seen


@functools.lru_cache(maxsize=None)
def owner(path: Path) -> str | None:
    """The package ``dpkg -S`` names for ``path``, or None when no package owns it (asked once
    per path: two tests check the same ~30 paths, at ~30 ms a ``dpkg -S``)."""
    res = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        return None
    return res.stdout.split(":", 1)[0].split(",")[0].strip()


def check_paths(paths: dict[str, Path | None], allowed: set[str]) -> list[str]:
    """One line per path that is missing or owned by no allowed package."""
    problems = []
    for what, path in paths.items():
        if path is None or not path.exists():
            problems.append(f"{what}: {path} does not exist")
            continue
        pkg = owner(path)
        if pkg is None:
            problems.append(f"{what}: {path} is owned by no package (a link made by hand?)")
        elif pkg not in allowed:
            problems.append(f"{what}: {path} belongs to {pkg}, which ./bootstrap --test does not install")
    return problems


def test_every_system_path_is_installed_by_bootstrap():
    """Each prompt directory, pcap, module and binary the suite reads is owned by a package in
    bootstrap's test list (or a dependency of one)."""
    problems = check_paths(system.read_paths(), closure(bootstrap_packages()))
    assert not problems, "\n".join(problems)


def test_a_package_missing_from_bootstrap_is_named():
    """Dropping a package from the list makes the paths it owns fail, each named."""
    packages = [p for p in bootstrap_packages() if p != "sox"]
    problems = check_paths(system.read_paths(), closure(packages))
    assert any("binary sox" in p and "belongs to sox" in p for p in problems), problems


def test_a_hand_made_link_is_refused(tmp_path):
    """A path no package owns (like the ``en`` link that failed CI) is named as such."""
    link = tmp_path / "en"
    link.symlink_to(system.prompts_dir())
    problems = check_paths({"prompts via a link": link / system.PROMPT_PROBE},
                           closure(bootstrap_packages()))
    assert problems and "owned by no package" in problems[0]


def test_prompts_resolve_from_the_package_not_a_link():
    """The prompt directory is where asterisk-core-sounds-en-wav put hello-world.wav."""
    assert owner(system.prompts_dir() / system.PROMPT_PROBE) == system.PROMPT_PACKAGE


@pytest.mark.parametrize("folder", ["tests", "bench", "sipp-scenarios"])
def test_no_system_path_outside_the_registry(folder):
    """Tests and benches name system files only through tests/support/system.py."""
    offenders = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if path.name == "system.py" and path.parent.name == "support" or path == Path(__file__):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for literal in SYSTEM_LITERAL.findall(line):
                if not literal.startswith(ALLOWED_LITERALS):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {literal}")
    assert not offenders, "name these in tests/support/system.py:\n" + "\n".join(offenders)
