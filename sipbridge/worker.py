"""One worker process: a pjsua2 endpoint, its calls, and the event loop of their sessions.

Threads and what each may do:

* control (the main thread): created the pjsua2 library; runs queued commands (answer,
  hang up, forget a call) and signal handling. It blocks on a queue: no polling at idle.
* pjsua worker: SIP and RTP sockets, call callbacks (``_on_incoming``, ``call_*``).
* media clock: frame callbacks into :class:`CallSession` (no pjsua calls there).
* event loop: realtime WebSocket sessions and the embedded model.

Shutdown (Ctrl-C / SIGTERM): new INVITEs get 503, every call is hung up with BYE, sessions are
closed, every pjsua2 object is dropped, and only then is the library destroyed; exit 0.
"""

from __future__ import annotations

import asyncio
import gc
import queue
import signal
import threading
import time

import structlog

from .config import EMBEDDED, Config
from .session import CallSession
from .sip.acl import AddressFilter
from .sip.call import BridgeCall
from .sip.stack import SipStack

log = structlog.get_logger("sipbridge.worker")

SHUTDOWN_GRACE_S = 3.0


def _ignore(*_args) -> None:
    pass


class Worker:
    def __init__(self, config: Config):
        self.config = config
        self.acl = AddressFilter(config.sip.allow_from)
        self.stack = SipStack(config.sip, config.log)
        self.calls: dict[int, BridgeCall] = {}
        self._calls_lock = threading.Lock()
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._stopping = False
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, name="sipbridge-loop",
                                             daemon=True)
        self.embedded = None
        self.vad_model = None
        self.upstream_url = ""
        self.api_key: str | None = None
        self.counters = {"accepted": 0, "rejected_403": 0, "rejected_486": 0,
                         "rejected_503": 0, "ended": 0}

    # -- control thread -----------------------------------------------------------------------
    def run(self) -> int:
        self._loop_thread.start()
        self._install_signals()
        try:
            self._start_upstream()
            # loaded in every mode: a call's turn settings may switch to silero mid-call
            from .turn.silero import load_model
            self.vad_model = load_model()
            self.stack.start(self._on_incoming)
            log.info("ready", upstream=self.upstream_url, turn_detection=
                     self.config.turn_detection.type)
            while not self._stopping:
                try:
                    command = self._commands.get(timeout=0.5)
                except queue.Empty:
                    continue
                self._run_command(command)
        finally:
            self._shutdown()
        return 0

    def _start_upstream(self) -> None:
        url, key = self.config.upstream()
        if url == EMBEDDED:
            from .realtime.embedded import EmbeddedModel
            self.embedded = EmbeddedModel()
            url = self._await(self.embedded.start("127.0.0.1", 0))
            log.info("embedded_model_started", url=url,
                     behaviour="answers each turn with the caller's own utterance")
        self.upstream_url, self.api_key = url, key

    def _install_signals(self) -> None:
        def stop(signum, _frame):
            log.info("stop_requested", signal=signal.Signals(signum).name)
            self._stopping = True
            self._commands.put(lambda: None)  # wake the control loop
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def post(self, command) -> None:
        """Run ``command()`` on the control thread (from any thread)."""
        self._commands.put(command)

    @staticmethod
    def _run_command(command) -> None:
        try:
            command()
        except Exception:  # noqa: BLE001
            log.exception("command_failed")

    def _await(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # -- pjsua worker thread: INVITE policy ---------------------------------------------------
    def _on_incoming(self, prm) -> None:
        call = BridgeCall(self.stack.account, prm.callId, self, "")
        self.stack.track(call)
        info = call.getInfo()
        call.sip_call_id = info.callIdString
        source = prm.rdata.srcAddress
        with self._calls_lock:
            self.calls[prm.callId] = call
            active = sum(1 for c in self.calls.values() if c.session is not None)
        clog = log.bind(call_id=call.sip_call_id, source=source)
        if self._stopping:
            return self._reject(call, 503, "Service Unavailable", clog, "draining")
        if not self.acl.allows(source):
            return self._reject(call, 403, "Forbidden", clog, "source not in sip.allow_from")
        if active >= self.stack.capacity:
            return self._reject(call, 486, "Busy Here", clog, "at call capacity")
        clog.info("call_incoming", remote=info.remoteUri, local=info.localUri)
        call.answer_op(180)
        session = CallSession(call_id=call.sip_call_id, config=self.config,
                              url=self.upstream_url, api_key=self.api_key, loop=self.loop,
                              vad_model=self.vad_model,
                              on_end=lambda reason: self.post(lambda: self._end(call, reason)))
        call.session = session
        future = asyncio.run_coroutine_threadsafe(session.start(), self.loop)
        future.add_done_callback(lambda f: self.post(lambda: self._answer(call, f)))

    def _reject(self, call: BridgeCall, code: int, reason: str, clog, why: str) -> None:
        self.counters[f"rejected_{code}"] += 1
        clog.warning("call_rejected", status=code, why=why)
        call.hangup_op(code, reason)

    # -- control thread: answering and ending -------------------------------------------------
    def _answer(self, call: BridgeCall, future) -> None:
        session = call.session
        if call.disconnected:
            self._close_session(session)
            return
        exc = future.exception()
        if exc is not None or self._stopping:
            why = str(exc) if exc is not None else "shutting down"
            self.counters["rejected_503"] += 1
            log.warning("upstream_unavailable", call_id=call.sip_call_id, reason=why)
            call.hangup_op(503, "Service Unavailable", retry_after=30)
            self._close_session(session)
            return
        call.answer_op(200)
        self.counters["accepted"] += 1

    def _end(self, call: BridgeCall, reason: str) -> None:
        if not call.disconnected:
            log.info("call_hangup", call_id=call.sip_call_id, reason=reason)
            call.hangup_op(200 if call.is_confirmed() else 503)

    def _forget(self, call: BridgeCall) -> None:
        with self._calls_lock:
            self.calls.pop(call.getId(), None)
        self._close_session(call.session)
        call.release_media()
        call.session = None

    def _close_session(self, session: CallSession | None) -> None:
        if session is not None and not self.loop.is_closed():
            session.on_end = _ignore  # the call is gone: drop the closure that holds it
            asyncio.run_coroutine_threadsafe(session.close(), self.loop)

    # -- CallEvents (pjsua worker thread) -----------------------------------------------------
    def call_confirmed(self, call: BridgeCall) -> None:
        log.info("call_answered", call_id=call.sip_call_id)

    def call_disconnected(self, call: BridgeCall, code: int, reason: str) -> None:
        self.counters["ended"] += 1
        log.info("call_ended", call_id=call.sip_call_id, status=code, reason=reason)
        self.post(lambda: self._forget(call))

    def media_port_created(self, port) -> None:
        self.stack.track(port)

    def call_dtmf(self, call: BridgeCall, digit: str) -> None:
        if call.session is not None:
            call.session.on_dtmf(digit)

    # -- shutdown -----------------------------------------------------------------------------
    def _shutdown(self) -> None:
        self._stopping = True
        if self.stack.ep is not None:
            with self._calls_lock:
                live = list(self.calls.values())
            for call in live:
                self._run_command(lambda c=call: self._end(c, "shutdown"))
            deadline = time.monotonic() + SHUTDOWN_GRACE_S
            while time.monotonic() < deadline:
                with self._calls_lock:
                    if all(c.disconnected for c in self.calls.values()):
                        break
                try:
                    self._run_command(self._commands.get(timeout=0.05))
                except queue.Empty:
                    pass
            while True:  # run what is left (forget calls) before dropping references
                try:
                    self._run_command(self._commands.get_nowait())
                except queue.Empty:
                    break
            with self._calls_lock:
                sessions = [c.session for c in self.calls.values()]
                for c in self.calls.values():
                    c.release_media()
                    c.session = None
                self.calls.clear()
            for s in sessions:
                self._close_session(s)
            live = None
        try:
            if self.embedded is not None:
                self._await(self.embedded.stop(), timeout=5)
        except Exception:  # noqa: BLE001
            log.exception("embedded_model_stop_failed")
        gc.collect()
        self.stack.destroy()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join(timeout=5)
        log.info("stopped", **self.counters)
