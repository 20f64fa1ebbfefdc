"""Tests for sipp-scenarios/make_pcap.py and the committed speech pcaps."""

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.support import audio, pcap, rtp, sipp

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "sipp-scenarios" / "make_pcap.py"


def _packets(path):
    dgrams = pcap.read_pcap(path)
    return dgrams, [rtp.parse_rtp(d.payload) for d in dgrams]


def _check_stream(dgrams, pkts, pt):
    assert all(p is not None for p in pkts)
    assert {p.pt for p in pkts} == {pt}
    assert len({p.ssrc for p in pkts}) == 1
    assert all(len(p.payload) == 160 for p in pkts)
    assert all((b.seq - a.seq) & 0xFFFF == 1 for a, b in zip(pkts, pkts[1:]))
    assert all((b.ts - a.ts) & 0xFFFFFFFF == 160 for a, b in zip(pkts, pkts[1:]))
    gaps = np.diff([d.ts for d in dgrams])
    assert np.allclose(gaps, 0.020, atol=1e-6)
    assert pkts[0].marker and not any(p.marker for p in pkts[1:])


def _wav_16k(path, pcm8k):
    pcm = audio.resample(pcm8k, 8000, 16000)
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(16000)
        wf.writeframes(pcm.astype("<i2").tobytes())


@pytest.mark.parametrize("law,pt_args,pt", [("ulaw", [], 0), ("alaw", [], 8), ("ulaw", ["--pt", "96"], 96)])
def test_script_makes_20ms_rtp_pcap_from_16k_wav(tmp_path, law, pt_args, pt):
    """make_pcap.py resamples a 16 kHz WAV to 8 kHz G.711 in 20 ms RTP packets 20 ms apart."""
    tone = np.concatenate([audio.sine(400, 1000, -15), audio.silence(290)])
    wav = tmp_path / "in16k.wav"
    _wav_16k(wav, tone)
    out = tmp_path / "out.pcap"
    cmd = [sys.executable, str(SCRIPT), str(wav), str(out), "--law", law, *pt_args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "65 RTP packets" in proc.stdout  # 1.29 s -> 64.5 packets, padded to 65
    assert pcap.pcap_linktype(out) == pcap.LINKTYPE_ETHERNET
    dgrams, pkts = _packets(out)
    assert len(pkts) == 65
    _check_stream(dgrams, pkts, pt)
    decoded = np.concatenate([audio.g711_decode(p.payload, law) for p in pkts])
    lag, corr = audio.align(tone, decoded, max_lag_ms=10)
    assert abs(lag) <= 2 and corr > 0.95


def test_script_fixed_header_fields(tmp_path):
    """--ssrc/--seq/--ts set the first packet's header fields."""
    wav = audio.write_wav(tmp_path / "a.wav", audio.sine(300, 100))
    out = tmp_path / "o.pcap"
    subprocess.run(
        [sys.executable, str(SCRIPT), str(wav), str(out), "--ssrc", "0x1234", "--seq", "65534", "--ts", "7"],
        check=True,
        capture_output=True,
    )
    _, pkts = _packets(out)
    assert (pkts[0].ssrc, pkts[0].seq, pkts[0].ts) == (0x1234, 65534, 7)
    assert [p.seq for p in pkts] == [65534, 65535, 0, 1, 2]


@pytest.mark.parametrize("name,law,pt", [("pcmu_speech.pcap", "ulaw", 0), ("pcma_speech.pcap", "alaw", 8)])
def test_committed_speech_pcaps(name, law, pt):
    """The committed speech pcaps are small, well-formed and contain the two known speech spans."""
    path = sipp.SCENARIO_DIR / name
    assert path.stat().st_size < 300_000
    dgrams, pkts = _packets(path)
    _check_stream(dgrams, pkts, pt)
    pcm = np.concatenate([audio.g711_decode(p.payload, law) for p in pkts])
    spans = audio.speech_segments(pcm, min_gap_ms=500)
    assert len(spans) == 2
    for (s, e), (ts, te) in zip(spans, [(300, 1570), (2370, 5090)]):
        assert abs(s - ts) <= 20 and abs(e - te) <= 20
    assert sipp.pcap_duration_ms(path) == 20 * len(pkts)


def test_committed_pcap_is_reproducible(tmp_path):
    """Regenerating pcmu_speech.pcap with --demo-speech gives a byte-identical file."""
    out = tmp_path / "again.pcap"
    subprocess.run([sys.executable, str(SCRIPT), "--demo-speech", str(out)], check=True, capture_output=True)
    assert out.read_bytes() == (sipp.SCENARIO_DIR / "pcmu_speech.pcap").read_bytes()


def test_dtmf_pcap_generator(tmp_path):
    """make_dtmf_pcap() writes RFC 4733 events for each digit, ending with 3 end packets."""
    out = tmp_path / "d.pcap"
    n = sipp.make_dtmf_pcap("1#", out, tone_ms=100)
    dgrams, pkts = _packets(out)
    assert n == len(pkts) == 2 * (5 + 2)
    events = [rtp.parse_telephone_event(p.payload) for p in pkts]
    assert [e.digit for e in events] == ["1"] * 7 + ["#"] * 7
    assert [e.end for e in events[:7]] == [False] * 4 + [True] * 3
    assert len({p.ts for p in pkts}) == 2 and pkts[0].marker and pkts[7].marker
