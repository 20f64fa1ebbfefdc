"""One worker process: a pjsua2 endpoint, its calls, and the event loop of their sessions.

Threads and what each may do:

* control (the main thread): created the pjsua2 library; runs queued commands (answer,
  hang up, forget a call) and signal handling. It blocks on a queue: no polling at idle.
* pjsua worker: SIP and RTP sockets, call callbacks (``_on_incoming``, ``call_*``).
* media clock: frame callbacks into :class:`CallSession` (no pjsua calls there).
* event loop: realtime WebSocket sessions and the embedded model.

Shutdown (Ctrl-C / SIGTERM): new INVITEs get 503, the calls in progress drain (they run to
their end, or get BYE at ``sip.drain_timeout_s``, or at once on a second signal; see
:mod:`sipbridge.drain`), sessions are closed, every pjsua2 object is dropped, and only then is
the library destroyed; exit 0.
"""

from __future__ import annotations

import asyncio
import gc
import os
import queue
import signal
import sys
import threading
import time

import structlog

from .app.routes import for_call, match as match_route
from .app.webhook import carrier_headers, on_failure, payload as webhook_payload
from .config import EMBEDDED, Config
from .drain import DRAIN_RETRY_AFTER_S, Drain, Step
from .errors import ConfigError
from .media.port import PortPool
from .memtrim import Trimmer
from .session import CallSession
from .sip.acl import AddressFilter
from .sip.call import BridgeCall
from .sip.callerid import Parties, parties
from .sip.dialer import Dialer
from .sip.gate import AdmissionWindow, EarlyGate
from .sip.inbound import InboundPolicy
from .sip.pjgate import PjGate
from .sip.rtpstats import log_fields as rtp_log_fields
from .sip.rtpwatch import RtpWatchdog
from .sip.registration import Registrations
from .sip.stack import SipStack, library_path
from .stopsignal import TEARDOWN_BOUND_S, StopWatchdog, enable_stack_dump, stop_handler

log = structlog.get_logger("sipbridge.worker")

SHUTDOWN_GRACE_S = 3.0
# the HTTP interface's feature modules (sipbridge/app/<name>.py), each with a
# ``routes(ctx) -> list[web.RouteDef]`` (see app/server.py); add yours here
API_ROUTES = ("health", "control", "api_outbound", "api_records")
GIL_SWITCH_S = 0.001


def _ignore(*_args) -> None:
    pass


