"""A PJSIP module, registered through ctypes before pjsua's, that answers refused INVITEs statelessly.

pjsua opens a call's RTP/RTCP sockets before ``onIncomingCall`` runs, so a refusal there comes
too late to save them (see :mod:`sipbridge.sip.gate`). This module sits at priority
:data:`PRIORITY` (after the transaction and dialog layers, which keep retransmissions and
in-dialog requests, before pjsua's application module at 64), so it sees only new out-of-dialog
requests. For a new INVITE it asks :class:`~sipbridge.sip.gate.EarlyGate`; a refusal is sent with
``pjsip_endpt_respond_stateless`` and the request is consumed (pjsua never sees it).

Reading the source address needs ``pjsip_rx_data`` field offsets, which depend on how the wheel
was built. They are taken from the 2.15 header and verified at start-up: the worker sends itself
one OPTIONS probe, and the layout is trusted ("full" mode) only when the probe's text, length,
source address string, port and ``sockaddr`` all read back right; every later request is checked
again (the address string must equal the ``sockaddr``). Otherwise the gate runs "blind": only
draining and the admission budget apply early, and the source checks stay in ``onIncomingCall``.
The method is always the one pjsip parsed (``pjsip_rx_data_get_info``, no offsets). Callbacks
from C never raise: an error lets the request through to pjsua and is counted.
"""

from __future__ import annotations

import ctypes
import re
import socket
import threading
import time
from collections.abc import Callable

import structlog

from .gate import EarlyGate, LogBudget
from .sipmsg import header_values

log = structlog.get_logger("sipbridge.worker")

PRIORITY = 33                # PJSIP_MOD_PRIORITY_UA_PROXY_LAYER (32) + 1; pjsua's is 64
PJSIP_MAX_PKT_LEN = 4000     # pjsip_dump_config() of the wheel; also the measured UDP cut
PJ_INET6_ADDRSTRLEN = 46
AF_INET = 2                  # pj_AF_INET() on Linux (the wheel has PJ_HAS_IPV6 = 0)
PROBE_TIMEOUT_S = 2.0
LOG_LINES_PER_S = 50         # call_rejected lines per second; the rest are summed up
MODULE_NAME = b"mod-sipbridge-gate"


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("slen", ctypes.c_ssize_t)]


_RX_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class _Module(ctypes.Structure):  # pjsip_module (sip_module.h)
    _fields_ = [("prev", ctypes.c_void_p), ("next", ctypes.c_void_p), ("name", _PjStr),
                ("id", ctypes.c_int), ("priority", ctypes.c_int),
                ("load", ctypes.c_void_p), ("start", ctypes.c_void_p), ("stop", ctypes.c_void_p),
                ("unload", ctypes.c_void_p), ("on_rx_request", _RX_CB),
                ("on_rx_response", ctypes.c_void_p), ("on_tx_request", ctypes.c_void_p),
                ("on_tx_response", ctypes.c_void_p), ("on_tsx_state", ctypes.c_void_p)]


class _TpInfo(ctypes.Structure):  # pool, transport, tp_data, pjsip_rx_data_op_key
    _fields_ = [("pool", ctypes.c_void_p), ("transport", ctypes.c_void_p),
                ("tp_data", ctypes.c_void_p),
                ("op_key", ctypes.c_void_p * 34),   # pj_ioqueue_op_key_t: 32 + 2 pointers
                ("op_rdata", ctypes.c_void_p)]


class _PktInfo(ctypes.Structure):
    _fields_ = [("ts_sec", ctypes.c_long), ("ts_msec", ctypes.c_long),
                ("packet", ctypes.c_char * PJSIP_MAX_PKT_LEN), ("zero", ctypes.c_uint32),
                ("len", ctypes.c_ssize_t),
                ("src_addr", ctypes.c_uint32 * 7),    # pj_sockaddr: union of in/in6, 28 bytes
                ("src_addr_len", ctypes.c_int),
                ("src_name", ctypes.c_char * PJ_INET6_ADDRSTRLEN), ("src_port", ctypes.c_int)]


class _MsgInfo(ctypes.Structure):  # only the head of msg_info is read
    _fields_ = [("msg_buf", ctypes.c_void_p), ("len", ctypes.c_int)]


class _RxData(ctypes.Structure):
    _fields_ = [("tp_info", _TpInfo), ("pkt_info", _PktInfo), ("msg_info", _MsgInfo)]


PACKET_OFFSET = _RxData.pkt_info.offset + _PktInfo.packet.offset


def _source(rd: _RxData) -> str | None:
    """``ip:port`` of a request, or None unless the name, port and sockaddr all agree."""
    pkt = rd.pkt_info
    raw = bytes(pkt.src_addr)
    family = int.from_bytes(raw[0:2], "little")
    port = int.from_bytes(raw[2:4], "big")
    name = pkt.src_name.decode("ascii", "replace")   # c_char array: stops at the first NUL
    if family != AF_INET or port != pkt.src_port or not 0 < port < 65536:
        return None
    if socket.inet_ntoa(raw[4:8]) != name:
        return None
    return f"{name}:{port}"


