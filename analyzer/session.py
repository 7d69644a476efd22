"""Session building: typed events in, the session model out.

`SessionBuilder` is the one place a Session is assembled, whatever produced the events
(analyzer/events.py): the native pipeline, the tshark engine, the live view and the test
builders all feed it.  It owns every silence, close and timeline decision; parsing layers
only raise events and anomalies.  It keeps aggregates only, so memory does not grow with
the number of frames.
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

from .events import HandshakeRequest, HandshakeResponse, MidstreamStart, TcpEnd, TlsAlert, TlsRecord
from .http import body_text, deflate_agreement, parse_error_body, websocket_accept
from .limits import SESSION_ANOMALY_RECORDS, SESSION_KEPT_MESSAGES, SESSION_KEPT_TEXT_CHARS
from .model import (CLIENT, DIRECTION_NAMES, SERVER, Anomaly, AnomalyTally, CloseFrame,
                    EmptyBinary, Gap, Message, Session, TcpEndEvent, TlsInfo)
from .websocket.frames import (OP_BINARY, OP_CLOSE, OP_CONTINUATION as OP_CONT, OP_PING,
                               OP_PONG, OP_TEXT, Frame, FrameParser)
from .websocket.messages import MessageAssembler

if TYPE_CHECKING:  # imported late at run time (the Deepgram layer reads the model)
    from .deepgram import DeepgramAnalyzer


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

    __slots__ = ("kind", "since_frame", "since_time")

    def __init__(self, kind: str):
        self.kind = kind
        self.since_frame: Optional[int] = None
        self.since_time: Optional[float] = None


class ActivityTimeline:
    """Per-interval frame and byte counts for charts, bounded however long the session.

    Bins start at 1 s; past MAX_BINS the width doubles and neighbours merge, so memory
    stays flat and a chart still covers the whole session.  Frame bytes are payload bytes
    on the wire (compressed when permessage-deflate is used); client audio bytes are the
    binary messages' payload as the application sent it (inflated), counted at each
    message's last frame, as the Stream section's real-time factor counts them.
    """

    MAX_BINS: ClassVar[int] = 2048
    __slots__ = ("origin", "width", "bins")

    def __init__(self):
        self.origin: Optional[float] = None
        self.width = 1.0
        # bin index -> [client frames, server frames, client bytes, server bytes, client audio bytes]
        self.bins: dict[int, list[int]] = {}

    def add(self, direction: int, ts: float, length: int) -> None:
        """A frame (or record) of `length` payload bytes on the wire."""
        b = self._bin(ts)
        b[direction] += 1
        b[2 + direction] += length

    def add_audio(self, ts: float, size: int) -> None:
        """A client audio message of `size` payload bytes (inflated), at its last frame."""
        self._bin(ts)[4] += size

    def _bin(self, ts: float) -> list[int]:
        if self.origin is None:
            self.origin = ts
        i = int((ts - self.origin) / self.width)
        if i >= self.MAX_BINS:
            self._coarsen(i)
            i = int((ts - self.origin) / self.width)
        b = self.bins.get(i)
        if b is None:
            b = self.bins[i] = [0, 0, 0, 0, 0]
        return b

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


class ClientSilence:
    """Client silences over the threshold, from one stream of client activity: THE gap measurement.

    Three tracks run at once: "any" (every client frame, pings and pongs included, or every
    application-data record when TLS cannot be decrypted), "data" (text and binary data
    frames: what Deepgram's NET-0001 timer counts, so pings and pongs do not end it) and
    "audio" (non-empty binary data only).  A silence starts at the opening (the 101, or
    where a stream was picked up) or at a client frame, and ends at the next qualifying
    client frame ("frame"), a close ("close"), the TCP end ("tcp-end") or the end of the
    capture ("capture-end").  It is a gap when it lasted strictly more than the threshold.
    Once a close or the TCP end is seen, measuring stops.

    Gaps are listed for "any" and "audio" (the JSON contract's kinds); "data" is read while
    it runs (since("data")) by the live view, whose silence counter is the NET-0001 clock.
    """

    __slots__ = ("threshold", "gaps", "any", "data", "audio", "measuring", "opened")

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.gaps: list[Gap] = []
        self.any = _Silence("any")
        self.data = _Silence("data")
        self.audio = _Silence("audio")
        self.measuring = False  # the silences are running
        self.opened = False

    def open(self, frame: Optional[int], ts: Optional[float]) -> None:
        for silence in (self.any, self.data, self.audio):
            silence.since_frame, silence.since_time = frame, ts
        self.measuring = self.opened = True

    def activity(self, frame: int, ts: float, audio: bool, data: bool = True) -> None:
        """A client frame (or record) at `ts`; `data`: a text or binary data frame (not a
        ping, pong or other control frame); `audio`: it carries audio bytes."""
        if not self.measuring:
            if not self.opened:
                # Picked up mid-stream, or TLS without keys: silence is measured from here.
                self.open(frame, ts)
            return
        threshold = self.threshold
        silence = self.any
        if ts - silence.since_time > threshold:
            self._gap(silence, frame, ts, "frame")
        silence.since_frame, silence.since_time = frame, ts
        if data:
            silence = self.data
            silence.since_frame, silence.since_time = frame, ts
        if audio:
            silence = self.audio
            if ts - silence.since_time > threshold:
                self._gap(silence, frame, ts, "frame")
            silence.since_frame, silence.since_time = frame, ts

    def client_close(self, frame: int, ts: float) -> None:
        """The client's close frame: it ends the "any" silence as a frame does and the audio
        silence as a close; nothing is measured after it."""
        if self.measuring:
            self._end(self.any, frame, ts, "frame")
            self._end(self.audio, frame, ts, "close")
        self.stop()

    def end(self, frame: Optional[int], ts: float, ended_by: str) -> None:
        """Both silences end here (server close, TCP end, capture end); measuring stops."""
        if self.measuring:
            self._end(self.any, frame, ts, ended_by)
            self._end(self.audio, frame, ts, ended_by)
        self.stop()

    def since(self, kind: str) -> Optional[float]:
        """When the current client silence of track `kind` ("any", "data", "audio") started
        (the last qualifying client activity), or None before the stream opened; frozen once
        measuring stopped."""
        return getattr(self, kind).since_time

    def stop(self) -> None:
        self.measuring = False
        self.opened = True

    def _end(self, silence: _Silence, frame: Optional[int], ts: float, ended_by: str) -> None:
        if ts - silence.since_time > self.threshold:
            self._gap(silence, frame, ts, ended_by)

    def _gap(self, silence: _Silence, frame: Optional[int], ts: float, ended_by: str) -> None:
        """The silence from silence.since_* to (frame, ts) was over the threshold."""
        self.gaps.append(Gap("client", silence.kind, silence.since_time, ts,  # type: ignore[arg-type]
                             ts - silence.since_time, silence.since_frame, frame, ended_by))


class TlsActivity:
    """What the wire proves without keys: application-data records per direction."""

    __slots__ = ("records", "bytes", "first", "last", "alerts", "tail")
    TAIL: ClassVar[int] = 4  # last records kept per direction (the encrypted close rules read the server's)

    def __init__(self):
        self.tail = (deque(maxlen=self.TAIL), deque(maxlen=self.TAIL))  # (length, frame, time)
        self.records = [0, 0]
        self.bytes = [0, 0]
        self.first = [None, None]  # (frame, time)
        self.last = [None, None]
        self.alerts: list[dict] = []

    def record(self, direction: int, length: int, frame: int, ts: float) -> None:
        self.records[direction] += 1
        self.bytes[direction] += length
        if self.first[direction] is None:
            self.first[direction] = (frame, ts)
        self.last[direction] = (frame, ts)
        self.tail[direction].append((length, frame, ts))

    def to_json(self) -> dict:
        out = {}
        for d, name in enumerate(DIRECTION_NAMES):
            first, last = self.first[d], self.last[d]
            span = (last[1] - first[1]) if first and last else 0.0
            out[name] = {"app_records": self.records[d], "app_record_bytes": self.bytes[d],
                         "first_frame": first[0] if first else None, "last_frame": last[0] if last else None,
                         "bytes_per_second": round(self.bytes[d] / span, 1) if span > 0 else None}
        return {"activity": out, "alerts": self.alerts}


class SessionBuilder:
    """Builds one Session from the typed events of its connection (analyzer/events.py).

    Feed events in capture order, then finish().  `hooks` is anything with the optional
    attributes frame_hook(session, direction, frame), message_hook(session, direction,
    message) and record_hook(session, direction, length, frame, ts) (pipeline.Options):
    observers called as the events arrive, whichever engine produced them.
    """

    # text_budget: a TextBudget, or the shards' per-session view of one (shards._SessionBudget,
    # an interpreted class: typed Any so that the compiled build takes it too)
    def __init__(self, session: Session, gap_threshold: float, text_budget: Any = None,
                 hooks=None):
        self.session = session
        self.gap_threshold = gap_threshold
        self._text_budget: Any = text_budget
        self.silence = ClientSilence(gap_threshold)
        # Opcode of the data message in progress per direction, so continuation
        # frames of a binary message count as audio.
        self._message_opcode: list[Optional[int]] = [None, None]
        self._kept_text_chars = 0
        self.timeline = ActivityTimeline()
        session.timeline = self.timeline
        self.deepgram: Optional[DeepgramAnalyzer] = None  # once the session is known to be a WebSocket attempt
        # Measured on TLS application-data records, used when they cannot be decrypted.
        self.tls_activity: Optional[TlsActivity] = None
        self.record_silence: Optional[ClientSilence] = None
        self.record_timeline: Optional[ActivityTimeline] = None
        self._frame_hook = getattr(hooks, "frame_hook", None)
        self._message_hook = getattr(hooks, "message_hook", None)
        self._record_hook = getattr(hooks, "record_hook", None)

    # -- the handshake, or a stream picked up mid-connection --------------------
    @property
    def requested(self) -> bool:
        return self.session.handshake.request_frame is not None

    @property
    def answered(self) -> bool:
        return self.session.handshake.status is not None

    def request(self, ev: HandshakeRequest) -> None:
        from .deepgram import DeepgramAnalyzer  # the Deepgram layer reads the model: imported late
        req = ev.request
        hs = self.session.handshake
        hs.method, hs.target, hs.path, hs.query = req.method, req.target, req.path, req.query
        hs.request_frame, hs.request_time = ev.frame, ev.time
        hs.request_headers = [[k, v] for k, v in req.headers]
        hs.ws_key = req.header("sec-websocket-key")
        self.deepgram = DeepgramAnalyzer(hs)

    def response(self, ev: HandshakeResponse) -> bool:
        """Fill the response in; True when it is a 101 (the WebSocket stream starts here)."""
        resp = ev.response
        hs = self.session.handshake
        hs.status, hs.reason = resp.status, resp.reason
        hs.response_frame, hs.response_time = ev.frame, ev.time
        hs.response_headers = [[k, v] for k, v in resp.headers]
        hs.dg_request_id = resp.header("dg-request-id")
        hs.dg_error = resp.header("dg-error")
        hs.ws_accept = resp.header("sec-websocket-accept")
        hs.subprotocol = resp.header("sec-websocket-protocol")
        hs.extensions = ", ".join(resp.header_all("sec-websocket-extensions")) or None
        if resp.body:
            hs.body = body_text(resp.body)
            parsed = parse_error_body(resp.body, resp.header("content-type"))
            hs.body_json = parsed if isinstance(parsed, dict) else None
        if resp.status != 101:
            return False
        if hs.ws_key is not None and hs.ws_accept is not None:
            hs.accept_valid = websocket_accept(hs.ws_key) == hs.ws_accept.strip()
        hs.deflate = deflate_agreement(hs.extensions)
        self.session.websocket = True
        self.silence.open(ev.frame, ev.time)
        return True

    def midstream(self, ev: MidstreamStart) -> None:
        from .deepgram import DeepgramAnalyzer
        s = self.session
        s.midstream = s.websocket = True
        # No request path: the Deepgram layer infers the endpoint from the server's messages.
        self.deepgram = DeepgramAnalyzer(s.handshake)
        self.anomaly("midstream", ev.frame, ev.time, None, {})

    # -- WebSocket ----------------------------------------------------------------
    def ws_frame(self, direction: int, f: Frame) -> None:
        """One WebSocket frame (events.WsFrame) of `direction`, in capture order."""
        if self._frame_hook is not None:
            self._frame_hook(self.session, direction, f)
        counts = self.session.frames[direction]
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
            self.timeline.add(direction, ts, length)
            if direction == CLIENT:
                self.silence.activity(frame_no, ts, True)
            return
        data_opcode = None
        if op == OP_BINARY:
            counts.binary += 1
            data_opcode = OP_BINARY
            if length == 0:
                # Counted in both directions (the JSON contract); only the client's is Deepgram's
                # end-of-stream signal, listed for the empty-binary-frame finding.
                counts.empty_binary += 1
                if direction == CLIENT:
                    self.session.empty_binary.append(EmptyBinary(frame_no, ts))
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
        if op == OP_TEXT or op == OP_BINARY or op == OP_CONT:
            self._message_opcode[direction] = None if f.fin else data_opcode

        audio = data_opcode == OP_BINARY and direction == CLIENT
        self.timeline.add(direction, ts, length)
        if direction == CLIENT:
            if op == OP_CLOSE:
                self.silence.client_close(frame_no, ts)
            else:
                self.silence.activity(frame_no, ts, audio and length > 0, data_opcode is not None)
        elif op == OP_CLOSE and self.silence.measuring:
            # Once the server has closed, later client silence says nothing about the stream.
            self.silence.end(frame_no, ts, "close")

    def ws_messages(self, direction: int, messages) -> None:
        """Complete messages (events.WsMessage) of `direction`, in order."""
        hook = self._message_hook
        dg = self.deepgram
        for m in messages:
            if hook is not None:
                hook(self.session, direction, m)
            op = m.opcode
            if op == OP_CLOSE:
                self._close(direction, m.close_code, m.close_reason, m.frame, m.time)
            elif op == OP_TEXT:
                self._keep(direction, m)
            elif op == OP_BINARY and direction == CLIENT:
                self.timeline.add_audio(m.time, m.size)
            if (op == OP_TEXT or op == OP_BINARY) and dg is not None:
                dg.message(direction, op, m.data, m.size, m.frame, m.time)

    @property
    def observes_messages(self) -> bool:
        """Does a message_hook want every message as a Message object?"""
        return self._message_hook is not None

    def ws_binary_message(self, direction: int, data: bytes, size: int, frame: int, ts: float) -> None:
        """A whole binary message that was one frame (MessageAssembler.whole_binary): what
        ws_messages does with it, without a Message object (not while observes_messages)."""
        if direction == CLIENT:
            self.timeline.add_audio(ts, size)
        dg = self.deepgram
        if dg is not None:
            dg.message(direction, OP_BINARY, data, size, frame, ts)

    def _close(self, direction: int, code: Optional[int], reason: str, frame: int, ts: float) -> None:
        close = self.session.close
        cf = CloseFrame(code, reason, frame, ts)
        if direction == CLIENT:
            if close.client is None:
                close.client = cf
        elif close.server is None:
            close.server = cf
        if close.initiator is None:
            close.initiator = DIRECTION_NAMES[direction]
        elif close.client is not None and close.server is not None and \
                close.client.frame is not None and close.server.frame is not None:
            # Data held back by a hole can be delivered after the peer's later close: the
            # capture's order (frame numbers) says who closed first.
            close.initiator = "client" if close.client.frame < close.server.frame else "server"

    def _keep(self, direction: int, m) -> None:
        s = self.session
        if len(s.messages) >= SESSION_KEPT_MESSAGES or self._kept_text_chars >= SESSION_KEPT_TEXT_CHARS:
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
        self._kept_text_chars += len(text)
        s.messages.append(Message(direction, m.opcode, text, m.frame, m.time, m.size, m.compressed))

    # -- TLS ----------------------------------------------------------------------
    def tls_record(self, ev: TlsRecord) -> None:
        """An application-data record (content type 23) of the session's TLS connection."""
        if self.tls_activity is None:
            self.tls_activity = TlsActivity()
            self.record_silence = ClientSilence(self.gap_threshold)
            self.record_timeline = ActivityTimeline()
        direction, length, frame, ts = ev.direction, ev.length, ev.frame, ev.time
        self.tls_activity.record(direction, length, frame, ts)
        if self._record_hook is not None:
            self._record_hook(self.session, direction, length, frame, ts)
        self.record_timeline.add(direction, ts, length)
        if direction == CLIENT:
            # Every client record counts as activity (it may be a KeepAlive, or a ping: records
            # cannot be told apart); used when the records cannot be decrypted.
            self.record_silence.activity(frame, ts, True, True)

    def tls_alert(self, ev: TlsAlert) -> None:
        if self.tls_activity is None:
            self.tls_activity = TlsActivity()
        self.tls_activity.alerts.append({"direction": DIRECTION_NAMES[ev.direction], "level": ev.level,
                                         "description": ev.description, "frame": ev.frame, "time": ev.time})

    def client_silence_since(self) -> Optional[float]:
        """When the client's current silence started (live views): its last data frame
        (text or binary; pings and pongs do not count, as for Deepgram's NET-0001), or its
        last application-data record while TLS is not decrypted (records cannot be told
        apart); None before it started."""
        if self.session.transport == "tls" and self.record_silence is not None:
            return self.record_silence.since("data")
        return self.silence.since("data")

    # -- evidence -----------------------------------------------------------------
    def anomaly(self, kind: str, frame: Optional[int], ts: Optional[float],
                direction: Optional[int] = None, detail: Optional[dict] = None) -> None:
        """Raw evidence from any layer, as it happens.  Past SESSION_ANOMALY_RECORDS records
        each kind is still counted, with its first and last frame."""
        s = self.session
        if len(s.anomalies) < SESSION_ANOMALY_RECORDS or kind == "internal-error":
            # (an internal error is at most one per connection and its details are the point)
            s.anomalies.append(Anomaly(kind, frame, ts, direction, detail or {}))
            return
        tally = s.anomaly_overflow.get(kind)
        if tally is None:
            tally = s.anomaly_overflow[kind] = AnomalyTally(kind, 0, frame, ts, frame, ts)
        tally.count += 1
        if frame is not None:
            if tally.first_frame is None:
                tally.first_frame, tally.first_time = frame, ts
            tally.last_frame, tally.last_time = frame, ts
        if direction is not None:
            tally.directions |= 1 << direction
        if detail:
            tally.bytes += detail.get("bytes", 0)

    def anomaly_sink(self, direction: Optional[int]) -> Callable:
        """A layer's anomaly callback (kind, frame, ts, detail) bound to one direction."""
        def sink(kind, frame, ts, detail, _direction=direction, _anomaly=self.anomaly):
            _anomaly(kind, frame, ts, _direction, detail)
        return sink

    # -- the end --------------------------------------------------------------------
    def tcp_end(self, ev: TcpEnd) -> None:
        close = self.session.close
        kind = ev.kind
        by = DIRECTION_NAMES[ev.direction]
        close.tcp_ends.append(TcpEndEvent(kind, by, ev.frame, ev.time))
        if close.tcp_end == "open":
            # The first end (FIN or RST) is what ended the connection; a RST after a FIN is
            # listed in tcp_ends (Close.later_rst), it does not relabel the FIN.
            close.tcp_end, close.tcp_end_by, close.tcp_end_frame, close.tcp_end_time = kind, by, ev.frame, ev.time
        self.silence.end(ev.frame, ev.time, "tcp-end")
        if self.record_silence is not None:
            self.record_silence.end(ev.frame, ev.time, "tcp-end")

    def finish(self, capture_end: Optional[float], end_frame: Optional[int] = None,
               end_time: Optional[float] = None, tls_info: Optional[TlsInfo] = None,
               no_keys_note: Optional[str] = None, gaps_measured_on: Optional[str] = None) -> Session:
        """The connection is over.  `capture_end`: the capture's last packet time (a silence
        still running is measured up to it).  `tls_info`: the TLS layer's facts, for a TLS
        connection; when nothing was decrypted, silences and the timeline come from the
        records, and `no_keys_note` tells the reader why."""
        s = self.session
        if end_frame is not None:
            s.end_frame, s.end_time = end_frame, end_time
        # A silence still running (no close, no TCP end) is measured up to the capture's end.
        if capture_end is not None:
            self.silence.end(None, capture_end, "capture-end")
        self.silence.stop()
        s.gaps = sorted(self.silence.gaps, key=lambda g: (g.start, g.kind))
        if tls_info is not None:
            self._finish_tls(tls_info, capture_end, no_keys_note, gaps_measured_on or "tls-records")
        if self.deepgram is not None:
            self.deepgram.finish(s)
        return s

    def _finish_tls(self, info: TlsInfo, capture_end: Optional[float], note: Optional[str],
                    gaps_measured_on: str = "tls-records") -> None:
        s = self.session
        decrypted = s.transport == "tls-decrypted" and s.frames[CLIENT].total + s.frames[SERVER].total > 0
        if not decrypted:
            s.transport = "tls"
            records = self.record_silence
            if records is not None:
                if capture_end is not None:
                    records.end(None, capture_end, "capture-end")
                # Records cannot be told apart, so there is no audio-only measurement to offer.
                s.gaps = sorted((g for g in records.gaps if g.kind == "any"), key=lambda g: g.start)
            else:
                s.gaps = []
            s.timeline = self.record_timeline if self.record_timeline is not None else ActivityTimeline()
            info.gaps_measured_on = gaps_measured_on
            if note:
                info.note = note
        activity = (self.tls_activity or TlsActivity()).to_json()
        info.activity, info.alerts = activity["activity"], activity["alerts"]
        s.tls = info


class WebSocketFeed:
    """One connection's WebSocket bytes into its SessionBuilder: each direction's frame
    parser and message assembler, then the builder.

    The pipeline hands it the connection once the upgrade is done, and the TCP tracker
    then calls data() for every in-order chunk (Connection.redirect_data): typed as the
    parser, assembler and builder classes, an audio chunk's way from TCP to the session
    makes no Python-level call in the compiled build.  An exception is handed to
    `on_error(exception, frame, ts)` (the pipeline's internal-error evidence).
    """

    def __init__(self, parsers: tuple[FrameParser, FrameParser],
                 assemblers: tuple[MessageAssembler, MessageAssembler], builder: SessionBuilder,
                 on_error: Callable[[Exception, Optional[int], Optional[float]], None]) -> None:
        self.parsers = parsers
        self.assemblers = assemblers
        self.builder = builder
        self.on_error = on_error
        # Whole binary messages go to the builder without Message objects unless observed.
        self.direct_binary = not builder.observes_messages

    def data(self, direction: int, data: Any, frame: int, ts: float) -> None:
        """The TCP handler's data(): feed(), with an exception reported, not raised."""
        try:
            self.feed(direction, data, frame, ts)
        except Exception as e:
            self.on_error(e, frame, ts)

    def feed(self, direction: int, data: Any, frame: int, ts: float) -> None:
        builder = self.builder
        assembler = self.assemblers[direction]
        direct_binary = self.direct_binary
        for f in self.parsers[direction].feed(data, frame, ts):
            builder.ws_frame(direction, f)
            if direct_binary and assembler.whole_binary(f):  # an audio chunk
                builder.ws_binary_message(direction, f.payload, f.length, f.frame, f.time)
                continue
            messages = assembler.frame(f)[0]
            if messages:
                builder.ws_messages(direction, messages)
