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
    """Frames older than keep_samples are dropped from the ring."""
    gate = SpeechGate(keep_samples=3200)      # 10 frames
    frames(gate, 0, 100)
    assert gate.start(0) == [f"f{i}".encode() for i in range(90, 100)]


def test_a_new_onset_after_a_rejected_candidate_resends_the_cleared_audio():
    """Audio cleared upstream with a rejected candidate is sent again when a new onset covers it."""
    gate = SpeechGate(keep_samples=16000)
    frames(gate, 0, 20)
    assert gate.start(10 * 320) == [f"f{i}".encode() for i in range(10, 20)]
    assert frames(gate, 20, 5) == [f"f{i}".encode() for i in range(20, 25)]
    gate.stop(cleared=True)                   # rejected: upstream dropped f10..f24
    frames(gate, 25, 2)
    assert gate.start(12 * 320) == [f"f{i}".encode() for i in range(12, 27)]


def test_audio_of_a_finished_turn_is_not_sent_twice():
    """After a turn ends normally, a new onset overlapping it releases only audio not yet sent."""
    gate = SpeechGate(keep_samples=16000)
    frames(gate, 0, 10)
    gate.start(0)
    frames(gate, 10, 5)
    gate.stop()
    frames(gate, 15, 3)
    assert gate.start(12 * 320) == [b"f15", b"f16", b"f17"]


def test_stop_holds_frames_again():
    """After the turn ends, frames are held until the next onset."""
    gate = SpeechGate()
    gate.start(0)
    gate.stop()
    assert frames(gate, 0, 5) == []
