"""The same TCP connection captured twice: NAT seen from both sides, `-i any` on a router,
two span ports feeding one capture.

The copies differ in addresses and ports (NAT rewrites them) and in timestamps by the
forwarding delay, but carry the same sequence numbers (Linux NAT keeps them) and the same
bytes.  A connection's print is its initial sequence numbers and a checksum of the first
bytes each side sent (a TLS ClientHello holds 32 random bytes: no two connections share
one); two connections are copies when their prints match and they started within
COPY_MAX_SKEW seconds of each other.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Optional

COPY_MAX_SKEW = 2.0  # seconds between the starts of two copies of one connection
HEAD_BYTES = 64  # first bytes of each direction checksummed


@dataclass(frozen=True)
class ConnectionPrint:
    client_isn: Optional[int]
    server_isn: Optional[int]
    client_head: Optional[int]  # crc32 of the client's first HEAD_BYTES (None: sent nothing)
    server_head: Optional[int]
    start_time: float


def head_checksum(data) -> Optional[int]:
    return zlib.crc32(bytes(data[:HEAD_BYTES])) if data is not None and len(data) else None


def _key(p: ConnectionPrint):
    if p.client_head is not None:
        # Payload decides (an ISN-rewriting firewall changes the sequence numbers).
        return ("head", p.client_head, p.server_head)
    if p.client_isn is not None and p.server_isn is not None:
        return ("isn", p.client_isn, p.server_isn)
    return None


def find_copies(prints: list[tuple[ConnectionPrint, object]]) -> list[tuple[object, object]]:
    """(original, copy) pairs among `prints` ((print, item) in capture order): the first
    connection seen is the original; a later one with the same print is its copy."""
    seen: dict = {}
    pairs = []
    for p, item in prints:
        key = _key(p)
        if key is None:
            continue
        earlier = seen.get(key)
        if earlier is not None:
            q, original = earlier
            if abs(p.start_time - q.start_time) <= COPY_MAX_SKEW:
                pairs.append((original, item))
                continue
        seen[key] = (p, item)
    return pairs
