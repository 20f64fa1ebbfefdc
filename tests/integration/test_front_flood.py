"""The cell's Kamailio front sheds an INVITE flood from one source with ``pike`` (503 + Retry-After)."""

from __future__ import annotations

import os
import re
import socket
import time

from sipbridge.cell.kamailio_cfg import PIKE_RETRY_AFTER_S, pike_density
from tests.integration.test_cell import ScriptedWorker, start_front


def burst(front_port: int, count: int, listen_s: float = 2.0) -> list[str]:
    """Send ``count`` INVITEs at once from one socket; the final responses that came back."""
    finals: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        lport = s.getsockname()[1]
        for i in range(count):
            tag = f"{os.urandom(4).hex()}{i}"
            s.sendto((f"INVITE sip:bot@127.0.0.1:{front_port} SIP/2.0\r\n"
                      f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{tag};rport\r\n"
                      f"From: <sip:flood@127.0.0.1>;tag={tag}\r\nTo: <sip:bot@127.0.0.1>\r\n"
                      f"Call-ID: {tag}@flood\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
                      f"Contact: <sip:flood@127.0.0.1:{lport}>\r\nContent-Length: 0\r\n\r\n"
                      ).encode(), ("127.0.0.1", front_port))
        deadline = time.monotonic() + listen_s
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                text = s.recv(65535).decode(errors="replace")
            except socket.timeout:
                break
            if re.match(r"SIP/2.0 [2-6]\d\d ", text):
                finals.append(text)
    return finals


def test_front_answers_a_flooding_source_503_with_retry_after_and_spares_the_worker(tmp_path):
    """Past pike's density one source's INVITEs get 503 + Retry-After from the front and never reach a worker."""
    worker = ScriptedWorker(200)
    front = start_front(tmp_path, [worker])
    density = pike_density(1)
    try:
        finals = burst(front.sip[1], 4 * density)
    finally:
        front.stop()
        worker.close()
    shed = [t for t in finals if t.startswith("SIP/2.0 503")]
    assert len(shed) >= 2 * density, [t.split("\r\n", 1)[0] for t in finals][:10]
    assert all(re.search(rf"^Retry-After: {PIKE_RETRY_AFTER_S}\s*$", t, re.M) for t in shed)
    assert len(worker.invites) <= 2 * density
    assert len(worker.invites) + len(shed) <= 4 * density
