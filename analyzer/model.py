"""The session model: the one contract between analysis and rendering.

Analysis layers fill these plain dataclasses; finding rules read them and
append findings; renderers only read them.  Nothing here parses or prints.
`to_json()` gives the documented JSON contract (`schema: dgcap.report/1`,
see docs/json-contract.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from .connections import ConnectionCopy, Connections
from .egress import Egress
from .servername import ServerName

SCHEMA = "dgcap.report/1"

CLIENT = 0  # direction index: client -> server
SERVER = 1  # direction index: server -> client
DIRECTION_NAMES = ("client", "server")

ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass
class Finding:
    id: str
    severity: str  # error | warning | info
    message: str
    frames: list[int] = field(default_factory=list)
    time: Optional[float] = None
    # Machine-readable evidence (numbers a test or another tool can check).
    details: dict[str, Any] = field(default_factory=dict)
    # Wireshark display filter isolating the evidence (same tcp.stream numbering as Wireshark).
    display_filter: Optional[str] = None

    def to_json(self) -> dict:
        out = {"id": self.id, "severity": self.severity, "message": self.message,
               "frames": list(self.frames), "time": self.time}
        if self.display_filter:
            out["display_filter"] = self.display_filter
        if self.details:
            out["details"] = self.details
        return out


@dataclass
class Anomaly:
    """Something a protocol layer noticed (Zeek's "weird"): raw evidence, no verdict.

    Finding rules decide which anomalies become findings and how they read.
    """
    kind: str  # e.g. "unmasked-client-frame", "tcp-hole", "invalid-utf8"
    frame: Optional[int]
    time: Optional[float]
    direction: Optional[int] = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class AnomalyTally:
    """Anomalies of one kind past the per-session record cap: still counted, first and last kept."""
    kind: str
    count: int
    first_frame: Optional[int]
    first_time: Optional[float]
    last_frame: Optional[int]
    last_time: Optional[float]
    directions: int = 0  # bit 1 << CLIENT, 1 << SERVER
    bytes: int = 0  # sum of the records' "bytes" detail (tcp-hole sizes)


@dataclass
class Handshake:
    method: Optional[str] = None
    path: Optional[str] = None  # request target without the query string
    target: Optional[str] = None  # the full request target as sent
    query: dict[str, Any] = field(default_factory=dict)  # name -> str, or list when repeated
    http_version: Optional[str] = None
    request_frame: Optional[int] = None
    request_time: Optional[float] = None
    request_headers: list[list[str]] = field(default_factory=list)
    status: Optional[int] = None
    reason: Optional[str] = None
    response_frame: Optional[int] = None
    response_time: Optional[float] = None
    response_headers: list[list[str]] = field(default_factory=list)
    body: Optional[str] = None
    body_json: Optional[dict] = None
    dg_request_id: Optional[str] = None
    dg_error: Optional[str] = None
    ws_key: Optional[str] = None
    ws_accept: Optional[str] = None
    accept_valid: Optional[bool] = None
    subprotocol: Optional[str] = None
    extensions: Optional[str] = None  # Sec-WebSocket-Extensions as agreed by the server
    deflate: Optional[dict[str, Any]] = None  # negotiated permessage-deflate parameters

    def request_header(self, name: str) -> Optional[str]:
        return _header(self.request_headers, name)

    def response_header(self, name: str) -> Optional[str]:
        return _header(self.response_headers, name)

    def to_json(self) -> dict:
        return {
            "status": self.status, "reason": self.reason, "method": self.method,
            "path": self.path, "query": self.query,
            "request_frame": self.request_frame, "response_frame": self.response_frame,
            "request_time": self.request_time, "response_time": self.response_time,
            "dg_request_id": self.dg_request_id, "dg_error": self.dg_error,
            "request_headers": [list(h) for h in self.request_headers],
            "response_headers": [list(h) for h in self.response_headers],
            "body": self.body, "accept_valid": self.accept_valid,
            "subprotocol": self.subprotocol, "extensions": self.extensions,
            "deflate": self.deflate,
        }


def _header(headers: list[list[str]], name: str) -> Optional[str]:
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


@dataclass
class FrameCounts:
    text: int = 0
    binary: int = 0
    empty_binary: int = 0
    continuation: int = 0
    ping: int = 0
    pong: int = 0
    close: int = 0
    other: int = 0  # reserved opcodes
    payload_bytes: int = 0
    first_frame: Optional[int] = None
    first_time: Optional[float] = None
    last_frame: Optional[int] = None
    last_time: Optional[float] = None

    @property
    def total(self) -> int:
        return (self.text + self.binary + self.continuation + self.ping + self.pong
                + self.close + self.other)

    def to_json(self) -> dict:
        return {"text": self.text, "binary": self.binary, "empty_binary": self.empty_binary,
                "continuation": self.continuation, "ping": self.ping, "pong": self.pong,
                "close": self.close, "other": self.other, "payload_bytes": self.payload_bytes,
                "first_frame": self.first_frame, "last_frame": self.last_frame}


@dataclass
class Gap:
    direction: str  # "client" (only client gaps are measured today)
    kind: str  # "any" or "audio"
    start: float
    end: float
    seconds: float
    after_frame: Optional[int]  # the last frame before the silence (101 response or a client frame)
    before_frame: Optional[int]  # the frame that ended it (client frame, close, TCP end)
    ended_by: str = "frame"  # frame | close | tcp-end | capture-end

    def to_json(self) -> dict:
        return {"direction": self.direction, "kind": self.kind, "start": self.start,
                "end": self.end, "seconds": round(self.seconds, 6),
                "after_frame": self.after_frame, "before_frame": self.before_frame,
                "ended_by": self.ended_by}


@dataclass
class CloseFrame:
    code: Optional[int]  # None for an empty close payload
    reason: str
    frame: int
    time: float

    def to_json(self) -> dict:
        return {"code": self.code, "reason": self.reason, "frame": self.frame, "time": self.time}


@dataclass
class TcpEndEvent:
    """A FIN (the first of each side) or the RST, as the TCP layer saw it."""
    kind: str  # fin | rst
    by: str  # client | server
    frame: int
    time: float

    def to_json(self) -> dict:
        return {"kind": self.kind, "by": self.by, "frame": self.frame, "time": self.time}


@dataclass
class Close:
    client: Optional[CloseFrame] = None
    server: Optional[CloseFrame] = None
    initiator: Optional[str] = None  # client | server | None
    # What ended the connection first (a FIN or a RST), who sent it and where.
    tcp_end: str = "open"  # fin | rst | open
    tcp_end_by: Optional[str] = None  # client | server
    tcp_end_frame: Optional[int] = None
    tcp_end_time: Optional[float] = None
    # Every end event in order (each side's first FIN, the RST): at most three.
    tcp_ends: list[TcpEndEvent] = field(default_factory=list)

    @property
    def later_rst(self) -> Optional[TcpEndEvent]:
        """A RST that came after the first end (a FIN): worth saying, it is not what ended it."""
        if self.tcp_end != "fin":
            return None
        return next((e for e in self.tcp_ends if e.kind == "rst"), None)

    def to_json(self) -> dict:
        later = self.later_rst
        return {"client": self.client.to_json() if self.client else None,
                "server": self.server.to_json() if self.server else None,
                "initiator": self.initiator, "tcp_end": self.tcp_end,
                "tcp_end_by": self.tcp_end_by, "tcp_end_frame": self.tcp_end_frame,
                "tcp_end_time": self.tcp_end_time,
                "tcp_ends": [e.to_json() for e in self.tcp_ends],
                "later_rst": later.to_json() if later is not None else None}


@dataclass
class EmptyBinary:
    frame: int
    time: float


@dataclass
class Message:
    """A complete text (or close) message kept for later layers; binary is summarised."""
    direction: int
    opcode: int
    text: Optional[str]
    frame: int  # frame number of the last fragment
    time: float
    size: int
    compressed: bool = False


@dataclass
class Session:
    index: int
    client: str  # "ip:port" or "[v6]:port"
    server: str
    tcp_stream: int  # Wireshark's tcp.stream number
    transport: str = "tcp"  # tcp | tls | tls-decrypted
    start_frame: Optional[int] = None
    start_time: Optional[float] = None
    end_frame: Optional[int] = None
    end_time: Optional[float] = None
    syn_seen: bool = True
    websocket: bool = False  # a 101 was seen, or a frame stream was found mid-connection
    midstream: bool = False  # the connection's start (and handshake) is not in the capture
    handshake: Handshake = field(default_factory=Handshake)
    frames: tuple[FrameCounts, FrameCounts] = field(default_factory=lambda: (FrameCounts(), FrameCounts()))
    gaps: list[Gap] = field(default_factory=list)
    close: Close = field(default_factory=Close)
    empty_binary: list[EmptyBinary] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    # Kind -> count past the anomaly record cap (limits.SESSION_ANOMALY_RECORDS).
    anomaly_overflow: dict[str, AnomalyTally] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    messages_dropped: int = 0  # text messages not kept because of the per-session cap
    findings: list[Finding] = field(default_factory=list)
    # Filled by later layers (Deepgram, TLS); rendered when present.
    extra: dict[str, Any] = field(default_factory=dict)
    # Activity per time interval (session.ActivityTimeline) for charts; not in the JSON contract.
    timeline: Any = None
    # websocket | encrypted-stream ("class" in the JSON; connections.py decides).
    connection_class: str = "websocket"
    server_name: Optional[ServerName] = None  # SNI, Host, CONNECT authority or DNS answer
    egress: Optional[Egress] = None  # client bytes, active period and rate
    copy: Optional[ConnectionCopy] = None  # the same connection captured a second time

    def to_json(self) -> dict:
        out = {
            "index": self.index, "client": self.client, "server": self.server,
            "tcp_stream": self.tcp_stream, "transport": self.transport,
            "start_frame": self.start_frame, "start_time": self.start_time,
            "end_frame": self.end_frame, "end_time": self.end_time,
            "websocket": self.websocket, "midstream": self.midstream,
            "handshake": self.handshake.to_json(),
            "frames": {"client": self.frames[CLIENT].to_json(),
                       "server": self.frames[SERVER].to_json()},
            "gaps": [g.to_json() for g in self.gaps],
            "close": self.close.to_json(),
            "findings": [f.to_json() for f in self.findings],
            "class": self.connection_class,
            "server_name": self.server_name.to_json() if self.server_name is not None else None,
            "egress": self.egress.to_json() if self.egress is not None else None,
        }
        if self.copy is not None:
            out["copy"] = self.copy.to_json()
        if self.anomaly_overflow:
            out["anomalies_dropped"] = sum(t.count for t in self.anomaly_overflow.values())
        out.update(self.extra)
        return out


@dataclass
class CaptureReport:
    path: str
    format: Optional[str]  # pcap | pcapng
    packets: int = 0
    bytes: int = 0
    compressed: bool = False
    first_time: Optional[float] = None
    last_time: Optional[float] = None
    sessions: list[Session] = field(default_factory=list)
    # What could not be analysed (truncation, fragments, unknown link types...).
    findings: list[Finding] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None  # set when the file could not be read at all
    # Every TCP connection: sessions, and the summary of the others (connections.py).
    connections: Optional[Connections] = None

    def to_json(self) -> dict:
        return {"path": self.path, "format": self.format, "packets": self.packets,
                "bytes": self.bytes, "compressed": self.compressed,
                "first_time": self.first_time, "last_time": self.last_time,
                "error": self.error, "stats": self.stats,
                "connections": self.connections.to_json() if self.connections is not None else None,
                "findings": [f.to_json() for f in self.findings],
                "sessions": [s.to_json() for s in self.sessions]}


@dataclass
class Report:
    captures: list[CaptureReport]
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "tool": "dgcap", "options": self.options,
                "captures": [c.to_json() for c in self.captures]}
