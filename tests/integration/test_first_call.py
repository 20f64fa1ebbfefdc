"""A newcomer's first call, typed as README.md says: the bridge, then ``sipbridge call``.

The commands are read from README.md itself (the ``sipbridge run`` of "Run the bridge" and the
``sipbridge call`` line of "Then call it"), so the README and this test cannot drift. The only
changes are the ones a shared test machine needs: free ports instead of 5060 and the default
RTP range (through ``SIPBRIDGE_SIP__*`` overrides, sized for the default cell: see
tests/support/readme_run.py), no HTTP API and no records file, and the recording written under
the test's directory.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from sipbridge.caller.analysis import segments, window_dbfs
from tests.support.bridge import Bridge, terminate
from tests.support.readme_run import ReadmeRun

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
RATE = 8000


def readme_command(pattern: str) -> list[str]:
    """The README's shell line matching ``pattern`` (a regex), split into words."""
    m = re.search(rf"^({pattern}.*)$", README, re.M)
    assert m, f"README.md has no line matching {pattern!r}"
    return shlex.split(m.group(1).split("#")[0])


def run_command() -> list[str]:
    """``./bootstrap && .venv/bin/sipbridge run``: the part after ``&&`` (bootstrap is done)."""
    words = readme_command(r"\./bootstrap && \.venv/bin/sipbridge run")
    return words[words.index("&&") + 1:]


def call_command(sip_port: int, heard: Path) -> list[str]:
    words = readme_command(r"\.venv/bin/sipbridge call ")
    assert "sip:bot@127.0.0.1:5060" in words and "heard.wav" in words, words
    return [f"sip:bot@127.0.0.1:{sip_port}" if w == "sip:bot@127.0.0.1:5060"
            else str(heard) if w == "heard.wav" else w for w in words]


