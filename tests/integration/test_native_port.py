"""The native media port (``sip.media_port: native``) on real calls: the C port, its pump, its flags.

The same checks as tests/integration/test_call_path.py and test_barge_in.py make of the
default pjsua2 port, with the bridge started on the native one (built from the repo's
sipbridge/media/native/port.c); the default port keeps its own tests unchanged.
"""

import pytest

from tests.support import audio
from tests.support.baresip import Baresip
from tests.support.barge import run_call
from tests.support.bridge import Bridge

RATES = pytest.mark.parametrize("rate", [16000, 8000])


def native(rate: int = 16000) -> dict:
    return {"sip": {"media_port": "native", "media_rate": rate}}


@RATES
def test_baresip_hears_its_sentence_back_through_the_native_port(tmp_path, rate):
    """On the native port a handset's sentence comes back from the embedded model, as one turn, in order, after it finished."""
    prompt = audio.trim_silence(audio.load_wav(audio.asterisk_prompt("tt-weasels")))
    with Bridge(tmp_path, upstream_url=None, extra=native(rate)) as b:
        assert b.wait_log("native_media_port")["layout"] == "verified"
        assert b.wait_log("ready")["media_rate"] == rate
        handset = Baresip(tmp_path / "handset")
        res = handset.call(f"sip:bot@{b.target}", duration_s=2 * len(prompt) / 8000 + 4, mic=prompt)
        assert res.established, res.log[-2000:]
        heard = res.recorded_pcm()
        ended = b.wait_log("call_ended")
        released = b.wait_log("native_port_released")
    assert len(b.logs("speech_started")) == 1 and not b.logs("barge_in"), b.output()[-4000:]
    assert not b.logs("media_callback_failed")
    pieces = audio.assert_heard_back(prompt, heard, f"call stats {ended}")
    assert pieces[0][0] >= len(prompt), f"the answer started before the caller finished: {pieces}"
    # the C side really carried the call: caller frames in, agent frames out
    assert released["frames_in"] > 100 and released["frames_out"] > 100, released


@RATES
def test_speaking_over_the_agent_silences_the_native_port_at_once(tmp_path, rate):
    """On the native port caller speech over the agent silences it on the wire, cancels, and truncates at the audio sent."""
    r = run_call(tmp_path, bridge_extra=native(rate))
    assert len(r.barge_ins) == 1 and r.barge_ins[0]["source"] == "local_vad", r.barge_ins
    assert r.onset_to_silence_ms is not None, "the agent never went silent"
    assert r.loud_onset_to_silence_ms <= 150, r.loud_onset_to_silence_ms
    assert r.onset_to_silence_ms <= 300, r.onset_to_silence_ms
    assert r.leaked_packets == 0
    assert r.cancels <= 1
    assert r.truncate_error_ms is not None and abs(r.truncate_error_ms) <= 20, (r.audio_end_ms, r.wire_ms)
    assert len([d for d in r.responses_done if d["status"] == "cancelled"]) == 1


def test_dtmf_clears_the_native_port_from_the_pjsua_thread(tmp_path):
    """A DTMF digit (decided on pjsua's thread, not the pump) interrupts the agent through the C flag."""
    r = run_call(tmp_path, speak_over=False, dtmf="5", bridge_extra=native())
    assert [b["source"] for b in r.barge_ins] == ["dtmf"], r.barge_ins
    assert r.onset_to_silence_ms is not None and r.onset_to_silence_ms <= 100, r.onset_to_silence_ms
    assert r.leaked_packets == 0 and r.onset_to_cancel_ms is not None
    assert abs(r.truncate_error_ms) <= 20


def test_line_echo_alone_does_not_interrupt_the_native_port(tmp_path):
    """On the native port the agent's own voice echoed back 12 dB down, 40 ms late, never interrupts it."""
    from tests.support.barge import reply_pcm
    r = run_call(tmp_path, speak_over=False, echo=(40.0, 12.0), bridge_extra=native(8000))
    assert r.barge_ins == [] and r.cancels == 0
    assert [d["status"] for d in r.responses_done] == ["completed"]
    loud_ms = 20 * int((audio.frame_dbfs(reply_pcm(), 20, 8000) > -45).sum())
    assert r.agent_ms_heard >= loud_ms - 100, (r.agent_ms_heard, loud_ms)


def test_speech_over_the_line_echo_still_interrupts_the_native_port(tmp_path):
    """On the native port, with the agent's echo on the line, the caller speaking over it still interrupts it."""
    r = run_call(tmp_path, echo=(40.0, 12.0), bridge_extra=native(8000))
    assert len(r.barge_ins) == 1 and r.barge_ins[0]["source"] == "local_vad", r.barge_ins
    assert r.loud_onset_to_silence_ms is not None and r.loud_onset_to_silence_ms <= 150
    assert r.onset_to_silence_ms <= 300, r.onset_to_silence_ms
    assert r.leaked_packets == 0


def test_quick_calls_reuse_native_ports_and_the_worker_lives(tmp_path):
    """40 calls at 8/s on the native port, each answered then hung up at once: no crash, <= 4 ports, clean exit."""
    from tests.support.bridge import Upstream
    from tests.support.sipp import run_sipp
    calls = 40
    with Upstream(tmp_path) as up, Bridge(tmp_path, up.url, extra=native()) as bridge:
        res = run_sipp("uac_flood", bridge.target, service="bot", calls=calls, timeout=40,
                       extra_args=["-r", "8", "-rp", "1000", "-l", "8"])
        assert bridge.proc.poll() is None, bridge.output()[-3000:]
        codes = [c for c in res.invite_codes if c >= 200]
        assert len(codes) == calls and set(codes) <= {200, 486}, sorted(codes)
        assert codes.count(200) >= calls - 4, sorted(codes)
        assert len(bridge.logs("media_active")) == codes.count(200)
        assert bridge.stop() == 0
    assert 1 <= bridge.logs("stopped")[-1]["audio_ports"] <= 4
    assert len(bridge.logs("native_port_released")) == codes.count(200)
    assert not bridge.logs("media_callback_failed")
