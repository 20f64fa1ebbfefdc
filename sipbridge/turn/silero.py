"""Silero VAD on ONNX Runtime: the model file, per-call streams, batched scoring.

The ``silero-vad`` wheel is installed with ``--no-deps`` only for its ONNX file;
its package ``__init__`` imports torch, so this module never imports it. The file
is located through the import system's *spec* of the package (which finds the
directory without executing ``__init__``), falling back to the distribution's
file list, and is checked against a pinned sha256 before ONNX Runtime sees it.
The bytes that were hashed are the bytes that are loaded.

Model contract (Silero v5, 16 kHz): ``input`` float32 ``[B, 64 + 512]`` (the 64
leading samples are the tail of the stream's previous chunk, zeros for the first),
``state`` float32 ``[2, B, 128]``, ``sr`` int64 scalar 16000; outputs the speech
probability ``[B, 1]`` and the next state. A :class:`SileroStream` carries one
call's state and context; :meth:`SileroModel.probs` scores one chunk of each of
many streams in a single run (about half the per-stream cost from B >= 8).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from sipbridge.errors import ModelFileError

SAMPLE_RATE = 16000
CHUNK_SAMPLES = 512
CONTEXT_SAMPLES = 64
STATE_SHAPE = (2, 128)  # per stream; the model wants [2, B, 128]
MODEL_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
_PACKAGE = "silero_vad"
_DISTRIBUTION = "silero-vad"
_RELATIVE = ("data", "silero_vad.onnx")
_INSTALL_HINT = "install it with `pip install --no-deps silero-vad` (the ONNX file is all we use; never torch)"
_INT16_SCALE = np.float32(1.0 / 32768.0)


def default_model_path() -> Path:
    """Path of ``silero_vad/data/silero_vad.onnx`` in the installed wheel, without importing it.

    Raises :class:`ModelFileError` with the install command when the package is absent.
    """
    spec = importlib.util.find_spec(_PACKAGE)  # top-level: locates, does not execute __init__
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location).joinpath(*_RELATIVE)
            if candidate.is_file():
                return candidate
    try:
        files = importlib.metadata.files(_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.parts[-3:] == (_PACKAGE, *_RELATIVE):
            return Path(entry.locate())
    raise ModelFileError(f"Silero VAD model not found: package {_PACKAGE!r} is not installed; {_INSTALL_HINT}")


def load_model(path: str | Path | None = None, *, sha256: str | None = MODEL_SHA256) -> SileroModel:
    """Load and verify the Silero ONNX model; ``path=None`` uses the installed wheel's file.

    ``sha256`` is the expected digest (pass ``None`` to accept any file, e.g. a
    deliberately different model). Raises :class:`ModelFileError` when the file is
    missing or unreadable (naming the path and the install command), when its hash
    differs (naming the path, the actual and the expected hash), or when ONNX
    Runtime rejects it.
    """
    model_path = default_model_path() if path is None else Path(path)
    try:
        blob = model_path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"Silero VAD model file {model_path} does not exist; {_INSTALL_HINT}") from None
    except OSError as exc:
        raise ModelFileError(f"Silero VAD model file {model_path} cannot be read: {exc}") from exc
    actual = hashlib.sha256(blob).hexdigest()
    if sha256 is not None and actual != sha256.lower():
        raise ModelFileError(
            f"Silero VAD model file {model_path} has sha256 {actual}, expected {sha256.lower()}; "
            f"reinstall it with `pip install --force-reinstall --no-deps silero-vad`"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(blob, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own, unexported exception types
        raise ModelFileError(f"ONNX Runtime cannot load {model_path}: {exc}") from exc
    return SileroModel(session, path=model_path, sha256=actual)


def _write_chunk(dest: np.ndarray, chunk: np.ndarray) -> None:
    """Copy one 512-sample chunk into ``dest`` as float32 in [-1, 1): int16 scaled by 1/32768, float32 as is."""
    if chunk.shape != (CHUNK_SAMPLES,):
        raise ValueError(f"a Silero chunk is {CHUNK_SAMPLES} samples of 16 kHz audio, got shape {chunk.shape}")
    if chunk.dtype == np.int16:
        np.multiply(chunk, _INT16_SCALE, out=dest)
    elif chunk.dtype == np.float32:
        dest[:] = chunk
    else:
        raise ValueError(f"a Silero chunk is int16 or float32, got {chunk.dtype}")


class SileroModel:
    """One ONNX Runtime session, shared by every stream (and call) of a worker.

    Not thread-safe by design: a worker drives it from its media thread only.
    """

    def __init__(self, session: ort.InferenceSession, *, path: Path | None = None, sha256: str | None = None):
        self._session = session
        self.path = path
        self.sha256 = sha256
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)

    def new_stream(self) -> SileroStream:
        """A fresh stream (zero state, zero context) for one call."""
        return SileroStream(self)

    def _run(self, audio: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        prob, new_state = self._session.run(None, {"input": audio, "state": state, "sr": self._sr})
        return prob, new_state

    def probs(self, streams: Sequence[SileroStream], chunks: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Score chunk ``i`` on stream ``i`` for all ``i`` in one model run; returns float32 ``[B]``.

        Each stream's state and context advance exactly as ``streams[i].prob(chunks[i])``
        would (results agree within float rounding, well under 1e-4). A stream may
        appear once per call (its second chunk depends on the first's state), and
        every stream must belong to this model.
        """
        count = len(streams)
        if count != len(chunks):
            raise ValueError(f"{count} streams but {len(chunks)} chunks")
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        if len({id(s) for s in streams}) != count:
            raise ValueError("a stream appears twice in one batch; score its chunks in successive calls")
        audio = np.empty((count, CONTEXT_SAMPLES + CHUNK_SAMPLES), dtype=np.float32)
        state = np.empty((2, count, STATE_SHAPE[1]), dtype=np.float32)
        for i, (stream, chunk) in enumerate(zip(streams, chunks)):
            if stream._model is not self:
                raise ValueError("stream belongs to a different SileroModel")
            audio[i, :CONTEXT_SAMPLES] = stream._buffer[0, :CONTEXT_SAMPLES]
            _write_chunk(audio[i, CONTEXT_SAMPLES:], chunk)
            state[:, i, :] = stream._state[:, 0, :]
        prob, new_state = self._run(audio, state)
        for i, stream in enumerate(streams):
            stream._buffer[0, :CONTEXT_SAMPLES] = audio[i, -CONTEXT_SAMPLES:]
            stream._state = np.ascontiguousarray(new_state[:, i : i + 1, :])
        return prob[:, 0].astype(np.float32, copy=False)


