"""One real call through ``realtime.provider: media_stream`` to a real Pipecat bot
(tests/support/pipecat_echo_bot.py, run by ``.venv-pipecat/bin/python``), measured on the wire.

``sipbridge run`` toward the bot (FastAPI WebSocket transport, ``TwilioFrameSerializer``, Silero
VAD, an echo of the caller's utterance), SIPp signalling and an RtpPeer caller that says a sentence
(tt-weasels), hears it back, and 1 s into that answer says hello-world over it. Shared by
tests/integration/test_pipecat.py (asserts) and bench/pipecat_media_stream.py (prints).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np

from . import audio
from .bridge import Bridge
from .ports import free_tcp_port
from .rtp_peer import ExternalMediaCall, RtpPeer

BOT = Path(__file__).resolve().parent / "pipecat_echo_bot.py"
VENV_PYTHON = Path(__file__).resolve().parents[2] / ".venv-pipecat" / "bin" / "python"
SILENT = -55.0


def envelope(x: np.ndarray) -> np.ndarray:
    """RMS of each 20 ms (160 samples at 8 kHz)."""
    n = len(x) // 160
    return np.sqrt(np.mean(x[:n * 160].astype(np.float64).reshape(n, 160) ** 2, axis=1))


def _wait_listening(port: int, bot: subprocess.Popen, out: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bot.poll() is not None:
            raise RuntimeError(f"the Pipecat bot exited ({bot.returncode}):\n{out.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the Pipecat bot did not listen within {timeout} s:\n{out.read_text()[-3000:]}")


def hang_up(bridge: Bridge) -> None:
    """The bridge hangs up every call it has (``POST /v1/calls/{uid}/hangup``): what is measured is
    over, so the test need not sit out the rest of SIPp's hold."""
    with urllib.request.urlopen(bridge.api_url + "/v1/calls", timeout=10) as r:
        uids = [c["uid"] for c in json.loads(r.read())["calls"]]
    for uid in uids:
        req = urllib.request.Request(f"{bridge.api_url}/v1/calls/{uid}/hangup", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 202, r.status


def one_call(python: str, tmp: Path) -> dict:
    """Runs the call; returns what was measured (see bench/pipecat_media_stream.py for the keys)
    plus ``clear_to_silent``: after Pipecat's ``clear`` reached the bridge, every packet until
    the interruption ended was below -55 dBFS."""
    port = free_tcp_port()
    log, out = tmp / f"bot-{port}.jsonl", tmp / f"bot-{port}.out"
    bot = subprocess.Popen([python, str(BOT), str(port), str(log)], stdout=open(out, "w"),
                           stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, bot, out)
        cfg = {"realtime": {"provider": "media_stream", "url": f"ws://127.0.0.1:{port}/bot",
                            "audio_format": "g711_ulaw", "append_ms": 20, "api_key_env": None}}
        first = audio.trim_silence(audio.load_wav(audio.asterisk_prompt("tt-weasels")))
        second = audio.trim_silence(audio.load_wav(audio.asterisk_prompt("hello-world")))
        with Bridge(tmp, None, extra=cfg) as bridge, RtpPeer() as peer:
            call = ExternalMediaCall(bridge.target, peer, hold_ms=16000, timeout=40,
                                     trace_dir=tmp / f"sipp-{port}").start()
            call.connect_peer()
            said = peer.elapsed() + 0.5
            peer.play(first, at_s=said)
            end = peer.t0 + said + len(first) / 8000
            answer = None
            for _ in range(800):
                answer = peer.first_time(-40, after=end)
                if answer:
                    break
                time.sleep(0.01)
            if answer is None:
                raise RuntimeError("the bot never answered:\n" + bridge.output()[-3000:]
                                   + "\nbot:\n" + out.read_text()[-2000:])
            barge = answer - peer.t0 + 1.0
            peer.play(second, at_s=barge)
            onset = peer.t0 + barge
            peer.sleep_until(barge + 5.0)
            hang_up(bridge)   # hold_ms bounds the call if the bot is slow; usually over long before
            res = call.wait()
            logs = bridge.logs()
        rx = [p for p in peer.rx if p.pcm is not None]
        heard = envelope(np.concatenate([p.pcm for p in rx if answer - 0.02 <= p.arrival < onset]))
        said_env = envelope(first)
        corr = max(float(np.corrcoef(said_env[k:k + len(heard) - 2], heard[:len(heard) - 2])[0, 1])
                   for k in range(0, 25) if k + len(heard) - 2 <= len(said_env))
        over_end = onset + len(second) / 8000
        over = [p for p in rx if onset <= p.arrival < over_end]
        stop = next((p for i, p in enumerate(over) if all(q.level < SILENT for q in over[i:])), None)
        notes = [json.loads(line) for line in log.read_text().splitlines()]
        inter = [n["t"] for n in notes if n["event"] == "interrupting"]
        onset_wall = onset - peer.t0 + peer.t0_wall
        barge_ins = [r for r in logs if r.get("event") == "barge_in"]
        clear_at = None if not inter else inter[0] - peer.t0_wall + peer.t0   # on the peer's clock
        after_clear = [p for p in rx if clear_at is not None and clear_at + 0.04 <= p.arrival < over_end]
        return {"sipp": res.final_code, "answer_after_ms": round((answer - end) * 1000),
                "echo_correlation": round(corr, 3),
                "onset_to_silence_ms": None if stop is None else round((stop.arrival - onset) * 1000),
                "onset_to_clear_ms": round((inter[0] - onset_wall) * 1000) if inter else None,
                "clear_to_silent": bool(after_clear) and all(p.level < SILENT for p in after_clear),
                "barge_in": [(r.get("source"), r.get("paused_by")) for r in barge_ins],
                "start_parameters": next((n["body"] for n in notes if n["event"] == "parsed"), None)}
    finally:
        bot.terminate()
        try:
            bot.wait(5)
        except subprocess.TimeoutExpired:
            bot.kill()
            bot.wait(5)
