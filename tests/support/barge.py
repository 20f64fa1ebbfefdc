"""One barge-in call, measured on the wire: shared by tests/integration and bench/barge_in.py.

The caller is an :class:`~tests.support.rtp_peer.RtpPeer` (SIPp signals); the model server is
the embedded model run as a recording subprocess, answering every turn with a long spoken
reply streamed faster than real time, as real providers do. The caller says one sentence,
waits for the agent to talk, then (optionally) speaks over it, sends a DTMF digit, and/or
echoes the agent back like a line hybrid. Everything is measured where a caller would:

* ``onset_to_silence_ms``: the caller's interrupting speech starts on the wire (the first
  sample louder than -40 dBFS that opens 60 ms louder than that: a breath or a click before
  the first word is not speech) -> the first agent packet after which the agent stays silent;
* ``first_sound_to_silence_ms``: the same from the first 20 ms louder than -40 dBFS, breath
  included;
* ``loud_onset_to_silence_ms``: the same from the first 20 ms louder than -30 dBFS (prompts
  often open with 100-150 ms of breath at -40..-50 dBFS, under the bridge's -35 dBFS trigger);
* ``onset_to_cancel_ms``: the same onset -> ``response.cancel`` received by the model server
  (or the truncate, when the response had already been fully streamed);
* ``truncate_error_ms``: ``audio_end_ms`` of the truncate minus how far into the answer the
  caller got: the last 400 ms of agent audio it received before the agent went silent are
  located in the answer itself by cross-correlation (a pause before the cancel, or the
  answer's own silences, cannot fool this);
* ``leaked_packets``: agent packets louder than -45 dBFS after that silence began, before the
  caller's interruption has ended (when the next answer could legitimately start).

Clocks: the peer's arrival times and the model server's ``_recv_t`` are both CLOCK_MONOTONIC
(perf_counter / monotonic on Linux), so they compare across processes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import audio
from .bridge import Bridge, Upstream
from .rtp_peer import ExternalMediaCall, RtpPeer

SILENT_DBFS = -55.0
LOUD_DBFS = -45.0


def reply_pcm() -> np.ndarray:
    """A long spoken answer (~9 s of distinct recorded prompts, 8 kHz) loud from its first sample.

    No prompt repeats: the truncation check locates what the caller heard inside it.
    """
    return audio.make_utterance(["tt-weasels", "tt-somethingwrong", "hello-world", "vm-goodbye",
                                 "activated"], 300).pcm


def reply_wav(path: Path) -> Path:
    """The answer as the model server streams it (24 kHz)."""
    return audio.write_wav(path, audio.resample(reply_pcm(), 8000, 24000), rate=24000)


def heard_until_ms(reply: np.ndarray, tail: np.ndarray, near_ms: float, before_ms: float = 800,
                   after_ms: float = 100) -> int:
    """Where in ``reply`` (8 kHz) the received ``tail`` ends, in ms, by cross-correlation.

    The search is limited to ``near_ms - before_ms .. near_ms + after_ms`` (``near_ms``: the
    wall time the agent had been audible): the answer's words repeat sounds, and a pause can
    only make the caller hear less than the wall time, never more.
    """
    n = len(reply) + len(tail)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(reply.astype(float), size) *
                        np.conj(np.fft.rfft(tail.astype(float), size)), size)[: len(reply)]
    ends = (np.arange(len(corr)) + len(tail)) * 1000 / 8000
    corr[(ends < near_ms - before_ms) | (ends > near_ms + after_ms)] = -np.inf
    return int((int(np.argmax(corr)) + len(tail)) * 1000 // 8000)


@dataclass
class BargeResult:
    barge_ins: list[dict]
    responses_done: list[dict]
    onset_s: float | None = None           # perf_counter time of the interruption's onset
    onset_to_silence_ms: float | None = None
    first_sound_to_silence_ms: float | None = None  # from the first 20 ms above -40 dBFS
    loud_onset_to_silence_ms: float | None = None   # from the first 20 ms above -30 dBFS
    onset_to_cancel_ms: float | None = None
    audio_end_ms: int | None = None
    wire_ms: int | None = None
    truncate_error_ms: int | None = None
    leaked_packets: int = 0
    agent_ms_heard: int = 0                # agent audio (ms of loud packets) heard in the call
    # the answer as heard: its first loud packet to its last before the caller's interruption
    # ended (uninterrupted: before the call's end), in ms of packets, and the longest run of silent
    # packets inside it (compare with answer_shape(reply_pcm()): a pause lengthens both)
    answer_span_ms: int = 0
    answer_longest_quiet_ms: int = 0
    cancels: int = 0
    upstream_events: list[dict] = field(default_factory=list)
    bridge_log: list[dict] = field(default_factory=list)


def run_call(tmp_path: Path, *, speak_over: bool = True, dtmf: str | None = None,
             echo: tuple[float, float] | None = None, barge_after_s: float = 1.0,
             bridge_extra: dict | None = None, listen_s: float = 3.0,
             interrupt_prompt: str = "tt-somethingwrong",
             interrupt_sound: str | None = None, background: str | None = None,
             pace: float = 4.0) -> BargeResult:
    """Place one call; ``echo`` = (delay_ms, attenuation_db) of the line echo of the agent.

    ``background`` "music" plays music at -25 dBFS on the caller's line from the call's start
    to its end, under everything the caller says (which is then raised to 12 dB over it); the
    interruption's onsets are then those of the prompt alone, at the time it was scheduled.
    "tv": the same with a TV's talk at -30 dBFS (:data:`TV_TALKERS`), which Silero scores as
    speech all call long.

    ``interrupt_sound`` "music" (3 s of music on hold at -30 dBFS) or "clicks" (five 100 ms
    bursts at -3 dBFS, 500 ms apart) is played over the agent instead of speech: not a
    barge-in.

    ``pace``: how much faster than real time the model server streams the ~9 s answer; at 4 it
    has sent all of it ~2.3 s in, so a barge-in confirmed later truncates instead of cancelling.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    wav = reply_wav(tmp_path / "reply.wav")
    first = audio.trim_silence(audio.load_wav(audio.asterisk_prompt("hello-world")))
    second = audio.trim_silence(audio.load_wav(audio.asterisk_prompt(interrupt_prompt)))
    bed = _sound({"music": "bed", "tv": "tv"}[background]) if background is not None else None
    if bed is not None:
        first, second = _over(first, bed), _over(second, bed)
    with Upstream(tmp_path, reply_wav=wav, pace=pace) as up, \
            Bridge(tmp_path, up.url, extra=bridge_extra) as bridge, RtpPeer() as peer:
        call = ExternalMediaCall(bridge.target, peer, hold_ms=0, timeout=40,
                                 trace_dir=tmp_path / "sipp").start()
        call.connect_peer()
        if echo is not None:
            peer.echo(delay_ms=echo[0], atten_db=echo[1])
        if bed is not None:
            peer.play(bed, at_s=0.0)
        said_at = 0.5
        peer.play(first, at_s=said_at)
        said_end = peer.t0 + said_at + len(first) / 8000
        agent_start = _wait(lambda: peer.first_time(LOUD_DBFS, after=said_end), 10.0)
        assert agent_start is not None, "the agent never answered:\n" + bridge.output()[-3000:]
        at_s = agent_start - peer.t0 + barge_after_s
        onset = None
        if interrupt_sound is not None:
            speak_over = False
            peer.play(_sound(interrupt_sound), at_s=at_s)
            quiet_from = peer.t0 + at_s + 3.0
        if speak_over:
            peer.play(second, at_s=at_s)
            onset = peer.t0 + at_s
            quiet_from = onset + len(second) / 8000
        if dtmf:
            onset = peer.t0 + peer.send_dtmf(dtmf, at_s=at_s)
            quiet_from = onset + 0.3
        if onset is None and interrupt_sound is None:
            quiet_from = agent_start + 8.0   # no interruption: let the whole answer play
        peer.sleep_until(quiet_from - peer.t0 + listen_s)
        bridge.stop()                        # BYE to the caller, clean exit
        call.wait()
        upstream_events = up.events()
    res = BargeResult(barge_ins=bridge.logs("barge_in"), responses_done=bridge.logs("response.done"),
                      upstream_events=upstream_events, bridge_log=bridge.logs())
    rx = peer.rx_audio()
    res.agent_ms_heard = 20 * sum(1 for p in rx if p.level > LOUD_DBFS)
    res.cancels = sum(1 for e in upstream_events if e.get("type") == "response.cancel")
    # a call nobody interrupts is heard to its end (a pause plays the answer's rest later)
    heard_to = quiet_from if onset is not None else quiet_from + listen_s
    res.answer_span_ms, res.answer_longest_quiet_ms = answer_shape(
        np.array([p.level for p in rx if agent_start - 0.02 <= p.arrival <= heard_to]))
    if onset is None:
        return res
    loud_onset = None
    first_sound = onset
    if speak_over and bed is not None:  # the prompt's own onsets, where it was scheduled
        scheduled = onset
        onset = scheduled + _onset_s(second, span_ms=60)
        first_sound = scheduled + _onset_s(second)
        loud_onset = scheduled + _onset_s(second, level_dbfs=-30.0)
    elif speak_over:  # on the wire: the interruption's speech onset (60 ms above -40 dBFS)
        scheduled = onset
        onset = peer.first_time(-40.0, after=scheduled - 0.005, direction="tx", component="source",
                                span_ms=60)
        first_sound = peer.first_time(-40.0, after=scheduled - 0.005, direction="tx",
                                      component="source")
        loud_onset = peer.first_time(-30.0, after=scheduled - 0.005, direction="tx",
                                     component="source")
    res.onset_s = onset
    # the agent stops: the first packet after the onset from which it stays silent until the
    # caller's interruption is over (the next answer may start only after that)
    window = [p for p in rx if first_sound <= p.arrival <= quiet_from]
    stop = None
    for i, p in enumerate(window):
        if all(q.level < SILENT_DBFS for q in window[i:]):
            stop = p
            break
    if stop is not None:
        res.onset_to_silence_ms = (stop.arrival - onset) * 1000
        res.first_sound_to_silence_ms = (stop.arrival - first_sound) * 1000
        if loud_onset is not None:
            res.loud_onset_to_silence_ms = (stop.arrival - loud_onset) * 1000
        res.leaked_packets = sum(1 for p in rx if stop.arrival < p.arrival <= quiet_from
                                 and p.level > LOUD_DBFS)
        heard = [p for p in rx if agent_start - 0.02 <= p.arrival < stop.arrival]
        # the last 400 ms heard, contiguous: dropping the answer's own quiet packets from it
        # (a gap between its sentences) would splice audio the caller never heard together
        tail = np.concatenate([p.pcm for p in heard][-20:])
        # the packet in which the agent stopped ends in the pause's digital silence (pjmedia's
        # 16->8 kHz resampler delays the last samples ~5 ms into it): that was not heard
        end = len(tail)
        while end > len(tail) - 160 and abs(int(tail[end - 1])) <= 16:
            end -= 1
        tail = tail[:end]
        res.wire_ms = heard_until_ms(reply_pcm(), tail, (stop.arrival - agent_start) * 1000)
    # the model hears of it first by response.cancel, or, when the response had already been
    # fully received (streamed faster than real time), by the truncate of the item
    told = [e for e in upstream_events if e.get("type") in (
        "response.cancel", "conversation.item.truncate", "conversation.item.delete")]
    if told:
        res.onset_to_cancel_ms = (told[0]["_recv_t"] - onset) * 1000
    trunc = [e for e in upstream_events if e.get("type") == "conversation.item.truncate"]
    if trunc:
        res.audio_end_ms = trunc[0]["audio_end_ms"]
        if res.wire_ms is not None:
            res.truncate_error_ms = res.audio_end_ms - res.wire_ms
    return res


