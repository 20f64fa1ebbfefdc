"""``realtime.provider: media_stream`` against a real Pipecat pipeline (prints one JSON object).

    ./bootstrap --test    # makes .venv-pipecat (pinned pipecat-ai[websocket], fastapi, uvicorn)
    .venv/bin/python bench/pipecat_media_stream.py [--pipecat-python .venv-pipecat/bin/python] [--calls 3]

Pipecat cannot share ``.venv``: ``pipecat-ai[websocket]`` 1.14 pulls numba/llvmlite, Pillow,
the openai SDK and protobuf<7 (a 529 MB virtualenv against the project's 251 MB), so the bot
runs from a separate Python (tests/integration/test_pipecat.py asserts the same call). Each
call (tests/support/pipecat_call.py): ``sipbridge run`` with ``provider: media_stream`` toward
tests/support/pipecat_echo_bot.py (FastAPI WebSocket transport, ``TwilioFrameSerializer``,
Silero VAD, an echo of the caller's utterance), SIPp signalling and an RtpPeer caller that says a sentence
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
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.pipecat_call import VENV_PYTHON, one_call  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipecat-python", default=str(VENV_PYTHON),
                    help="a Python with pipecat-ai[websocket] and uvicorn (default: .venv-pipecat's)")
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
