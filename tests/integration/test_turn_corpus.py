"""Turn taking through the real pipeline: one SIPp caller of real speech, one of music and noise.

The audio is built from Asterisk prompts (the crisp ones of ``tests/unit/turn``: loud within
30 ms of both ends, so a scripted pause is the real pause) and sent as a PCMU pcap by SIPp to
``sipbridge run``; pjmedia's jitter buffer, G.711 decoder, 8 -> 16 kHz resampler and media
clock then feed the bridge's turn engine, and the test reads the bridge's JSON log.

Call A (speech): 1 s of silence, then four utterances 1500-2000 ms apart; two of them are two
prompts with a pause of ``silence_threshold_ms - 150`` ms (350 ms by default) inside. Expected:
one ``speech_started`` and one ``speech_stopped`` per utterance, none in the pauses, each end
decided within ``silence_threshold_ms + 100`` ms of the true end.

"Within ... of the true end" is measured on the wall clock, from the moment the utterance's
last sample crossed the wire to the moment the bridge decided the turn was over:

* the true end on the wire comes from tcpdump: the capture time of the RTP packet that carries
  the utterance's last sample, minus the part of the packet after that sample (RTP timestamps
  map packets to pcap samples, so no packet is guessed);
* the decision time comes from the bridge's own log line, ``speech_stopped``'s ``timestamp``
  (structlog, microseconds, logged on the media thread in the tick that decided). Log lines
  can be late when the machine is busy, never early, and the media clock is periodic, so the
  test also reports the decision time rebuilt from the clock: the engine decides on the chunk
  ending ``audio_end_ms`` + ``silence_threshold_ms`` rounded up to whole 32 ms chunks after
  the call's media start, and the frame completing that chunk is delivered at a fixed phase of
  the 20 ms clock; the call's media start is taken as the earliest (least delayed) of the
  estimates that every turn event line gives. That rebuilt time is what is asserted, between
  ``silence_threshold_ms - 150`` and ``silence_threshold_ms + 100`` ms: it is the pipeline's
  latency (jitter buffer, clock phase, 32 ms chunks, the silence count, the VAD's view of the
  end) without the scheduler's noise in the log timestamps. Measured with the defaults: 536 to
  569 ms (512 ms of silence counted in whole chunks, 10-40 ms from the true end to the end of
  the last speech chunk, about 40 ms of jitter buffer and clock phase); the logged times were
  within 4 ms of the rebuilt ones. Both are in the assertion message.

This is the end-to-end reading of the requirement; the sample-exact one (``at_sample`` minus
the true end, no jitter buffer) is asserted by ``tests/unit/turn/test_corpus.py``. To tie the
bridge's sample count to the pcap, ``audio_end_ms`` is also compared with the true end shifted
by the offset that the first utterance's onset gives (``audio_start_ms + prefix_padding_ms`` -
the 1000 ms of lead silence): the VAD's ends must sit where the pcap's ends are.

Call B (no speech), placed at the same time on the same bridge: 3 s slices of each music-on-
hold track scaled to -30 dBFS RMS, 4 s of white noise at -40 dBFS, a 100 ms full-scale noise
burst and a 100 ms decaying impulse, apart by silence. Expected: no ``speech_started``. It is a
call of its own because Silero's state after speech matters: the same music right after an
utterance on one call can start a turn (see the bench/turns.py "music_after_speech" figures).
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from sipbridge.turn.settings import TurnSettings
from tests.support.bridge import Bridge, Upstream
from tests.support.capture import RtpCapture
from tests.support.ports import free_port_block
from tests.support.sipp import make_audio_pcap, pcap_duration_ms, run_sipp
from tests.unit.turn.corpus import MUSIC, prompt, read_wav, scaled_to, white_noise


SETTINGS = TurnSettings()               # the bridge runs on the defaults
SILENCE_MS = SETTINGS.silence_threshold_ms
PAUSE_MS = SILENCE_MS - 150
LEAD_MS = 1000
UTTERANCES = [  # (prompts, silence after it in ms)
    (["conf-now-muted", "vm-reachoper"], 1500),
    (["hello-world"], 1800),
    (["please-try-again", "vm-nobodyavail"], 2000),
    (["vm-goodbye"], 1500),
]
MUSIC_AT_S, MUSIC_S = 60, 3
RATE = 8000                             # the pcap's rate; the bridge works at 16 kHz
CHUNK_MS = 32                           # Silero chunk: 512 samples at 16 kHz
FRAME_MS = 20
SSRC_SPEECH, TS0 = 0x7E57C0DE, 8000


def silence(ms: int) -> np.ndarray:
    return np.zeros(ms * RATE // 1000, dtype=np.int16)


def speech_call() -> tuple[np.ndarray, list[tuple[int, int]], list[tuple[int, int]]]:
    """8 kHz audio, the utterances' (start, end) and the in-utterance pauses' (start, end), in samples."""
    parts, at = [silence(LEAD_MS)], LEAD_MS * RATE // 1000
    spans, pauses = [], []
    for words, gap_ms in UTTERANCES:
        start = at
        for k, name in enumerate(words):
            if k:
                parts.append(silence(PAUSE_MS))
                pauses.append((at, at + len(parts[-1])))
                at += len(parts[-1])
            parts.append(prompt(name))
            at += len(parts[-1])
        spans.append((start, at))
        parts.append(silence(gap_ms))
        at += len(parts[-1])
    return np.concatenate(parts), spans, pauses


def noise_call() -> np.ndarray:
    """8 kHz: music slices at -30 dBFS, white noise at -40 dBFS, a noise burst and an impulse."""
    parts = [silence(1000)]
    for path in sorted(MUSIC.glob("*.wav")):
        track = read_wav(path)
        parts += [scaled_to(track[MUSIC_AT_S * RATE:(MUSIC_AT_S + MUSIC_S) * RATE], -30.0), silence(500)]
    parts += [silence(500), white_noise(4000, -40.0, seed=3, rate=RATE), silence(1000)]
    parts += [scaled_to(white_noise(100, 0.0, seed=9, rate=RATE), -3.0), silence(1000)]
    t = np.arange(RATE // 10)
    parts += [(32767 * np.exp(-t / 80) * np.cos(t * 1.3)).astype(np.int16), silence(1500)]
    return np.concatenate(parts)


def epoch(record: dict) -> float:
    """A bridge log line's ``timestamp`` (ISO 8601, UTC) as epoch seconds."""
    return datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()