def wav_pcm(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def ReadmeBridge() -> ReadmeRun:
    """The README's ``sipbridge run`` (the default: a cell sized to the machine, Kamailio in
    front on ``sip.port``) on free loopback ports, no HTTP API, no records file."""
    return ReadmeRun(ROOT, run_command())


def call(words: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPBRIDGE_")}
    return subprocess.run(words, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def figures(stdout: str) -> dict:
    """The numbers of the text summary (see sipbridge/caller/summary.py)."""
    first = re.search(r"^agent's first words: (\d+) ms after the answer$", stdout, re.M)
    turns = re.findall(r"^utterance (\d+): ([\d.]+) s - ([\d.]+) s; reply at ([\d.]+) s, "
                       r"end-of-utterance -> reply (-?\d+) ms(?:; barge-in: agent silent "
                       r"(\d+) ms after the onset)?$", stdout, re.M)
    return {"first_words_ms": int(first.group(1)) if first else None,
            "turns": [{"start_s": float(t[1]), "end_s": float(t[2]), "reply_s": float(t[3]),
                       "eou_to_reply_ms": int(t[4]),
                       "barge_to_silence_ms": int(t[5]) if t[5] else None} for t in turns]}


def contour_match(a: np.ndarray, b: np.ndarray, max_lag: int = 10) -> float:
    """Best correlation of two signals' 10 ms level contours within +-``max_lag`` windows (the
    two level-found onsets may differ by a few windows), counting only their loud parts: above
    -30 dBFS. The bridge may hold back a caller's quiet sounds while the agent is speaking (the
    second sentence starts over the agent), so the echo can lack them. Measured: 0.94-1.0 for
    the echo of the sentence, 0.41 for the other sentence of the same WAV."""
    ea = np.maximum(window_dbfs(a, RATE), -30.0)
    eb = np.maximum(window_dbfs(b, RATE), -30.0)
    n = min(len(ea), len(eb)) - max_lag
    return max(np.corrcoef(ea[max_lag + k:max_lag + k + n - max_lag],
                           eb[max_lag:n])[0, 1] for k in range(-max_lag, max_lag + 1))


def level_db(pcm: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) / 32768)


def test_readme_first_call_is_answered_heard_and_timed(tmp_path):
    """The README's call is answered, the echo is heard in heard.wav, and turn figures are plausible."""
    heard = tmp_path / "heard.wav"
    bridge = ReadmeBridge()
    try:
        res = call(call_command(bridge.sip_port, heard))
    finally:
        bridge_rc = bridge.stop()
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Assertion" not in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert res.stdout.startswith("answered: 200 OK"), res.stdout
    assert bridge_rc == 0

    said_path = ROOT / readme_command(r"\.venv/bin/sipbridge call ")[
        readme_command(r"\.venv/bin/sipbridge call ").index("--say") + 1]
    said = wav_pcm(said_path)
    sentences = segments(said, RATE)
    assert len(sentences) == 2

    got = figures(res.stdout)
    assert len(got["turns"]) == 2, res.stdout
    one, two = got["turns"]
    # the caller's utterances are the WAV's sentences, on the answer's clock (media starts at it)
    for turn, sentence in zip(got["turns"], sentences):
        assert abs(turn["start_s"] * 1000 - sentence.start_ms) <= 60, res.stdout
        assert abs(turn["end_s"] * 1000 - sentence.end_ms) <= 60, res.stdout
    # first words are the reply to the first sentence, 500 ms of end-of-turn silence plus the
    # echo's 100 ms lead-in plus the path after its end
    assert got["first_words_ms"] == round(one["reply_s"] * 1000), res.stdout
    assert 300 <= one["eou_to_reply_ms"] <= 1500, res.stdout
    assert one["barge_to_silence_ms"] is None
    # the second sentence starts while the agent echoes the first: a barge-in, cut at once
    assert two["barge_to_silence_ms"] is not None, res.stdout
    assert 0 < two["barge_to_silence_ms"] <= 600, res.stdout
    # the echo of the second sentence replays the caller's pause since the first answer began
    # (at most the pause between the sentences), then the sentence
    pause_ms = sentences[1].start_ms - sentences[0].end_ms
    assert 300 <= two["eou_to_reply_ms"] <= 1500 + pause_ms, res.stdout

    # heard.wav holds the echo: the second reply is the second sentence, as long, as loud,
    # with the same level contour; the first reply was cut by the barge-in
    pcm = wav_pcm(heard)
    replies = segments(pcm, RATE)
    assert len(replies) == 2, replies
    cut, full = replies
    assert cut.duration_ms < sentences[0].duration_ms - 300
    assert abs(full.duration_ms - sentences[1].duration_ms) <= 250, (full, sentences[1])
    answer_ms = round(one["reply_s"] * 1000) - cut.start_ms  # heard.wav starts at media start
    assert abs(answer_ms) <= 40
    sent = said[int(sentences[1].start_ms) * 8:int(sentences[1].end_ms) * 8]
    back = pcm[int(full.start_ms) * 8:int(full.end_ms) * 8]
    assert abs(level_db(back) - level_db(sent)) <= 4.0, (level_db(back), level_db(sent))
    assert contour_match(sent, back) > 0.85


def test_refused_call_prints_the_sip_status_and_exits_1(tmp_path):
    """A call the bridge refuses (403, caller not in allow_from) prints its status and exits 1."""
    with Bridge(tmp_path, None, extra={"sip": {"allow_from": ["10.0.0.0/8"]},
                                       "api": {"listen": None},
                                       "records": {"path": None}}) as bridge:
        res = call(call_command(bridge.sip_port, tmp_path / "heard.wav"))
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stdout.strip() == "not answered: 403 Forbidden", res.stdout
    assert not (tmp_path / "heard.wav").exists()


@pytest.mark.parametrize("say", ["missing.wav", "README.md"])
def test_unreadable_wav_is_refused_before_dialling(tmp_path, say):
    """A --say file that is no WAV exits 2 with the file named, without placing a call."""
    words = call_command(9, tmp_path / "heard.wav")  # port 9 (discard): never dialled
    words[words.index("--say") + 1] = say
    res = call(words, timeout=30)
    assert res.returncode == 2
    assert f"sipbridge call: {say}: cannot read WAV" in res.stderr
    assert res.stdout == ""


def test_ctrl_c_hangs_up_and_still_reports(tmp_path):
    """Ctrl-C during the call hangs up at once, prints what was heard so far, and exits 0."""
    import signal
    with Bridge(tmp_path, None, extra={"api": {"listen": None}, "records": {"path": None}}) as bridge:
        words = call_command(bridge.sip_port, tmp_path / "heard.wav")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIPBRIDGE_")}
        proc = subprocess.Popen(words, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            bridge.wait_log("call_answered", timeout=20)
            bridge.wait_log("speech_started", timeout=10)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=20)
        finally:
            terminate(proc, 5)
        ended = bridge.wait_log("call_ended", timeout=10)
    assert proc.returncode == 0, out + err
    assert "Traceback" not in err and "Assertion" not in err, err
    assert out.startswith("answered: 200 OK"), out
    assert "hung up by the caller" in out
    duration_s = float(re.search(r"^call: ([\d.]+) s", out, re.M).group(1))
    assert duration_s < 3.0, out   # the WAV and --hold-s would have run 8.7 s
    assert (tmp_path / "heard.wav").exists()
    assert ended


@pytest.mark.parametrize("uri,bind,message", [
    ("notauri", None, "cannot call notauri: Invalid Request URI"),
    ("sip:bot@127.0.0.1:9", "192.0.2.1", "cannot listen for SIP on 192.0.2.1:"),
])
def test_call_that_cannot_be_placed_says_why_and_exits_1(tmp_path, uri, bind, message):
    """A malformed URI or an address that is not ours is one clear line and exit 1, no traceback."""
    words = call_command(9, tmp_path / "heard.wav")
    words[words.index("sip:bot@127.0.0.1:9")] = uri
    if bind:
        words += ["--bind", bind]
    res = call(words, timeout=30)
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.startswith(f"sipbridge call: {message}"), res.stderr
    assert res.stderr.count("\n") == 1 and res.stdout == ""
