"""A SIP port already in use is reported in one line naming the address, exit code 1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def test_a_taken_sip_port_gives_a_clear_error_and_exit_1(tmp_path):
    """With the UDP port taken, `sipbridge run` exits 1 saying which address it could not listen on."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        # the RTP ports under the ephemeral range the taken port comes from: at the default
        # 40000 a port just under it puts the cell's worker SIP ports in the RTP range, which
        # is a config error (exit 2) before any socket is tried
        env = {**os.environ, "SIPBRIDGE_SIP__PORT": str(port), "SIPBRIDGE_LOG__FORMAT": "json",
               "SIPBRIDGE_SIP__RTP_PORT": "20000",
               "SIPBRIDGE_RECORDS__PATH": str(tmp_path / "records.db")}  # not in the repo
        proc = subprocess.run([sys.executable, "-m", "sipbridge", "run"], env=env,
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"sipbridge: cannot listen for SIP over UDP on 127.0.0.1:{port}: " \
                   "Address already in use", proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