class Worker:
    def __init__(self, config: Config, worker_index: int | None = None):
        self.config = config
        self.worker_index = worker_index   # a cell's worker: its records name it
        self.acl = AddressFilter(config.sip.allow_from)
        self.policy = InboundPolicy(config.sip, config.auth_password(), os.urandom(32))
        # refusals pjsua must not open sockets for (an INVITE flood aborts it otherwise)
        self.gate = EarlyGate(self.acl, self.policy.limiter, AdmissionWindow(),
                              DRAIN_RETRY_AFTER_S)
        self.stack = SipStack(config.sip, config.log)
        # reused, never destroyed: see media/port.py; at sip.media_rate (16 kHz: pjmedia resamples)
        self.ports = PortPool(self.stack.track, config.sip.media_rate)
        if config.sip.media_port == "native":  # a C pjmedia port per call: media/native
            from .media.native.pool import NativePortPool
            self.ports = NativePortPool(library_path(), config.sip.media_rate,
                                        config.sip.media_priority, config.sip.pump_ticks)
        self.calls: dict[int, BridgeCall] = {}
        self._calls_lock = threading.Lock()
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._stopping = False
        self._forced = False   # a second SIGTERM/SIGINT: hang up the draining calls now
        self._last_hangup = float("-inf")   # monotonic: stop waits for replies 2 s after one
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, name="sipbridge-loop",
                                             daemon=True)
        self.embedded = None
        self.api = None       # the HTTP interface (api.listen), started in run()
        self.ready = False    # SIP bound and serving (readiness)
        self.vad_model = None
        self.vad_batch = None
        self.upstream_url = ""
        self.api_key: str | None = None
        self.trimmer = Trimmer()   # malloc_trim after calls end (memtrim.py: churn kept RSS)
        self.counters = {"accepted": 0, "rejected_403": 0, "rejected_486": 0,
                         "rejected_503": 0, "ended": 0}
        self.rtp_watch = RtpWatchdog(config.sip.rtp_timeout_s, self.post, self._answered_calls,
                                     self._on_rtp_silent)
        self.trunks = Registrations(config.trunks, self.stack, self.post, self._on_incoming)
        from .app.callfeed import Recording
        from .cell.records_push import records_sink   # a cell's worker: records to its supervisor
        sink = records_sink(os.environ) if worker_index is not None else None
        self.recording = Recording(config, self.loop, worker_index, sink=sink)  # records, events
        from .cell.channel import worker_channel
        # a cell's worker (started with --worker-index): its supervisor's channel
        self.control = worker_channel(os.environ) if worker_index is not None else None
        self.recording.serves_api = self.control is not None
        self.dialer = Dialer(self)   # outbound calls (POST /v1/calls), see sip/dialer.py
        self.webhook = None   # app.webhook_url: the incoming-call webhook (app/webhook_client.py)
        if config.app.webhook_url:
            from .app.webhook import signing_key
            from .app.webhook_client import WebhookClient
            self.webhook = WebhookClient(config.app.webhook_url, signing_key(config.app),
                                         config.app.webhook_timeout_ms,
                                         config.app.on_webhook_failure)

    # -- control thread -----------------------------------------------------------------------
    def run(self) -> int:
        # the media clock needs the GIL every 20 ms; by default another thread may keep it 5 ms
        sys.setswitchinterval(GIL_SWITCH_S)
        self._loop_thread.start()
        self._install_signals()
        try:
            self._start_upstream()
            self.recording.start()   # before the first INVITE: every call gets its record
            # loaded in every mode: a call's turn settings may switch to silero mid-call
            from .turn.silero import load_model
            self.vad_model = load_model()
            from .turn.batch import TickBatch
            self.vad_batch = TickBatch()  # one Silero run per media tick for all calls
            self.stack.start(self._on_incoming)
            if self.config.sip.media_port == "native":
                self.ports.start()  # pjmedia layout checked (ConfigError if not), pump started
            from .media.priority import raise_media_threads
            threads = raise_media_threads(self.config.sip.media_priority)
            (log.warning if "not found" in threads.values() else log.info)(
                "media_priority", mode=self.config.sip.media_priority, threads=threads)
            self._install_gate()
            self.trunks.start()  # REGISTER with each trunk; retries are posted to this thread
            self.rtp_watch.start()
            self._start_api()    # api.listen: after SIP is bound (a taken port: exit 1)
            self.ready = True
            log.info("ready", upstream=self.upstream_url, turn_detection=
                     self.config.turn_detection.type, media_rate=self.config.sip.media_rate)
            while not self._stopping:
                try:
                    command = self._commands.get(timeout=0.5)
                except queue.Empty:
                    self.trimmer.tick(time.monotonic())
                    continue
                self._run_command(command)
                self.trimmer.tick(time.monotonic())  # ended calls' heap back to the system
        finally:
            self._shutdown()
        return 0

    def _start_api(self) -> None:
        """The HTTP interface (app/server.py) on this worker's loop, with its metrics fed by the
        log tap; ``api.listen: null`` turns it off. Raises ListenError for a taken port."""
        if self.config.api.listen is None and self.control is None:
            return
        import dataclasses
        import importlib
        from .app.guard import api_token
        from .app.health import worker_state
        from .app.metrics import Metrics
        from .app.server import ApiContext, ApiServer
        from .app.tap import TAP
        api = self.config.api
        metrics = Metrics(lambda: {**worker_state(self), "tap_dropped": TAP.dropped})
        self._metrics_off = TAP.subscribe(metrics.observe)
        config, token, unix = self.config, None, None
        if self.control is not None:  # a cell's worker: on its supervisor's socket, its token
            from .cell.channel import CONTROL_RATE_PER_S
            unix, token = self.control
            config = dataclasses.replace(config, api=dataclasses.replace(
                api, rate_per_s=CONTROL_RATE_PER_S))
        else:
            token = api_token(api.listen, api.token_env, os.environ)
        ctx = ApiContext(self, config, token, metrics=metrics, tap=TAP)
        ctx.extra.update(records=self.recording.store, event_hub=self.recording.hub)  # api_records
        routes = [importlib.import_module(f".app.{name}", __package__).routes
                  for name in API_ROUTES]
        if self.control is not None:  # what only the supervisor asks (cell/metrics_sum.py)
            from .cell.metrics_sum import routes as cell_routes
            routes.append(cell_routes)
        server = ApiServer(ctx, api.listen, routes, unix_path=unix)
        self._await(server.start())
        self.api = server

    def _stop_api(self) -> None:
        server, self.api = self.api, None
        if server is not None:
            try:
                self._await(server.stop(), timeout=5)
            except Exception:  # noqa: BLE001
                log.exception("api_stop_failed")
            self._metrics_off()

    def _install_gate(self) -> None:
        """Register the early INVITE module (sip/pjgate.py) in front of pjsua's."""
        self.stack.gate = PjGate.install(library_path(), self.config.sip.host,
                                         self.config.sip.port, self.gate, self.counters,
                                         lambda: self._stopping)
        if self.stack.gate is not None and self.stack.gate.mode == "full":
            self.policy.limiter = None  # the gate spends the per-source tokens from now on

    def _start_upstream(self) -> None:
        url, key = self.config.upstream()
        if url == EMBEDDED:
            from .embedded import EmbeddedModel
            self.embedded = EmbeddedModel()
            url = self._await(self.embedded.start("127.0.0.1", 0))
            log.info("embedded_model_started", url=url,
                     behaviour="answers each turn with the caller's own utterance")
        self.upstream_url, self.api_key = url, key

    def _install_signals(self) -> None:
        # it may run inside a log.info of this thread: it takes no lock, the loop logs (stopsignal)
        stop = stop_handler(self, self._commands.put)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        enable_stack_dump()   # kill -USR1 PID: every Python thread's stack to stderr

    def post(self, command) -> None:
        """Run ``command()`` on the control thread (from any thread)."""
        self._commands.put(command)

    def place_call(self, request) -> str:
        """Control thread: dial an outbound call (app/outbound.py request); its uid. Raises
        :class:`~sipbridge.sip.dialer.Refused` (no free slot, draining) at once."""
        return self.dialer.place(request)

    @staticmethod
    def _run_command(command) -> None:
        try:
            command()
        except Exception:  # noqa: BLE001
            log.exception("command_failed")

    def _await(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # -- pjsua worker thread: INVITE policy ---------------------------------------------------
    def _on_incoming(self, prm, account=None) -> None:
        """An INVITE to the local account, or (``account``) to a trunk's registered Contact."""
        call = BridgeCall(self.stack.account if account is None else account, prm.callId, self, "")
        self.stack.track(call)
        info = call.getInfo()
        call.sip_call_id = info.callIdString
        call.route, call.metadata = None, {}   # set by routes: / the webhook below
        source = prm.rdata.srcAddress
        with self._calls_lock:
            self.calls[prm.callId] = call
            # a call still asking the webhook (opening, no session yet) holds its slot too
            active = sum(1 for c in self.calls.values() if c.session is not None or (
                getattr(c, "opening", None) is not None and not c.disconnected))
        clog = log.bind(call_id=call.sip_call_id, source=source)
        if self._stopping:
            return self._reject(call, 503, "Service Unavailable", clog, "draining",
                                (("Retry-After", str(DRAIN_RETRY_AFTER_S)),))
        if not self.acl.allows(source):
            return self._reject(call, 403, "Forbidden", clog, "source not in sip.allow_from")
        try:  # rate limit 503, framing 413/400, digest auth 401/403, numbers 404
            refusal = self.policy.check(source, prm.rdata.wholeMsg, time.monotonic())
        except Exception as exc:  # noqa: BLE001 - e.g. a message SWIG cannot decode
            return self._reject(call, 400, "Bad Request", clog, f"unreadable INVITE: {exc!r}")
        if refusal is not None:
            if refusal.counter:
                self.counters[refusal.counter] = self.counters.get(refusal.counter, 0) + 1
            return self._reject(call, refusal.code, refusal.reason, clog, refusal.why,
                                refusal.headers)
        if active >= self.stack.capacity:
            return self._reject(call, 486, "Busy Here", clog, "at call capacity")
        try:
            who = parties(prm.rdata.wholeMsg)
        except Exception:  # noqa: BLE001 - text SWIG cannot decode: the policy took it already
            who = Parties()
        trunk = getattr(account, "trunk_name", None)
        route = match_route(self.config.routes, who.called, trunk)
        call.route = route.name if route is not None else None
        clog.info("call_incoming", uid=call.uid, remote=info.remoteUri, local=info.localUri,
                  trunk=trunk, caller=who.caller, called=who.called, route=call.route)
        if route is not None and route.reject is not None:
            return self._reject(call, route.reject, route.reason or "", clog, f"route {route.name}")
        call.answer_op(180)
        if self.webhook is not None:  # the app decides, on the loop; the caller hears ringing
            body = webhook_payload(
                call_id=call.uid, sip_call_id=call.sip_call_id, from_uri=info.remoteUri,
                to_uri=info.localUri, caller=who.caller, called=who.called, trunk=trunk,
                source=source, route=call.route, headers=carrier_headers(prm.rdata.wholeMsg),
                timestamp=int(time.time()))
            future = asyncio.run_coroutine_threadsafe(self._consult(body, route), self.loop)
            future.add_done_callback(lambda f: self.post(lambda: self._after_webhook(call, who, f)))
            call.opening = future  # cancelled if the caller gives up first (see _forget)
            return
        self._open(call, *for_call(self.config, route), who)

    async def _consult(self, body: dict, route):
        """The webhook's decision for one call (loop thread), its overrides already resolved:
        ``(decision, failure detail, latency ms, (call config, metadata) or None)``."""
        started = time.monotonic()
        decision, detail = await self.webhook.ask(body)
        resolved = None
        if decision.action == "accept":
            try:  # the reply's keys over the route's: a combination the YAML would refuse
                resolved = for_call(self.config, route, decision.agent)
            except ConfigError as exc:
                decision, detail = on_failure(self.config.app.on_webhook_failure, "malformed"), str(exc)
                resolved = for_call(self.config, route) if decision.action == "accept" else None
        return decision, detail, (time.monotonic() - started) * 1000, resolved

    def _after_webhook(self, call: BridgeCall, who: Parties, future) -> None:
        """Control thread: act on the webhook's decision, unless the caller has hung up."""
        if call.disconnected or future.cancelled():
            return
        try:
            decision, detail, latency_ms, resolved = future.result()
        except Exception as exc:  # noqa: BLE001 - a bug must not leave the caller ringing
            log.exception("webhook_consult_failed", call_id=call.sip_call_id)
            decision, detail, latency_ms, resolved = (on_failure("reject", "connection"), repr(exc),
                                                      0.0, None)
        call.webhook_ms = latency_ms
        clog = log.bind(call_id=call.sip_call_id)
        if decision.failure is not None:
            key = f"webhook_failed_{decision.failure}"
            self.counters[key] = self.counters.get(key, 0) + 1
            clog.warning("webhook_failed", reason=decision.failure, detail=detail,
                         then=decision.action, latency_ms=round(latency_ms, 1))
        else:
            self.counters["webhook_ok"] = self.counters.get("webhook_ok", 0) + 1
            clog.info("webhook_answered", action=decision.action, latency_ms=round(latency_ms, 1))
        if decision.action == "reject":
            key = f"rejected_{decision.status}"
            self.counters[key] = self.counters.get(key, 0) + 1
            clog.warning("call_rejected", status=decision.status,
                         why="webhook" if decision.failure is None else f"webhook {decision.failure}")
            call.opening = None
            call.hangup_op(decision.status, decision.reason or "")
            return
        try:
            self._open(call, *resolved, who)  # replaces call.opening: the slot stays held
        except Exception:  # noqa: BLE001 - e.g. a session that cannot be built: refuse, not ring on
            log.exception("session_open_failed", call_id=call.sip_call_id)
            call.opening = None
            self.counters["rejected_503"] = self.counters.get("rejected_503", 0) + 1
            call.hangup_op(503, "Service Unavailable")

    def _open(self, call: BridgeCall, config: Config, metadata: dict, who: Parties) -> None:
        """Start the call's session with its own config; answer once the model is connected."""
        call.metadata = metadata
        session = CallSession(call_id=call.sip_call_id, config=config,
                              url=self.upstream_url, api_key=self.api_key, loop=self.loop,
                              vad_model=self.vad_model, vad_batch=self.vad_batch,
                              on_end=lambda reason: self.post(lambda: self._end(call, reason)),
                              on_transfer=lambda target: self.post(lambda: self._transfer(call, target)),
                              parties=who, metadata=metadata, route=call.route, uid=call.uid)
        call.session = session
        future = asyncio.run_coroutine_threadsafe(session.start(), self.loop)
        future.add_done_callback(lambda f: self.post(lambda: self._answer(call, f)))
        call.opening = future  # cancelled if the caller gives up first (see _forget)

    def _reject(self, call: BridgeCall, code: int, reason: str, clog, why: str,
                headers: tuple = ()) -> None:
        key = f"rejected_{code}"
        self.counters[key] = self.counters.get(key, 0) + 1
        clog.warning("call_rejected", status=code, why=why)
        call.reject_op(code, reason, headers)  # inside onIncomingCall: see reject_op

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

    def _end(self, call: BridgeCall, reason: str, **fields) -> None:
        if call.direction == "outbound":
            self.dialer.on_end(call, reason)  # before the answer: cancelled, not failed
        self._last_hangup = time.monotonic()
        if not call.disconnected:
            log.info("call_hangup", call_id=call.sip_call_id, reason=reason, **fields)
            call.hangup_op(200 if call.is_confirmed() else 503)

    def _transfer(self, call: BridgeCall, target: str) -> None:
        """Blind transfer: REFER the caller's side to ``target``; the outcome arrives in
        :meth:`call_transfer_status`."""
        if call.disconnected:
            return
        log.info("call_transfer", call_id=call.sip_call_id, target=target)
        try:
            call.transfer_op(target)
        except Exception as exc:  # noqa: BLE001 - pj.Error: e.g. a call not in a state to REFER
            log.warning("call_transfer_not_sent", call_id=call.sip_call_id, error=str(exc))
            if call.session is not None:
                call.session.transfer_result(0, f"REFER not sent: {exc}")

    def _answered_calls(self) -> list[BridgeCall]:
        """The RTP watchdog's view: answered (confirmed) calls with a session."""
        if self._stopping:
            return []
        with self._calls_lock:
            live = [c for c in self.calls.values() if c.session is not None and not c.disconnected]
        return [c for c in live if c.is_confirmed()]

    def _on_rtp_silent(self, call: BridgeCall, silent_s: float) -> None:
        self._end(call, "rtp_timeout", silent_s=round(silent_s, 1),
                  rtp_timeout_s=self.config.sip.rtp_timeout_s)

    def _forget(self, call: BridgeCall) -> None:
        with self._calls_lock:  # pjsua reuses call slots: the id may already be a newer call's
            if self.calls.get(call.getId()) is call:
                del self.calls[call.getId()]
        opening = getattr(call, "opening", None)
        if opening is not None:  # CANCEL before the answer: stop opening the model session now
            opening.cancel()
            call.opening = None
        self._close_session(call.session)
        call.release_media()
        call.session = None
        self.trimmer.call_ended()
        # pjsua2's ~Call() clears the user data of the call's slot id and hangs up whatever call
        # is active there (603). pjsua reuses slots at once, so destroying this object now can
        # orphan or kill the newer call in the same slot (seen under INVITE floods). The native
        # object is therefore left to the process (~100 bytes per ended call); pjsua2 never
        # calls back into it: the slot's next Call overwrites the user data.
        call.thisown = 0

    def _close_session(self, session: CallSession | None) -> None:
        if session is not None and not self.loop.is_closed():
            session.on_end = _ignore  # the call is gone: drop the closure that holds it
            asyncio.run_coroutine_threadsafe(session.close(), self.loop)

    # -- CallEvents (pjsua worker thread) -----------------------------------------------------
    def call_confirmed(self, call: BridgeCall) -> None:
        log.info("call_answered", call_id=call.sip_call_id)
        if call.direction == "outbound":
            self.dialer.on_confirmed(call)
            call.attach_media()  # held back while it rang (no early media to the model)
        if call.session is not None:
            call.session.greet()  # realtime.greeting: the agent speaks first

    def call_early(self, call: BridgeCall, code: int) -> None:
        self.dialer.on_early(call, code)

    def call_disconnected(self, call: BridgeCall, code: int, reason: str) -> None:
        if call.direction == "outbound":
            self.dialer.on_disconnected(call, code, reason)
        self.counters["ended"] += 1
        log.info("call_ended", call_id=call.sip_call_id, status=code, reason=reason,
                 **rtp_log_fields(call.rtp_stats))
        self.post(lambda: self._forget(call))

    def call_transfer_status(self, call: BridgeCall, code: int, reason: str, final: bool) -> None:
        """Progress of a REFER (pjsua worker thread): the far end's NOTIFYs, or the REFER's own
        failure. A final 2xx means the caller is now talking to the target: our leg ends."""
        log.info("call_transfer_status", call_id=call.sip_call_id, status=code, reason=reason,
                 final=final)
        if not final:
            return
        if 200 <= code < 300:
            self.post(lambda: self._end(call, "transferred"))
        elif call.session is not None:
            call.session.transfer_result(code, reason)

    def acquire_port(self, on_frame, next_frame):
        return self.ports.acquire(on_frame, next_frame)

    def release_port(self, port) -> None:
        self.ports.release(port)

    def call_dtmf(self, call: BridgeCall, digit: str) -> None:
        if call.session is not None:
            call.session.on_dtmf(digit)

    # -- shutdown -----------------------------------------------------------------------------
    def _live_calls(self) -> list[BridgeCall]:
        with self._calls_lock:
            return [c for c in self.calls.values() if not c.disconnected]

    def _drain_calls(self) -> None:
        """Serve the calls in progress until they end; BYE at the deadline or a second signal."""
        drain = Drain(time.monotonic(), self.config.sip.drain_timeout_s, SHUTDOWN_GRACE_S)
        log.info("draining", calls=len(self._live_calls()), deadline_s=drain.timeout_s)
        hung_up = 0
        while True:
            if self._forced:
                drain.force()
            now = time.monotonic()
            live = self._live_calls()
            step = drain.step(now, len(live))
            if step is Step.DONE:
                break
            if step is Step.HANG_UP:
                reason = "shutdown" if drain.forced or not drain.timeout_s else "drain_timeout"
                hung_up = len(live)
                for call in live:
                    self._run_command(lambda c=call, r=reason: self._end(c, r))
            live = None
            try:  # disconnects, answers and the second signal all arrive as commands
                self._run_command(self._commands.get(timeout=max(drain.wait_s(now, 0.5), 0.01)))
            except queue.Empty:
                pass
        log.info("drained", waited_s=round(time.monotonic() - drain.started, 2), hung_up=hung_up,
                 left=len(self._live_calls()))

    def _shutdown(self) -> None:
        self._stopping = True
        # a stop stuck past the drain and the teardown's bound: stacks to stderr, exit 70
        StopWatchdog(self.config.sip.drain_timeout_s + SHUTDOWN_GRACE_S + TEARDOWN_BOUND_S).arm()
        self.rtp_watch.stop()
        if self.stack.ep is not None:
            self.trunks.unregister()  # the registrar stops sending calls while ours drain
            self._drain_calls()
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
        try:
            if self.webhook is not None:
                self._await(self.webhook.close(), timeout=5)
        except Exception:  # noqa: BLE001
            log.exception("webhook_client_close_failed")
        try:
            if self.embedded is not None:
                self._await(self.embedded.stop(), timeout=5)
        except Exception:  # noqa: BLE001
            log.exception("embedded_model_stop_failed")
        if self.stack.ep is not None:
            self.trunks.close()  # waits (<= 2 s) for the unregistrations, deletes the accounts
        gc.collect()
        if self.config.sip.media_port == "native":
            self.ports.stop()   # the pump; its ports stay idle in the conference
        self.stack.destroy(linger=time.monotonic() - self._last_hangup < 2.0)
        self.recording.hub.close_streams()   # live /v1/events streams end: the API stops at once
        self._stop_api()
        self.recording.stop()   # the drained calls' records and events: written, sent (<= 2 s)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join(timeout=5)
        log.info("stopped", audio_ports=self.ports.size, **self.counters)
