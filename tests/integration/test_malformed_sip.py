"""Malformed and unusual SIP against one running bridge: it answers or drops each, and never falls over.

Parser-level faults SIPp cannot produce (garbage header lines, missing mandatory headers, wrong
Content-Length, a 60 KB body) are sent as raw UDP datagrams; dialog-level ones (bad SDP, no
common codec, wrong CSeq in a dialog, re-INVITE, CANCEL, BYE for no dialog) are SIPp scenarios
(``sipp-scenarios/malformed_*.xml``, ``uac_reinvite.xml``, ``uac_cancel.xml``). The last test
places a normal call and checks the process never logged an exception.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from types import SimpleNamespace

import pytest

from tests.support.bridge import Bridge, Upstream
from tests.support.capture import RtpCapture
from tests.support.ports import free_port_block, free_tcp_port
from tests.support.sipp import run_sipp

SDP = ("v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=t\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


class Relay:
    """A TCP relay to the model server that can hold new connections for ``delay_s`` first."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.delay_s = 0.0
        self.port = free_tcp_port()
        self._srv = socket.create_server(("127.0.0.1", self.port))
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, self.delay_s), daemon=True).start()

    def _serve(self, client: socket.socket, delay: float) -> None:
        time.sleep(delay)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        self._srv.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("malformed")
    with Upstream(tmp) as up:
        relay = Relay(up.port)
        try:
            with Bridge(tmp, relay.url) as bridge:
                yield SimpleNamespace(upstream=up, relay=relay, bridge=bridge)
        finally:
            relay.close()


