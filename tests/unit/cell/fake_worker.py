"""A stand-in for ``python -m sipbridge run --worker-index i``, for supervisor tests.

Answers every UDP datagram on ``$SIPBRIDGE_SIP__PORT`` with ``SIP/2.0 200 OK`` (the supervisor's
readiness probe), exits 0 on SIGTERM, and with ``FAKE_WORKER_CRASH=1`` exits 3 at once.
"""

import os
import signal
import socket
import sys

if os.environ.get("FAKE_WORKER_CRASH") == "1":
    sys.exit(3)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", int(os.environ["SIPBRIDGE_SIP__PORT"])))
while True:
    _data, addr = sock.recvfrom(65535)
    sock.sendto(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", addr)
