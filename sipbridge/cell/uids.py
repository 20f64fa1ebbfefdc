"""A call's bridge id (uid), and which worker of a cell holds it: pure, no I/O.

A single process names its calls ``c_<16 hex>``. A cell's worker ``i`` names them
``c_<i>_<16 hex>``, so the supervisor's API sends a request about a call straight to the one
worker that holds it, with no lookup and no fan-out, and the answer stays right for a call
that has ended (its outbound progress, its record). Both forms stay valid everywhere a uid is
accepted; :func:`worker_of` is None for a single process's uid.
"""

from __future__ import annotations

import re
import secrets

_CELL_UID = re.compile(r"c_(\d{1,4})_[0-9a-f]{16}")


def new_uid(worker_index: int | None = None, token_hex=secrets.token_hex) -> str:
    """A fresh uid; with ``worker_index`` (a cell's worker) it names that worker."""
    if worker_index is None:
        return "c_" + token_hex(8)
    return f"c_{int(worker_index)}_{token_hex(8)}"


def worker_of(uid: str) -> int | None:
    """The index of the cell worker that made ``uid``; None when it names none."""
    m = _CELL_UID.fullmatch(uid) if isinstance(uid, str) else None
    return int(m.group(1)) if m else None
