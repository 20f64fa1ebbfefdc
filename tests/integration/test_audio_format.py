"""``realtime.audio_format`` G.711 end to end: SIPp caller, ``sipbridge run``, the embedded model.

The default (``auto`` on the default 8 kHz port) is µ-law; A-law is asked for explicitly."""

import base64

import numpy as np

from tests.support import audio
from tests.support.bridge import Bridge, Upstream
from tests.support.capture import RtpCapture
from tests.support.ports import free_port_block
from tests.support.sipp import PCMA_SPEECH_PCAP, make_audio_pcap, pcap_duration_ms, run_sipp


def streams(cap: RtpCapture, bridge: Bridge):
    """(caller -> bridge, bridge -> caller) RTP streams of the one call."""
    lo, hi = bridge.rtp_range
    found = cap.streams().values()
    up = [s for s in found if lo <= s.dst[1] <= hi]
    down = [s for s in found if lo <= s.src[1] <= hi]
    assert len(up) == 1 and len(down) == 1, f"expected one stream each way, got {list(cap.streams())}"
    return up[0], down[0]


def place_call(bridge: Bridge, scenario: str, pcap, hold_ms: int | None = None) -> tuple:
    media = free_port_block(4)
    speech_ms = pcap_duration_ms(pcap)
    with RtpCapture(ports=[media], port_range=bridge.rtp_range) as cap:
        res = run_sipp(scenario, bridge.target, media_port=media, pcap=pcap,
                       hold_ms=hold_ms or speech_ms + 2 * 3000, timeout=40)
    assert res.returncode == 0 and res.final_code == 200, res.stderr
    return (*streams(cap, bridge), speech_ms)


def test_a_default_call_with_no_api_key_talks_ulaw_to_the_embedded_model(tmp_path):
    """``sipbridge run`` with no key and the default ``audio_format: auto`` at 8 kHz: the session is
    µ-law, the in-process embedded model takes it and the caller hears their sentence echoed back."""
    sentence = audio.trim_silence(audio.load_wav(audio.asterisk_prompt("hello-world")))  # 8 kHz
    pcap = tmp_path / "hello.pcap"
    make_audio_pcap(np.concatenate([audio.silence(400), sentence, audio.silence(3000)]), pcap)
    with Bridge(tmp_path, None) as bridge:
        assert bridge.wait_log("embedded_model_started")
        _, back, _ = place_call(bridge, "uac_pcmu", pcap, hold_ms=pcap_duration_ms(pcap) + 500)
        assert bridge.wait_log("upstream_connected")["audio_format"] == "g711_ulaw"
        bridge.wait_log("response.done", status="completed")
        bridge.wait_log("session_closed")
        assert not bridge.logs("upstream_error") and not bridge.logs("upstream_malformed_event")
        assert not bridge.logs("barge_in")
        assert bridge.stop() == 0

    assert set(back.payload_types) == {0}
    assert back.active_mask(-40.0).sum() * 20 >= len(sentence) / 8 * 0.8, "the answer did not reach the caller"
    # the answer is the caller's sentence (caller µ-law -> 8 kHz PCM -> µ-law -> echo -> caller),
    # judged in 250 ms pieces: a frame the jitter buffer dropped or repeated on a busy machine
    # shifts the rest of the sentence but must not fail the test
    heard = back.pcm()
    corrs = [corr for _, corr in audio.align_pieces(sentence, heard, rate=8000)]
    assert np.median(corrs) > 0.95, f"the answer is not the caller's words echoed (corr {corrs})"


def test_g711_alaw_goes_over_the_socket_as_8khz_alaw_both_ways(tmp_path):
    """Against the embedded model run as its own recording process: session.update asks for
    audio/pcma, the appends are A-law at 8 bytes per ms of the call, the A-law answer plays."""
    with Upstream(tmp_path) as upstream, Bridge(
            tmp_path, upstream.url, extra={"realtime": {"audio_format": "g711_alaw"}}) as bridge:
        _, back, speech_ms = place_call(bridge, "uac_pcma", PCMA_SPEECH_PCAP)
        bridge.wait_log("session_closed")
        assert not bridge.logs("upstream_error")
        assert bridge.stop() == 0

    session = upstream.events("session.update")[0]["session"]
    assert session["audio"]["input"]["format"] == session["audio"]["output"]["format"] == {"type": "audio/pcma"}
    sent = b"".join(base64.b64decode(e["audio"]) for e in upstream.events("input_audio_buffer.append"))
    assert len(sent) % 160 == 0 and len(sent) / 8 >= speech_ms * 0.9   # 8 bytes per ms
    pcm = audio.g711_decode(sent, "alaw")
    assert audio.dbfs(pcm) > -35, "the caller's speech arrived as (near) silence"
    assert upstream.events("input_audio_buffer.commit") and upstream.events("response.create")
    assert set(back.payload_types) == {8}
    assert back.active_mask(-40.0).sum() * 20 >= 700, "the agent's answer did not reach the caller"