class SileroStream:
    """One call's Silero state (LSTM ``[2, 1, 128]``) and 64-sample context.

    The context lives in the first 64 slots of a reusable ``[1, 576]`` input buffer,
    so single-stream scoring allocates nothing but the model's outputs.
    """

    def __init__(self, model: SileroModel):
        self._model = model
        self._buffer = np.zeros((1, CONTEXT_SAMPLES + CHUNK_SAMPLES), dtype=np.float32)
        self._state = np.zeros((2, 1, STATE_SHAPE[1]), dtype=np.float32)

    @property
    def model(self) -> SileroModel:
        """The model this stream runs on (batches may only mix streams of one model)."""
        return self._model

    def prob(self, chunk: np.ndarray) -> float:
        """Speech probability of the next 512-sample chunk (int16 or float32), advancing the stream."""
        _write_chunk(self._buffer[0, CONTEXT_SAMPLES:], chunk)
        prob, self._state = self._model._run(self._buffer, self._state)
        self._buffer[0, :CONTEXT_SAMPLES] = self._buffer[0, -CONTEXT_SAMPLES:]
        return float(prob[0, 0])

    def skip(self, chunk: np.ndarray, *, reset_state: bool = False) -> None:
        """Advance past a chunk without running the model: the chunk's tail becomes the context.

        The LSTM state is kept (it then summarises the audio before the skipped
        chunk) or, with ``reset_state``, zeroed as at the start of a stream.
        """
        _write_chunk(self._buffer[0, CONTEXT_SAMPLES:], chunk)
        self._buffer[0, :CONTEXT_SAMPLES] = self._buffer[0, -CONTEXT_SAMPLES:]
        if reset_state:
            self._state = np.zeros_like(self._state)

    def reset(self) -> None:
        """Forget all history: zero state and zero context, as for a new call."""
        self._buffer[:] = 0.0
        self._state = np.zeros_like(self._state)
