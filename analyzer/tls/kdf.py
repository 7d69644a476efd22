"""Key derivation: TLS 1.3 HKDF-Expand-Label (RFC 8446 §7.1) and the TLS 1.2 PRF (RFC 5246 §5).

Neither is on the hot path: they run a handful of times per connection (handshake, KeyUpdate).
"""
from __future__ import annotations

HASH_LENGTHS = {"sha256": 32, "sha384": 48}


def hkdf_expand_label(hash_name: str, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """HKDF-Expand(secret, HkdfLabel, length) with HkdfLabel = length || "tls13 "+label || context."""
    full_label = b"tls13 " + label
    info = (length.to_bytes(2, "big") + bytes((len(full_label),)) + full_label
            + bytes((len(context),)) + context)
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand  # (see crypto.py)
    return HKDFExpand(_hash(hash_name), length, info).derive(secret)


def _hash(hash_name: str):
    """A cryptography hash object for "sha256" or "sha384" (KeyError otherwise)."""
    from cryptography.hazmat.primitives import hashes  # (see crypto.py)
    return {"sha256": hashes.SHA256, "sha384": hashes.SHA384}[hash_name]()


def tls13_traffic_key_iv(hash_name: str, secret: bytes, key_length: int) -> tuple[bytes, bytes]:
    return (hkdf_expand_label(hash_name, secret, b"key", b"", key_length),
            hkdf_expand_label(hash_name, secret, b"iv", b"", 12))


def tls13_next_traffic_secret(hash_name: str, secret: bytes) -> bytes:
    """application_traffic_secret_N+1 after a KeyUpdate (RFC 8446 §7.2)."""
    return hkdf_expand_label(hash_name, secret, b"traffic upd", b"", HASH_LENGTHS[hash_name])


def _hmac(hash_name: str, key: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hmac  # (see crypto.py)
    mac = hmac.HMAC(key, _hash(hash_name))
    mac.update(data)
    return mac.finalize()


def tls12_prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """PRF(secret, label, seed) = P_hash(secret, label + seed), truncated to `length`."""
    seed = label + seed
    out = bytearray()
    a = seed  # A(0)
    while len(out) < length:
        a = _hmac(hash_name, secret, a)
        out += _hmac(hash_name, secret, a + seed)
    return bytes(out[:length])


def tls12_key_block(hash_name: str, master_secret: bytes, client_random: bytes,
                    server_random: bytes, key_length: int, iv_length: int) -> tuple[bytes, bytes, bytes, bytes]:
    """(client_key, server_key, client_iv, server_iv) for an AEAD suite (no MAC keys, RFC 5246 §6.3).

    Note the seed order: server_random first for the key expansion (it is client first for the
    master secret, which the key log already gives us).
    """
    block = tls12_prf(hash_name, master_secret, b"key expansion", server_random + client_random,
                      2 * key_length + 2 * iv_length)
    k, i = key_length, iv_length
    return block[:k], block[k:2 * k], block[2 * k:2 * k + i], block[2 * k + i:2 * k + 2 * i]
