#!/usr/bin/env python3
"""A minimal answering worker: what pjsua2 (and SIPp) cost per call before the bridge's own work.

Run: ``python bench/floor_worker.py --media native|python -c CONFIG.yaml`` (the same YAML as
``sipbridge run``; only ``sip`` and ``log`` are used). ``bench/capacity.py --bridge floor-*``
starts it in place of ``sipbridge run``.

It is built from the product's pieces: :class:`~sipbridge.sip.stack.SipStack` (the endpoint,
media clock, codecs and RTP ports of a real worker), :class:`~sipbridge.sip.call.BridgeCall`,
the :class:`~sipbridge.media.port.PortPool` and the media-thread priority. Every INVITE is
answered 200 at once; there is no ACL, policy, upstream, VAD, echo canceller or model.

* ``--media native``: the call's audio is connected back to itself in pjmedia's conference
  bridge (``am.startTransmit(am)``): no Python per frame, the pure pjsua2/pjmedia cost.
* ``--media python``: a pooled ``CallPort`` whose callbacks loop the caller's frames back
  (:class:`Loopback`): pjsua2 plus the two per-frame SWIG callbacks with the fast frame
  read/write, and nothing else.
* ``--media cport``: the C port of ``sip.media_port: native`` (sipbridge/media/native) with the
  same :class:`Loopback` served by its per-tick pump: what that port costs per call, before any
  bridge work.

It logs the lines the capacity harness reads from a real worker (``ready``, ``call_answered``,
``session_closed`` with ``underruns: 0``) as JSON on stdout, and on SIGTERM hangs up, drops its
Call and port references and destroys the library in the order ``SipStack.destroy`` needs.
"""

from __future__ import annotations

import argparse
import collections
import gc
import queue
import signal
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pjsua2 as pj  # noqa: E402
import structlog  # noqa: E402

from sipbridge import config as config_mod  # noqa: E402
from sipbridge import logs  # noqa: E402
from sipbridge.media.port import PortPool, frame_bytes  # noqa: E402
from sipbridge.media.priority import raise_media_threads  # noqa: E402
from sipbridge.sip.call import BridgeCall  # noqa: E402
from sipbridge.sip.stack import SipStack  # noqa: E402

log = structlog.get_logger("floor")

GIL_SWITCH_S = 0.001   # as sipbridge.worker.GIL_SWITCH_S (importing it would load ONNX Runtime)
LOOP_FRAMES = 3        # caller frames held for the loop back at most (pjmedia alternates rx/tx)
HANGUP_WAIT_S = 3.0


class Loopback:
    """The caller's own frames back to the caller, silence when none is waiting: a session with
    no work per frame (what ``CallSession.on_caller_frame`` / ``next_frame`` cost at the least)."""

    def __init__(self, rate: int):
        self.frames: collections.deque[bytes] = collections.deque(maxlen=LOOP_FRAMES)
        self.silence = bytes(frame_bytes(rate))

    def on_caller_frame(self, pcm: bytes) -> None:
        self.frames.append(pcm)

    def next_frame(self) -> bytes:
        return self.frames.popleft() if self.frames else self.silence


class NativeLoopCall(BridgeCall):
    """A call whose audio goes back to the caller inside pjmedia's conference bridge."""

    def _attach_media(self) -> None:
        info = self.getInfo()
        for i, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                am = self.getAudioMedia(i)
                am.startTransmit(am)
                self._media = am
                return


