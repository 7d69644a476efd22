"""What the live view knows about each session, from the pipeline's hooks.

`LiveState` plugs into `pipeline.Options` (builder/frame/message/record/session hooks) and
keeps, per session, what the Session model only computes at the end: recent client
audio (for a rate over the last few seconds), the client's pings and pongs and the number
of server messages.  How long the client has been silent is the session's own
SessionBuilder's running measurement (the one gap implementation, its "data" track: text
and binary frames, what Deepgram's NET-0001 timer counts; pings and pongs are shown but do
not end a silence), read through builder_hook.  `views(sessions, now)` turns that into
`SessionView`s, plain values that the dashboard renders and tests assert.

Audio rates count payload bytes as the application sent them: inflated when
permessage-deflate compressed them (the message's size), as the report's Stream section
and the HTML timeline do, so the real-time factor compares like with like.

Times are capture timestamps (the packets' own clock); `now` is the wall clock for a
live capture, so "silent for" is now - the last client data frame.  Once a session has a
close frame or its TCP connection ended, its clock stops at that moment.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..deepgram.audio import bytes_per_second
from ..deepgram.endpoints import endpoint_for_path
from ..deepgram.params import query_value, to_int
from ..model import CLIENT, SERVER, Finding, Session
from ..websocket import OP_BINARY, OP_PING, OP_PONG, OP_TEXT

RATE_WINDOW = 3.0  # seconds of client audio behind the live rate
# Packets reach the analysis in batches (dumpcap flushes a few times a second): the rate
# window ends at the newest packet analysed, unless that is older than this.
RATE_MAX_DELAY = 1.0
RECENT_FINDINGS = 50


class SessionStats:
    """Live counters for one session (kept beside it, never in its JSON)."""

    __slots__ = ("session", "builder", "recent", "audio_bytes", "client_frames",
                 "server_messages", "client_records", "server_records",
                 "first_audio", "client_pings", "last_ping", "concluded")

    def __init__(self, session: Session):
        self.session = session
        self.builder = None  # its SessionBuilder (builder_hook)
        self.recent: deque = deque()  # (time, bytes) of client audio (or records) in the window
        self.audio_bytes = 0  # client binary message bytes, inflated (records' bytes without keys)
        self.first_audio: Optional[float] = None  # first client audio frame (or record): the rate's origin
        self.client_frames = 0
        self.server_messages = 0
        self.client_records = 0
        self.server_records = 0
        self.client_pings = 0  # client ping and pong frames (they do not end a silence)
        self.last_ping: Optional[float] = None  # time of the last one
        self.concluded = False

    def add_recent(self, ts: float, size: int) -> None:
        if self.first_audio is None:
            self.first_audio = ts
        recent = self.recent
        recent.append((ts, size))
        limit = ts - RATE_WINDOW * 2  # keep a little more than the window: `now` lags
        while recent and recent[0][0] < limit:
            recent.popleft()


@dataclass
class SessionView:
    """One dashboard row, as values."""
    number: int
    client: str
    server: str
    transport: str
    endpoint: str  # listen | listen-v2 | speak | agent | other | "?" (not seen yet)
    handshake: str  # "101 Switching Protocols", "401 Unauthorized", "waiting", "-", "TLS (no keys)"
    status: Optional[int]
    request_id: Optional[str]
    websocket: bool
    rate: Optional[float]  # client audio payload bytes/s (inflated) over the last RATE_WINDOW s
    #                        (record bytes without keys); once concluded, the whole stream's
    #                        (the report's audio.bytes_per_second)
    realtime_factor: Optional[float]  # rate / the encoding's bytes per second (raw encodings)
    silent: Optional[float]  # seconds since the last client data frame (or the 101), frozen at the end
    silent_level: str  # "ok" | "warn" (>= half the threshold) | "silent" (> the threshold)
    server_messages: int
    close: str  # "open", "S:1011 C:1011 FIN", ...
    close_code: Optional[int]  # the first close frame's code
    ended: bool
    findings: list[str] = field(default_factory=list)  # ids, once the connection ended
    pings: int = 0  # client ping and pong frames so far
    ping_age: Optional[float] = None  # seconds since the last of them (same clock as `silent`)


class LiveState:
    def __init__(self, gap_threshold: float = 10.0, sessions: Optional[list[Session]] = None,
                 on_conclude: Optional[Callable[[Session, int], None]] = None):
        self.gap_threshold = gap_threshold
        # The pipeline's live list (CaptureAnalyzer.sessions), for session numbers.
        self.sessions = sessions if sessions is not None else []
        self._stats: dict[int, SessionStats] = {}
        self.findings: deque = deque(maxlen=RECENT_FINDINGS)  # (Session, Finding)
        self.finding_counts = {"error": 0, "warning": 0, "info": 0}
        self.on_conclude = on_conclude

    def install(self, options) -> None:
        """Set this state's hooks on pipeline Options (chaining a session_hook already there)."""
        options.builder_hook = self.builder
        options.frame_hook = self.frame
        options.message_hook = self.message
        options.record_hook = self.record
        previous = options.session_hook
        if previous is None:
            options.session_hook = self.concluded
        else:
            def both(session, _prev=previous):
                _prev(session)
                self.concluded(session)
            options.session_hook = both

    def stats(self, session: Session) -> SessionStats:
        st = self._stats.get(id(session))
        if st is None or st.session is not session:
            st = self._stats[id(session)] = SessionStats(session)
        return st

    def numbers(self) -> dict[int, int]:
        """id(session) -> its number: the index the final report will give it (start order)."""
        order = sorted(self.sessions, key=_start_key)
        return {id(s): i for i, s in enumerate(order, 1)}

    def number(self, session: Session) -> int:
        key = _start_key(session)
        return 1 + sum(1 for s in self.sessions if s is not session and _start_key(s) < key)

    # -- pipeline hooks (called on the analysis thread) -------------------------
    def builder(self, builder) -> None:
        self.stats(builder.session).builder = builder

    def frame(self, session: Session, direction: int, f) -> None:
        if direction != CLIENT:
            return
        st = self.stats(session)
        st.client_frames += 1
        if f.opcode == OP_PING or f.opcode == OP_PONG:
            st.client_pings += 1
            st.last_ping = f.time

    def message(self, session: Session, direction: int, m) -> None:
        op = m.opcode
        if op != OP_TEXT and op != OP_BINARY:
            return
        if direction == SERVER:
            self.stats(session).server_messages += 1
        elif op == OP_BINARY:
            # m.size: the payload as the client application sent it (inflated), at the
            # message's last frame.
            st = self.stats(session)
            st.audio_bytes += m.size
            st.add_recent(m.time, m.size)

    def record(self, session: Session, direction: int, length: int, frame: int, ts: float) -> None:
        st = self.stats(session)
        if direction == CLIENT:
            st.client_records += 1
            if session.transport == "tls":  # no keys: records are all there is to see
                st.add_recent(ts, length)
        else:
            st.server_records += 1

    def concluded(self, session: Session) -> None:
        st = self.stats(session)
        st.concluded = True
        for f in session.findings:
            self.findings.append((session, f))
            self.finding_counts[f.severity] = self.finding_counts.get(f.severity, 0) + 1
        if self.on_conclude is not None:
            self.on_conclude(session, self.number(session))

    # -- views ----------------------------------------------------------------
    def views(self, now: float, newest_packet: Optional[float] = None) -> list[SessionView]:
        """Every session so far, in the final report's order."""
        numbers = self.numbers()
        return sorted((self.view(s, now, numbers[id(s)], newest_packet) for s in self.sessions),
                      key=lambda v: v.number)

    def view(self, s: Session, now: float, number: Optional[int] = None,
             newest_packet: Optional[float] = None) -> SessionView:
        """One session at wall-clock time `now`; `newest_packet` is the last packet's time."""
        st = self.stats(s)
        hs = s.handshake
        no_keys = s.transport == "tls"
        end = end_time(s)
        ended = st.concluded or end is not None
        t = now if end is None else min(now, end)
        t_rate = t if newest_packet is None else min(t, max(newest_packet, now - RATE_MAX_DELAY))

        if hs.path is not None:
            endpoint = endpoint_for_path(hs.path)
        elif s.midstream:
            endpoint = s.endpoint or "?"
        else:
            endpoint = "?" if no_keys else "-"
        if hs.status is not None:
            handshake = f"{hs.status} {hs.reason or ''}".strip()
        elif no_keys:
            handshake = "TLS (no keys)"
        elif hs.request_frame is not None:
            handshake = "waiting"
        elif s.midstream:
            handshake = "not captured"
        else:
            handshake = "-"

        open_ws = s.websocket or (no_keys and st.client_records > 0)
        rate = rtf = silent = None
        if open_ws:
            pace = s.audio.pace if st.concluded and s.audio is not None and not no_keys else None
            if pace is not None and pace.chunks:
                # Over: the whole stream's rate and real-time factor, the numbers the report's
                # Stream section gives (a window would only say how long ago the stream ended).
                rate, rtf = pace.bytes_per_second, pace.realtime_factor
            else:
                rate = _rate(st, t_rate)
            if not no_keys and rtf is None:
                q = hs.query
                bps = bytes_per_second(query_value(q, "encoding"), to_int(query_value(q, "sample_rate")),
                                       to_int(query_value(q, "channels")) or 1)
                if bps and rate is not None:
                    rtf = rate / bps
            since = st.builder.client_silence_since() if st.builder is not None else None
            if since is not None:
                silent = max(0.0, t - since)
        ping_age = None if st.last_ping is None else max(0.0, t - st.last_ping)
        level = "ok"
        if silent is not None:
            if silent > self.gap_threshold:
                level = "silent"
            elif silent >= self.gap_threshold / 2:
                level = "warn"

        close = s.close
        first = min((c for c in (close.client, close.server) if c is not None),
                    key=lambda c: c.time, default=None)
        return SessionView(
            number=number if number is not None else self.number(s), client=s.client, server=s.server, transport=s.transport,
            endpoint=endpoint, handshake=handshake, status=hs.status, request_id=hs.dg_request_id,
            websocket=s.websocket, rate=rate, realtime_factor=rtf, silent=silent, silent_level=level,
            server_messages=st.server_records if no_keys else st.server_messages,
            close=close_text(s), close_code=first.code if first is not None else None,
            ended=ended, findings=[f.id for f in s.findings] if st.concluded else [],
            pings=st.client_pings, ping_age=ping_age)

    def recent_findings(self, n: int) -> list[tuple[int, Finding]]:
        """The last n findings as (session number, Finding)."""
        numbers = self.numbers()
        return [(numbers.get(id(s), 0), f) for s, f in list(self.findings)[-n:]]


