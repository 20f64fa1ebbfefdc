"""Compile ``port.c`` into the shared library the native media port loads (``_sbport.so``).

Built by ``./bootstrap`` (``python -m sipbridge.media.native.build``). A worker never compiles:
with ``sip.media_port: native`` (the default) a library that is missing or older than
``port.c`` stops ``sipbridge run`` before anything starts (:func:`require`, a config error on
the key, exit 2). Tests and benches that drive the ports without pjsua build on first use
(:func:`ensure`). The library links against libc only. It is written to a temporary name and
renamed into place, so processes building at the same time never load half a file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "port.c"
LIBRARY = HERE / "_sbport.so"
CFLAGS = ("-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC")


class BuildError(RuntimeError):
    """The C compiler is missing or refused the source."""


def stale(library: Path = LIBRARY, source: Path = SOURCE) -> bool:
    """True when ``library`` is missing or older than ``source``."""
    try:
        return library.stat().st_mtime < source.stat().st_mtime
    except FileNotFoundError:
        return True


def build(library: Path = LIBRARY, source: Path = SOURCE) -> Path:
    """Compile ``source`` to ``library`` (atomically); return its path."""
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise BuildError("no C compiler (gcc) found: install build-essential, or use "
                         "sip.media_port: python")
    fd, tmp = tempfile.mkstemp(prefix=".sbport-", suffix=".so", dir=library.parent)
    os.close(fd)
    try:
        done = subprocess.run([cc, *CFLAGS, "-o", tmp, str(source)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise BuildError(f"{cc} failed on {source.name}: {done.stderr.strip()[:2000]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, library)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return library


def require(library: Path | None = None, source: Path | None = None) -> Path:
    """The library as ``./bootstrap`` built it (default :data:`LIBRARY`); ``BuildError`` (saying
    how to build it, or to use the fallback) when it is missing or older than ``source``."""
    library, source = library or LIBRARY, source or SOURCE
    if not library.exists():
        why = f"{library} is not built"
    elif stale(library, source):
        why = f"{library} is older than {source.name}"
    else:
        return library
    raise BuildError(f"{why}: run ./bootstrap (or .venv/bin/python -m "
                     f"sipbridge.media.native.build), or set sip.media_port: python")


def ensure(library: Path = LIBRARY, source: Path = SOURCE) -> Path:
    """The library, built first if it is missing or stale."""
    return build(library, source) if stale(library, source) else library


def main() -> int:
    try:
        print(f"native media port: {ensure()}")
    except (BuildError, OSError) as exc:
        print(f"native media port not built ({exc}); only sip.media_port: python can run",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
