"""bench/capacity.py --quick end to end, so the capacity benchmark does not rot.

It starts a real worker, the model server, SIPp callers and tcpdump; 4 concurrent calls for
10 s, then 4 short calls at 2 calls/s. Figures are not judged (the machine is shared); what is
checked is that every part of the measurement produced data about every call.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_capacity_run_measures_every_call_and_reports_json(tmp_path):
    """--quick answers all 4 calls, measures their RTP, CPU, RSS, PSS and underruns, and runs a setup rate."""
    out = tmp_path / "capacity.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "capacity.py"), "--quick",
                           "--json-out", str(out)], capture_output=True, text=True, timeout=240,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == result
    (step,) = result["steps"]
    assert step["calls"] == 4 and step["workers"] == 1
    assert step["answered"] == 4 and step["failed"] == 0, step
    rtp = step["rtp_out_interval"]
    assert rtp["streams"] == 4 and rtp["intervals"] >= 4 * 400, rtp   # ~10 s of 20 ms packets each
    assert 18.0 <= rtp["p50_ms"] <= 22.0, rtp
    assert step["underruns"]["calls_reported"] == 4
    assert step["barge_ins"] >= 4, "each caller's second utterance interrupts the first answer"
    assert step["cpu_pct_per_call"] > 0 and step["rss_mb_per_call"] > 0
    # smaps_rollup: PSS (shared pages split among the processes mapping them) <= RSS
    assert 0 < step["pss_mb_per_call"] <= step["rss_mb_per_call"], step
    assert 0 < step["pss_mb_per_worker"] <= step["rss_mb_per_worker"], step
    assert step["native_port"] is not None, "the default port is the native one"
    (rate,) = result["rates"]
    assert rate["calls"] == 4 and rate["answered"] == 4 and rate["failed"] == 0, rate
    assert result["max_rate_cps"] == 2.0
    assert result["max_sustained_calls"] in (0, 4)
