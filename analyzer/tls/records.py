"""Record openers: one per direction and key epoch, reused for every record of that epoch.

`open(record)` takes a memoryview of a whole record (5-byte header + body), decrypts at the
current sequence number and advances it; it raises InvalidTag when authentication fails and
then leaves the sequence number alone (the caller may search for the right one after a hole).
It returns (content_type, plaintext): the inner type for TLS 1.3, the header's type for 1.2.

These are the hot path: nonces are built with one int XOR, the AEAD object is created once per
epoch, and the record body goes to the AEAD as a view (no copy).
"""
from __future__ import annotations

from typing import Optional

from . import crypto
from .kdf import tls12_key_block, tls13_next_traffic_secret, tls13_traffic_key_iv
from .suites import TLS12_GCM, CipherSuite


class Tls13Opener:
    __slots__ = ("suite", "secret", "aead", "iv_int", "seq", "generation")

    def __init__(self, suite: CipherSuite, secret: bytes, generation: int = 0):
        self.suite = suite
        self.secret = secret
        key, iv = tls13_traffic_key_iv(suite.hash_name, secret, suite.key_length)
        self.aead = suite.new_aead(key)
        self.iv_int = int.from_bytes(iv, "big")
        self.seq = 0
        self.generation = generation  # how many KeyUpdates led here

    def open(self, record: memoryview) -> tuple[int, bytes]:
        seq = self.seq
        plain = self.aead.decrypt((self.iv_int ^ seq).to_bytes(12, "big"), record[5:], record[:5])
        self.seq = seq + 1
        last = plain[-1] if plain else 0
        if last:
            return last, plain[:-1]
        return _strip_padding(plain)

    def explicit_seq(self, record: memoryview) -> Optional[int]:
        return None

    def next_generation(self) -> "Tls13Opener":
        return Tls13Opener(self.suite, tls13_next_traffic_secret(self.suite.hash_name, self.secret),
                           self.generation + 1)


def _strip_padding(plain: bytes) -> tuple[int, bytes]:
    # TLSInnerPlaintext = content || type || zeros; all zeros means no type at all (type 0,
    # which the caller reports as an unexpected content type).
    content = plain.rstrip(b"\0")
    if not content:
        return 0, b""
    return content[-1], content[:-1]


class Tls12GcmOpener:
    __slots__ = ("aead", "salt", "seq")

    def __init__(self, suite: CipherSuite, key: bytes, salt: bytes):
        self.aead = suite.new_aead(key)
        self.salt = salt
        self.seq = 0

    def open(self, record: memoryview) -> tuple[int, bytes]:
        length = len(record) - 29  # header 5 + explicit nonce 8 + tag 16
        if length < 0:
            raise crypto.InvalidTag()
        seq = self.seq
        aad = seq.to_bytes(8, "big") + record[:3] + length.to_bytes(2, "big")
        plain = self.aead.decrypt(self.salt + record[5:13], record[13:], aad)
        self.seq = seq + 1
        return record[0], plain

    def explicit_seq(self, record: memoryview) -> Optional[int]:
        # Most stacks (OpenSSL, Go, NSS) use the sequence number as the explicit nonce: the
        # best first guess when records went missing.
        return int.from_bytes(record[5:13], "big") if len(record) >= 13 else None


class Tls12ChachaOpener:
    __slots__ = ("aead", "iv_int", "seq")

    def __init__(self, suite: CipherSuite, key: bytes, iv: bytes):
        self.aead = suite.new_aead(key)
        self.iv_int = int.from_bytes(iv, "big")
        self.seq = 0

    def open(self, record: memoryview) -> tuple[int, bytes]:
        length = len(record) - 21  # header 5 + tag 16
        if length < 0:
            raise crypto.InvalidTag()
        seq = self.seq
        aad = seq.to_bytes(8, "big") + record[:3] + length.to_bytes(2, "big")
        plain = self.aead.decrypt((self.iv_int ^ seq).to_bytes(12, "big"), record[5:], aad)
        self.seq = seq + 1
        return record[0], plain

    def explicit_seq(self, record: memoryview) -> Optional[int]:
        return None


def tls12_openers(suite: CipherSuite, master_secret: bytes, client_random: bytes,
                  server_random: bytes) -> tuple:
    """(client opener, server opener) of a TLS 1.2 AEAD suite from the master secret."""
    iv_length = 4 if suite.protection == TLS12_GCM else 12
    client_key, server_key, client_iv, server_iv = tls12_key_block(
        suite.hash_name, master_secret, client_random, server_random, suite.key_length, iv_length)
    opener_class = Tls12GcmOpener if suite.protection == TLS12_GCM else Tls12ChachaOpener
    return opener_class(suite, client_key, client_iv), opener_class(suite, server_key, server_iv)


# Smallest sealed record on the wire (header + 1 byte of TLS 1.3 inner type + 16-byte tag):
# bounds how many records a hole of N bytes can have swallowed.
MIN_SEALED_RECORD = 5 + 1 + 16


def open_at(opener, record: memoryview, seq: int) -> tuple[int, bytes]:
    """Open `record` as number `seq`; on success the opener continues from seq + 1."""
    saved = opener.seq
    opener.seq = seq
    try:
        return opener.open(record)
    except crypto.InvalidTag:
        opener.seq = saved
        raise
