"""bench/floor_worker.py, the capacity benchmark's floor: it answers a call and loops the caller's
audio back (natively in pjmedia, or through the Python frame callbacks), logs what the capacity
harness reads, and exits 0 on SIGTERM.

The caller is an RtpPeer behind SIPp (``uac_external_media.xml``) that plays a 1 kHz tone; the
assertions read what came back to it and the worker's JSON log lines.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import audio
from tests.support.bridge import Bridge
from tests.support.rtp_peer import ExternalMediaCall, RtpPeer

ROOT = Path(__file__).resolve().parents[2]
TONE_HZ = 1000.0


@pytest.mark.parametrize("media", ["native", "python", "cport"])
def test_floor_worker_loops_the_callers_audio_back(tmp_path, media):
    """A 1 kHz tone from the caller comes back as a 1 kHz tone; the log has ready,
    call_answered and session_closed (underruns 0), and SIGTERM ends the worker with 0."""
    command = [sys.executable, str(ROOT / "bench" / "floor_worker.py"), "--media", media]
    with Bridge(tmp_path, None, command=command) as worker:
        with RtpPeer() as peer, ExternalMediaCall(worker.target, peer, hold_ms=2500) as call:
            call.connect_peer(10)
            start = peer.elapsed() + 0.3
            peer.play(audio.sine(TONE_HZ, 1200, -12.0), at_s=start)
            res = call.wait()
        assert res.ok, res.describe()
        answered = worker.wait_log("call_answered", 5)
        closed = worker.wait_log("session_closed", 5, call_id=answered["call_id"])
        assert closed["underruns"] == 0
        assert worker.stop() == 0, worker.output()[-3000:]
    assert worker.logs("ready")[0]["media"] == media
    assert worker.logs("stopped")

    onset = peer.first_time(-30.0, after=peer.t0 + start)
    assert onset is not None, peer.stats()
    assert onset - (peer.t0 + start) < 0.3, "the tone came back late"
    rx = peer.received_pcm().astype(np.float64)
    loud = rx[np.abs(rx) > 0.2 * np.abs(rx).max()]
    assert loud.size > 4000, "less than half a second of the tone came back"
    spectrum = np.abs(np.fft.rfft(rx))
    peak_hz = np.fft.rfftfreq(rx.size, 1 / audio.RATE)[int(np.argmax(spectrum))]
    assert abs(peak_hz - TONE_HZ) < 20, peak_hz
