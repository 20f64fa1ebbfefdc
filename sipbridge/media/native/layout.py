"""Start-up check: the pjmedia structs declared in ``port.c`` / ``lib.py`` against the wheel.

The ``pjsua2-python`` wheel ships no headers, so the native port declares the few pjmedia
structs it needs from the 2.15 headers. Before any port is made, each offset the port relies on
is verified against the running library through its own exported functions:

* ``pjmedia_port_info_init`` fills a scratch info: every field reads back where we expect it,
  and nothing past our ``sizeof(pjmedia_port_info)`` is written (a larger struct would be);
  our C port's own info must hold the same values for the same format;
* ``pjmedia_port_put_frame`` / ``_get_frame`` / ``_destroy`` on a probe port of ours reach our
  callbacks (the function pointers are where the library looks for them, ``grp_lock`` NULL);
* a ``pjmedia_null_port`` made by the library has our expected info, and its ``get_frame``
  fills our ``pjmedia_frame`` (type, buf, size, timestamp) exactly where we read them.

Any mismatch raises :class:`~.lib.LayoutError` naming it; the worker refuses to start.
Needs a pjsua created (``pjsua_pool_create``) on a pjlib-registered thread.
"""

from __future__ import annotations

import ctypes

from .lib import FRAME_AUDIO, FRAME_NONE, LayoutError, NativePort, PjFrame, PjPort, PjPortInfo, PjStr

DIR_ENCODING_DECODING = 3
FORMAT_L16 = 0
MEDIA_TYPE_AUDIO = 1
DETAIL_AUDIO = 1
SENTINEL = 0xA5


def declare(pj) -> None:
    vp, u = ctypes.c_void_p, ctypes.c_uint
    pj.pjmedia_port_info_init.restype = ctypes.c_int
    pj.pjmedia_port_info_init.argtypes = [vp, vp, u, u, u, u, u]
    for name in ("pjmedia_port_put_frame", "pjmedia_port_get_frame"):
        getattr(pj, name).restype = ctypes.c_int
        getattr(pj, name).argtypes = [vp, vp]
    pj.pjmedia_port_destroy.restype = ctypes.c_int
    pj.pjmedia_port_destroy.argtypes = [vp]
    pj.pjsua_pool_create.restype = vp
    pj.pjsua_pool_create.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t]
    pj.pj_pool_release.restype = None
    pj.pj_pool_release.argtypes = [vp]
    pj.pjmedia_null_port_create.restype = ctypes.c_int
    pj.pjmedia_null_port_create.argtypes = [vp, u, u, u, u, ctypes.POINTER(vp)]


def _expect(what: str, got, want) -> None:
    if got != want:
        raise LayoutError(f"pjmedia layout mismatch: {what} is {got!r}, expected {want!r} "
                          "(the pjsua2 wheel is not the 2.15 build the native port was written "
                          "for; use sip.media_port: python)")


def _info_fields(info: PjPortInfo) -> dict:
    f = info.fmt
    return {"signature": info.signature, "dir": info.dir, "fmt.id": f.id, "fmt.type": f.type,
            "fmt.detail_type": f.detail_type, "clock_rate": f.clock_rate,
            "channel_count": f.channel_count, "frame_time_usec": f.frame_time_usec,
            "bits_per_sample": f.bits_per_sample, "avg_bps": f.avg_bps, "max_bps": f.max_bps}


def check_info(pj, port: NativePort) -> None:
    rate, spf = port.rate, port.frame_bytes // 2
    size = ctypes.sizeof(PjPortInfo)
    scratch = ctypes.create_string_buffer(bytes([SENTINEL]) * (size + 64), size + 64)
    name = b"sb-layout"
    pjname = PjStr(ctypes.cast(ctypes.c_char_p(name), ctypes.c_void_p), len(name))
    status = pj.pjmedia_port_info_init(scratch, ctypes.byref(pjname), port.base.info.signature,
                                       rate, 1, 16, spf)
    _expect("pjmedia_port_info_init status", status, 0)
    info = PjPortInfo.from_buffer(scratch)
    _expect("info.name", (info.name.ptr, info.name.slen), (pjname.ptr, len(name)))
    want = {"signature": port.base.info.signature, "dir": DIR_ENCODING_DECODING,
            "fmt.id": FORMAT_L16, "fmt.type": MEDIA_TYPE_AUDIO, "fmt.detail_type": DETAIL_AUDIO,
            "clock_rate": rate, "channel_count": 1, "frame_time_usec": spf * 1_000_000 // rate,
            "bits_per_sample": 16, "avg_bps": rate * 16, "max_bps": rate * 16}
    _expect("pjmedia_port_info fields (library)", _info_fields(info), want)
    _expect("bytes past sizeof(pjmedia_port_info)", scratch.raw[size:],
            bytes([SENTINEL]) * 64)
    _expect("pjmedia_port_info fields (port.c)", _info_fields(port.base.info), want)