def _start_key(s: Session) -> tuple:
    return (s.start_frame or 0, s.tcp_stream)


def _rate(st: SessionStats, t: float) -> Optional[float]:
    start = t - RATE_WINDOW
    total = sum(size for ts, size in st.recent if start < ts <= t)
    origin = st.first_audio
    if origin is None:
        return 0.0
    # A session younger than the window: divide by its age (at least a chunk's worth).
    span = min(RATE_WINDOW, max(t - origin, 0.5))
    return total / span


def end_time(s: Session) -> Optional[float]:
    """When the session's client clock stops: the first close frame or the TCP end."""
    c = s.close
    times = [x.time for x in (c.client, c.server) if x is not None]
    if c.tcp_end != "open" and c.tcp_end_time is not None:
        times.append(c.tcp_end_time)
    return min(times) if times else None


def close_text(s: Session) -> str:
    parts = []
    for name, cf in (("S", s.close.server), ("C", s.close.client)):
        if cf is not None:
            parts.append(f"{name}:{cf.code if cf.code is not None else 'empty'}")
    if s.close.client and s.close.server and s.close.client.time < s.close.server.time:
        parts.reverse()  # the initiator first
    if s.close.tcp_end != "open":
        parts.append(s.close.tcp_end.upper())
    return " ".join(parts) if parts else "open"
