"""The upstream side stands alone: no realtime or embedded-model module imports the SIP shell."""

import pkgutil
import subprocess
import sys

import sipbridge.embedded
import sipbridge.realtime

PACKAGES = (sipbridge.realtime, sipbridge.embedded)


def _modules() -> list[str]:
    names = []
    for pkg in PACKAGES:
        names.append(pkg.__name__)
        names += [f"{pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)
                  if m.name != "__main__"]
    return names


def test_importing_every_upstream_module_loads_nothing_from_sipbridge_sip():
    """A fresh interpreter that imports every realtime and embedded module has no sipbridge.sip module loaded."""
    modules = _modules()
    assert "sipbridge.realtime.link" in modules and "sipbridge.embedded.echo_core" in modules
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m == 'sipbridge.sip' or m.startswith('sipbridge.sip.')"
            " or m == 'pjsua2'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_check_sees_a_sip_import():
    """The same probe does report sipbridge.sip once a module from it is imported (the test can fail)."""
    code = ("import sys, sipbridge.backoff, sipbridge.sip.trunk_state\n"
            "print(sorted(m for m in sys.modules if m.startswith('sipbridge.sip.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "sipbridge.sip.trunk_state" in out.stdout
