"""The pjsua2 endpoint of one worker: library set-up, UDP transport, codecs, local account.

pjsua2 is a per-process singleton whose failed assertions abort the process, so this module
keeps its life cycle strict: :meth:`SipStack.start` once, :meth:`SipStack.destroy` once, after
every ``Call`` and ``AudioMediaPort`` has been dropped (a live one at ``libDestroy`` aborts).

Threads: ``threadCnt = 1`` gives pjsua its own worker that polls SIP and RTP sockets natively
and runs the call callbacks; the media clock thread runs the frame callbacks. The thread that
called :meth:`start` is registered with pjlib and is the one that issues call commands.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import weakref
from collections.abc import Callable

import pjsua2 as pj
import structlog

from ..config import LogConfig, SipConfig
from ..errors import ListenError
from .drops import DROP_LOG_LEVEL, DropCounter

log = structlog.get_logger("sipbridge.sip")

CODEC_PRIORITIES = {"PCMU/8000/1": 255, "PCMA/8000/1": 200, "telephone-event/8000/1": 100}
SRTP_USE = {"off": pj.PJMEDIA_SRTP_DISABLED, "optional": pj.PJMEDIA_SRTP_OPTIONAL,
            "mandatory": pj.PJMEDIA_SRTP_MANDATORY}


def tls_transport_config(sip: SipConfig) -> "pj.TransportConfig":
    """The SIP/TLS listener on ``sip.host:sip.tls_port`` (files already checked by sip.tls)."""
    tcfg = pj.TransportConfig()
    tcfg.port = sip.tls_port
    tcfg.boundAddress = sip.host
    if sip.public_host:
        tcfg.publicAddress = sip.public_host
    tls = tcfg.tlsConfig
    tls.certFile = sip.tls_cert
    tls.privKeyFile = sip.tls_key
    if sip.tls_ca:
        tls.CaListFile = sip.tls_ca
    tls.verifyClient = sip.tls_verify_client
    tls.requireClientCert = sip.tls_verify_client
    tls.proto = pj.PJ_SSL_SOCK_PROTO_TLS1_2 | pj.PJ_SSL_SOCK_PROTO_TLS1_3
    return tcfg


def _listen(ep: "pj.Endpoint", kind: int, tcfg: "pj.TransportConfig", what: str) -> None:
    """Open one SIP transport; a failure (port taken, address not ours) becomes a ListenError."""
    try:
        ep.transportCreate(kind, tcfg)
    except pj.Error as exc:
        reason = getattr(exc, "reason", "") or exc.info()
        raise ListenError(f"cannot listen for {what}: {reason.strip()}") from None


def library_path() -> str:
    """The wheel's shared library, for the C API calls pjsua2 does not wrap (ctypes)."""
    return pj._pjsua2.__file__


def library_call_capacity() -> int:
    """Calls one pjsua2 process can hold (``PJSUA_MAX_CALLS`` the wheel was compiled with)."""
    lib = ctypes.CDLL(library_path())
    lib.pjsua_call_get_max_count.restype = ctypes.c_uint
    return int(lib.pjsua_call_get_max_count())


class _PjLog(pj.LogWriter):
    """Routes pjsip's own log lines (up to ``level``) into structlog; counts dropped messages."""

    def __init__(self, level: int, drops: DropCounter):
        super().__init__()
        self.level = level
        self.drops = drops

    def write(self, entry):  # noqa: D401 - pjsua2 naming
        try:
            drop = self.drops.feed(entry.msg)
            if drop is not None:
                log.warning("sip_message_dropped", source=drop.source, reason=drop.reason,
                            bytes=drop.size, dropped_total=self.drops.count)
            if entry.level <= self.level:
                log.info("pjsip", level=entry.level, msg=entry.msg.rstrip(),
                         thread=entry.threadName)
        except Exception:  # noqa: BLE001
            pass


class Account(pj.Account):
    """The local account that receives INVITEs; ``on_incoming`` decides about each one."""

    def __init__(self, on_incoming: Callable[["pj.OnIncomingCallParam"], None]):
        super().__init__()
        self._on_incoming = on_incoming

    def onIncomingCall(self, prm):  # noqa: N802
        try:
            self._on_incoming(prm)
        except Exception:  # noqa: BLE001 - never into SWIG
            log.exception("incoming_call_handler_failed")


