"""NSS key log (SSLKEYLOGFILE) reader, indexed by client random.

Format: `<LABEL> <client_random hex> <secret hex>` per line, `#` comments.  Labels we do not
use (RSA, OpenSSL's *_TRAFFIC_SECRET_N, future ones) are skipped, as are malformed lines: a key
log is often concatenated from several programs and one bad line must not lose the rest.
"""
from __future__ import annotations

import os
from typing import Union

KNOWN_LABELS = frozenset({
    "CLIENT_RANDOM",  # TLS 1.2 (and older) master secret
    "CLIENT_EARLY_TRAFFIC_SECRET",
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
    "EARLY_EXPORTER_SECRET",
    "EXPORTER_SECRET",
})


class KeyLog:
    def __init__(self) -> None:
        self._by_client_random: dict[bytes, dict[str, bytes]] = {}
        self.skipped_lines = 0  # malformed lines or unknown labels
        # Lookups by TLS sessions, and how many found secrets: a key log that matches none
        # of the capture's sessions is reported as such (once per session, not per record).
        self.lookups = 0
        self.matches = 0

    def load_file(self, path: Union[str, os.PathLike]) -> int:
        """Add the secrets of a key log file; returns how many were added.  OSError propagates."""
        with open(path, "r", encoding="ascii", errors="replace") as f:
            return self.load_text(f.read())

    def load_text(self, text: str) -> int:
        added = 0
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 3 or parts[0] not in KNOWN_LABELS:
                self.skipped_lines += 1
                continue
            try:
                client_random = bytes.fromhex(parts[1])
                secret = bytes.fromhex(parts[2])
            except ValueError:
                self.skipped_lines += 1
                continue
            if len(client_random) != 32 or not secret:
                self.skipped_lines += 1
                continue
            self.add(parts[0], client_random, secret)
            added += 1
        return added

    def add(self, label: str, client_random: bytes, secret: bytes) -> None:
        self._by_client_random.setdefault(bytes(client_random), {})[label] = bytes(secret)

    def secrets(self, client_random: bytes) -> dict[str, bytes]:
        """label -> secret for one connection (empty when the key log does not know it)."""
        found = self._by_client_random.get(bytes(client_random), {})
        self.lookups += 1
        self.matches += bool(found)
        return found

    def __len__(self) -> int:
        return len(self._by_client_random)

    def __contains__(self, client_random: object) -> bool:
        return isinstance(client_random, (bytes, bytearray)) and bytes(client_random) in self._by_client_random

    def __repr__(self) -> str:
        return f"KeyLog({len(self)} client randoms)"


# pcapng Decryption Secrets Block type holding an NSS key log ("TLSK").
TLS_KEY_LOG_SECRETS = 0x544C534B

# What a session's TLS facts say when nothing could be decrypted (the report shows it).
NO_KEYS_NOTE = ("Encrypted: without the TLS keys, WebSocket frames cannot be seen and records "
                "cannot be told apart (a KeepAlive counts as activity like audio). Gaps are "
                "measured on the client's application-data records. To see everything, run the "
                "client with SSLKEYLOGFILE=keys.log and pass --keylog keys.log, or embed the "
                "secrets in the pcapng (editcap --inject-secrets tls,keys.log).")