def answer_shape(levels: np.ndarray) -> tuple[int, int]:
    """Of 20 ms levels (dBFS): ms from the first louder than -45 dBFS to the last (inclusive),
    and the longest run of frames quieter than -55 dBFS between them.

    A pause of the agent adds its length to the first on the wire and, unless it falls in a
    gap of the answer's own, shows in the second too; clearing the answer shortens the first.
    """
    loud = np.flatnonzero(levels > LOUD_DBFS)
    if not len(loud):
        return 0, 0
    inside = levels[loud[0]: loud[-1] + 1] < SILENT_DBFS
    longest = run = 0
    for quiet in inside:
        run = run + 1 if quiet else 0
        longest = max(longest, run)
    return 20 * len(inside), 20 * longest


def _over(speech: np.ndarray, bed: np.ndarray, snr_db: float = 12.0) -> np.ndarray:
    """``speech`` scaled to ``snr_db`` over the level of ``bed`` (its 20 ms frames above -45 dBFS)."""
    levels = audio.frame_dbfs(speech)
    active = 10 * np.log10(np.mean(10 ** (levels[levels > -45.0] / 10)))
    gain = 10 ** ((audio.dbfs(bed) + snr_db - active) / 20)
    return np.clip(speech.astype(float) * gain, -32768, 32767).astype(np.int16)


