"""One call through the bridge to the strict local Hydra server, measured on the wire by the caller.

Shared by tests/integration/test_hydra.py and ``bench/barge_in.py --provider hydra``. The caller
(:class:`~tests.support.rtp_peer.RtpPeer`, SIPp signals) says "hello world"; Hydra's VAD ends the
turn and it answers with the long reply of :mod:`tests.support.barge` (48 kHz, 1 s ahead of
real time, then real time: the answer is still streaming when the caller interrupts). One
second into the answer the caller either speaks over it (``over="speech"``), plays a 200 ms
noise burst (``over="noise"``: Hydra's VAD starts a turn and discards it), or nothing.

Measured as in tests/support/barge.py: ``onset_to_silence_ms`` (the interruption's speech onset
on the wire -> the first agent packet after which the agent stays silent until the caller is
done), and for Hydra: ``old_audio_after_start`` (loud agent packets arriving more than
``slack_s`` after the server sent its ``speech_started`` and before it created the next response:
audio of the old answer that reached the caller), ``longest_gap_ms`` of the answer (dead air).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import audio
from .barge import LOUD_DBFS, SILENT_DBFS, _wait, reply_pcm
from .bridge import Bridge
from .hydra_server import HydraServer
from .rtp_peer import ExternalMediaCall, RtpPeer

KEY = "hydra-test-key"
HYDRA = {"realtime": {"provider": "hydra"}, "turn_detection": {"type": "server_vad"}}


@dataclass
class HydraCall:
    server: HydraServer
    bridge_log: list[dict]
    agent_start: float | None = None          # perf_counter: the answer's first loud packet
    onset: float | None = None                # the interruption's onset on the wire
    onset_to_silence_ms: float | None = None
    speech_started_t: float | None = None     # the server sent speech_started over the answer
    old_audio_after_start: int = 0
    leaked_packets: int = 0                   # loud agent packets after it went silent, caller talking
    agent_ms_heard: int = 0
    longest_gap_ms: int = 0                   # the longest silence inside the first answer
    rx_loud: list[float] = field(default_factory=list)


def reply48() -> np.ndarray:
    return audio.resample(reply_pcm(), 8000, 48000)


def run(tmp_path: Path, over: str | None = "speech", barge_after_s: float = 1.0, listen_s: float = 3.0,
        slack_s: float = 0.06, bridge_extra: dict | None = None,
        interrupt_prompt: str = "tt-somethingwrong") -> HydraCall:
    tmp_path.mkdir(parents=True, exist_ok=True)
    first = audio.trim_silence(audio.load_wav(audio.asterisk_prompt("hello-world")))
    second = audio.trim_silence(audio.load_wav(audio.asterisk_prompt(interrupt_prompt)))
    extra = {k: {**HYDRA.get(k, {}), **(bridge_extra or {}).get(k, {})} for k in {*HYDRA, *(bridge_extra or {})}}
    with HydraServer(reply48(), key=KEY, lead_s=1.0, pace=1.0) as server, \
            Bridge(tmp_path, server.url, api_key=KEY, extra=extra) as bridge, RtpPeer() as peer:
        call = ExternalMediaCall(bridge.target, peer, hold_ms=0, timeout=40,
                                 trace_dir=tmp_path / "sipp").start()
        call.connect_peer()
        peer.play(first, at_s=0.5)
        said_end = peer.t0 + 0.5 + len(first) / 8000
        agent_start = _wait(lambda: peer.first_time(LOUD_DBFS, after=said_end), 10.0)
        assert agent_start is not None, "the agent never answered:\n" + bridge.output()[-3000:]
        at_s = agent_start - peer.t0 + barge_after_s
        if over == "speech":
            peer.play(second, at_s=at_s)
            quiet_from = peer.t0 + at_s + len(second) / 8000
        elif over == "noise":
            peer.play(audio.noise(200, -10.0, seed=3), at_s=at_s)
            quiet_from = peer.t0 + at_s + 0.2
        else:
            quiet_from = agent_start + 8.0
        end_at = quiet_from + listen_s if over == "speech" else agent_start + len(reply_pcm()) / 8000 + 1.5
        peer.sleep_until(end_at - peer.t0)
        bridge.stop()
        call.wait()
    res = HydraCall(server=server, bridge_log=bridge.logs(), agent_start=agent_start)
    rx = peer.rx_audio()
    res.rx_loud = [p.arrival for p in rx if p.level > LOUD_DBFS]
    res.agent_ms_heard = 20 * len(res.rx_loud)
    starts = [e["_sent_t"] for e in server.of("input_audio_buffer.speech_started") if e["_sent_t"] > agent_start]
    res.speech_started_t = starts[0] if starts else None
    if res.speech_started_t is not None:
        created = [e["_sent_t"] for e in server.of("response.created") if e["_sent_t"] > res.speech_started_t]
        until = created[0] if created else float("inf")
        res.old_audio_after_start = sum(1 for t in res.rx_loud if res.speech_started_t + slack_s < t < until)
    first_answer = [t for t in res.rx_loud if t >= agent_start and (over != "speech" or t < quiet_from)]
    if len(first_answer) > 1:
        res.longest_gap_ms = int(max(np.diff(first_answer)) * 1000)
    if over != "speech":
        return res
    scheduled = peer.t0 + at_s
    res.onset = peer.first_time(-40.0, after=scheduled - 0.005, direction="tx", component="source", span_ms=60)
    first_sound = peer.first_time(-40.0, after=scheduled - 0.005, direction="tx", component="source")
    window = [p for p in rx if first_sound <= p.arrival <= quiet_from]
    for i, p in enumerate(window):
        if all(q.level < SILENT_DBFS for q in window[i:]):
            res.onset_to_silence_ms = (p.arrival - res.onset) * 1000
            res.leaked_packets = sum(1 for q in rx if p.arrival < q.arrival <= quiet_from and q.level > LOUD_DBFS)
            break
    return res
