"""Silero on ONNX Runtime: locating and verifying the file, streams, batching, and never importing torch."""

import hashlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sipbridge.errors import ModelFileError
from sipbridge.turn.silero import MODEL_SHA256, default_model_path, load_model

from .corpus import prompt, to_line


def speech_chunks(name: str, count: int) -> np.ndarray:
    x = to_line(prompt(name))
    return x[: count * 512].reshape(count, 512)


def test_the_installed_model_is_found_and_verified(model):
    """The wheel's silero_vad.onnx is found without importing silero_vad and matches the pinned sha256."""
    assert default_model_path().name == "silero_vad.onnx"
    assert model.sha256 == MODEL_SHA256
    assert hashlib.sha256(default_model_path().read_bytes()).hexdigest() == MODEL_SHA256


def test_a_flipped_byte_is_refused_naming_path_and_both_hashes(tmp_path):
    """A copy with one byte changed raises ModelFileError with its path, its hash and the expected hash."""
    bad = tmp_path / "silero_vad.onnx"
    shutil.copyfile(default_model_path(), bad)
    blob = bytearray(bad.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    bad.write_bytes(bytes(blob))
    with pytest.raises(ModelFileError) as info:
        load_model(bad)
    message = str(info.value)
    assert str(bad) in message and MODEL_SHA256 in message
    assert hashlib.sha256(bytes(blob)).hexdigest() in message


def test_a_missing_file_says_how_to_install_it(tmp_path):
    """A path that does not exist raises ModelFileError with the pip --no-deps command."""
    with pytest.raises(ModelFileError) as info:
        load_model(tmp_path / "nope.onnx")
    assert "pip install --no-deps silero-vad" in str(info.value)
    assert str(tmp_path / "nope.onnx") in str(info.value)


def test_a_file_onnx_runtime_cannot_load_is_a_model_file_error(tmp_path):
    """Garbage with the hash check disabled is still reported as ModelFileError, not an ORT exception."""
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelFileError):
        load_model(junk, sha256=None)


def test_speech_scores_high_and_silence_low(model):
    """A real prompt reaches > 0.9 within its first half second; digital silence stays < 0.1."""
    stream = model.new_stream()
    assert max(stream.prob(c) for c in speech_chunks("hello-world", 16)) > 0.9
    quiet = model.new_stream()
    assert max(quiet.prob(np.zeros(512, np.int16)) for _ in range(10)) < 0.1


def test_int16_and_float32_chunks_score_the_same(model):
    """An int16 chunk scores as its /32768 float32 twin."""
    chunks = speech_chunks("vm-reachoper", 8)
    a, b = model.new_stream(), model.new_stream()
    for c in chunks:
        assert a.prob(c) == pytest.approx(b.prob(c.astype(np.float32) / 32768), abs=1e-6)


def test_reset_makes_a_stream_new_again(model):
    """After reset() a stream scores a sequence exactly as a fresh stream does."""
    chunks = speech_chunks("conf-now-muted", 10)
    used = model.new_stream()
    for c in chunks[::-1]:
        used.prob(c)
    used.reset()
    fresh = model.new_stream()
    assert [used.prob(c) for c in chunks] == [fresh.prob(c) for c in chunks]


def test_context_carries_the_previous_chunk_tail(model):
    """Scoring depends on the previous chunk's tail: the same chunk after different history scores differently."""
    chunks = speech_chunks("please-try-again", 6)
    a, b = model.new_stream(), model.new_stream()
    a.prob(chunks[0])
    b.skip(chunks[0])  # same context, zero state
    c = model.new_stream()
    pa, pb, pc = a.prob(chunks[1]), b.prob(chunks[1]), c.prob(chunks[1])
    assert pb != pc and pa != pb


def test_batched_scoring_equals_single_stream_scoring(model):
    """probs() over 6 calls' chunks matches each call's own prob() sequence within 1e-4, state included."""
    names = ["hello-world", "vm-reachoper", "please-try-again", "conf-now-muted", "vm-nobodyavail", "goodbye"]
    audio = [speech_chunks(n, 20) for n in names]
    audio[5] = np.zeros((20, 512), np.int16)  # one silent call in the batch
    singles = [model.new_stream() for _ in names]
    batched = [model.new_stream() for _ in names]
    for k in range(20):
        want = np.array([s.prob(a[k]) for s, a in zip(singles, audio)])
        got = model.probs(batched, [a[k] for a in audio])
        np.testing.assert_allclose(got, want, atol=1e-4)
    for s, b in zip(singles, batched):
        np.testing.assert_allclose(b._state, s._state, atol=1e-4)
        np.testing.assert_array_equal(b._buffer[0, :64], s._buffer[0, :64])


def test_batches_may_hold_any_subset_of_streams(model):
    """A stream that sits out a round keeps its state; the next round continues it correctly."""
    chunks = speech_chunks("vm-nobodyavail", 6)
    a, b, ref = model.new_stream(), model.new_stream(), model.new_stream()
    model.probs([a, b], [chunks[0], chunks[0]])
    model.probs([b], [chunks[1]])
    ref.prob(chunks[0])
    assert model.probs([a], [chunks[1]])[0] == pytest.approx(ref.prob(chunks[1]), abs=1e-4)


def test_bad_batches_are_refused(model):
    """A stream twice in one batch, a foreign stream, or a wrong-length chunk raise ValueError."""
    s = model.new_stream()
    chunk = np.zeros(512, np.int16)
    with pytest.raises(ValueError):
        model.probs([s, s], [chunk, chunk])
    with pytest.raises(ValueError):
        model.probs([load_model().new_stream()], [chunk])
    with pytest.raises(ValueError):
        s.prob(np.zeros(320, np.int16))
    with pytest.raises(ValueError):
        s.prob(np.zeros(512, np.int32))
    assert model.probs([], []).shape == (0,)


def test_importing_the_turn_package_and_scoring_never_imports_torch(tmp_path):
    """In a fresh interpreter (with a booby-trapped `torch` on the path), all turn modules load and score without torch or silero_vad's __init__."""
    trap = tmp_path / "trap" / "torch"
    trap.mkdir(parents=True)
    (trap / "__init__.py").write_text("raise ImportError('torch was imported')\n")
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import sipbridge.turn, sipbridge.turn.silero, sipbridge.turn.settings
        import sipbridge.turn.detector, sipbridge.turn.engine, sipbridge.turn.events
        from sipbridge.turn.silero import load_model
        from sipbridge.turn.engine import TurnEngine
        from sipbridge.turn.settings import TurnSettings
        engine = TurnEngine(load_model().new_stream(), TurnSettings())
        engine.feed(np.ones(1024, np.int16))
        bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'silero_vad', 'torchaudio'))
        assert not bad, bad
        print('clean')
    """)
    env_path = f"{tmp_path / 'trap'}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, cwd=str(_repo_root()))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[3]


def test_the_model_is_found_through_package_metadata_when_the_spec_gives_no_directory(monkeypatch):
    """With no usable import spec, the distribution's file list still locates silero_vad.onnx."""
    import importlib.util

    via_spec = default_model_path()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert default_model_path().samefile(via_spec)


def test_an_uninstalled_package_says_how_to_install_it(monkeypatch):
    """Without the silero-vad wheel, load_model() raises ModelFileError with the pip --no-deps command."""
    import importlib.metadata
    import importlib.util

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(importlib.metadata, "files", missing)
    with pytest.raises(ModelFileError) as info:
        load_model()
    assert "pip install --no-deps silero-vad" in str(info.value)
