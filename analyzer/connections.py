"""Every TCP connection of a capture: a session (websocket, encrypted-stream) or one line of
the `other` summary.

The pipeline hands each finished connection's facts to `ConnectionCensus.settle()`, which
names the server, measures the egress, decides the class and, for `other` connections,
adds them to the summary instead of the session list.  At the end of the capture,
`summary()` folds copies of one connection (NAT seen from both sides) into one and gives
the capture's `connections` block.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .copies import ConnectionPrint, CopyMatcher
from .dns import DnsNames
from .egress import (DEFAULT_TLS_RECORD_OVERHEAD, ENCRYPTED_STREAM, OTHER, TLS_RECORD_OVERHEAD,
                     WEBSOCKET, Egress, busy_seconds, connection_class, egress_summary,
                     looks_like_streaming_upload, ws_frame_overhead)
from .servername import HostMatcher, ServerName, choose_server_name

MAX_LISTED = 10_000  # other connections kept for --all (the summary counts them all)
# Distinct server names counted one by one in the summary; past it, under MORE_NAMES.
MAX_NAMES = 1000
MORE_NAMES = "(other names)"


@dataclass
class OtherConnection:
    """A connection that is not a session: one row of `--all`."""
    tcp_stream: int
    client: str
    server: str
    server_name: Optional[str]
    protocol: str  # tls | tls h2 | http | dns | unknown
    client_bytes: int
    server_bytes: int
    first_frame: Optional[int]
    last_frame: Optional[int]
    start_time: Optional[float]
    end_time: Optional[float]

    def to_json(self) -> dict:
        return {"tcp_stream": self.tcp_stream, "client": self.client, "server": self.server,
                "server_name": self.server_name, "protocol": self.protocol,
                "client_bytes": self.client_bytes, "server_bytes": self.server_bytes,
                "first_frame": self.first_frame, "last_frame": self.last_frame,
                "start_time": self.start_time, "end_time": self.end_time}


@dataclass
class ConnectionCopy:
    """The other capture of a session's connection (addresses after NAT, another interface)."""
    client: str
    server: str
    tcp_stream: int
    first_frame: Optional[int]
    last_frame: Optional[int]

    def to_json(self) -> dict:
        return {"client": self.client, "server": self.server, "tcp_stream": self.tcp_stream,
                "first_frame": self.first_frame, "last_frame": self.last_frame}


@dataclass
class OtherSummary:
    count: int = 0
    by_server_name: dict[str, dict] = field(default_factory=dict)  # name -> {count, bytes}
    bytes: int = 0

    def to_json(self) -> dict:
        return {"count": self.count, "bytes": self.bytes,
                "by_server_name": {k: dict(v) for k, v in sorted(self.by_server_name.items())}}


@dataclass
class Connections:
    total: int
    sessions: int
    other: OtherSummary
    # Connections that are another capture of one already counted (total = sessions +
    # other.count + copies).
    copies: int = 0
    listed: Optional[list[OtherConnection]] = None  # with --all

    def to_json(self) -> dict:
        out = {"total": self.total, "sessions": self.sessions, "other": self.other.to_json(),
               "copies": self.copies}
        if self.listed is not None:
            out["other_connections"] = [o.to_json() for o in self.listed]
        return out


@dataclass
class ConnectionFacts:
    """What the pipeline knows about a finished connection, for settle()."""
    tcp_stream: int
    client: str
    server: str
    server_address: bytes
    # The DNS answer (name, frame) for the server's address when the connection started.
    dns_answer: Optional[tuple]
    print: Optional[ConnectionPrint]
    encrypted: bool  # TLS that was not decrypted (or a headers-only capture of TLS)
    alpn: Optional[str] = None
    tls_version: Optional[str] = None
    keys_failed: bool = False  # the key log had keys for it, and they did not decrypt it
    sni: Optional[str] = None
    sni_frame: Optional[int] = None
    host: Optional[str] = None  # HTTP Host of the upgrade request
    host_frame: Optional[int] = None
    connect: Optional[str] = None  # authority of an HTTP CONNECT (tunnels)
    connect_frame: Optional[int] = None
    # TCP payload bytes (client, server), from sequence numbers: the `other` summary's bytes.
    tcp_bytes: tuple = (0, 0)
    # The connection's first and last packet: ((frame, time), (frame, time)).
    span: tuple = ((None, None), (None, None))
    # Client application data: TLS records, or TCP segments in a headers-only capture.
    units: int = 0
    unit: str = "records"
    client_bytes: int = 0
    server_bytes: int = 0
    first: Optional[tuple] = None  # (frame, time)
    last: Optional[tuple] = None
    timeline: object = None  # ActivityTimeline of the records
    protocol: str = "tls"


