"""The README's run command, as a newcomer types it, serves a trunk: a cell sized to the machine
(``cell.workers: auto``, Kamailio in front on ``sip.port``) answers 20 simultaneous SIPp calls.

Free ports, the API's port and the records file come through ``SIPBRIDGE_*`` overrides
(tests/support/readme_run.py); everything else is the built-in default.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from sipbridge import config
from tests.integration.test_cell import outcome
from tests.support.readme_run import ReadmeRun
from tests.support.sipp import run_sipp

ROOT = Path(__file__).resolve().parents[2]
CALLS = 20
HOLD_MS = 4000


def readme_run_command() -> list[str]:
    """``./bootstrap && .venv/bin/sipbridge run`` from README.md: the part after ``&&``."""
    m = re.search(r"^(\./bootstrap && \.venv/bin/sipbridge run.*)$",
                  (ROOT / "README.md").read_text(), re.M)
    assert m, "README.md has no ./bootstrap && .venv/bin/sipbridge run line"
    words = shlex.split(m.group(1).split("#")[0])
    return words[words.index("&&") + 1:]


def test_the_readme_run_command_starts_a_cell_that_answers_20_calls_at_once(tmp_path):
    """The default run is a Kamailio-fronted cell of the machine's auto size, ready with every
    worker up within 10 s, and 20 calls placed at once through its one address are all answered (4 at most
    per worker), hung up cleanly, and the cell exits 0 on SIGTERM."""
    expected = config.build({}, environ={}).cell   # the defaults, settled for this machine
    run = ReadmeRun(ROOT, readme_run_command(), api=True, records=tmp_path / "records.db")
    try:
        ready = run.ready
        assert ready["event"] == "cell_ready", run.tail()
        assert ready["front"] == "kamailio" == expected.front
        assert ready["workers"] == expected.workers >= 5, ready   # 5 x 4 calls hold 20
        print(f"cell_ready after {run.ready_after_s:.2f} s (supervisor: {ready['startup_s']} s),"
              f" {ready['workers']} workers")
        # issue 15: the default starts in under 10 s on a 2-core machine (measured 3.7-7.7 s,
        # the higher figures with other jobs on its cores)
        assert run.ready_after_s < 10.0, run.tail()
        res = run_sipp("uac_proxy", f"127.0.0.1:{run.sip_port}", calls=CALLS, rtp_echo=True,
                       hold_ms=HOLD_MS, timeout=60, trace_dir=tmp_path / "sipp",
                       extra_args=["-l", str(CALLS), "-r", "50"])
        ends = outcome(res)
        assert len(ends) == CALLS, res.describe()
        assert all(v == (200, 200) for v in ends.values()), (ends, run.tail())
        by_worker: dict[int, set[str]] = {}
        for r in run.events("media_active"):
            by_worker.setdefault(r["worker"], set()).add(r["call_id"])
        assert sum(map(len, by_worker.values())) == CALLS, by_worker
        assert max(map(len, by_worker.values())) <= 4, by_worker
    finally:
        code = run.stop()
    assert code == 0, run.tail()
    assert run.events("cell_stopped")[-1]["code"] == 0
