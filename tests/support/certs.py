"""Self-signed certificates for TLS tests, made with the ``openssl`` command line tool.

    cert, key = self_signed(tmp_path)            # CN and subjectAltName IP 127.0.0.1
    other_cert, other_key = self_signed(tmp_path / "other")

The key is unencrypted RSA 2048 (PKCS#8 PEM), the certificate SHA-256, valid for two days:
what both pjsip's bundled OpenSSL 1.0.2 and baresip's OpenSSL 3 accept.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed(directory: str | Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` for ``host`` into ``directory``; return their paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}",
         "-addext", f"subjectAltName=IP:{host}"],
        check=True, capture_output=True, timeout=60)
    return cert, key