@dataclass(frozen=True)
class _Counted:
    """What the summary counted for an `other` connection (to take a copy back out)."""
    key: str
    bytes: int
    row: Optional[OtherConnection]


def add_tls_facts(fact: ConnectionFacts, tls_info, client_hello_frame: Optional[int],
                  activity, timeline, segments: bool = False) -> None:
    """The TLS part of a connection's facts (both engines): handshake names, and the client's
    application records (TCP segments in a headers-only capture) when nothing was decrypted."""
    if tls_info is not None:  # model.TlsInfo
        fact.protocol = "tls"
        fact.alpn, fact.tls_version = tls_info.alpn, tls_info.version
        fact.sni, fact.sni_frame = tls_info.sni, client_hello_frame
        fact.keys_failed = tls_info.decryption == "failed"
    if activity is None or not fact.encrypted:
        return
    fact.units = activity.records[0]
    fact.first, fact.last = activity.first[0], activity.last[0]
    fact.timeline = timeline
    if segments:
        # Every client byte, from sequence numbers (handshake included: its share of a
        # stream is a fraction of a percent).
        fact.unit = "segments"
        fact.client_bytes, fact.server_bytes = fact.tcp_bytes
    else:
        fact.client_bytes, fact.server_bytes = activity.bytes[0], activity.bytes[1]


