"""MediaFrame fast paths, checked in a subprocess (pjsua2 is never imported into pytest itself)."""

import json
import subprocess
import sys

PROBE = r"""
import json, pjsua2 as pj
from sipbridge.media import frames
data = bytes(range(256)) * 2 + bytes(range(128))
out = {"fast_read": frames.FAST_PATH, "fast_write": frames.FAST_WRITE, "cases": []}
for payload in (data, data[:320], b"", data):
    f = pj.MediaFrame()
    frames.write_frame(f, payload)
    out["cases"].append([bytes(f.buf) == payload, f.size == len(payload),
                         f.type == pj.PJMEDIA_FRAME_TYPE_AUDIO, frames.read_frame(f) == payload])
print(json.dumps(out))
"""


def test_write_frame_fills_the_frame_exactly_and_read_frame_reads_it_back():
    """write_frame (fast path) leaves exactly the payload, its size and the audio type; read_frame returns it."""
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["fast_read"] and out["fast_write"], "the fast paths did not check out on this pjsua2"
    assert out["cases"] == [[True, True, True, True]] * 4
