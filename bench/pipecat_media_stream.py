"""``realtime.provider: media_stream`` against a real Pipecat pipeline (prints one JSON object).

    python -m venv /tmp/pipecat && /tmp/pipecat/bin/pip install "pipecat-ai[websocket]" uvicorn
    .venv/bin/python bench/pipecat_media_stream.py --pipecat-python /tmp/pipecat/bin/python [--calls 3]

Pipecat is not a test dependency: ``pipecat-ai[websocket]`` 1.14 pulls numba/llvmlite, Pillow,
the openai SDK and protobuf<7 (a 529 MB virtualenv against the project's 251 MB), so this check
runs from a separate Python. Each call: ``sipbridge run`` with ``provider: media_stream`` toward
bench/pipecat_echo_bot.py (FastAPI WebSocket transport, ``TwilioFrameSerializer``, Silero VAD,
an echo of the caller's utterance), SIPp signalling and an RtpPeer caller that says a sentence
(tt-weasels), hears it back, and 1 s into that answer says hello-world over it. Reported:

* ``echo_correlation``: 20 ms envelope correlation of what came back with the sentence said
  (best over the first 500 ms of the sentence: Pipecat's VAD starts recording late);
* ``onset_to_silence_ms``: the interruption's onset -> the first packet after which the line
  stays silent until the interruption ends (sipbridge's own pause, before Pipecat's clear);
* ``onset_to_clear_ms``: the onset -> Pipecat's interruption (its ``clear``), and whether the
  bridge's cancel path ran from it (``barge_in`` source ``provider_clear``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import audio  # noqa: E402
from tests.support.bridge import Bridge  # noqa: E402
from tests.support.ports import free_tcp_port  # noqa: E402
from tests.support.rtp_peer import ExternalMediaCall, RtpPeer  # noqa: E402

BOT = Path(__file__).resolve().parent / "pipecat_echo_bot.py"


def _env(x: np.ndarray) -> np.ndarray:
    n = len(x) // 160
    return np.sqrt(np.mean(x[:n * 160].astype(np.float64).reshape(n, 160) ** 2, axis=1))


def one_call(python: str, tmp: Path) -> dict:
    port = free_tcp_port()
    log = tmp / f"bot-{port}.jsonl"
    bot = subprocess.Popen([python, str(BOT), str(port), str(log)], stdout=open(tmp / f"bot-{port}.out", "w"),
                           stderr=subprocess.STDOUT)
    try:
        for _ in range(300):   # the bot listening
            if log.exists() or subprocess.run(["ss", "-ltn", f"sport = :{port}"], capture_output=True,
                                              text=True).stdout.count("LISTEN"):
                break
            time.sleep(0.1)
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
                raise RuntimeError("the bot never answered:\n" + bridge.output()[-3000:])
            barge = answer - peer.t0 + 1.0
            peer.play(second, at_s=barge)
            onset = peer.t0 + barge
            peer.sleep_until(barge + 5.0)
            res = call.wait()
            logs = bridge.logs()
        rx = [p for p in peer.rx if p.pcm is not None]
        heard = _env(np.concatenate([p.pcm for p in rx if answer - 0.02 <= p.arrival < onset]))
        said_env = _env(first)
        corr = max(float(np.corrcoef(said_env[k:k + len(heard) - 2], heard[:len(heard) - 2])[0, 1])
                   for k in range(0, 25) if k + len(heard) - 2 <= len(said_env))
        over = [p for p in rx if onset <= p.arrival < onset + len(second) / 8000]
        stop = next((p for i, p in enumerate(over) if all(q.level < -55 for q in over[i:])), None)
        notes = [json.loads(line) for line in log.read_text().splitlines()]
        inter = [n["t"] for n in notes if n["event"] == "interrupting"]
        onset_wall = onset - peer.t0 + peer.t0_wall
        barge_ins = [r for r in logs if r.get("event") == "barge_in"]
        return {"sipp": res.final_code, "answer_after_ms": round((answer - end) * 1000),
                "echo_correlation": round(corr, 3),
                "onset_to_silence_ms": None if stop is None else round((stop.arrival - onset) * 1000),
                "onset_to_clear_ms": round((inter[0] - onset_wall) * 1000) if inter else None,
                "barge_in": [(r.get("source"), r.get("paused_by")) for r in barge_ins],
                "start_parameters": next((n["body"] for n in notes if n["event"] == "parsed"), None)}
    finally:
        bot.terminate()
        try:
            bot.wait(5)
        except subprocess.TimeoutExpired:
            bot.kill()
            bot.wait(5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipecat-python", required=True, help="a Python with pipecat-ai[websocket] and uvicorn")
    ap.add_argument("--calls", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipecat-"))
    calls = [one_call(args.pipecat_python, tmp) for _ in range(args.calls)]
    print(json.dumps({"calls": calls}, indent=1))
    ok = all(c["sipp"] == 200 and c["echo_correlation"] > 0.8 and c["onset_to_silence_ms"] is not None
             and ("provider_clear" in [s for s, _ in c["barge_in"]]) for c in calls)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