class SipStack:
    """Owns the endpoint, its transport and the local account."""

    def __init__(self, sip: SipConfig, logs: LogConfig):
        self.sip = sip
        self.logs = logs
        self.ep: pj.Endpoint | None = None
        self.account: Account | None = None
        self.capacity = 0
        self.drops = DropCounter()   # malformed messages pjsip dropped (sip_message_dropped)
        self._log_writer = None
        self._owned: weakref.WeakSet = weakref.WeakSet()
        self.gate = None   # the early INVITE module (sip/pjgate.py), unregistered in destroy()

    def track(self, obj) -> None:
        """Remember a ``Call`` or ``AudioMediaPort`` so :meth:`destroy` can make it safe."""
        self._owned.add(obj)

    def start(self, on_incoming: Callable) -> int:
        """Initialise pjsua2, listen on ``sip.host:sip.port``; return the real call capacity."""
        ep = pj.Endpoint()
        ep.libCreate()
        self.ep = ep
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 1
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.maxCalls = self.sip.max_calls or 4
        cfg.uaConfig.userAgent = self.sip.user_agent
        cfg.medConfig.clockRate = 8000      # every call is G.711: no resampling in the bridge
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.noVad = True          # continuous RTP; silence suppression stops it
        cfg.medConfig.ecTailLen = 0
        cfg.medConfig.ptime = 20
        cfg.medConfig.threadCnt = 1
        self._log_writer = _PjLog(self.logs.pjsip_level, self.drops)
        cfg.logConfig.writer = self._log_writer
        cfg.logConfig.level = max(self.logs.pjsip_level, DROP_LOG_LEVEL)  # see sip/drops.py
        cfg.logConfig.consoleLevel = cfg.logConfig.level  # the writer filters to pjsip_level
        cfg.logConfig.decor = 0
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()

        tcfg = pj.TransportConfig()
        tcfg.port = self.sip.port
        tcfg.boundAddress = self.sip.host
        if self.sip.public_host:
            tcfg.publicAddress = self.sip.public_host
        _listen(ep, pj.PJSIP_TRANSPORT_UDP, tcfg, f"SIP over UDP on {self.sip.host}:{self.sip.port}")
        if self.sip.tls_cert is not None:
            _listen(ep, pj.PJSIP_TRANSPORT_TLS, tls_transport_config(self.sip),
                    f"SIP over TLS on {self.sip.host}:{self.sip.tls_port}")
        ep.libStart()
        self._set_codecs()

        acfg = pj.AccountConfig()
        host = self.sip.public_host or self.sip.host
        acfg.idUri = f"sip:sipbridge@{host}:{self.sip.port}"
        self.configure_media(acfg)
        self.account = Account(on_incoming)
        self.account.create(acfg, True)

        lib_cap = library_call_capacity()
        self.capacity = min(lib_cap, self.sip.max_calls or lib_cap)
        log.info("sip_listening", host=self.sip.host, port=self.sip.port,
                 tls_port=self.sip.tls_port if self.sip.tls_cert else None, srtp=self.sip.srtp,
                 call_capacity=self.capacity, library_max_calls=lib_cap,
                 rtp_ports=f"{self.sip.rtp_port}-{self.sip.rtp_port + self.sip.rtp_port_range - 1}")
        return self.capacity

    def configure_media(self, acfg: "pj.AccountConfig") -> None:
        """RTP ports, addresses and SRTP of an account (the local one and every trunk's)."""
        mt = acfg.mediaConfig.transportConfig
        mt.port = self.sip.rtp_port
        # pjsua takes pairs from port up to port + portRange *inclusive* (RTCP one above) and
        # wraps: keep both ports of the last pair inside [rtp_port, rtp_port + rtp_port_range)
        mt.portRange = max(1, self.sip.rtp_port_range - 2)
        mt.boundAddress = self.sip.host
        if self.sip.public_host:
            mt.publicAddress = self.sip.public_host
        acfg.mediaConfig.srtpUse = SRTP_USE[self.sip.srtp]
        acfg.mediaConfig.srtpSecureSignaling = self.sip.srtp_secure_signaling

    def _set_codecs(self) -> None:
        """PCMU first, then PCMA; every other codec disabled (priority 0)."""
        for codec in self.ep.codecEnum2():
            self.ep.codecSetPriority(codec.codecId, CODEC_PRIORITIES.get(codec.codecId, 0))

    def hangup_all(self) -> None:
        self.ep.hangupAllCalls()

    def handle_events(self, ms: int) -> None:
        self.ep.libHandleEvents(ms)

    def destroy(self, linger: bool = True) -> None:
        """Tear the library down. Callers must have dropped every Call and port first.

        ``linger``: keep pjsua's 1 s wait for replies (a BYE just sent gets its retransmission).
        Without it (nothing hung up lately; trunks are unregistered and closed before this, and
        there is no ICE/TURN) the library goes at once: that wait would only delay every stop."""
        if self.ep is None:
            return
        if self.account is not None:
            try:
                self.account.shutdown()
            except Exception:  # noqa: BLE001
                log.exception("account_shutdown_failed")
        self.account = None
        sys.last_traceback = None
        sys.last_value = None
        gc.collect()
        # A Call or port whose Python proxy outlives the library would run its C++
        # destructor against a destroyed pjsua and abort the process. Any still referenced
        # (a closure, a traceback) is disowned: its memory is left to the exiting process.
        survivors = list(self._owned)
        for obj in survivors:
            obj.thisown = 0
        if survivors:
            log.info("sip_objects_disowned", count=len(survivors))
        if self.gate is not None:  # no callback into Python once the library goes
            self.gate.close()
        self.ep.libDestroy(0 if linger else pj.PJSUA_DESTROY_NO_RX_MSG)
        self.ep = None
        self._log_writer = None
        log.info("sip_stopped", linger=linger)
