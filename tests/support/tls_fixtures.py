"""Fixtures for local TLS sessions (tests and bench/): certificates, OpenSSL settings."""
from __future__ import annotations

import datetime
import os

# An OPENSSL_CONF that leaves only one TLS 1.3 cipher suite ({suite}) to a child process
# (Python's ssl module cannot choose TLS 1.3 suites itself).
TLS13_SUITE_CONF = """openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Ciphersuites = {suite}
"""


def self_signed(directory: str, common_name: str, kind: str = "ec",
                days: int = 1) -> tuple[str, str]:
    """Write cert.pem and key.pem (PKCS#8) into `directory`; return their paths.

    kind: "ec" (P-256) or "rsa" (2048 bits).  Valid from a day ago for `days` days.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path
