"""Silero VAD on ONNX Runtime: the model file, per-call streams, batched scoring.

The ``silero-vad`` wheel is installed with ``--no-deps`` only for its ONNX file;
its package ``__init__`` imports torch, so this module never imports it. The file
is located through the import system's *spec* of the package (which finds the
directory without executing ``__init__``), falling back to the distribution's
file list, and is checked against a pinned sha256 before ONNX Runtime sees it.
The bytes that were hashed are the bytes that are loaded.

Model contract (``silero_vad.onnx`` of the silero-vad 6.2.3 wheel, pinned by hash; at
16 kHz): ``input`` float32 ``[B, 64 + 512]`` (the 64 leading samples are the tail of the
stream's previous chunk, zeros for the first), ``state`` float32 ``[2, B, 128]``, ``sr``
int64 scalar 16000; outputs the speech
probability ``[B, 1]`` and the next state. A :class:`SileroStream` carries one
call's state and context; :meth:`SileroModel.probs` scores one chunk of each of
many streams in a single run (about half the per-stream cost from B >= 8).

At 8 kHz the same file takes ``[B, 32 + 256]`` with ``sr`` 8000: 32 ms chunks at
both rates. Checked on the model itself: it branches on ``sr == 16000`` and
sends *every* other value (4000, 11025, 48000 alike) down its 8 kHz branch
without complaint, so the rate is validated here (:data:`RATES`). That branch
runs input widths 96-348, exactly half the 16 kHz branch's 192-700: 32 + 256 is
the half-scale twin of 64 + 512 (and the wheel's own wrapper uses it). On six
prompts over G.711 (451 chunks), an 8 kHz stream and a 16 kHz stream of the same audio agree
on speech (p >= 0.5) in 98.2% of chunks (with a 64-sample context at 8 kHz: 97.6%).
A stream has one rate for life (:meth:`SileroModel.new_stream`), and one model
run never mixes rates. An 8 kHz run is cheaper: fastest of 15 interleaved rounds
on real speech chunks, 144 vs 169 us per chunk single-stream, 69 vs 90 and 53 vs
74 us per stream at B = 4 and 8 (one process, 2-core EPYC).
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

SAMPLE_RATE = 16000  # the default rate
CHUNK_SAMPLES_AT = {16000: 512, 8000: 256}  # 32 ms at both rates
CONTEXT_SAMPLES_AT = {16000: 64, 8000: 32}
RATES = tuple(CHUNK_SAMPLES_AT)
CHUNK_SAMPLES = CHUNK_SAMPLES_AT[SAMPLE_RATE]
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


def chunk_samples(sample_rate: int) -> int:
    """Samples in one model chunk at ``sample_rate`` (512 at 16 kHz, 256 at 8 kHz); ValueError for other rates."""
    try:
        return CHUNK_SAMPLES_AT[sample_rate]
    except (KeyError, TypeError):
        raise ValueError(f"Silero scores {' or '.join(map(str, RATES))} Hz audio, not {sample_rate!r}") from None


def _write_chunk(dest: np.ndarray, chunk: np.ndarray, sample_rate: int) -> None:
    """Copy one chunk into ``dest`` (its length) as float32 in [-1, 1): int16 scaled by 1/32768, float32 as is."""
    if chunk.shape != dest.shape:
        raise ValueError(f"a Silero chunk is {len(dest)} samples of {sample_rate} Hz audio, got shape {chunk.shape}")
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
        # the input width (context + chunk) says the rate: one lookup, no allocation per run
        self._sr_by_width = {
            CONTEXT_SAMPLES_AT[rate] + CHUNK_SAMPLES_AT[rate]: np.array(rate, dtype=np.int64) for rate in RATES
        }

    def new_stream(self, sample_rate: int = SAMPLE_RATE) -> SileroStream:
        """A fresh stream (zero state, zero context) for one call's ``sample_rate`` audio (16000 or 8000)."""
        return SileroStream(self, sample_rate)

    def _run(self, audio: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sr = self._sr_by_width[audio.shape[1]]
        prob, new_state = self._session.run(None, {"input": audio, "state": state, "sr": sr})
        return prob, new_state

    def probs(self, streams: Sequence[SileroStream], chunks: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Score chunk ``i`` on stream ``i`` for all ``i`` in one model run; returns float32 ``[B]``.

        Each stream's state and context advance exactly as ``streams[i].prob(chunks[i])``
        would (results agree within float rounding, well under 1e-4). A stream may
        appear once per call (its second chunk depends on the first's state),
        every stream must belong to this model, and all must have one sample rate
        (:func:`~sipbridge.turn.engine.score_pending` runs one batch per rate).
        """
        count = len(streams)
        if count != len(chunks):
            raise ValueError(f"{count} streams but {len(chunks)} chunks")
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        if len({id(s) for s in streams}) != count:
            raise ValueError("a stream appears twice in one batch; score its chunks in successive calls")
        rate, context = streams[0]._rate, streams[0]._context
        audio = np.empty((count, streams[0]._buffer.shape[1]), dtype=np.float32)
        state = np.empty((2, count, STATE_SHAPE[1]), dtype=np.float32)
        for i, (stream, chunk) in enumerate(zip(streams, chunks)):
            if stream._model is not self:
                raise ValueError("stream belongs to a different SileroModel")
            if stream._rate != rate:
                raise ValueError(f"streams at {rate} and {stream._rate} Hz in one batch; score each rate on its own")
            audio[i, :context] = stream._buffer[0, :context]
            _write_chunk(audio[i, context:], chunk, rate)
            state[:, i, :] = stream._state[:, 0, :]
        prob, new_state = self._run(audio, state)
        for i, stream in enumerate(streams):
            stream._buffer[0, :context] = audio[i, -context:]
            stream._state = np.ascontiguousarray(new_state[:, i : i + 1, :])
        return prob[:, 0].astype(np.float32, copy=False)


class SileroStream:
    """One call's Silero state (LSTM ``[2, 1, 128]``) and context, at one sample rate.

    The context (64 samples at 16 kHz, 32 at 8 kHz) lives in the first slots of a
    reusable ``[1, context + chunk]`` input buffer (``[1, 576]``, ``[1, 288]``), so
    single-stream scoring allocates nothing but the model's outputs.
    """

    def __init__(self, model: SileroModel, sample_rate: int = SAMPLE_RATE):
        self._model = model
        self._rate = sample_rate
        self._chunk = chunk_samples(sample_rate)
        self._context = CONTEXT_SAMPLES_AT[sample_rate]
        self._buffer = np.zeros((1, self._context + self._chunk), dtype=np.float32)
        self._state = np.zeros((2, 1, STATE_SHAPE[1]), dtype=np.float32)

    @property
    def model(self) -> SileroModel:
        """The model this stream runs on (batches may only mix streams of one model)."""
        return self._model

    @property
    def sample_rate(self) -> int:
        """Samples per second of the audio this stream scores (batches never mix rates)."""
        return self._rate

    @property
    def chunk_samples(self) -> int:
        """Samples in each chunk :meth:`prob` takes: 32 ms (512 at 16 kHz, 256 at 8 kHz)."""
        return self._chunk

    def prob(self, chunk: np.ndarray) -> float:
        """Speech probability of the next chunk (:attr:`chunk_samples`, int16 or float32), advancing the stream."""
        context = self._context
        _write_chunk(self._buffer[0, context:], chunk, self._rate)
        prob, self._state = self._model._run(self._buffer, self._state)
        self._buffer[0, :context] = self._buffer[0, -context:]
        return float(prob[0, 0])

    def skip(self, chunk: np.ndarray, *, reset_state: bool = False) -> None:
        """Advance past a chunk without running the model: the chunk's tail becomes the context.

        The LSTM state is kept (it then summarises the audio before the skipped
        chunk) or, with ``reset_state``, zeroed as at the start of a stream.
        """
        context = self._context
        _write_chunk(self._buffer[0, context:], chunk, self._rate)
        self._buffer[0, :context] = self._buffer[0, -context:]
        if reset_state:
            self._state = np.zeros_like(self._state)

    def reset(self) -> None:
        """Forget all history: zero state and zero context, as for a new call."""
        self._buffer[:] = 0.0
        self._state = np.zeros_like(self._state)
