"""One barge-in call through ``realtime.provider: media_stream``, measured on the wire, for
``bench/barge_in.py --provider media_stream``.

The bot is the strict Twilio-Media-Streams bot (tests/support/twilio_bot.py). The caller
(RtpPeer, SIPp signals) says hello-world; once that ended the bot sends the long spoken answer of
tests/support/barge.py (~9 s, µ-law in 20 ms ``media`` messages, all at once as bots do); the
caller speaks over it ``barge_after_s`` after it starts, and ``clear_after_s`` after that onset the
bot sends ``clear`` (a Pipecat pipeline takes 430-445 ms, README). Measured as barge.py does:
``onset_to_silence_ms`` (the interruption's onset on the wire, 60 ms above -40 dBFS -> the first
agent packet after which it stays silent until the interruption ends) and ``leaked_packets``
(agent packets above -45 dBFS after that); ``onset_to_clear_ms`` and the bot's ``violations``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import audio
from .barge import LOUD_DBFS, SILENT_DBFS, reply_pcm
from .bridge import Bridge
from .rtp_peer import ExternalMediaCall, RtpPeer
from .twilio_bot import TwilioBot, ulaw
from .waiting import poll


@dataclass
class MediaStreamBarge:
    onset_to_silence_ms: float | None = None
    onset_to_clear_ms: float | None = None
    leaked_packets: int = 0
    violations: list[str] = field(default_factory=list)
    barge_ins: list[dict] = field(default_factory=list)


def _wait(probe, timeout: float):
    return poll(probe, timeout, every=0.01)


def run(tmp_path: Path, *, barge_after_s: float = 1.0, interrupt_prompt: str = "tt-somethingwrong",
        clear_after_s: float = 0.44, bridge_extra: dict | None = None, listen_s: float = 2.0) -> MediaStreamBarge:
    """Place one call; returns what was measured."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    first = audio.trim_silence(audio.load_wav(audio.asterisk_prompt("hello-world")))
    second = audio.trim_silence(audio.load_wav(audio.asterisk_prompt(interrupt_prompt)))
    answer = ulaw(reply_pcm())
    res = MediaStreamBarge()
    with TwilioBot() as bot:
        extra = dict(bridge_extra or {})
        extra["realtime"] = {"provider": "media_stream", "url": bot.url, "audio_format": "g711_ulaw",
                             "append_ms": 20, "api_key_env": None, **extra.get("realtime", {})}
        with Bridge(tmp_path, None, extra=extra) as bridge, RtpPeer() as peer:
            call = ExternalMediaCall(bridge.target, peer, hold_ms=0, timeout=40,
                                     trace_dir=tmp_path / "sipp").start()
            call.connect_peer()
            bot.wait_connected()
            said_at = 0.5
            peer.play(first, at_s=said_at)
            peer.sleep_until(said_at + len(first) / 8000 + 0.3)
            bot.send(("media", answer))
            agent_start = _wait(lambda: peer.first_time(LOUD_DBFS, after=peer.t0 + said_at + len(first) / 8000),
                                10.0)
            assert agent_start is not None, "the agent never answered:\n" + bridge.output()[-3000:]
            at_s = agent_start - peer.t0 + barge_after_s
            peer.play(second, at_s=at_s)
            scheduled = peer.t0 + at_s
            quiet_from = scheduled + len(second) / 8000
            onset = _wait(lambda: peer.first_time(-40.0, after=scheduled - 0.005, direction="tx",
                                                  component="source", span_ms=60), 3.0)
            assert onset is not None, "the interruption never left the caller"
            peer.sleep_until(max(onset - peer.t0 + clear_after_s, peer.elapsed()))
            cleared = bot.send(("clear",))
            peer.sleep_until(quiet_from - peer.t0 + listen_s)
            bridge.stop()
            call.wait()
            res.barge_ins = bridge.logs("barge_in")
        res.violations = list(bot.violations)
    rx = peer.rx_audio()
    first_sound = peer.first_time(-40.0, after=scheduled - 0.005, direction="tx", component="source") or onset
    res.onset_to_clear_ms = (cleared - onset) * 1000
    window = [p for p in rx if first_sound <= p.arrival <= quiet_from]
    stop = next((p for i, p in enumerate(window) if all(q.level < SILENT_DBFS for q in window[i:])), None)
    if stop is not None:
        res.onset_to_silence_ms = (stop.arrival - onset) * 1000
        res.leaked_packets = sum(1 for p in rx if stop.arrival < p.arrival <= quiet_from and p.level > LOUD_DBFS)
    return res