class ConnectionCensus:
    """Memory stays flat: sessions are the caller's, `other` connections are only counted
    (kept one by one only for --all), copies are matched among recent connections."""

    def __init__(self, dns: DnsNames, hosts: HostMatcher, list_all: bool = False):
        self.dns = dns
        self.hosts = hosts
        self.other = OtherSummary()
        self.listed: Optional[list[OtherConnection]] = [] if list_all else None
        self.copies = CopyMatcher()

    def server_name(self, facts: ConnectionFacts) -> Optional[ServerName]:
        sn = choose_server_name(
            [("connect", facts.connect, facts.connect_frame), ("sni", facts.sni, facts.sni_frame),
             ("host", facts.host, facts.host_frame)],
            facts.dns_answer)
        if sn is not None:
            sn.deepgram = self.hosts.matches(sn.name)
        return sn

    def settle(self, session, facts: ConnectionFacts, builder=None) -> str:
        """Name, measure and classify a finished connection.  `session` (None for a
        connection that never became one) gets class, server_name and egress; returns
        the class.  An `other` connection is added to the summary: the caller drops its
        session.  `builder` (its SessionBuilder) gives the server's last TLS records."""
        klass = self._classify(session, facts)
        activity = builder.tls_activity if builder is not None else None
        if klass == ENCRYPTED_STREAM and activity is not None:
            session.egress.server_last_records = [{"length": n, "frame": f, "time": t}
                                                  for n, f, t in activity.tail[1]]
        return klass

    def _classify(self, session, facts: ConnectionFacts) -> str:
        hs = session.handshake if session is not None else None
        if facts.host is None and hs is not None and hs.request_frame is not None:
            facts.host, facts.host_frame = hs.request_header("host"), hs.request_frame
        sn = self.server_name(facts)
        # A proxy that refused the tunnel to a known streaming host ended that stream's
        # attempt: it is kept as one, like a rejected upgrade.
        refused = session is not None and session.proxy is not None and session.proxy.refused \
            and sn is not None and sn.deepgram
        if session is not None and session.websocket or session is not None and \
                session.handshake.request_frame is not None or refused:
            session.connection_class = WEBSOCKET
            session.server_name = sn
            session.egress = websocket_egress(session)
            self._remember(facts, session)
            return WEBSOCKET
        egress = None
        streaming = False
        if session is not None and facts.encrypted:
            overhead = TLS_RECORD_OVERHEAD.get(facts.tls_version, DEFAULT_TLS_RECORD_OVERHEAD)
            if facts.units:
                overhead += ws_frame_overhead(facts.client_bytes / facts.units - overhead)
            egress = egress_summary(facts.client_bytes, facts.units, facts.unit, facts.first,
                                    facts.last, session.gaps,
                                    unit_overhead=overhead if facts.unit == "records" else 0.0)
            busy = (busy_seconds(facts.timeline, 0, facts.first[1], facts.last[1])
                    if facts.first is not None else 0.0)
            streaming = looks_like_streaming_upload(facts.alpn, egress, facts.server_bytes, busy)
        klass = connection_class(False, facts.encrypted and session is not None,
                                 sn is not None and sn.deepgram, streaming, facts.keys_failed)
        if klass == ENCRYPTED_STREAM:
            session.connection_class = ENCRYPTED_STREAM
            session.server_name = sn
            session.egress = egress
            self._remember(facts, session)
            return klass
        self.add_other(facts, sn)
        return OTHER

    def add_other(self, facts: ConnectionFacts, sn: Optional[ServerName] = None) -> None:
        if sn is None:
            sn = self.server_name(facts)
        protocol = facts.protocol + (" h2" if facts.alpn == "h2" else "")
        (first_frame, first_time), (last_frame, last_time) = facts.span
        o = OtherConnection(facts.tcp_stream, facts.client, facts.server, sn.name if sn else None,
                            protocol, facts.tcp_bytes[0], facts.tcp_bytes[1], first_frame, last_frame,
                            first_time, last_time)
        key = sn.name if sn is not None else facts.server.rsplit(":", 1)[0]
        names = self.other.by_server_name
        if key not in names and len(names) >= MAX_NAMES:
            key = MORE_NAMES
        row = o if self.listed is not None and len(self.listed) < MAX_LISTED else None
        counted = _Counted(key, o.client_bytes + o.server_bytes, row)
        self._count(counted, +1)
        if row is not None:
            self.listed.append(row)
        self._remember(facts, counted)

    def _count(self, counted: _Counted, sign: int) -> None:
        entry = self.other.by_server_name.setdefault(counted.key, {"count": 0, "bytes": 0})
        entry["count"] += sign
        entry["bytes"] += sign * counted.bytes
        self.other.count += sign
        self.other.bytes += sign * counted.bytes
        if not entry["count"]:
            del self.other.by_server_name[counted.key]

    def _remember(self, facts: ConnectionFacts, item) -> None:
        self.copies.add(facts.print, item)

    def summary(self, total: int, sessions: list) -> tuple[Connections, list]:
        """The capture's `connections` block, and the sessions with copies folded: a copy's
        session is dropped and its addresses noted on the original's (`copy`)."""
        dropped = set()
        for original, copy in self.copies.pairs:
            if isinstance(copy, _Counted):
                self._count(copy, -1)
                if copy.row is not None:
                    self.listed.remove(copy.row)
                continue
            dropped.add(id(copy))
            if not isinstance(original, _Counted) and original.copy is None:
                original.copy = ConnectionCopy(copy.client, copy.server, copy.tcp_stream,
                                               copy.start_frame, copy.end_frame)
        kept = [s for s in sessions if id(s) not in dropped]
        return Connections(total, len(kept), self.other, len(self.copies.pairs), self.listed), kept


def websocket_egress(session) -> Egress:
    """A WebSocket session's egress: client frame payload bytes between its first and last
    client frame, minus the silences over the threshold."""
    c = session.frames[0]
    first = (c.first_frame, c.first_time) if c.first_frame is not None else None
    last = (c.last_frame, c.last_time) if c.last_frame is not None else None
    return egress_summary(c.payload_bytes, c.total, "frames", first, last, session.gaps)