def _message(rd: _RxData, base: int) -> bytes | None:
    """The request text, when ``msg_buf``/``len`` lie inside the rdata's own packet buffer."""
    start, size = rd.msg_info.msg_buf or 0, rd.msg_info.len
    lo = base + PACKET_OFFSET
    if not (lo <= start and 0 < size and start + size <= lo + PJSIP_MAX_PKT_LEN):
        return None
    return ctypes.string_at(start, size)


class PjGate:
    """The registered module; :meth:`install` returns one (or None), :meth:`close` unregisters."""

    def __init__(self, lib, endpt: int, gate: EarlyGate, counters: dict,
                 stopping: Callable[[], bool]):
        self.lib, self.endpt, self.gate = lib, endpt, gate
        self.counters = counters
        self.stopping = stopping
        self.mode = "calibrating"
        self.errors = 0
        self._lock = threading.Lock()
        self._log_budget = LogBudget(LOG_LINES_PER_S)
        self._headers: dict[tuple, ctypes.Array] = {}   # Retry-After lists, built once each
        self._probe: bytes | None = None
        self._probe_from: tuple[str, int] | None = None
        self._calibrated = threading.Event()
        self._cb = _RX_CB(self._on_rx_request)   # kept alive as long as the module is registered
        self._mod = _Module(name=_PjStr(MODULE_NAME, len(MODULE_NAME)), id=-1, priority=PRIORITY,
                            on_rx_request=self._cb)
        self._pool = None

    # -- life cycle (control thread) -----------------------------------------------------------
    @classmethod
    def install(cls, lib_path: str, host: str, port: int, gate: EarlyGate, counters: dict,
                stopping: Callable[[], bool]) -> "PjGate | None":
        """Register the module and calibrate it with one probe; None if pjsip refuses it."""
        lib = ctypes.CDLL(lib_path)
        _declare(lib)
        endpt = lib.pjsua_get_pjsip_endpt()
        if not endpt:
            log.warning("sip_gate_unavailable", reason="no pjsip endpoint")
            return None
        self = cls(lib, endpt, gate, counters, stopping)
        self._pool = lib.pjsip_endpt_create_pool(endpt, b"sipbridge-gate", 1024, 1024)
        if not self._pool:
            log.warning("sip_gate_unavailable", reason="pjsip_endpt_create_pool failed")
            return None
        status = lib.pjsip_endpt_register_module(endpt, ctypes.byref(self._mod))
        if status != 0 or self._mod.id < 0:
            self.close()
            log.warning("sip_gate_unavailable", reason=f"pjsip_endpt_register_module: {status}")
            return None
        self._calibrate(host, port)
        return self

    def _calibrate(self, host: str, port: int) -> None:
        target = host if host not in ("", "0.0.0.0") else "127.0.0.1"
        reason = "pjsip_rx_data layout not verified by the probe"
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((target, 0))
                lport = sock.getsockname()[1]
                self._probe_from = (target, lport)
                self._probe = probe_request(target, port, lport, f"{time.monotonic_ns():x}")
                for _ in range(3):
                    sock.sendto(self._probe, (target, port))
                    if self._calibrated.wait(PROBE_TIMEOUT_S / 3):
                        break
        except OSError as exc:
            reason = f"probe not sent to {target}:{port}: {exc}"
        with self._lock:  # a probe arriving now no longer changes the mode
            if self.mode != "full":
                self.mode = "blind"
        if self.mode != "full":
            log.warning("sip_gate_blind", reason=reason + ": source checks stay in "
                        "onIncomingCall, only draining and the admission budget are early")
        log.info("sip_gate_ready", mode=self.mode, priority=PRIORITY,
                 admit=f"{self.gate.window.limit}/{self.gate.window.window_s:g}s")

    def close(self) -> None:
        """Unregister (before ``libDestroy``): no callback into Python after this returns."""
        if self._mod.id >= 0:
            self.lib.pjsip_endpt_unregister_module(self.endpt, ctypes.byref(self._mod))
        if self._pool:
            self.lib.pjsip_endpt_release_pool(self.endpt, self._pool)
            self._pool = None

    # -- pjsip threads -------------------------------------------------------------------------
    def _on_rx_request(self, rdata: int) -> int:
        try:
            return self._handle(rdata)
        except BaseException:  # noqa: BLE001 - never into C; pjsua and the late policy decide
            self.errors += 1
            if self.errors == 1:
                log.exception("sip_gate_error")
            return 0

    def _handle(self, rdata: int) -> int:
        rd = _RxData.from_address(rdata)
        if self.mode == "calibrating" and self._is_probe(rd, rdata):
            return 1
        if _method(self.lib, rdata) != "INVITE":   # as pjsip parsed it, whatever the bytes
            return 0
        source = call_id = None
        if self.mode == "full":
            source = _source(rd)
            text = _message(rd, rdata) if source is not None else None
            call_id = _call_id(text) if text is not None else None
        now = time.monotonic()
        with self._lock:
            refusal = self.gate.judge(source, now, self.stopping())
            if refusal is None:
                return 0
            headers = self._header_list(refusal.headers)
            show, suppressed = self._log_budget.allow(now)
            self._count(refusal)
        status = self.lib.pjsip_endpt_respond_stateless(self.endpt, rdata, refusal.code, None,
                                                        headers, None)
        if suppressed:
            log.warning("call_rejected_suppressed", count=suppressed)
        if show:
            log.warning("call_rejected", status=refusal.code, why=refusal.why, source=source,
                        call_id=call_id, early=True, sent=status == 0)
        return 1

    def _is_probe(self, rd: _RxData, rdata: int) -> bool:
        probe = self._probe
        if probe is None or rd.pkt_info.packet[:len(probe)] != probe:
            return False
        host, port = self._probe_from
        ok = (rd.pkt_info.len == len(probe) and _source(rd) == f"{host}:{port}"
              and _message(rd, rdata) == probe)
        with self._lock:
            if self.mode == "calibrating":
                self.mode = "full" if ok else "blind"
        self._calibrated.set()
        return True

    def _count(self, refusal) -> None:
        key = f"rejected_{refusal.code}"
        self.counters[key] = self.counters.get(key, 0) + 1
        if refusal.counter:
            self.counters[refusal.counter] = self.counters.get(refusal.counter, 0) + 1

    def _header_list(self, headers: tuple) -> ctypes.Array | None:
        """A pjsip header list (its sentinel) holding ``headers``, made once from the gate's pool."""
        if not headers:
            return None
        head = self._headers.get(headers)
        if head is None and len(self._headers) < 64:
            head = (ctypes.c_void_p * 8)()           # a pjsip_hdr (56 bytes) used as list head
            addr = ctypes.addressof(head)
            head[0] = head[1] = addr                  # pj_list_init: prev = next = itself
            for name, value in headers:
                hdr = self.lib.pjsip_generic_string_hdr_create(
                    self._pool, ctypes.byref(_pj_str(name)), ctypes.byref(_pj_str(value)))
                if not hdr:
                    return None
                self.lib.pj_list_insert_before(addr, hdr)  # push_back
            self._headers[headers] = head
        return head


