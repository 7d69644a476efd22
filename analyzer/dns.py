"""DNS answers seen on the wire -> which name a server address was looked up as (sans-I/O).

Network teams capture at a firewall without TLS keys; when a ClientHello carries no SNI
(or the capture cut it), the DNS answer the client got is the next best evidence of whom
it was talking to.  This module only parses DNS responses (RFC 1035 wire format, name
compression, A / AAAA / CNAME answers) and remembers, per address, the name the client
asked for.  It never raises on malformed input: a response it cannot read is counted.

Feeding:
* UDP: `DnsNames.udp(payload, frame)` with the UDP payload of a port-53 datagram.
* TCP: `DnsTcpStream(names).feed(data, frame)` with one direction's in-order bytes
  (each message is preceded by a 2-byte length, RFC 1035 4.2.2).
"""
from __future__ import annotations

from struct import unpack_from
from typing import Optional

TYPE_A, TYPE_CNAME, TYPE_AAAA = 1, 5, 28
MAX_NAME_POINTERS = 32  # compression pointers followed per name (loops in hostile input)
MAX_ADDRESSES = 100_000  # addresses remembered per capture (memory stays bounded)


def read_name(msg, pos: int) -> tuple[Optional[str], int]:
    """The domain name at `pos` and the position after it in the record (not after a pointer
    target).  (None, pos) when the name is malformed or runs past the message."""
    labels: list[str] = []
    end_pos = None
    jumps = 0
    size = len(msg)
    while True:
        if pos >= size:
            return None, pos
        length = msg[pos]
        if length == 0:
            pos += 1
            break
        if length & 0xC0 == 0xC0:
            if pos + 1 >= size or jumps >= MAX_NAME_POINTERS:
                return None, pos
            if end_pos is None:
                end_pos = pos + 2
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            jumps += 1
            continue
        if length & 0xC0:
            return None, pos  # the 0x40/0x80 label types are obsolete
        if pos + 1 + length > size:
            return None, pos
        labels.append(bytes(msg[pos + 1:pos + 1 + length]).decode("ascii", "replace").lower())
        pos += 1 + length
    return ".".join(labels), end_pos if end_pos is not None else pos


def parse_response(msg) -> Optional[tuple[Optional[str], list[tuple[str, int, bytes]]]]:
    """(question name, [(owner name, type, rdata)] of the A/AAAA/CNAME answers) of a DNS
    response; None when `msg` is not a readable response.  A CNAME's rdata is its target
    name, encoded as ASCII bytes; an address's is its 4 or 16 raw bytes.  Answers cut short
    (a snap length) are returned up to the last whole one."""
    if len(msg) < 12:
        return None
    _id, flags, qdcount, ancount = unpack_from("!HHHH", msg, 0)
    if not flags & 0x8000 or (flags >> 11) & 0xF != 0:  # a response to a standard query
        return None
    pos = 12
    question = None
    for i in range(qdcount):
        name, pos = read_name(msg, pos)
        if name is None:
            return None
        if i == 0:
            question = name
        pos += 4  # type, class
    answers: list[tuple[str, int, bytes]] = []
    for _ in range(ancount):
        owner, pos = read_name(msg, pos)
        if owner is None or pos + 10 > len(msg):
            break
        rtype, _rclass, _ttl, rdlength = unpack_from("!HHIH", msg, pos)
        pos += 10
        if pos + rdlength > len(msg):
            break
        if rtype == TYPE_A and rdlength == 4 or rtype == TYPE_AAAA and rdlength == 16:
            answers.append((owner, rtype, bytes(msg[pos:pos + rdlength])))
        elif rtype == TYPE_CNAME:
            target, _ = read_name(msg, pos)
            if target is not None:
                answers.append((owner, rtype, target.encode("ascii", "replace")))
        pos += rdlength
    return question, answers


class DnsNames:
    """Server address (raw 4 or 16 bytes) -> (name asked for, frame of the answer).

    The name kept is the question's: a client that asked for api.deepgram.com and was
    answered with a CNAME chain to a load balancer's address connected to
    api.deepgram.com.  The latest answer for an address wins: look an address up when a
    connection to it starts, and the answer is the one the client had just got."""

    __slots__ = ("by_address", "responses", "unreadable")

    def __init__(self) -> None:
        self.by_address: dict[bytes, tuple[str, int]] = {}
        self.responses = 0
        self.unreadable = 0

    def udp(self, payload, frame: int) -> None:
        parsed = parse_response(payload)
        if parsed is None:
            self.unreadable += 1
            return
        self.responses += 1
        self._answers(parsed[0], parsed[1], frame)

    def _answers(self, question: Optional[str], answers, frame: int) -> None:
        if not answers:
            return
        # Follow the CNAME chain back to the name the client asked for.
        alias_of: dict[str, str] = {}
        for owner, rtype, data in answers:
            if rtype == TYPE_CNAME:
                alias_of.setdefault(data.decode("ascii", "replace"), owner)
        table = self.by_address
        for owner, rtype, data in answers:
            if rtype == TYPE_CNAME or (len(table) >= MAX_ADDRESSES and data not in table):
                continue
            name = owner
            for _ in range(MAX_NAME_POINTERS):
                parent = alias_of.get(name)
                if parent is None or parent == name:
                    break
                name = parent
            table[data] = (question or name, frame)

    def lookup(self, address: bytes) -> Optional[tuple[str, int]]:
        return self.by_address.get(bytes(address))


class DnsTcpStream:
    """One direction of a DNS-over-TCP connection: length-prefixed messages to DnsNames.

    Only the server's direction carries responses; feed that one."""

    __slots__ = ("names", "_buf", "_lost")

    def __init__(self, names: DnsNames) -> None:
        self.names = names
        self._buf = bytearray()
        self._lost = False

    def feed(self, data, frame: int) -> None:
        if self._lost:
            return
        buf = self._buf
        buf += data
        while len(buf) >= 2:
            length = buf[0] << 8 | buf[1]
            if len(buf) < 2 + length:
                break
            self.names.udp(memoryview(bytes(buf[2:2 + length])), frame)
            del buf[:2 + length]

    def hole(self) -> None:
        """Bytes are missing: the message boundaries are lost for good."""
        self._buf = bytearray()
        self._lost = True
