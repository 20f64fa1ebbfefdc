"""Every path outside the repository that the tests and benches read, in one place.

Each comes from a Debian package that ``./bootstrap --test`` installs; the guard test
(tests/unit/test_system_paths.py) asks ``dpkg -S`` who owns each one and fails, naming the
path, when no package of bootstrap's list (or one they depend on) does. So a test that starts
reading a new file or tool from the system must name it here, or the guard fails.

Directories are resolved from what the package installs (``dpkg -L``), not from a link another
package may or may not create: ``asterisk-core-sounds-en-wav`` puts its prompts under
``en_US_f_Allison/``; the ``en`` link comes only with ``asterisk-core-sounds-en``.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

from sipbridge.kamailio import kamailio_binary, module_dir

PROMPT_PACKAGE = "asterisk-core-sounds-en-wav"
PROMPT_PROBE = "hello-world.wav"
PROMPTS_FALLBACK = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
MOH_DIR = Path("/usr/share/asterisk/moh")
SIPP_SHARE = Path("/usr/share/sip-tester")
BARESIP_MODULES = Path("/usr/lib/baresip/modules")
BINARIES = ("sipp", "baresip", "kamailio", "tcpdump", "sox", "espeak-ng")


@functools.lru_cache(maxsize=None)
def prompts_dir() -> Path:
    """The directory of Asterisk's English prompts, where the package put ``hello-world.wav``."""
    try:
        listing = subprocess.run(["dpkg", "-L", PROMPT_PACKAGE], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        listing = ""
    for line in listing.splitlines():
        if line.endswith("/" + PROMPT_PROBE):
            return Path(line).parent
    return PROMPTS_FALLBACK  # not a dpkg system: the path the package uses


def binary(name: str) -> str | None:
    """Where ``name`` is on PATH (Kamailio also from sbin), or None."""
    return kamailio_binary() if name == "kamailio" else shutil.which(name)


def read_paths() -> dict[str, Path | None]:
    """Each system path the suite reads, by what it is (None: not found on this machine)."""
    out: dict[str, Path | None] = {
        "asterisk prompts": prompts_dir() / PROMPT_PROBE,
        "music on hold": MOH_DIR / "macroform-cold_day.wav",
        "sipp g711a.pcap": SIPP_SHARE / "g711a.pcap",
        "sipp dtmf pcap": SIPP_SHARE / "dtmf_2833_pound.pcap",
        "baresip g711 module": BARESIP_MODULES / "g711.so",
        "baresip aufile module": BARESIP_MODULES / "aufile.so",
        "baresip sndfile module": BARESIP_MODULES / "sndfile.so",
    }
    try:
        out["kamailio modules"] = Path(module_dir()) / "tm.so"
    except FileNotFoundError:
        out["kamailio modules"] = None
    for name in BINARIES:
        found = binary(name)
        out[f"binary {name}"] = Path(found).resolve() if found else None
    return out
