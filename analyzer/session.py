"""Per-WebSocket-session accumulation: frames -> counts, gaps, close, empty binary frames.

Fed one frame at a time (direction, frame) by the connection analyzer; keeps only
aggregates, so memory does not grow with the number of frames.
"""
from __future__ import annotations

from typing import Optional

from .model import (CLIENT, SERVER, Anomaly, CloseFrame, EmptyBinary, Gap, Message,
                    Session, TcpEndEvent)

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

MAX_ANOMALIES = 2000
MAX_KEPT_MESSAGES = 5000
MAX_KEPT_TEXT_BYTES = 8 << 20


class TextBudget:
    """Characters of server text messages that the sessions of one capture may still keep in
    Session.messages (shared by their recorders): the per-session caps bound one session,
    this bounds a capture with thousands of them.  Client messages are not counted (they
    are few, and carry Settings)."""

    __slots__ = ("left", "limit", "dropped")

    def __init__(self, limit: int):
        self.limit = limit
        self.left = limit
        self.dropped = 0


class _Silence:
    """One running silence measurement: the time since the last qualifying client frame."""

    __slots__ = ("kind", "since_frame", "since_time", "active")

    def __init__(self, kind: str):
        self.kind = kind
        self.since_frame: Optional[int] = None
        self.since_time: Optional[float] = None
        self.active = False

    def start(self, frame: int, ts: float) -> None:
        self.since_frame, self.since_time, self.active = frame, ts, True


