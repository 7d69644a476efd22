"""The same TCP connection captured twice: NAT seen from both sides, `-i any` on a router,
two span ports feeding one capture.

The copies differ in addresses and ports (NAT rewrites them) and in timestamps by the
forwarding delay, but carry the same sequence numbers (Linux NAT keeps them) and the same
bytes.  A connection's print is its initial sequence numbers and a checksum of the first
bytes the client sent (a TLS ClientHello holds 32 random bytes, and two plain upgrade
requests that happen to be identical still differ in their random ISNs); two connections
are copies when their prints match, they started within COPY_MAX_SKEW seconds, and an IP
address differs between them: NAT rewrites an address, while two connections of one host
to one server differ only in the client port (test generators reuse ISNs and bytes).
"""
from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

COPY_MAX_SKEW = 1.0  # seconds between the starts of two copies of one connection
HEAD_BYTES = 64  # first client bytes checksummed
# Prints remembered while waiting for a copy: copies of one connection end within
# milliseconds of each other, so the most recent few thousand are plenty, and memory stays
# flat whatever the number of connections.
RECENT_PRINTS = 4096


@dataclass(frozen=True)
class ConnectionPrint:
    client_isn: Optional[int]
    server_isn: Optional[int]
    client_head: Optional[int]  # crc32 of the client's first HEAD_BYTES (None: sent nothing)
    start_time: float
    addresses: tuple = ()  # (client IP, server IP) as raw bytes

    @property
    def key(self):
        """None for a connection that carried no client data: nothing to match it by."""
        if self.client_head is None or self.client_isn is None or self.server_isn is None:
            return None
        return (self.client_isn, self.server_isn, self.client_head)


def head_checksum(data) -> Optional[int]:
    return zlib.crc32(bytes(data[:HEAD_BYTES])) if data is not None and len(data) else None


class CopyMatcher:
    """Fed each finished connection's print (in the order connections end), pairs copies."""

    __slots__ = ("pairs", "_recent")

    def __init__(self) -> None:
        self.pairs: list[tuple[object, object]] = []  # (original, copy): original started first
        self._recent: OrderedDict = OrderedDict()

    def add(self, p: Optional[ConnectionPrint], item) -> Optional[object]:
        """Remember `item` by its print; when it is a copy of one seen before, return the
        pair's copy (the one that started later) and forget both."""
        key = p.key if p is not None else None
        if key is None:
            return None
        earlier = self._recent.get(key)
        if earlier is not None and abs(earlier[0].start_time - p.start_time) <= COPY_MAX_SKEW \
                and earlier[0].addresses != p.addresses:
            del self._recent[key]
            q, other = earlier
            pair = (other, item) if q.start_time <= p.start_time else (item, other)
            self.pairs.append(pair)
            return pair[1]
        self._recent[key] = (p, item)
        if len(self._recent) > RECENT_PRINTS:
            self._recent.popitem(last=False)
        return None
