"""Rewrite the plaintext of TLS records in place, keeping them valid: open a record with its
traffic key, change bytes of the plaintext (never its length), seal it again with the same
key, nonce and header.  `dgcap extract` uses it to overwrite an API key inside the encrypted
HTTP upgrade request when it embeds the session's TLS secrets (otherwise anyone with the file
could decrypt the request and read the key).  Sans-I/O: bytes in, (offset, bytes) out.

The same nonce then protects two plaintexts, but only one of them ever leaves: the original
record is replaced, and whoever has the file has the key anyway.
"""
from __future__ import annotations

from typing import Callable, Optional

from . import crypto
from .records import Tls12GcmOpener, Tls13Opener, tls12_openers
from .suites import CIPHER_SUITES, TLS13

_TLS13_APPLICATION_LABELS = ("CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0")
_HEADER = 5
# Bytes of a sealed record's body before any plaintext: the tag (16), and TLS 1.2 GCM's
# 8-byte explicit nonce.
_SMALLEST_BODY = {Tls12GcmOpener: 24}


def application_opener(suite_id: int, secrets: dict, client_random: bytes,
                       server_random: Optional[bytes], direction: int):
    """The opener of one direction's first application-data epoch, or None without keys."""
    suite = CIPHER_SUITES.get(suite_id)
    if suite is None or suite.protection is None:
        return None
    if suite.protection == TLS13:
        secret = secrets.get(_TLS13_APPLICATION_LABELS[direction])
        return Tls13Opener(suite, secret) if secret else None
    master = secrets.get("CLIENT_RANDOM")
    if master is None or server_random is None:
        return None
    return tls12_openers(suite, master, client_random, server_random)[direction]


def _nonce_and_aad(opener, record: bytes, seq: int) -> tuple[bytes, bytes, int]:
    """(nonce, additional data, offset of the sealed body) for record number `seq`."""
    if isinstance(opener, Tls13Opener):
        return (opener.iv_int ^ seq).to_bytes(12, "big"), record[:_HEADER], _HEADER
    if isinstance(opener, Tls12GcmOpener):
        length = len(record) - 29
        aad = seq.to_bytes(8, "big") + record[:3] + length.to_bytes(2, "big")
        return opener.salt + record[5:13], aad, 13
    length = len(record) - 21
    aad = seq.to_bytes(8, "big") + record[:3] + length.to_bytes(2, "big")
    return (opener.iv_int ^ seq).to_bytes(12, "big"), aad, _HEADER


def reseal_records(opener, data: bytes, edit: Callable[[bytes], Optional[bytes]],
                   max_records: int = 64) -> list[tuple[int, bytes]]:
    """Walk the records at the start of one direction's bytes (`data`); every record that
    `opener` authenticates, in order (those of earlier epochs fail and are skipped), goes
    through edit(plaintext) -> same-length plaintext or None (unchanged).  Returns
    (offset in data, new record bytes) for each record that changed."""
    out = []
    seq = 0
    position = 0
    opened = 0
    while position + _HEADER <= len(data) and opened < max_records:
        length = int.from_bytes(data[position + 3:position + 5], "big")
        record = bytes(data[position:position + _HEADER + length])
        if len(record) < _HEADER + length:
            break
        if len(record) < _HEADER + _SMALLEST_BODY.get(type(opener), 16):
            position += _HEADER + length  # too short to be sealed (a ChangeCipherSpec...)
            continue
        nonce, aad, body = _nonce_and_aad(opener, record, seq)
        try:
            plain = opener.aead.decrypt(nonce, record[body:], aad)
        except (crypto.InvalidTag, ValueError):
            position += _HEADER + length
            continue
        opened += 1
        new = edit(plain)
        if new is not None and new != plain:
            if len(new) != len(plain):
                raise ValueError("a resealed record must keep its length")
            out.append((position, record[:body] + opener.aead.encrypt(nonce, new, aad)))
        seq += 1
        position += _HEADER + length
    return out
