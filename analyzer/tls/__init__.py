"""TLS layer: between TCP reassembly and HTTP/WebSocket.

    conn = TlsConnection(keylog)                  # keylog: KeyLog or None
    events = conn.feed(direction, data, frame_no, ts)   # 0 client->server, 1 server->client
    events = conn.hole(direction, size, frame_no, ts)   # bytes missing from the capture
    events = conn.finish()
    conn.info                                     # handshake facts, decryption state, counters

Events (tuples, kind first):
    ("record", direction, content_type, length, frame_no, ts)   every record; the wire (outer)
                                                  type, so TLS 1.3 sealed records say 23
    ("plaintext", direction, data: bytes, frame_no, ts)  decrypted application data; frame_no/ts
                                                  of the chunk holding the record's last byte
    ("alert", direction, level, description, frame_no, ts)   readable alerts (plain or decrypted)
    ("close_notify", direction, frame_no, ts)     follows the alert event of a close_notify
    ("handshake", info_snapshot: dict)            on the ServerHello (with the decryption state),
                                                  and again on TLS 1.3 EncryptedExtensions (ALPN)
    ("anomaly", kind, direction | None, frame_no, ts, detail: dict)

Anomaly kinds: tls-bad-record-mac (authentication failed: wrong key; that direction stops
decrypting), tls-no-keys, tls-unsupported-cipher, tls-desync (record framing lost / not regained),
tls-hole, tls-resync, tls-records-skipped, tls-no-handshake (capture starts mid-connection),
tls-handshake-incomplete, tls-truncated-record, tls-bad-handshake, tls-bad-alert,
tls-early-data-skipped, tls-renegotiation, tls-unexpected-content-type, tls-internal-error.
"""
from .connection import CLIENT, SERVER, TlsConnection, looks_like_tls
from .kdf import hkdf_expand_label, tls12_key_block, tls12_prf, tls13_next_traffic_secret
from .keylog import NO_KEYS_NOTE, TLS_KEY_LOG_SECRETS, KeyLog
from .suites import CIPHER_SUITES, CipherSuite, suite_name, version_name

__all__ = [
    "CLIENT", "SERVER", "TlsConnection", "looks_like_tls", "KeyLog", "NO_KEYS_NOTE", "TLS_KEY_LOG_SECRETS",
    "hkdf_expand_label", "tls12_prf", "tls12_key_block", "tls13_next_traffic_secret",
    "CIPHER_SUITES", "CipherSuite", "suite_name", "version_name",
]
