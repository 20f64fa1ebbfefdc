"""``sipbridge kamailio-config``: the front's files, for users who run Kamailio themselves.

Without ``--out`` it prints ``kamailio.cfg`` followed by the dispatcher list as a comment block
(to save as ``CONF_DIR/dispatcher.list``); with ``--out DIR`` it writes every file into DIR.
The cell's workers are then started with ``sipbridge run`` and ``cell.front: none``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .kamailio_cfg import front_spec, render


def kamailio_config(cfg, conf_dir: str, out: str | None, stream=None) -> int:
    stream = stream or sys.stdout
    files = render(front_spec(cfg, conf_dir))
    if out:
        root = Path(out)
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if name.startswith("db/"):
                path.chmod(0o600)  # trunk passwords
            print(f"wrote {path}", file=stream)
        return 0
    stream.write(files["kamailio.cfg"])
    stream.write(f"\n# ---- save as {conf_dir}/dispatcher.list ----\n")
    for line in files["dispatcher.list"].splitlines():
        stream.write(f"# {line}\n")
    if "db/uacreg" in files:
        stream.write(f"# ---- trunks: run with --out DIR to write {conf_dir}/db/ (uac_reg records,"
                     " with passwords) ----\n")
    return 0