def probe_request(host: str, port: int, lport: int, token: str) -> bytes:
    """The OPTIONS the worker sends itself from ``host:lport`` to check the rdata layout."""
    return (f"OPTIONS sip:gate-probe@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{lport};rport;branch=z9hG4bK-gate-{token}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:gate-probe@{host}>;tag={token}\r\n"
            f"To: <sip:gate-probe@{host}>\r\nCall-ID: gate-probe-{token}\r\n"
            f"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


def _pj_str(text: str) -> _PjStr:
    data = text.encode()
    return _PjStr(data, len(data))   # pjsip_generic_string_hdr_create copies both strings


def _call_id(text: bytes) -> str | None:
    msg = text.decode("utf-8", "replace")
    values = header_values(msg, "call-id") or header_values(msg, "i")
    return values[0] if values else None


_INFO = re.compile(rb"^Request msg (\S+?)/")


def _method(lib, rdata: int) -> str:
    """The request method from ``pjsip_rx_data_get_info`` (``Request msg INVITE/cseq=1 (...)``)."""
    info = lib.pjsip_rx_data_get_info(rdata)
    m = _INFO.match(info or b"")
    return m.group(1).decode("ascii", "replace") if m else ""


def _declare(lib) -> None:
    vp, i = ctypes.c_void_p, ctypes.c_int
    lib.pjsua_get_pjsip_endpt.restype = vp
    lib.pjsip_endpt_register_module.argtypes = [vp, vp]
    lib.pjsip_endpt_unregister_module.argtypes = [vp, vp]
    lib.pjsip_endpt_create_pool.restype = vp
    lib.pjsip_endpt_create_pool.argtypes = [vp, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t]
    lib.pjsip_endpt_release_pool.argtypes = [vp, vp]
    lib.pjsip_endpt_respond_stateless.argtypes = [vp, vp, i, vp, vp, vp]
    lib.pjsip_generic_string_hdr_create.restype = vp
    lib.pjsip_generic_string_hdr_create.argtypes = [vp, vp, vp]
    lib.pj_list_insert_before.argtypes = [vp, vp]
    lib.pjsip_rx_data_get_info.restype = ctypes.c_char_p
    lib.pjsip_rx_data_get_info.argtypes = [vp]