def ceil_to(value: float, step: float) -> float:
    return math.ceil(value / step - 1e-9) * step


@pytest.mark.parametrize("media_rate", [16000, 8000])
def test_turns_end_once_on_time_and_music_noise_clicks_never_start_one(tmp_path: Path, media_rate: int):
    """One SIPp call of speech: one end per utterance, none in 350 ms pauses, each <= 600 ms
    after the true end (wall clock, wire to decision); a parallel call of music, noise and
    clicks: no speech_started. At both ``sip.media_rate`` values (8000: Silero's 8 kHz model)."""
    speech, spans, pauses = speech_call()
    noise = noise_call()
    pcap_a, pcap_b = tmp_path / "speech.pcap", tmp_path / "noise.pcap"
    make_audio_pcap(speech, pcap_a, ssrc=SSRC_SPEECH, seq=100, ts=TS0)
    make_audio_pcap(noise, pcap_b, ssrc=SSRC_SPEECH + 1, seq=100, ts=TS0)
    results: dict[str, object] = {}

    with Upstream(tmp_path) as upstream, \
            Bridge(tmp_path, upstream.url, extra={"sip": {"media_rate": media_rate}}) as bridge:
        assert bridge.wait_log("ready")["media_rate"] == media_rate
        media_a, media_b = free_port_block(4, align=2), free_port_block(4, align=2)

        def call(key: str, pcap: Path, media: int) -> None:
            hold = pcap_duration_ms(pcap) + 1000
            results[key] = run_sipp("uac_pcmu", bridge.target, media_port=media, pcap=pcap,
                                    hold_ms=hold, timeout=hold / 1000 + 20, trace_dir=tmp_path / key)

        with RtpCapture(ports=[media_a], port_range=bridge.rtp_range) as cap:
            threads = [threading.Thread(target=call, args=("speech", pcap_a, media_a)),
                       threading.Thread(target=call, args=("noise", pcap_b, media_b))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(90)
        for key in ("speech", "noise"):
            res = results.get(key)
            assert res is not None and res.returncode == 0 and res.final_code == 200, \
                res.describe() if res else f"{key} call never finished"
        deadline = time.monotonic() + 10
        while len(bridge.logs("session_closed")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        logs = bridge.logs()
        commits = upstream.events("input_audio_buffer.commit")

    call_ids = {key: results[key].shortmsgs[0].call_id for key in ("speech", "noise")}

    def turn_log(key: str, event: str) -> list[dict]:
        return [r for r in logs if r.get("event") == event and r.get("call_id") == call_ids[key]
                and r.get("source") != "server"]

    # ---- call B: music, noise and clicks never start a turn
    assert turn_log("noise", "speech_started") == [], turn_log("noise", "speech_started")
    assert turn_log("noise", "speech_stopped") == []

    # ---- call A: exactly one start and one end per utterance
    started, stopped = turn_log("speech", "speech_started"), turn_log("speech", "speech_stopped")
    story = [(r["event"], r.get("audio_start_ms", r.get("audio_end_ms"))) for r in started + stopped]
    assert len(started) == len(stopped) == len(UTTERANCES), story
    assert len(commits) >= len(UTTERANCES)

    # the bridge's sample clock against the pcap's, from the onsets: each sits a little after its
    # utterance's true start (Silero needs a chunk or two; how many varies with the batch its
    # chunk was scored in), never before it, so the least late one is the clock offset. (The
    # first onset alone was once 64 ms late, which moved every end by as much.)
    offset_ms = min(r["audio_start_ms"] + SETTINGS.prefix_padding_ms - start * 1000 / RATE
                    for r, (start, _) in zip(started, spans))
    ends_ms = [end * 1000 / RATE for _, end in spans]
    for rec, (_, end) in zip(stopped, spans):
        # the VAD's end of speech is where the pcap's is (chunk-quantised, onset-calibrated)
        assert -150 <= rec["audio_end_ms"] - offset_ms - end * 1000 / RATE <= 100, (rec, offset_ms, end)
    for rec in stopped:  # no end of speech inside an utterance (its pauses included)
        for start, end in spans:
            assert not start * 1000 / RATE <= rec["audio_end_ms"] - offset_ms < end * 1000 / RATE - 150, \
                (rec, offset_ms, [(a * 1000 / RATE, b * 1000 / RATE) for a, b in pauses])

    # ---- the true ends on the wire (tcpdump time of the packet with each end's last sample)
    up = [p for p in cap.stream(src_port=media_a).audio_packets() if p.ssrc == SSRC_SPEECH]
    arrival = {((p.ts - TS0) & 0xFFFFFFFF) // (RATE * FRAME_MS // 1000): p.arrival for p in up}
    per_packet = RATE * FRAME_MS // 1000
    wire_end = []
    for _, end in spans:
        index = (end - 1) // per_packet
        wire_end.append(arrival[index] - ((index + 1) * per_packet - end) / RATE)

    # ---- decision times: logged, and rebuilt from the media clock
    decided_sample_ms = [r["audio_end_ms"] + ceil_to(SILENCE_MS, CHUNK_MS) for r in stopped]
    at_ms = [r["audio_start_ms"] + SETTINGS.prefix_padding_ms
             + ceil_to(SETTINGS.min_speech_ms, CHUNK_MS) for r in started] + decided_sample_ms
    # wall time of the tick that delivers the frame completing the chunk ending at `ms`
    tick = lambda ms: ceil_to(ms, FRAME_MS) / 1000  # noqa: E731
    media_start = min(epoch(r) - tick(ms) for r, ms in zip(started + stopped, at_ms))
    logged = [epoch(r) - w for r, w in zip(stopped, wire_end)]
    rebuilt = [media_start + tick(ms) - w for ms, w in zip(decided_sample_ms, wire_end)]
    report = {"offset_ms": offset_ms, "logged_ms": [round(x * 1000) for x in logged],
              "rebuilt_ms": [round(x * 1000) for x in rebuilt], "true_end_ms": ends_ms,
              "audio_end_ms": [r["audio_end_ms"] for r in stopped]}
    print(report)
    for latency in rebuilt:
        assert (SILENCE_MS - 150) / 1000 <= latency <= (SILENCE_MS + 100) / 1000, report
