"""The start-up layout check (sipbridge/media/native/layout.py) refuses a library that lays pjmedia out otherwise.

A stand-in for the pjsua library plays pjmedia's part through our structs: laid out as
declared it passes; with one field moved, or the callbacks looked up elsewhere, it is refused
with a message naming what differs. (The real library is checked on every native start-up,
tests/integration/test_native_port.py.)
"""

import ctypes

import pytest

from sipbridge.media.native import layout
from sipbridge.media.native.lib import LayoutError, NativePort, PjPort, PjPortInfo


class FakePj:
    """pjmedia's port functions, as the 2.15 library does them, or with one thing ``moved``."""

    def __init__(self, moved: str | None = None):
        self.moved = moved

    def pjmedia_port_info_init(self, buf, name_ref, signature, rate, channels, bits, spf):
        ctypes.memset(buf, 0, ctypes.sizeof(PjPortInfo) + (8 if self.moved == "bigger" else 0))
        info = PjPortInfo.from_buffer(buf)
        info.name = name_ref._obj
        info.signature, info.dir = (3, signature) if self.moved == "dir" else (signature, 3)
        f = info.fmt
        f.id, f.type, f.detail_type = 0, 1, 1
        f.clock_rate, f.channel_count, f.bits_per_sample = rate, channels, bits
        f.frame_time_usec = spf * 1_000_000 // rate
        f.avg_bps = f.max_bps = rate * channels * bits
        return 0

    def _cb(self, addr, name):
        if self.moved == "callbacks":
            name = {"get_frame": "put_frame", "put_frame": "get_frame"}[name]
        return getattr(PjPort.from_address(addr), name)

    def pjmedia_port_get_frame(self, addr, frame_ref):
        return self._cb(addr, "get_frame")(addr, frame_ref)

    def pjmedia_port_put_frame(self, addr, frame_ref):
        return self._cb(addr, "put_frame")(addr, frame_ref)

    def pjmedia_port_destroy(self, addr):
        fn = ctypes.c_void_p.from_address(addr + PjPort.on_destroy.offset).value
        return ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(fn)(addr)


@pytest.fixture
def port():
    p = NativePort(16000, 640, "probe")
    yield p
    p.free()


def test_the_layout_as_declared_passes(port):
    """A library laying pjmedia out as port.c declares it passes the info and callback checks."""
    layout.check_info(FakePj(), port)
    layout.check_callbacks(FakePj(), port)


@pytest.mark.parametrize("moved, what", [("dir", "pjmedia_port_info fields"),
                                         ("bigger", "bytes past sizeof(pjmedia_port_info)")])
def test_a_moved_or_larger_port_info_is_refused(port, moved, what):
    """Fields in other places, or an info struct larger than ours, stop the start-up naming the mismatch."""
    with pytest.raises(LayoutError, match="sip.media_port: python") as err:
        layout.check_info(FakePj(moved), port)
    assert what in str(err.value)


def test_callbacks_looked_up_elsewhere_are_refused(port):
    """A library that finds get_frame where we put put_frame is refused before any call."""
    with pytest.raises(LayoutError, match="through the library"):
        layout.check_callbacks(FakePj("callbacks"), port)
