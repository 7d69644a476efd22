"""Synthetic Deepgram sessions, for tests and examples.

Builds a Session the way the pipeline would (handshake, frame counts, close,
client gaps, empty binary frames) while feeding a DeepgramAnalyzer, so the
Deepgram layer can be exercised without a capture.  Times are epoch seconds
starting at 12:00:00.000 UTC on 14 Nov 2023.
"""
from __future__ import annotations

import json
from typing import Any, Optional
from urllib.parse import urlencode

from ..model import (CLIENT, SERVER, CloseFrame, EmptyBinary, Gap, Handshake, Message,
                     Session)
from .analyzer import DeepgramAnalyzer

T0 = 1699963200.0  # 2023-11-14 12:00:00 UTC
TEST_KEY = "dgtest_0123456789abcdef0123456789abcdef"


def handshake(path: str = "/v1/listen", query: Optional[dict] = None, status: int = 101,
              headers: Optional[list[list[str]]] = None, t0: float = T0,
              dg_error: Optional[str] = None, body: Optional[str] = None,
              reason: Optional[str] = None,
              dg_request_id: Optional[str] = "0b6a9c33-1111-4222-8333-944455556666") -> Handshake:
    query = dict(query or {})
    target = path + ("?" + urlencode(query, doseq=True) if query else "")
    req = headers if headers is not None else [["Host", "api.deepgram.com"],
                                               ["Authorization", f"Token {TEST_KEY}"]]
    resp = [["dg-request-id", dg_request_id]] if dg_request_id else []
    if dg_error:
        resp.append(["dg-error", dg_error])
    body_json = None
    if body:
        try:
            body_json = json.loads(body)
        except ValueError:
            body_json = None
    return Handshake(
        method="GET", path=path, target=target, query=query,
        request_frame=4, request_time=t0, request_headers=[list(h) for h in req],
        status=status, reason=reason or ("Switching Protocols" if status == 101 else None),
        response_frame=6, response_time=t0 + 0.05, response_headers=resp, body=body,
        body_json=body_json, dg_request_id=dg_request_id,
        dg_error=dg_error)