# -- raw datagrams ----------------------------------------------------------------------------
def request(bridge, *, call_id: str, port: int, body: str = SDP, drop: tuple = (), extra: str = "",
            cseq: str = "1 INVITE", clen=None) -> bytes:
    """An INVITE from 127.0.0.1:``port``, with headers dropped/added and Content-Length forced."""
    headers = [
        ("Via", f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}"),
        ("From", f"<sip:t@127.0.0.1:{port}>;tag=f{call_id}"),
        ("To", f"<sip:bot@{bridge.target}>"),
        ("Call-ID", call_id),
        ("CSeq", cseq),
        ("Contact", f"<sip:t@127.0.0.1:{port}>"),
        ("Max-Forwards", "70"),
        ("Content-Type", "application/sdp"),
    ]
    lines = [f"INVITE sip:bot@{bridge.target} SIP/2.0"]
    lines += [f"{k}: {v}" for k, v in headers if k not in drop]
    lines += [extra] if extra else []
    lines.append(f"Content-Length: {len(body.encode()) if clen is None else clen}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def exchange(bridge, build, wait: float = 1.0) -> tuple[int, list[int]]:
    """Send one datagram from a fresh port; return (port, final codes received for its Call-ID)."""
    call_id = uuid.uuid4().hex[:12]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.sendto(build(call_id, port), ("127.0.0.1", bridge.sip_port))
        codes, deadline = [], time.monotonic() + wait
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, _ = s.recvfrom(70000)
            except socket.timeout:
                break
            text = data.decode(errors="replace")
            code = int(text.split()[1])
            if f"Call-ID: {call_id}" in text and code >= 200:
                codes.append(code)
                if code >= 300:  # ACK the rejection so it is not retransmitted
                    to = next(h for h in text.split("\r\n") if h.lower().startswith("to:"))
                    ack = (f"ACK sip:bot@{bridge.target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};"
                           f"branch=z9hG4bK{call_id}\r\nFrom: <sip:t@127.0.0.1:{port}>;tag=f{call_id}\r\n"
                           f"{to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
                    s.sendto(ack.encode(), ("127.0.0.1", bridge.sip_port))
                    break
    return port, codes


HUGE_SDP = SDP + ("a=x-pad:" + "y" * 90 + "\r\n") * 600   # 60 KB of attributes on a valid SDP
MID_SDP = SDP + ("a=x-pad:" + "y" * 90 + "\r\n") * 80    # 8 KB: under our limit, over pjsip's 4000 B

# name -> (build(bridge, call_id, port), expected final codes, expected log: "dropped" | status)
RAW_CASES = {
    "garbage_header_line": (lambda b, c, p: request(b, call_id=c, port=p, extra="this is not a header"),
                            [], "dropped"),
    "unparseable_max_forwards": (lambda b, c, p: request(b, call_id=c, port=p, extra="Max-Forwards: abc"),
                                 [], "dropped"),
    "unparseable_cseq": (lambda b, c, p: request(b, call_id=c, port=p, cseq="xyz INVITE"), [], "dropped"),
    "missing_call_id": (lambda b, c, p: request(b, call_id=c, port=p, drop=("Call-ID",)), [], "dropped"),
    "missing_from": (lambda b, c, p: request(b, call_id=c, port=p, drop=("From",)), [], "dropped"),
    "missing_via": (lambda b, c, p: request(b, call_id=c, port=p, drop=("Via",)), [], "dropped"),
    "negative_content_length": (lambda b, c, p: request(b, call_id=c, port=p, clen="-3"), [], "dropped"),
    "content_length_beyond_body": (lambda b, c, p: request(b, call_id=c, port=p, clen=5000), [400], 400),
    "content_length_short_of_body": (lambda b, c, p: request(b, call_id=c, port=p, clen=10), [400], 400),
    "huge_60k_body": (lambda b, c, p: request(b, call_id=c, port=p, body=HUGE_SDP), [413], 413),
    "body_cut_by_receive_buffer": (lambda b, c, p: request(b, call_id=c, port=p, body=MID_SDP), [513], 513),
    "cseq_method_mismatch": (lambda b, c, p: request(b, call_id=c, port=p, cseq="1 BYE"), [500], None),
}


@pytest.mark.parametrize("case", list(RAW_CASES))
def test_raw_malformed_request(env, case):
    """Each malformed datagram gets its documented answer (or is dropped and counted), never a crash."""
    build, expected, logged = RAW_CASES[case]
    b = env.bridge
    dropped_before = len(b.logs("sip_message_dropped"))
    port, codes = exchange(b, lambda c, p: build(b, c, p), wait=0.6 if not expected else 3.0)
    assert codes[:1] == expected, f"{case}: got {codes}"
    source = f"127.0.0.1:{port}"
    if logged == "dropped":
        rec = b.wait_log("sip_message_dropped", timeout=3, source=source)
        assert rec["dropped_total"] > dropped_before and rec["reason"]
    elif logged is not None:
        rec = b.wait_log("call_rejected", timeout=3, source=source, status=logged)
        assert rec["why"]
    assert b.proc.poll() is None


def test_garbage_bytes_are_ignored(env):
    """A datagram that is not SIP at all gets no answer and the bridge goes on."""
    port, codes = exchange(env.bridge, lambda c, p: b"\x00\x01\x02 hello\r\n\r\n", wait=0.5)
    assert codes == [] and env.bridge.proc.poll() is None


# -- SIPp scenarios ---------------------------------------------------------------------------
def test_unparseable_sdp_gets_400(env):
    """An INVITE whose SDP body cannot be parsed is refused with 400 (pjsua's 'Bad SDP')."""
    res = run_sipp("malformed_bad_sdp", env.bridge.target, timeout=15)
    assert res.returncode == 0 and res.final_code == 400, res.describe()


def test_no_common_codec_gets_488(env):
    """An offer of only G.729 and GSM is refused with 488 Not Acceptable Here."""
    res = run_sipp("malformed_no_common_codec", env.bridge.target, timeout=15)
    assert res.returncode == 0 and res.final_code == 488, res.describe()


def test_bye_for_unknown_dialog_gets_481(env):
    """A BYE matching no dialog is answered 481."""
    res = run_sipp("malformed_bye_unknown", env.bridge.target, timeout=15)
    assert res.returncode == 0 and 481 in res.response_codes, res.describe()


def test_wrong_cseq_inside_a_dialog(env):
    """A mismatched ACK is ignored, an out-of-order BYE gets 500, and the proper BYE still ends the call."""
    res = run_sipp("malformed_cseq", env.bridge.target, timeout=20)
    assert res.returncode == 0, res.describe()
    bye_codes = [m.code for m in res.received if m.method == "BYE"]
    assert bye_codes[0] == 500 and bye_codes[-1] == 200, bye_codes
    call_id = res.shortmsgs[0].call_id
    assert env.bridge.wait_log("call_ended", timeout=5, call_id=call_id)["status"] == 200


def test_reinvite_mid_call_keeps_the_audio(env):
    """A re-INVITE with the same media is answered 200 and the agent's audio keeps flowing."""
    b = env.bridge
    media = free_port_block(4, align=2)
    with RtpCapture(ports=[media]) as cap:
        # re-INVITE 1 s after the ACK, mid-utterance; the agent's answer to the second utterance
        # (which ends 5.1 s into the pcap) plays from about 5.9 s: hold until 8 s
        res = run_sipp("uac_reinvite", b.target, media_port=media, hold_ms=7000, timeout=30)
    assert res.returncode == 0, res.describe()
    invite_200 = [m for m in res.received if m.method == "INVITE" and m.code == 200]
    assert len({m.cseq for m in invite_200}) == 2, "both INVITEs must be answered 200"
    call_id = res.shortmsgs[0].call_id
    assert sum(1 for r in b.logs("upstream_connected") if r.get("call_id") == call_id) == 1
    reinvite_at = next(m.time for m in res.sent if m.cseq == "2 INVITE")
    back = cap.stream(dst_port=media)
    after = [p for p in back.audio_packets() if p.arrival > reinvite_at]
    assert len(after) >= 150, f"{len(after)} packets from the bridge after the re-INVITE"
    gaps = back.interarrival()
    assert gaps.max() < 0.25, f"RTP from the bridge paused {gaps.max() * 1000:.0f} ms"
    loud = [t for t in back.active_times(-40.0, t0=reinvite_at) if t > 0]
    assert loud, "the agent said nothing after the re-INVITE"


def test_cancel_before_answer_gets_487_and_frees_the_upstream(env):
    """CANCEL while the model session is still opening: 200 for CANCEL, 487 for INVITE, no upstream left."""
    b, relay = env.bridge, env.relay
    relay.delay_s = 4.0          # the model server is slow to accept: the call stays unanswered
    try:
        res = run_sipp("uac_cancel", b.target, timeout=15)
    finally:
        relay.delay_s = 0.0
    assert res.returncode == 0, res.describe()
    assert res.final_code == 487 and 200 in [m.code for m in res.received if m.method == "CANCEL"]
    call_id = res.shortmsgs[0].call_id
    assert b.wait_log("call_ended", timeout=5, call_id=call_id)["status"] == 487
    b.wait_log("session_closed", timeout=5, call_id=call_id)
    deadline = time.monotonic() + 2.0      # well before the relay would have let it through
    while b.tcp_connections_to(relay.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.tcp_connections_to(relay.port) == 0, "the cancelled call's upstream socket is still open"
    assert not b.logs("call_answered") or all(r["call_id"] != call_id for r in b.logs("call_answered"))


def test_after_everything_a_normal_call_works_and_nothing_raised(env):
    """After all the faults above, a normal call is answered and the log holds no exception."""
    b = env.bridge
    res = run_sipp("uac_pcmu", b.target, hold_ms=1500, timeout=20)
    assert res.returncode == 0 and res.final_code == 200, res.describe()
    assert b.proc.poll() is None, "the bridge exited"
    out = b.output()
    assert "Traceback" not in out and "Assertion" not in out
    assert not [r for r in b.logs() if "exception" in r or r.get("level") == "error"]