class ActivityTimeline:
    """Per-interval frame and byte counts for charts, bounded however long the session.

    Bins start at 1 s; past MAX_BINS the width doubles and neighbours merge, so memory
    stays flat and a chart still covers the whole session.
    """

    MAX_BINS = 2048
    __slots__ = ("origin", "width", "bins")

    def __init__(self):
        self.origin: Optional[float] = None
        self.width = 1.0
        # bin index -> [client frames, server frames, client bytes, server bytes, client audio bytes]
        self.bins: dict[int, list[int]] = {}

    def add(self, direction: int, ts: float, length: int, audio: bool) -> None:
        if self.origin is None:
            self.origin = ts
        i = int((ts - self.origin) / self.width)
        if i >= self.MAX_BINS:
            self._coarsen(i)
            i = int((ts - self.origin) / self.width)
        b = self.bins.get(i)
        if b is None:
            b = self.bins[i] = [0, 0, 0, 0, 0]
        b[direction] += 1
        b[2 + direction] += length
        if audio:
            b[4] += length

    def _coarsen(self, needed: int) -> None:
        while needed >= self.MAX_BINS:
            merged: dict[int, list[int]] = {}
            for i, b in self.bins.items():
                m = merged.setdefault(i // 2, [0, 0, 0, 0, 0])
                for k in range(5):
                    m[k] += b[k]
            self.bins = merged
            self.width *= 2
            needed //= 2

    def to_json(self) -> dict:
        return {"origin": self.origin, "bin_seconds": self.width,
                "bins": [[i] + b for i, b in sorted(self.bins.items())],
                "columns": ["bin", "client_frames", "server_frames", "client_bytes", "server_bytes",
                            "client_audio_bytes"]}


class SessionRecorder:
    """Turns parsed frames and messages into the session model's aggregates."""

    def __init__(self, session: Session, gap_threshold: float, text_budget: Optional[TextBudget] = None):
        self.session = session
        self.gap_threshold = gap_threshold
        self._text_budget = text_budget
        self._any = _Silence("any")
        self._audio = _Silence("audio")
        # Opcode of the data message in progress per direction, so continuation
        # frames of a binary message count as audio.
        self._message_opcode = [None, None]
        self._kept_text_bytes = 0
        self._measuring = False
        self.timeline = ActivityTimeline()
        session.timeline = self.timeline
        self._opened = False

    # -- the WebSocket stream starts (101 seen, or a frame stream found mid-connection)
    def open(self, frame: int, ts: float) -> None:
        self._any.start(frame, ts)
        self._audio.start(frame, ts)
        self._measuring = self._opened = True

    def frame(self, direction: int, f) -> None:
        s = self.session
        counts = s.frames[direction]
        op = f.opcode
        length = f.length
        frame_no = f.frame
        ts = f.time
        counts.payload_bytes += length
        if counts.first_frame is None:
            counts.first_frame, counts.first_time = frame_no, ts
        counts.last_frame, counts.last_time = frame_no, ts
        if op == OP_BINARY and length and f.fin:
            # The common case (an audio chunk), with the general code below inlined.
            counts.binary += 1
            self._message_opcode[direction] = None
            if direction == CLIENT:
                self.timeline.add(CLIENT, ts, length, True)
                if self._measuring:
                    # client_activity(frame_no, ts, True) while measuring, inlined
                    threshold = self.gap_threshold
                    for silence in (self._any, self._audio):
                        if silence.active and ts - silence.since_time > threshold:
                            self._end_silence(silence, frame_no, ts, "frame")
                        silence.since_frame, silence.since_time, silence.active = frame_no, ts, True
                else:
                    self.client_activity(frame_no, ts, True)
            else:
                self.timeline.add(direction, ts, length, False)
            return
        data_opcode = None
        if op == OP_BINARY:
            counts.binary += 1
            data_opcode = OP_BINARY
            if f.length == 0 and direction == CLIENT:
                counts.empty_binary += 1
                s.empty_binary.append(EmptyBinary(f.frame, f.time))
        elif op == OP_TEXT:
            counts.text += 1
            data_opcode = OP_TEXT
        elif op == OP_CONT:
            counts.continuation += 1
            data_opcode = self._message_opcode[direction]
        elif op == OP_PING:
            counts.ping += 1
        elif op == OP_PONG:
            counts.pong += 1
        elif op == OP_CLOSE:
            counts.close += 1
        else:
            counts.other += 1
        if op in (OP_TEXT, OP_BINARY, OP_CONT):
            self._message_opcode[direction] = None if f.fin else data_opcode

        self.timeline.add(direction, f.time, f.length, data_opcode == OP_BINARY and direction == CLIENT)
        if direction == CLIENT:
            self.client_activity(f.frame, f.time, data_opcode == OP_BINARY and f.length > 0)
            if op == OP_CLOSE:
                self._end_silence(self._audio, f.frame, f.time, "close")
                self._stop_measuring()
        elif op == OP_CLOSE and self._measuring:
            # Once the server has closed, later client silence says nothing about the stream.
            self._end_silence(self._any, f.frame, f.time, "close")
            self._end_silence(self._audio, f.frame, f.time, "close")
            self._stop_measuring()

    def client_activity(self, frame: int, ts: float, audio: bool) -> None:
        """A client frame (or, for TLS without keys, an application-data record)."""
        if not self._opened:
            # Picked up mid-stream, or TLS without keys: silence is measured from here.
            self.open(frame, ts)
            return
        if not self._measuring:
            return
        # _end_silence(silence, frame, ts, "frame") then silence.start(frame, ts), inlined.
        silence = self._any
        if silence.active and ts - silence.since_time > self.gap_threshold:
            self._end_silence(silence, frame, ts, "frame")
        silence.since_frame, silence.since_time, silence.active = frame, ts, True
        if audio:
            silence = self._audio
            if silence.active and ts - silence.since_time > self.gap_threshold:
                self._end_silence(silence, frame, ts, "frame")
            silence.since_frame, silence.since_time, silence.active = frame, ts, True

    def close_message(self, direction: int, code: Optional[int], reason: str, frame: int, ts: float) -> None:
        close = self.session.close
        cf = CloseFrame(code, reason, frame, ts)
        if direction == CLIENT:
            if close.client is None:
                close.client = cf
        elif close.server is None:
            close.server = cf
        if close.initiator is None:
            close.initiator = "client" if direction == CLIENT else "server"

    def keep_message(self, direction: int, m) -> None:
        s = self.session
        if len(s.messages) >= MAX_KEPT_MESSAGES or self._kept_text_bytes >= MAX_KEPT_TEXT_BYTES:
            s.messages_dropped += 1
            return
        budget = self._text_budget
        if budget is not None and direction == SERVER:
            if budget.left <= 0:
                s.messages_dropped += 1
                budget.dropped += 1
                return
            text = bytes(m.data).decode("utf-8", "replace")
            budget.left -= len(text)
        else:
            text = bytes(m.data).decode("utf-8", "replace")
        self._kept_text_bytes += len(text)
        s.messages.append(Message(direction, m.opcode, text, m.frame, m.time, m.size, m.compressed))

    def anomaly(self, kind: str, frame: Optional[int], ts: Optional[float],
                direction: Optional[int] = None, detail: Optional[dict] = None) -> None:
        s = self.session
        if len(s.anomalies) >= MAX_ANOMALIES:
            s.extra.setdefault("anomalies_dropped", 0)
            s.extra["anomalies_dropped"] += 1
            return
        s.anomalies.append(Anomaly(kind, frame, ts, direction, detail or {}))

    def tcp_end(self, kind: str, direction: int, frame: int, ts: float) -> None:
        close = self.session.close
        by = "client" if direction == CLIENT else "server"
        close.tcp_ends.append(TcpEndEvent(kind, by, frame, ts))
        if close.tcp_end == "open":
            # The first end is what ended the connection; a later RST is listed in tcp_ends.
            close.tcp_end, close.tcp_end_by, close.tcp_end_frame, close.tcp_end_time = kind, by, frame, ts
        if self._measuring:
            self._end_silence(self._any, frame, ts, "tcp-end")
            self._end_silence(self._audio, frame, ts, "tcp-end")
            self._stop_measuring()

    def finish(self, capture_end_time: Optional[float]) -> None:
        if self._measuring and capture_end_time is not None:
            self._end_silence(self._any, None, capture_end_time, "capture-end")
            self._end_silence(self._audio, None, capture_end_time, "capture-end")
        self._stop_measuring()
        self.session.gaps.sort(key=lambda g: (g.start, g.kind))

    def _stop_measuring(self) -> None:
        self._measuring = False
        self._opened = True
        self._any.active = self._audio.active = False

    def _end_silence(self, silence: _Silence, frame: Optional[int], ts: float, ended_by: str) -> None:
        if not silence.active:
            return
        seconds = ts - silence.since_time
        if seconds > self.gap_threshold:
            self.session.gaps.append(Gap("client", silence.kind, silence.since_time, ts, seconds,
                                         silence.since_frame, frame, ended_by))
        silence.active = False
