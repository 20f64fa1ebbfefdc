#!/usr/bin/env python3
"""Turn a WAV file into a G.711 RTP pcap that SIPp's ``play_pcap_audio`` can play.

    python sipp-scenarios/make_pcap.py WAV OUT.pcap [--law ulaw|alaw] [--pt N]
        [--ssrc N] [--seq N] [--ts N] [--ptime MS]

The WAV may have any sample rate, width or channel count; it is mixed to mono
and resampled to 8 kHz.  Output: Ethernet/IPv4/UDP frames, one RTP packet per
20 ms (160 samples; the last packet is padded with silence), consecutive
sequence numbers and timestamps, a single SSRC (random unless given), marker
bit on the first packet, pcap timestamps exactly 20 ms apart.  SIPp rewrites
the addresses/ports when playing and keeps the RTP header as is.

``--demo-speech OUT.pcap`` instead builds the committed demo files from the
Asterisk prompts (speech with known gaps, fixed SSRC/seq/ts), see
``demo_speech()``.  The committed files were made with:

    python sipp-scenarios/make_pcap.py --demo-speech sipp-scenarios/pcmu_speech.pcap
    python sipp-scenarios/make_pcap.py --demo-speech --law alaw sipp-scenarios/pcma_speech.pcap

Their speech spans (ms) are demo_speech().segments == [(300, 1570), (2370, 5090)].

The implementation lives in tests/support/sipp.py (make_audio_pcap) so tests
can generate pcaps on the fly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support import audio  # noqa: E402
from tests.support.sipp import make_audio_pcap  # noqa: E402

# Prompts and gaps of the committed pcmu_speech.pcap / pcma_speech.pcap.
DEMO_PROMPTS = ("hello-world", "tt-weasels")
DEMO_GAPS_MS = (800,)
DEMO_LEAD_MS = 300
DEMO_TAIL_MS = 500
DEMO_SSRC = 0x5B1D6E01


def demo_speech() -> audio.Utterance:
    """The speech used for the committed demo pcaps (300 ms lead, 800 ms gap, 500 ms tail)."""
    return audio.make_utterance(DEMO_PROMPTS, list(DEMO_GAPS_MS), lead_ms=DEMO_LEAD_MS, tail_ms=DEMO_TAIL_MS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wav", nargs="?", help="input WAV (any rate)")
    parser.add_argument("out", help="output pcap")
    parser.add_argument("--law", choices=("ulaw", "alaw"), default="ulaw")
    parser.add_argument("--pt", type=int, default=None, help="RTP payload type (default 0 for ulaw, 8 for alaw)")
    parser.add_argument("--ssrc", type=lambda v: int(v, 0), default=None)
    parser.add_argument("--seq", type=int, default=None, help="first sequence number")
    parser.add_argument("--ts", type=int, default=None, help="first RTP timestamp")
    parser.add_argument("--ptime", type=int, default=20, help="ms of audio per packet (default 20)")
    parser.add_argument("--demo-speech", action="store_true", help="ignore WAV, use the demo Asterisk speech")
    args = parser.parse_args(argv)

    if args.demo_speech:
        source = demo_speech().pcm
        # fixed header fields so regenerating the committed files is byte-identical
        args.ssrc = DEMO_SSRC if args.ssrc is None else args.ssrc
        args.seq = 1000 if args.seq is None else args.seq
        args.ts = 160000 if args.ts is None else args.ts
    elif args.wav:
        source = args.wav
    else:
        parser.error("WAV is required unless --demo-speech is given")
    n = make_audio_pcap(
        source, args.out, law=args.law, pt=args.pt, ssrc=args.ssrc, seq=args.seq, ts=args.ts, ptime_ms=args.ptime
    )
    print(f"wrote {n} RTP packets ({n * args.ptime / 1000:.2f} s) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