def check_callbacks(pj, port: NativePort) -> None:
    port.bind(True)
    fb = port.frame_bytes
    probe = bytes(range(256)) * (fb // 256) + bytes(range(fb % 256))
    port.push_out(probe, port.gen)
    out = ctypes.create_string_buffer(fb)
    frame = PjFrame(type=FRAME_NONE, buf=ctypes.addressof(out), size=fb)
    _expect("pjmedia_port_get_frame status", pj.pjmedia_port_get_frame(port.addr, ctypes.byref(frame)), 0)
    _expect("get_frame through the library", (frame.type, frame.size, out.raw), (FRAME_AUDIO, fb, probe))
    data = ctypes.create_string_buffer(probe[::-1], fb)
    frame = PjFrame(type=FRAME_AUDIO, buf=ctypes.addressof(data), size=fb)
    _expect("pjmedia_port_put_frame status", pj.pjmedia_port_put_frame(port.addr, ctypes.byref(frame)), 0)
    _expect("put_frame through the library", port.pop_in(), (probe[::-1], port.epoch))
    _expect("port.grp_lock before the conference", port.base.grp_lock, None)
    _expect("pjmedia_port_destroy status", pj.pjmedia_port_destroy(port.addr), 0)
    _expect("on_destroy through the library", port.lib.sb_port_destroyed(port.addr), 1)


def check_library_port(pj, rate: int, frame_bytes: int) -> None:
    spf = frame_bytes // 2
    pool = pj.pjsua_pool_create(b"sb-layout", 1024, 1024)
    if not pool:
        raise LayoutError("pjsua_pool_create failed (is pjsua started?)")
    try:
        made = ctypes.c_void_p()
        _expect("pjmedia_null_port_create status",
                pj.pjmedia_null_port_create(pool, rate, 1, spf, 16, ctypes.byref(made)), 0)
        lport = PjPort.from_address(made.value)
        _expect("null port name", ctypes.string_at(lport.info.name.ptr, lport.info.name.slen),
                b"null-port")
        got = _info_fields(lport.info)
        got.pop("signature")
        _expect("null port info", got, {
            "dir": DIR_ENCODING_DECODING, "fmt.id": FORMAT_L16, "fmt.type": MEDIA_TYPE_AUDIO,
            "fmt.detail_type": DETAIL_AUDIO, "clock_rate": rate, "channel_count": 1,
            "frame_time_usec": spf * 1_000_000 // rate, "bits_per_sample": 16,
            "avg_bps": rate * 16, "max_bps": rate * 16})
        pointers = [ctypes.c_void_p.from_address(made.value + getattr(PjPort, f).offset).value
                    for f in ("put_frame", "get_frame", "on_destroy")]
        _expect("null port callbacks set", all(pointers), True)
        _expect("null port grp_lock", lport.grp_lock, None)
        out = ctypes.create_string_buffer(b"\x55" * frame_bytes, frame_bytes)
        frame = PjFrame(type=FRAME_NONE, buf=ctypes.addressof(out), size=frame_bytes,
                        timestamp=0, bit_info=0xDEAD)
        _expect("null port get_frame status",
                pj.pjmedia_port_get_frame(made.value, ctypes.byref(frame)), 0)
        _expect("pjmedia_frame as the library fills it",
                (frame.type, frame.size, frame.timestamp, frame.bit_info, out.raw),
                (FRAME_AUDIO, frame_bytes, spf, 0xDEAD, bytes(frame_bytes)))
        pj.pjmedia_port_destroy(made.value)
    finally:
        pj.pj_pool_release(pool)


def verify(pj, rate: int, frame_bytes: int) -> None:
    """Every check above, on a probe port that is then freed; raises LayoutError."""
    declare(pj)
    port = NativePort(rate, frame_bytes, "sb-probe")
    try:
        check_info(pj, port)
        check_callbacks(pj, port)
        check_library_port(pj, rate, frame_bytes)
    finally:
        port.free()
