"""Parsers for the handshake messages whose contents we report: ClientHello, ServerHello,
EncryptedExtensions (RFC 8446 §4.1-4.3, RFC 5246 §7.4.1).  Malformed input raises ValueError;
the connection turns that into an anomaly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest.
HELLO_RETRY_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

EXT_SERVER_NAME = 0
EXT_ALPN = 16
EXT_SESSION_TICKET = 35
EXT_PRE_SHARED_KEY = 41
EXT_EARLY_DATA = 42
EXT_SUPPORTED_VERSIONS = 43


class _Reader:
    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0, end: Optional[int] = None):
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise ValueError(f"truncated: need {n} bytes at offset {self.pos}, have {self.end - self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.uint(length_size))

    def sub(self, length_size: int) -> "_Reader":
        n = self.uint(length_size)
        if self.pos + n > self.end:
            raise ValueError(f"truncated vector of {n} bytes at offset {self.pos}")
        reader = _Reader(self.data, self.pos, self.pos + n)
        self.pos += n
        return reader

    @property
    def left(self) -> int:
        return self.end - self.pos


def _extensions(r: _Reader) -> list[tuple[int, bytes]]:
    if not r.left:  # extensions are optional before TLS 1.3
        return []
    block = r.sub(2)
    out = []
    while block.left:
        ext_type = block.uint(2)
        out.append((ext_type, block.vector(2)))
    return out


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _alpn_names(data: bytes) -> list[str]:
    names = _Reader(data).sub(2)
    out = []
    while names.left:
        out.append(_text(names.vector(1)))
    return out


def _selected_alpn(data: bytes) -> Optional[str]:
    """The server's choice: ServerHello (TLS 1.2) and EncryptedExtensions carry one name."""
    names = _alpn_names(data)
    return names[0] if names else None


@dataclass
class ClientHello:
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: list[int]
    sni: Optional[str] = None
    alpn: list[str] = field(default_factory=list)
    supported_versions: list[int] = field(default_factory=list)
    psk_offered: bool = False
    early_data: bool = False
    session_ticket: bool = False  # a non-empty ticket offered for TLS 1.2 resumption
    extensions: list[int] = field(default_factory=list)


def parse_client_hello(body: bytes) -> ClientHello:
    r = _Reader(body)
    hello = ClientHello(legacy_version=r.uint(2), random=r.take(32), session_id=r.vector(1),
                        cipher_suites=[])
    suites = r.vector(2)
    if len(suites) % 2:
        raise ValueError("odd cipher_suites length")
    hello.cipher_suites = [int.from_bytes(suites[i:i + 2], "big") for i in range(0, len(suites), 2)]
    r.vector(1)  # compression methods
    for ext_type, data in _extensions(r):
        hello.extensions.append(ext_type)
        if ext_type == EXT_SERVER_NAME:
            names = _Reader(data).sub(2)
            while names.left:
                name_type = names.uint(1)
                name = names.vector(2)
                if name_type == 0 and hello.sni is None:
                    hello.sni = _text(name)
        elif ext_type == EXT_ALPN:
            hello.alpn = _alpn_names(data)
        elif ext_type == EXT_SUPPORTED_VERSIONS:
            versions = _Reader(data).vector(1)
            hello.supported_versions = [int.from_bytes(versions[i:i + 2], "big")
                                        for i in range(0, len(versions) - 1, 2)]
        elif ext_type == EXT_PRE_SHARED_KEY:
            hello.psk_offered = True
        elif ext_type == EXT_EARLY_DATA:
            hello.early_data = True
        elif ext_type == EXT_SESSION_TICKET:
            hello.session_ticket = bool(data)
    return hello


@dataclass
class ServerHello:
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    selected_version: Optional[int] = None  # supported_versions (TLS 1.3)
    alpn: Optional[str] = None
    psk_accepted: bool = False
    extensions: list[int] = field(default_factory=list)

    @property
    def hello_retry(self) -> bool:
        return self.random == HELLO_RETRY_RANDOM

    @property
    def version(self) -> int:
        return self.selected_version or self.legacy_version


def parse_server_hello(body: bytes) -> ServerHello:
    r = _Reader(body)
    hello = ServerHello(legacy_version=r.uint(2), random=r.take(32), session_id=r.vector(1),
                        cipher_suite=r.uint(2))
    r.uint(1)  # compression method
    for ext_type, data in _extensions(r):
        hello.extensions.append(ext_type)
        if ext_type == EXT_SUPPORTED_VERSIONS and len(data) >= 2:
            hello.selected_version = int.from_bytes(data[:2], "big")
        elif ext_type == EXT_ALPN:
            hello.alpn = _selected_alpn(data)
        elif ext_type == EXT_PRE_SHARED_KEY:
            hello.psk_accepted = True
    return hello


@dataclass
class EncryptedExtensions:
    alpn: Optional[str] = None
    early_data_accepted: bool = False
    extensions: list[int] = field(default_factory=list)


def parse_encrypted_extensions(body: bytes) -> EncryptedExtensions:
    out = EncryptedExtensions()
    for ext_type, data in _extensions(_Reader(body)):
        out.extensions.append(ext_type)
        if ext_type == EXT_ALPN:
            out.alpn = _selected_alpn(data)
        elif ext_type == EXT_EARLY_DATA:
            out.early_data_accepted = True
    return out