class SessionBuilder:
    """Feed messages in capture order; finish() returns the finished Session."""

    def __init__(self, hs: Optional[Handshake] = None, gap_threshold: float = 10.0, **kw: Any):
        self.hs = hs or handshake(**kw)
        self.session = Session(index=0, client="10.0.0.2:50512", server="198.51.100.7:443",
                               tcp_stream=0, transport="tls-decrypted",
                               websocket=self.hs.status == 101, handshake=self.hs,
                               start_frame=1, start_time=self.hs.request_time)
        self.dga = DeepgramAnalyzer(self.hs)
        self.frame = (self.hs.response_frame or 6) + 1
        self.gap_threshold = gap_threshold
        self._client_times: list[tuple[int, float]] = []  # every client frame (any gap)
        self._audio_times: list[tuple[int, float]] = []
        open_at = self.hs.response_time if self.hs.response_time is not None else self.hs.request_time
        self._open = (self.hs.response_frame, open_at)
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

    def _count(self, direction: int, kind: str, size: int, frame: int, time: float) -> None:
        fc = self.session.frames[direction]
        setattr(fc, kind, getattr(fc, kind) + 1)
        fc.payload_bytes += size
        if fc.first_frame is None:
            fc.first_frame, fc.first_time = frame, time
        fc.last_frame, fc.last_time = frame, time

    def client_json(self, obj: Any, at: float, frame: Optional[int] = None) -> int:
        text = obj if isinstance(obj, str) else json.dumps(obj)
        return self.client_text(text, at, frame)

    def client_text(self, text: str, at: float, frame: Optional[int] = None) -> int:
        f = self._next(frame, at)
        data = text.encode()
        self._count(CLIENT, "text", len(data), f, T0 + at)
        self._client_times.append((f, T0 + at))
        self.session.messages.append(Message(CLIENT, 1, text, f, T0 + at, len(data)))
        self.dga.message(CLIENT, 1, data, len(data), f, T0 + at)
        return f

    def client_binary(self, size: int, at: float, head: bytes = b"", frame: Optional[int] = None) -> int:
        f = self._next(frame, at)
        head = (head + b"\x00" * 64)[:min(64, size)]
        self._count(CLIENT, "binary", size, f, T0 + at)
        self._client_times.append((f, T0 + at))
        if size == 0:
            self.session.frames[CLIENT].empty_binary += 1
            self.session.empty_binary.append(EmptyBinary(f, T0 + at))
        elif not head.lstrip().startswith(b"{"):
            self._audio_times.append((f, T0 + at))
        self.dga.message(CLIENT, 2, head, size, f, T0 + at)
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
        self._count(SERVER, "text", len(data), f, T0 + at)
        self.session.messages.append(Message(SERVER, 1, text, f, T0 + at, len(data)))
        self.dga.message(SERVER, 1, data, len(data), f, T0 + at)
        return f

    def server_binary(self, size: int, at: float, frame: Optional[int] = None) -> int:
        f = self._next(frame, at)
        self._count(SERVER, "binary", size, f, T0 + at)
        self.dga.message(SERVER, 2, b"\x00" * min(64, size), size, f, T0 + at)
        return f

    def close(self, side: str, code: Optional[int], reason: str, at: float,
              frame: Optional[int] = None) -> int:
        f = self._next(frame, at)
        cf = CloseFrame(code, reason, f, T0 + at)
        c = self.session.close
        if side == "client":
            c.client = cf
            self._client_times.append((f, T0 + at))
            self._count(CLIENT, "close", 2 + len(reason), f, T0 + at)
        else:
            c.server = cf
            self._count(SERVER, "close", 2 + len(reason), f, T0 + at)
        if c.initiator is None:
            c.initiator = side
        return f

    def tcp_end(self, kind: str, by: str, at: float, frame: Optional[int] = None) -> int:
        f = self._next(frame, at)
        c = self.session.close
        c.tcp_end, c.tcp_end_by, c.tcp_end_frame, c.tcp_end_time = kind, by, f, T0 + at
        return f

    def _gaps(self, kind: str, times: list[tuple[int, float]]) -> list[Gap]:
        # What the generic layer measures: client silences from the 101 (or a client
        # frame) to the next client frame, a close or the TCP end.
        c = self.session.close
        ends = [(f, t, "frame") for f, t in times]
        if c.server is not None:
            ends.append((c.server.frame, c.server.time, "close"))
        if c.tcp_end_time is not None:
            ends.append((c.tcp_end_frame, c.tcp_end_time, "tcp-end"))
        ends.sort(key=lambda e: e[1])
        gaps = []
        prev_frame, prev_time = self._open
        for f, t, how in ends:
            if prev_time is not None and t - prev_time > self.gap_threshold:
                gaps.append(Gap("client", kind, prev_time, t, t - prev_time, prev_frame, f, how))
            if how != "frame":
                break
            prev_frame, prev_time = f, t
        return gaps

    def finish(self) -> Session:
        s = self.session
        if self.hs.status == 101:
            s.gaps = self._gaps("any", self._client_times) + self._gaps("audio", self._audio_times)
        s.end_frame = self.frame - 1
        self.dga.finish(s)
        return s


def run_deepgram_rules(session: Session, gap_threshold: float = 10.0) -> list:
    """Run only the Deepgram rules (the generic ones live elsewhere) and keep the findings."""
    from ..findings import deepgram_rules  # noqa: F401  (registers the rules)
    from ..findings.registry import RULES, RuleContext
    ctx = RuleContext(gap_threshold=gap_threshold)
    found = []
    for _name, fn in RULES:
        if fn.__module__.endswith("deepgram_rules"):
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
