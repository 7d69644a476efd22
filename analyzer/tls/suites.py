"""Cipher suites: IANA names, and how to open the records of the ones we can decrypt.

Only AEAD suites are decryptable: their records authenticate with a tag, so a wrong key is
detected on the first record instead of producing garbage.  CBC/RC4/3DES suites still get a
name (the report should say what was negotiated) but `protection` is None.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


TLS13 = "tls13"  # RFC 8446 §5.2: nonce = iv XOR seq, AAD = record header, inner content type
TLS12_GCM = "tls12-gcm"  # RFC 5288: 4-byte salt + 8-byte explicit nonce carried in the record
TLS12_CHACHA = "tls12-chacha"  # RFC 7905: nonce = iv XOR seq, nothing explicit on the wire


@dataclass(frozen=True)
class CipherSuite:
    id: int
    name: str
    protection: Optional[str] = None  # TLS13 | TLS12_GCM | TLS12_CHACHA | None (not decryptable)
    aead: str = ""  # aes-gcm | chacha20-poly1305 | aes-ccm | aes-ccm-8
    key_length: int = 0
    hash_name: str = "sha256"  # HKDF hash (1.3) or PRF hash (1.2)

    def new_aead(self, key: bytes):
        # (imported here: only decryption needs cryptography, see crypto.py)
        from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
        if self.aead == "aes-gcm":
            return AESGCM(key)
        if self.aead == "chacha20-poly1305":
            return ChaCha20Poly1305(key)
        if self.aead == "aes-ccm":
            return AESCCM(key, 16)
        if self.aead == "aes-ccm-8":
            return AESCCM(key, 8)
        raise ValueError(f"{self.name} is not an AEAD suite")

    def decryptable(self, version: Optional[int]) -> bool:
        if self.protection == TLS13:
            return version == 0x0304
        if self.protection in (TLS12_GCM, TLS12_CHACHA):
            return version == 0x0303
        return False


def _suite(id_, name, protection=None, aead="", key_length=0, hash_name="sha256"):
    return id_, CipherSuite(id_, name, protection, aead, key_length, hash_name)


CIPHER_SUITES: dict[int, CipherSuite] = dict([
    _suite(0x1301, "TLS_AES_128_GCM_SHA256", TLS13, "aes-gcm", 16),
    _suite(0x1302, "TLS_AES_256_GCM_SHA384", TLS13, "aes-gcm", 32, "sha384"),
    _suite(0x1303, "TLS_CHACHA20_POLY1305_SHA256", TLS13, "chacha20-poly1305", 32),
    _suite(0x1304, "TLS_AES_128_CCM_SHA256", TLS13, "aes-ccm", 16),
    _suite(0x1305, "TLS_AES_128_CCM_8_SHA256", TLS13, "aes-ccm-8", 16),
    _suite(0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", TLS12_GCM, "aes-gcm", 16),
    _suite(0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", TLS12_GCM, "aes-gcm", 32, "sha384"),
    _suite(0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", TLS12_GCM, "aes-gcm", 16),
    _suite(0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", TLS12_GCM, "aes-gcm", 32, "sha384"),
    _suite(0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", TLS12_GCM, "aes-gcm", 16),
    _suite(0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", TLS12_GCM, "aes-gcm", 32, "sha384"),
    _suite(0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", TLS12_GCM, "aes-gcm", 16),
    _suite(0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", TLS12_GCM, "aes-gcm", 32, "sha384"),
    _suite(0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", TLS12_CHACHA, "chacha20-poly1305", 32),
    _suite(0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", TLS12_CHACHA, "chacha20-poly1305", 32),
    _suite(0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", TLS12_CHACHA, "chacha20-poly1305", 32),
    _suite(0x0005, "TLS_RSA_WITH_RC4_128_SHA"),
    _suite(0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
    _suite(0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA"),
    _suite(0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"),
    _suite(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"),
    _suite(0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"),
    _suite(0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256"),
    _suite(0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256"),
    _suite(0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"),
    _suite(0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"),
    _suite(0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
    _suite(0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"),
    _suite(0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
    _suite(0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    _suite(0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"),
    _suite(0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"),
    _suite(0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"),
    _suite(0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"),
    _suite(0x00FF, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"),
    _suite(0x5600, "TLS_FALLBACK_SCSV"),
])


def suite_name(suite_id: int) -> str:
    suite = CIPHER_SUITES.get(suite_id)
    return suite.name if suite else f"0x{suite_id:04X}"


VERSION_NAMES = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
                 0x0304: "TLS 1.3"}


def version_name(version: Optional[int]) -> Optional[str]:
    if version is None:
        return None
    if version in VERSION_NAMES:
        return VERSION_NAMES[version]
    if version >> 8 == 0x7F:  # pre-RFC TLS 1.3 drafts (0x7fXX = draft XX)
        return f"TLS 1.3 (draft {version & 0xFF})"
    if version & 0x0F0F == 0x0A0A:  # GREASE (RFC 8701)
        return "GREASE"
    return f"0x{version:04X}"
