"""One barge-in call to the local Gemini Live server, measured on the wire (tests/integration/
test_gemini.py and ``bench/barge_in.py --provider gemini``).

The caller (:class:`~tests.support.rtp_peer.RtpPeer`, SIPp signalling) says ~4 s; the server
echoes it back in real time (so the model is still generating when the caller interrupts); the
caller speaks over the answer ``barge_after_s`` after it started. Measured as
:mod:`tests.support.barge` does for OpenAI: ``onset_to_silence_ms`` (the interruption's onset, the
first 60 ms over -40 dBFS, -> the first agent packet after which the agent stays silent until the
interruption ends), ``onset_to_stop_ms`` (-> the server receiving the stop signal: the
``activityStart`` with the bridge's turns, its own ``interrupted`` with Gemini's), leaked packets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import audio
from .bridge import Bridge
from .gemini_server import GeminiServer
from .rtp_peer import ExternalMediaCall, RtpPeer
from .waiting import poll

KEY = "gm-test-key"
SILENT_DBFS = -55.0
LOUD_DBFS = -45.0
FIRST = ["tt-weasels", "hello-world", "vm-goodbye", "activated"]
# between FIRST's prompts: short enough that it is one turn at both media rates (with 300 ms,
# Silero's 8 kHz model hears "goodbye"'s soft ending as silence and the 500 ms end of turn
# fired before "activated" in some runs: that word then barged in on the answer)
FIRST_GAP_MS = 150


@dataclass
class GeminiBarge:
    onset_s: float | None = None
    quiet_from: float = 0.0
    onset_to_silence_ms: float | None = None
    onset_to_stop_ms: float | None = None
    leaked_packets: int = 0
    stop_signals: list[dict] = field(default_factory=list)   # activityStart records after the onset
    interrupted: list[dict] = field(default_factory=list)    # the server's interrupted records
    refusals: list[str] = field(default_factory=list)
    bridge_log: list[dict] = field(default_factory=list)
    setups: list[dict] = field(default_factory=list)
    realtime_inputs: list[dict] = field(default_factory=list)


def gemini_extra(server: GeminiServer, turns: dict | None = None, more: dict | None = None) -> dict:
    """The bridge's config for provider gemini against ``server`` (key in $GEMINI_API_KEY)."""
    extra = {"realtime": {"provider": "gemini", "url": server.url, "api_key_env": None}}
    if turns:
        extra["turn_detection"] = dict(turns)
    for section, values in (more or {}).items():
        extra.setdefault(section, {}).update(values)
    return extra


def _wait(probe, timeout: float):
    return poll(probe, timeout, every=0.02)


def run_gemini_call(tmp_path: Path, *, barge_after_s: float = 1.0, interrupt_prompt: str = "tt-somethingwrong",
                    turns: dict | None = None, bridge_extra: dict | None = None) -> GeminiBarge:
    tmp_path.mkdir(parents=True, exist_ok=True)
    first = audio.make_utterance(FIRST, FIRST_GAP_MS).pcm
    second = audio.trim_silence(audio.load_wav(audio.asterisk_prompt(interrupt_prompt)))
    res = GeminiBarge()
    with GeminiServer(tmp_path, KEY, pace=1.0) as server, \
            Bridge(tmp_path, None, extra=gemini_extra(server, turns, bridge_extra),
                   env={"GEMINI_API_KEY": KEY}) as bridge, RtpPeer() as peer:
        call = ExternalMediaCall(bridge.target, peer, hold_ms=0, timeout=40,
                                 trace_dir=tmp_path / "sipp").start()
        call.connect_peer()
        peer.play(first, at_s=0.5)
        said_end = peer.t0 + 0.5 + len(first) / 8000
        agent = _wait(lambda: peer.first_time(LOUD_DBFS, after=said_end), 10.0)
        assert agent is not None, "the agent never answered:\n" + bridge.output()[-3000:]
        at_s = agent - peer.t0 + barge_after_s
        peer.play(second, at_s=at_s)
        res.quiet_from = quiet_from = peer.t0 + at_s + len(second) / 8000
        peer.sleep_until(quiet_from - peer.t0 + 0.5)
        res.onset_s = onset = peer.first_time(-40.0, after=peer.t0 + at_s - 0.005, direction="tx",
                                              component="source", span_ms=60)
        bridge.stop()
        call.wait()
        res.bridge_log = bridge.logs()
        res.refusals = server.refusals()
        res.setups = server.messages("setup")
        res.realtime_inputs = server.timed("realtimeInput")
        res.interrupted = server.sent("interrupted")
    if onset is None:
        return res
    res.stop_signals = [r for r in res.realtime_inputs if "activityStart" in r["msg"]["realtimeInput"]
                        and r["_t"] > onset]
    stops = [r["_t"] for r in res.stop_signals[:1] + res.interrupted[:1] if r["_t"] > onset]
    if stops:
        res.onset_to_stop_ms = (min(stops) - onset) * 1000
    rx = peer.rx_audio()
    window = [p for p in rx if onset <= p.arrival <= quiet_from]
    for i, p in enumerate(window):
        if all(q.level < SILENT_DBFS for q in window[i:]):
            res.onset_to_silence_ms = (p.arrival - onset) * 1000
            res.leaked_packets = sum(1 for q in rx if p.arrival < q.arrival <= quiet_from and q.level > LOUD_DBFS)
            break
    return res
