"""``sipbridge call URI [--say FILE.wav] [--record heard.wav] [--hold-s S] [--json]``.

Places one call, speaks the WAV, keeps what the agent says, hangs up ``--hold-s`` seconds after
the WAV ends, and prints the summary (text, or one JSON object with ``--json``). Ctrl-C hangs
up at once and still prints what was heard. Exit codes: 0 answered, 1 not answered (the SIP
status is printed, or why the call could not be placed), 2 a WAV that cannot be said.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import DEFAULT_SAY

EXIT_NOT_ANSWERED = 1
EXIT_BAD_INPUT = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``call`` subcommand's options."""
    p.add_argument("uri", help="whom to call, e.g. sip:bot@127.0.0.1:5060")
    p.add_argument("--say", default=str(DEFAULT_SAY),
                   help="16-bit PCM WAV (8, 16 or 24 kHz) to speak (default: two short "
                        "sentences shipped with sipbridge, sipbridge/caller/hello.wav)")
    p.add_argument("--record", metavar="WAV", help="save what the agent said (8 kHz mono)")
    p.add_argument("--hold-s", type=float, default=4.0,
                   help="seconds to stay on the line after the WAV ends (default 4)")
    p.add_argument("--answer-timeout-s", type=float, default=30.0,
                   help="give up if not answered within this many seconds (default 30)")
    p.add_argument("--bind", default="127.0.0.1",
                   help="local address[:port] for SIP and RTP (default 127.0.0.1, any port)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--verbose", "-v", action="store_true", help="pjsip's log on stderr")


def run(args: argparse.Namespace) -> int:
    """Place the call and print what happened; the process's exit code."""
    from .analysis import analyse
    from .audio import WavError, frames, read_wav, write_wav
    from .summary import Outcome, as_dict, as_text

    if args.hold_s < 0 or args.answer_timeout_s <= 0:
        print("sipbridge call: --hold-s must be >= 0 and --answer-timeout-s > 0", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .pjcall import RATE, CallError, place_call
    try:
        say = read_wav(args.say, RATE)
    except WavError as exc:
        print(f"sipbridge call: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        res = place_call(args.uri, frames(say, RATE), args.hold_s, bind=args.bind,
                         answer_timeout_s=args.answer_timeout_s,
                         pj_log_level=4 if args.verbose else 0)
    except CallError as exc:
        print(f"sipbridge call: {exc}", file=sys.stderr)
        return EXIT_NOT_ANSWERED
    outcome = Outcome(args.uri, res.answered, res.status, res.reason, res.setup_ms, res.hung_up_by)
    report = None
    if res.answered:
        report = analyse(res.sent, res.received, RATE, origin_ms=res.answer_ms)
        if args.record:
            write_wav(args.record, res.received, RATE)
    summary = as_dict(outcome, report, args.record if res.answered else None)
    print(json.dumps(summary) if args.json else as_text(summary), flush=True)
    return 0 if res.answered else EXIT_NOT_ANSWERED
