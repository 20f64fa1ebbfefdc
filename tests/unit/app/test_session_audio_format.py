"""CallSession with ``realtime.audio_format: g711_ulaw``/``g711_alaw`` against the embedded model.

Same rig as test_session.py (its :class:`Call`, from the ``make_call`` fixture of conftest.py: a
loop thread, a recording EmbeddedModel, the test thread as the media clock). What changes with G.711: appends are 8 kHz G.711 (one byte a
sample) in ``append_ms`` batches, deltas are decoded and up-sampled 2:1 so that every G.711
byte becomes exactly two 16 kHz samples, and truncation is in ms of the item's 8 kHz audio.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
from sipcodecs import StreamResampler

from sipbridge.realtime import protocol as rt
from sipbridge.realtime.audio_format import G711_ALAW, G711_ULAW
from tests.support import audio
from tests.unit.app.test_session import GOODBYE, RATE, REPLY, REPLY_16K, SILENT, quiet

REPLY_8K = StreamResampler(24000, 8000).process(REPLY)   # what the model sends of the 24 kHz reply


@pytest.mark.parametrize("fmt", [G711_ULAW, G711_ALAW], ids=lambda f: f.name)
def test_caller_audio_goes_up_as_8khz_g711_in_append_ms_batches(make_call, fmt):
    """session.update asks for G.711 both ways; appends are 800-byte (100 ms) G.711 batches of the
    caller's audio down-sampled to 8 kHz, one byte per 8 kHz sample, nothing lost or added."""
    call = make_call(realtime={"audio_format": fmt.name}, reply=b"")
    formats = call.sent("session.update")[0]["session"]["audio"]
    assert formats["input"]["format"] == formats["output"]["format"] == {"type": fmt.ga_type}
    said = np.concatenate([quiet(300), GOODBYE, quiet(800)])
    call.feed(said)
    call.wait_for("response.create")
    call.barrier()
    appends = [base64.b64decode(e["audio"]) for e in call.sent("input_audio_buffer.append")]
    assert all(len(a) % 160 == 0 and len(a) <= 800 for a in appends)  # whole 20 ms frames at 8 kHz
    assert sum(len(a) == 800 for a in appends) >= len(appends) - 2    # flushed at the commit + barrier
    sent = b"".join(appends)
    assert len(sent) == call.ticks * 160
    expected = StreamResampler(RATE, 8000).process_array(said[:call.ticks * 320])
    assert np.array_equal(fmt.decode(sent), fmt.decode(fmt.encode(expected)))
    assert call.turn_events() == ["input_audio_buffer.commit", "response.create"]


def test_a_g711_reply_plays_two_port_samples_per_byte_and_sounds_like_the_reply(make_call):
    """The model's µ-law deltas of the 2.7 s reply play out at exactly 2 x its bytes of 16 kHz audio."""
    call = make_call(realtime={"audio_format": "g711_ulaw"}, reply=REPLY, pace=50)
    call.take_turn()
    call.wait_playing()
    s = call.session
    item = s.playout._queue[0][0]
    call.wait_response_done()
    out = call.play_out()
    n8 = len(REPLY_8K) // 2
    assert s.playout.received_ms(item) == s.playout.played_ms(item) == n8 * 1000 // 8000
    heard = np.frombuffer(b"".join(out), dtype="<i2")
    assert sum(f != SILENT for f in out) == -(-2 * n8 // 320)
    _, corr = audio.align(np.frombuffer(REPLY_16K, dtype="<i2"), heard, rate=RATE)
    assert corr > 0.9, f"the played reply is not the model's audio (corr {corr:.2f})"
    assert s.playout.underruns == 0


def test_a_g711_reply_interrupted_mid_way_is_truncated_at_the_ms_played(make_call):
    """interrupt() after 12 ticks truncates at 240 ms of the µ-law item; the model accepts it."""
    call = make_call(realtime={"audio_format": "g711_ulaw"}, reply=REPLY, pace=2)
    call.take_turn()
    call.wait_playing()
    played = [call.tick() for _ in range(12)]
    assert all(f != SILENT for f in played)
    s = call.session
    s.interrupt()
    assert s.next_frame() == SILENT
    (truncate,) = call.wait_for("conversation.item.truncate")
    assert truncate["audio_end_ms"] == s.playout.played_ms(truncate["item_id"]) == 240
    call.barrier()  # the model answers the barrier (an unknown event) with an error, in order:
    call.wait_log("upstream_error", message="Invalid value: 'test.barrier'. Unsupported event type.")
    refused = [e for e in call.log_events("upstream_error") if "test.barrier" not in e["message"]]
    assert not refused, f"the model refused the truncate: {refused}"


def test_odd_sized_g711_deltas_count_exact_ms_for_truncation(make_call):
    """Deltas of 333 + 668 µ-law bytes (125.125 ms) queue 2002 samples; played out in full and
    then cleared, the truncate says 125 ms: the floor of the item's own audio, not of bytes/48."""
    call = make_call(realtime={"audio_format": "g711_ulaw"}, reply=b"")
    s = call.session
    speech = G711_ULAW.encode(np.frombuffer(REPLY_8K, dtype="<i2")[:1001])
    for chunk in (speech[:333], speech[333:]):
        call.on_loop(s._on_event, rt.AudioDelta("resp_x", "item_x", 0, chunk))
    assert s.playout.received_ms("item_x") == 125 and s.playout.queued_ms == 125
    frames = [s.next_frame() for _ in range(8)]
    assert sum(f != SILENT for f in frames) == 7 and s.playout.played_ms("item_x") == 125
    s.interrupt()
    (truncate,) = call.wait_for("conversation.item.truncate")
    assert (truncate["item_id"], truncate["audio_end_ms"]) == ("item_x", 125)