class FloorWorker:
    """Answers every call, loops its audio back; the ``CallEvents`` of its calls."""

    def __init__(self, cfg: config_mod.Config, media: str):
        self.media = media
        self.media_priority = cfg.sip.media_priority
        self.stack = SipStack(cfg.sip, cfg.log)
        self.ports = PortPool(self.stack.track, cfg.sip.media_rate)   # sip.media_rate, as a worker
        if media == "cport":
            from sipbridge.media.native.pool import NativePortPool
            from sipbridge.sip.stack import library_path
            self.ports = NativePortPool(library_path(), cfg.sip.media_rate, cfg.sip.media_priority)
        self.calls: dict[int, BridgeCall] = {}
        self._lock = threading.Lock()
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._stopping = False

    def run(self) -> int:
        sys.setswitchinterval(GIL_SWITCH_S)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        try:
            self.stack.start(self._on_incoming)
            if self.media == "cport":
                self.ports.start()
            log.info("media_priority", mode=self.media_priority,
                     threads=raise_media_threads(self.media_priority))
            log.info("ready", media=self.media)
            while not self._stopping:
                try:
                    self._commands.get(timeout=0.5)()
                except queue.Empty:
                    pass
        finally:
            self._shutdown()
        return 0

    def _stop(self, _signum, _frame) -> None:
        self._stopping = True
        self._commands.put(lambda: None)  # wake the control loop

    # -- pjsua worker thread ------------------------------------------------------------------
    def _on_incoming(self, prm) -> None:
        cls = NativeLoopCall if self.media == "native" else BridgeCall
        call = cls(self.stack.account, prm.callId, self, "")
        self.stack.track(call)
        call.sip_call_id = call.getInfo().callIdString
        if self._stopping:
            call.reject_op(503, "Service Unavailable")
            return
        call.session = Loopback(self.ports.rate) if self.media != "native" else None
        with self._lock:
            self.calls[prm.callId] = call
        call.answer_op(200)

    def call_confirmed(self, call: BridgeCall) -> None:
        log.info("call_answered", call_id=call.sip_call_id)

    def call_disconnected(self, call: BridgeCall, code: int, reason: str) -> None:
        port = call.port
        log.info("call_ended", call_id=call.sip_call_id, status=code, reason=reason)
        log.info("session_closed", call_id=call.sip_call_id, underruns=0,
                 frames_in=getattr(port, "frames_in", None),
                 callback_errors=port.errors if port else 0)
        self._commands.put(lambda: self._forget(call))

    def call_dtmf(self, call: BridgeCall, digit: str) -> None:
        pass

    def acquire_port(self, on_frame, next_frame):
        return self.ports.acquire(on_frame, next_frame)

    def release_port(self, port) -> None:
        self.ports.release(port)

    # -- control thread -----------------------------------------------------------------------
    def _forget(self, call: BridgeCall) -> None:
        with self._lock:  # pjsua reuses call slots: the id may already be a newer call's
            if self.calls.get(call.getId()) is call:
                del self.calls[call.getId()]
        call.release_media()
        call.session = None
        call.thisown = 0  # ~Call() would hang up a newer call in the same slot (sipbridge.worker)

    def _shutdown(self) -> None:
        self._stopping = True
        if self.stack.ep is not None:
            self.stack.hangup_all()
            deadline = time.monotonic() + HANGUP_WAIT_S
            while self.calls and time.monotonic() < deadline:
                try:
                    self._commands.get(timeout=0.1)()
                except queue.Empty:
                    pass
            while True:  # forget what has ended meanwhile
                try:
                    self._commands.get_nowait()()
                except queue.Empty:
                    break
            with self._lock:
                for call in self.calls.values():
                    call.release_media()
                    call.session = None
                self.calls.clear()
        gc.collect()
        if self.media == "cport":
            self.ports.stop()
        self.stack.destroy()
        log.info("stopped", media=self.media, audio_ports=self.ports.size)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--media", choices=("native", "python", "cport"), required=True)
    p.add_argument("--config", "-c", help="sipbridge YAML config (sip and log sections)")
    args = p.parse_args(argv)
    cfg = config_mod.load(args.config)
    logs.configure(cfg.log.level, cfg.log.format, stream=sys.stdout)
    return FloorWorker(cfg, args.media).run()


if __name__ == "__main__":
    sys.exit(main())
