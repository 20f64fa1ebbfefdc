"""On-box turn taking: when the caller starts and stops speaking.

Modules (imported one by one; this package imports nothing, so config code can
use :mod:`.settings` without loading ONNX Runtime):

* :mod:`.settings` -- ``TurnSettings``, profiles, ``resolve()`` of the config section;
* :mod:`.events` -- ``SpeechOnset`` / ``SpeechStarted`` / ``SpeechRejected`` / ``SpeechStopped``;
* :mod:`.detector` -- ``TurnDetector``, the pure per-chunk state machine;
* :mod:`.silero` -- ``load_model()``, ``SileroModel`` (batched ``probs``), ``SileroStream``;
* :mod:`.engine` -- ``TurnEngine`` (frames in, events out) and ``score_pending()`` for a worker's calls;
* :mod:`.bench` -- ``python -m sipbridge.turn.bench``, per-chunk cost.

Silero runs on ONNX Runtime only; nothing here imports torch.
"""
