"""Native ports for the calls of one worker: made once, joined to pjsua's conference, reused.

:meth:`NativePortPool.start` (control thread, after pjsua started) verifies the pjmedia layout
(:mod:`.layout`; a mismatch raises ``LayoutError`` and the worker does not start), then starts
the :class:`~.pump.Pump`. :meth:`acquire` hands out a port bound to a call's callbacks; the
call joins it to its own conference slot with :meth:`NativeCallPort.connect`
(``pjsua_conf_connect`` both ways, through ctypes).

Ports stay in the conference for the life of the library, like the pjsua2 ports of
``media/port.py``: a conference port is removed asynchronously, on the clock thread, after
``pjsua_conf_remove_port`` has returned, so a port is only ever idled (unbound: its callbacks
touch no ring and answer silence) and handed to the next call. When the conference finally
drops it (``libDestroy``), pjmedia's group lock calls the port's ``on_destroy``; its memory is
left to the exiting process. The call's own slot leaves the conference when its media ends,
which disconnects both directions.
"""

from __future__ import annotations

import ctypes

import structlog

from ...errors import ConfigError, SipBridgeError
from ..reuse import Reuse
from . import layout
from .build import BuildError, require
from .lib import LayoutError, NativePort, load
from .pump import CallAudio, Pump

log = structlog.get_logger("sipbridge.media")


class PortError(SipBridgeError):
    """pjsua refused to add or connect a native port."""


class NativeCallPort(CallAudio):
    """A native port in the conference (``slot``); ``connect`` joins it to a call's slot."""

    def __init__(self, port: NativePort, slot: int, pj):
        super().__init__(port, slot)
        self._pj = pj

    def connect(self, call_slot: int) -> None:
        """Caller audio to this port and this port's audio to the caller (pjsua thread)."""
        for src, dst in ((call_slot, self.slot), (self.slot, call_slot)):
            status = self._pj.pjsua_conf_connect(src, dst)
            if status != 0:
                raise PortError(f"pjsua_conf_connect({src}, {dst}) failed: {status}")


def _declare(pj) -> None:
    vp, i = ctypes.c_void_p, ctypes.c_int
    pj.pjsua_conf_add_port.restype = i
    pj.pjsua_conf_add_port.argtypes = [vp, vp, ctypes.POINTER(i)]
    pj.pjsua_conf_connect.restype = i
    pj.pjsua_conf_connect.argtypes = [i, i]


class NativePortPool:
    """The native counterpart of ``media.port.PortPool`` (same acquire/release/size)."""

    def __init__(self, library_path: str, rate: int, priority: str = "none",
                 pump_ticks: int = 1):
        self.library_path = library_path
        self.pump_ticks = pump_ticks   # sip.pump_ticks: the pump runs every this many ticks
        self.priority = priority   # sip.media_priority, for the pump thread
        self.rate = rate
        self.frame_bytes = rate // 50 * 2   # 20 ms, mono PCM16
        self._pj = None
        self._lib = None
        self._pool = None
        self.pump: Pump | None = None
        self._ports: Reuse[NativeCallPort] = Reuse()

    def start(self) -> None:
        """Check the layout against the running library, then start the pump (control thread).

        A library that cannot be built or loaded, or a layout that does not match, is a
        ``ConfigError`` on ``sip.media_port`` (exit 2): the worker refuses to start."""
        try:
            self._lib = load(require())   # never compiled here: ./bootstrap builds it
            pj = ctypes.CDLL(self.library_path)
            layout.verify(pj, self.rate, self.frame_bytes)
            _declare(pj)
        except AttributeError as exc:   # a pjmedia function this wheel does not export
            raise ConfigError("sip.media_port", f"native port unavailable: the pjsua library "
                              f"lacks a function the layout check needs ({exc})") from None
        except (BuildError, LayoutError, OSError) as exc:
            raise ConfigError("sip.media_port", f"native port unavailable: {exc}") from None
        self._pool = pj.pjsua_pool_create(b"sipbridge-native", 4096, 4096)
        if not self._pool:
            raise PortError("pjsua_pool_create failed")
        self._pj = pj
        self.pump = Pump(self._lib, priority=self.priority, ticks=self.pump_ticks)
        self.pump.start()
        log.info("native_media_port", rate=self.rate, layout="verified",
                 settle_ms=self.pump.settle_s * 1000, depth=self.pump.depth,
                 pump_ticks=self.pump.ticks)

    def stop(self) -> None:
        """Stop the pump (before ``libDestroy``); the ports stay idle in the conference."""
        if self.pump is not None:
            self.pump.stop()
            self.pump = None

    def acquire(self, on_frame, next_frame) -> NativeCallPort:
        """A port bound to a call's callbacks: a released one, or a new one (pjsua thread)."""
        port = self._ports.take()
        if port is None:
            port = self._new()
        port.bind(on_frame, next_frame)
        self.pump.add(port)
        return port

    def _new(self) -> NativeCallPort:
        index = self._ports.size
        native = NativePort(self.rate, self.frame_bytes, f"native{index}", self._lib)
        slot = ctypes.c_int(-1)
        status = self._pj.pjsua_conf_add_port(self._pool, native.addr, ctypes.byref(slot))
        if status != 0:
            native.free()   # pjmedia never took it
            raise PortError(f"pjsua_conf_add_port failed: {status}")
        port = NativeCallPort(native, slot.value, self._pj)
        self._ports.add(port)
        return port

    def release(self, port: NativeCallPort) -> None:
        """The call is over: out of the pump, idle, back in the pool (control thread)."""
        if self.pump is not None:
            self.pump.remove(port)
        stats = port.port.stats()
        port.bind(None, None)
        log.info("native_port_released", slot=port.slot, errors=port.errors, **stats)
        self._ports.give_back(port)

    @property
    def size(self) -> int:
        return self._ports.size
