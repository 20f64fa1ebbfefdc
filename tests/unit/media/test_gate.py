"""The send_silence=false gate: only speech, its prefix and its trailing silence go upstream."""

from sipbridge.media.gate import SpeechGate


def frames(gate, start, count, size=320):
    out = []
    for i in range(start, start + count):
        out += gate.offer((i + 1) * size, f"f{i}".encode())
    return out


def test_closed_gate_sends_nothing():
    """Before any speech, frames are held, not sent."""
    gate = SpeechGate(keep_samples=16000)
    assert frames(gate, 0, 100) == []


def test_onset_releases_exactly_the_prefix_then_passes_frames():
    """At onset the frames after audio_start_sample are released in order, then frames pass through."""
    gate = SpeechGate(keep_samples=16000)
    frames(gate, 0, 50)                       # frames f0..f49 end at 320..16000
    released = gate.start(audio_start_sample=40 * 320)
    assert released == [f"f{i}".encode() for i in range(40, 50)]
    assert frames(gate, 50, 2) == [b"f50", b"f51"]


def test_ring_keeps_only_the_configured_history():
    """Frames older than keep_samples are dropped from the ring and counted as held."""
    gate = SpeechGate(keep_samples=3200)      # 10 frames
    frames(gate, 0, 100)
    assert gate.start(0) == [f"f{i}".encode() for i in range(90, 100)]
    assert gate.frames_held == 90


def test_stop_holds_frames_again():
    """After the turn ends, frames are held until the next onset."""
    gate = SpeechGate()
    gate.start(0)
    gate.stop()
    assert frames(gate, 0, 5) == []
