"""Scripted Deepgram sessions for tests: events in capture order, through the real SessionBuilder.

`ScriptedSession` emits the events a capture of such a session would raise (handshake
request and response, WebSocket frames and messages, close frames, the TCP end) into
analyzer.session.SessionBuilder, the builder every engine uses, so the Deepgram layer and
its rules are exercised without a capture and with the product's own gap, close and
count logic.  Times are epoch seconds starting at 12:00:00.000 UTC on 14 Nov 2023.
"""
from __future__ import annotations

import json
from typing import Any, Optional
from urllib.parse import urlencode

from analyzer.events import HandshakeRequest, HandshakeResponse, TcpEnd
from analyzer.http import Request, Response
from analyzer.model import CLIENT, SERVER, Handshake, Session
from analyzer.session import SessionBuilder
from analyzer.websocket import OP_BINARY, OP_CLOSE, OP_TEXT, Frame, Message

T0 = 1699963200.0  # 2023-11-14 12:00:00 UTC
TEST_KEY = "dgtest_0123456789abcdef0123456789abcdef"
REQUEST_ID = "0b6a9c33-1111-4222-8333-944455556666"


def handshake_events(path: str = "/v1/listen", query: Optional[dict] = None, status: Optional[int] = 101,
                     headers: Optional[list[list[str]]] = None, t0: float = T0,
                     dg_error: Optional[str] = None, body: Optional[str] = None,
                     reason: Optional[str] = None,
                     dg_request_id: Optional[str] = REQUEST_ID) -> tuple:
    """The upgrade request (No. 4 at t0) and its response (No. 6, 50 ms later; None when
    `status` is None) as the HTTP layer hands them over."""
    query = dict(query or {})
    target = path + ("?" + urlencode(query, doseq=True) if query else "")
    req_headers = headers if headers is not None else [["Host", "api.deepgram.com"],
                                                       ["Authorization", f"Token {TEST_KEY}"]]
    request = HandshakeRequest(Request("GET", target, path, query, "HTTP/1.1", [list(h) for h in req_headers]),
                               4, t0)
    if status is None:
        return request, None
    resp_headers = [["dg-request-id", dg_request_id]] if dg_request_id else []
    if dg_error:
        resp_headers.append(["dg-error", dg_error])
    response = Response("HTTP/1.1", status, reason or ("Switching Protocols" if status == 101 else None),
                        resp_headers, body=body.encode() if body else None)
    return request, HandshakeResponse(response, 6, t0 + 0.05)


def handshake(**kw: Any) -> Handshake:
    """The Handshake model the SessionBuilder makes of handshake_events(**kw)."""
    builder = SessionBuilder(Session(0, "10.0.0.2:50512", "198.51.100.7:443", 0), 10.0)
    request, response = handshake_events(**kw)
    builder.request(request)
    if response is not None:
        builder.response(response)
    return builder.session.handshake