def _onset_s(pcm: np.ndarray, level_dbfs: float = -40.0, span_ms: int = 20) -> float:
    """Seconds into ``pcm`` of its first sample louder than ``level_dbfs`` that opens ``span_ms``
    that loud (each 20 ms of it), as :meth:`RtpPeer.first_time` judges the wire."""
    x = pcm.astype(float)
    amp = 32768.0 * 10 ** (level_dbfs / 20)
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    for i in np.flatnonzero(np.abs(x) >= amp):
        spans = [(i + k * 160, min(i + (k + 1) * 160, len(x))) for k in range(max(1, span_ms // 20))]
        if all(b > a and (csum[b] - csum[a]) / (b - a) > amp * amp for a, b in spans):
            return float(i) / 8000
    return 0.0


TV_TALKERS = ("vm-intro", "conf-onlyperson", "tt-monkeys", "vm-options")   # a TV's talk


def tv_talk(n: int, level_dbfs: float = -30.0, rate: int = 8000) -> np.ndarray:
    """``n`` samples of a TV's talk at ``rate``: the four :data:`TV_TALKERS` at once, each looped
    from a random point, 3 dB apart, in a room (a 50 ms decaying noise tail under the direct
    sound), at ``level_dbfs``. Silero scores it as speech throughout."""
    rng = np.random.default_rng(3)
    mix = np.zeros(n)
    for k, name in enumerate(TV_TALKERS):
        voice = audio.trim_silence(audio.load_wav(audio.asterisk_prompt(name), rate=rate),
                                   rate=rate).astype(float)
        looped = np.tile(voice / max(audio.rms(voice), 1.0), n // len(voice) + 2)
        start = int(rng.integers(len(voice)))
        mix += looped[start:start + n] * 10 ** (-3.0 * k / 20)
    tail = rng.standard_normal(rate // 5) * np.exp(-np.arange(rate // 5) / (rate * 0.05))
    tail[0] = 60.0
    size = 1 << (n + len(tail)).bit_length()
    room = np.fft.irfft(np.fft.rfft(mix, size) * np.fft.rfft(tail, size), size)[:n]
    return (room * (10 ** (level_dbfs / 20) * 32768 / max(audio.rms(room), 1.0))).astype(np.int16)


def _sound(kind: str) -> np.ndarray:
    if kind == "bed":  # 40 s of another track at -25 dBFS, under a whole call
        track = audio.load_wav(audio.MOH_DIR / "macroform-robot_dity.wav")
        piece = track[20 * 8000: 60 * 8000].astype(float)
        return (piece * (10 ** (-25 / 20) * 32768 / max(audio.rms(piece), 1.0))).astype(np.int16)
    if kind == "tv":  # 40 s of a TV's talk at -30 dBFS, under a whole call
        return tv_talk(40 * 8000)
    if kind == "music":
        track = audio.load_wav(audio.MOH_DIR / "macroform-cold_day.wav")
        piece = track[60 * 8000: 63 * 8000].astype(float)
        return (piece * (10 ** (-30 / 20) * 32768 / max(audio.rms(piece), 1.0))).astype(np.int16)
    if kind == "clicks":
        burst = audio.noise(100, -3.0, seed=7)
        return np.concatenate([np.concatenate([burst, audio.silence(500)]) for _ in range(5)])
    raise ValueError(kind)


def _wait(probe, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.02)
    return None


def summary(values: list[float]) -> dict:
    """p50/p95/max/n of the values that are not None."""
    xs = np.array([v for v in values if v is not None], dtype=float)
    if not len(xs):
        return {"n": 0}
    return {"p50": round(float(np.percentile(xs, 50)), 1), "p95": round(float(np.percentile(xs, 95)), 1),
            "max": round(float(xs.max()), 1), "n": int(len(xs))}
