"""The typed events that parsing layers raise and `session.SessionBuilder` consumes.

The seam between "what was on the wire" and "what the session model says", the way Zeek's
analyzers raise events and its scripts decide: every engine (native bytes, tshark's
dissection), the live view and the test builders feed these same events into the same
SessionBuilder, which owns all silence, close and timeline logic.

The per-frame events are the layers' own slotted objects, not copies: a WebSocket frame is
the FrameParser's `Frame`, a message the MessageAssembler's `Message` (both delivered with
their direction).  Rare events are small NamedTuples.  Anomalies are `model.Anomaly`.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

from .http.message import Request, Response
from .model import Anomaly
from .websocket.frames import Frame as WsFrame
from .websocket.messages import Message as WsMessage


class HandshakeRequest(NamedTuple):
    """The client's HTTP upgrade request (frame: the packet that completed its head)."""
    request: Request
    frame: int
    time: float


class HandshakeResponse(NamedTuple):
    """The server's HTTP response to the upgrade; frame None when only the capture's end completed it."""
    response: Response
    frame: Optional[int]
    time: Optional[float]


class MidstreamStart(NamedTuple):
    """A WebSocket frame stream found in a connection whose start is not in the capture."""
    frame: int
    time: float


class TlsRecord(NamedTuple):
    """One TLS record as seen on the wire (content_type 23: application data)."""
    direction: int
    content_type: int
    length: int
    frame: int
    time: float


class TlsAlert(NamedTuple):
    direction: int
    level: int  # the alert's level and description bytes (RFC 8446 6)
    description: int
    frame: int
    time: float


class TcpEnd(NamedTuple):
    """The connection ended: kind "fin" or "rst", sent by `direction`."""
    kind: str
    direction: int
    frame: int
    time: float


__all__ = ["HandshakeRequest", "HandshakeResponse", "MidstreamStart", "WsFrame", "WsMessage",
           "TlsRecord", "TlsAlert", "TcpEnd", "Anomaly"]