class ScriptedSession:
    """Feed messages in capture order; finish() returns the finished Session."""

    def __init__(self, gap_threshold: float = 10.0, **kw: Any):
        request, response = handshake_events(**kw)
        session = Session(index=0, client="10.0.0.2:50512", server="198.51.100.7:443", tcp_stream=0,
                          transport="tls-decrypted", start_frame=1, start_time=request.time)
        self.builder = SessionBuilder(session, gap_threshold)
        self.builder.request(request)
        if response is not None:
            self.builder.response(response)
        self.session = session
        self.hs = session.handshake
        self.frame = (response.frame if response is not None else request.frame) + 1
        self._last_at = float("-inf")

    def _next(self, frame: Optional[int], at: float) -> int:
        # Messages must be fed in capture order, as the pipeline does.
        if at < self._last_at:
            raise ValueError(f"message at {at} fed after one at {self._last_at}")
        self._last_at = at
        if frame is not None:
            self.frame = frame
        f = self.frame
        self.frame += 1
        return f

    def _send(self, direction: int, opcode: int, data: bytes, size: int, frame: int, time: float,
              close: Optional[tuple] = None) -> None:
        """One single-frame message: its frame, then the message, as the WebSocket layer raises them."""
        ws_frame = Frame(True, 0, opcode, direction == CLIENT, None, size, 2, frame, time, frame, time)
        ws_frame.payload = data
        message = Message(opcode, data, size, size, False, frame, time, frame, time)
        if close is not None:
            message.close_code, message.close_reason = close
        self.builder.ws_frame(direction, ws_frame)
        self.builder.ws_messages(direction, [message])

    def client_json(self, obj: Any, at: float, frame: Optional[int] = None) -> int:
        text = obj if isinstance(obj, str) else json.dumps(obj)
        return self.client_text(text, at, frame)

    def client_text(self, text: str, at: float, frame: Optional[int] = None) -> int:
        f = self._next(frame, at)
        data = text.encode()
        self._send(CLIENT, OP_TEXT, data, len(data), f, T0 + at)
        return f

    def client_binary(self, size: int, at: float, head: bytes = b"", frame: Optional[int] = None) -> int:
        f = self._next(frame, at)
        head = (head + b"\x00" * 64)[:min(64, size)]
        self._send(CLIENT, OP_BINARY, head, size, f, T0 + at)
        return f

    def audio(self, chunks: int, size: int, start: float, interval: float,
              head: bytes = b"") -> list[int]:
        """`chunks` audio messages of `size` bytes every `interval` s from `start`."""
        return [self.client_binary(size, start + i * interval, head if i == 0 else b"")
                for i in range(chunks)]

    def server_json(self, obj: Any, at: float, frame: Optional[int] = None) -> int:
        text = obj if isinstance(obj, str) else json.dumps(obj)
        f = self._next(frame, at)
        data = text.encode()
        self._send(SERVER, OP_TEXT, data, len(data), f, T0 + at)
        return f

    def server_binary(self, size: int, at: float, frame: Optional[int] = None) -> int:
        f = self._next(frame, at)
        self._send(SERVER, OP_BINARY, b"\x00" * min(64, size), size, f, T0 + at)
        return f

    def close(self, side: str, code: Optional[int], reason: str, at: float,
              frame: Optional[int] = None) -> int:
        f = self._next(frame, at)
        payload = (code.to_bytes(2, "big") if code is not None else b"") + reason.encode()
        self._send(CLIENT if side == "client" else SERVER, OP_CLOSE, payload, 2 + len(reason), f, T0 + at,
                   close=(code, reason))
        return f

    def tcp_end(self, kind: str, by: str, at: float, frame: Optional[int] = None) -> int:
        f = self._next(frame, at)
        self.builder.tcp_end(TcpEnd(kind, CLIENT if by == "client" else SERVER, f, T0 + at))
        return f

    def finish(self) -> Session:
        return self.builder.finish(None, self.frame - 1, None)


def run_deepgram_rules(session: Session, gap_threshold: float = 10.0) -> list:
    """Run only the Deepgram rules (the generic ones live elsewhere) and keep the findings."""
    from analyzer.findings import deepgram_endpoint_rules, deepgram_rules  # noqa: F401  (registers)
    from analyzer.findings.registry import RULES, RuleContext
    ctx = RuleContext(gap_threshold=gap_threshold)
    found = []
    for _name, fn in RULES:
        if fn.__module__.startswith("analyzer.findings.deepgram_"):
            found.extend(fn(session, ctx) or ())
    session.findings.extend(found)
    return found


def results(start: float, duration: float, transcript: str, is_final: bool,
            speech_final: bool = False, confidence: float = 0.98, channel: int = 0) -> dict:
    """A /v1/listen Results message with Deepgram's field names."""
    return {"type": "Results", "channel_index": [channel, 1], "duration": duration,
            "start": start, "is_final": is_final, "speech_final": speech_final,
            "channel": {"alternatives": [{"transcript": transcript, "confidence": confidence,
                                          "words": []}]},
            "metadata": {"request_id": "0b6a9c33-1111-4222-8333-944455556666",
                         "model_info": {"name": "general-nova-3", "version": "2024-11-18",
                                        "arch": "nova-3"},
                         "model_uuid": "40bd3654-e622-47c4-a111-63a61b23bfe2"},
            "from_finalize": False}


def metadata(duration: float, sha256: str, channels: int = 1) -> dict:
    return {"type": "Metadata", "transaction_key": "deprecated",
            "request_id": "0b6a9c33-1111-4222-8333-944455556666", "sha256": sha256,
            "created": "2023-11-14T12:00:00.000Z", "duration": duration, "channels": channels,
            "models": ["40bd3654-e622-47c4-a111-63a61b23bfe2"], "model_info": {}}
