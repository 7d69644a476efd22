"""The one-way pipeline: capture -> tcp -> (tls) -> http -> websocket -> deepgram -> findings.

Each layer is a sans-I/O state machine; this module only wires them: it owns no
parsing and builds no session (session.SessionBuilder does, from the layers' events).
`analyze_capture()` is the whole job for one file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

from .capture import (CaptureError, PacketDecoder, capture_files, format_address, open_capture,
                      tunnel_layers)
from .connections import ConnectionCensus, ConnectionFacts, add_tls_facts
from .copies import ConnectionPrint, head_checksum
from .dns import DnsNames, DnsTcpStream
from .egress import OTHER
from .servername import HostMatcher
from .deepgram.diagnosis import diagnose
from .events import HandshakeRequest, HandshakeResponse, MidstreamStart, TcpEnd, TlsAlert, TlsRecord
from .findings.capture_findings import capture_findings
from .findings.registry import RuleContext, display_filter, run_rules
from .http import (RequestParser, ResponseParser, absolute_form_authority, is_websocket_upgrade,
                   looks_like_request)
from .legs import link_proxy_legs
from .packet_loop import PacketLoop
from .limits import EARLY_CLIENT_BYTES, PROTOCOL_DECISION_BYTES
from .model import CLIENT, SERVER, WARNING, CaptureReport, Finding, MissingData, ProxyInfo, Session, TlsInfo
from .servername import ServerName, host_without_port, is_deepgram_host
from .session import SessionBuilder, TextBudget, WebSocketFeed
from .tcp import TcpTracker
from .tls import NO_KEYS_NOTE, TLS_KEY_LOG_SECRETS, KeyLog, TlsConnection, looks_like_tls
from .tls.connection import CT_APPLICATION_DATA
from .websocket import FrameParser, MessageAssembler, find_stream_start, midstream_evidence_enough


@dataclass
class Options:
    gap_threshold: float = 10.0
    keylog: Optional[str] = None
    show_secrets: bool = False
    keep_binary: int = 64
    progress: Optional[Callable[[int, int], None]] = None  # (bytes_read, packets)
    # Observers for tools and tests that need every frame/message (conformance traces,
    # live views); None on the normal path so it costs one attribute test per frame.
    frame_hook: Optional[Callable] = None  # (session, direction, Frame)
    message_hook: Optional[Callable] = None  # (session, direction, Message)
    # Every client binary payload byte, unmasked (audio export); None keeps audio unread.
    binary_hook: Optional[Callable] = None  # (session, frame_header, chunk_bytes_or_missing_int)
    session_hook: Optional[Callable] = None  # (session) once its connection has ended and rules ran
    # Every TLS application-data record (live views of sessions whose TLS keys are unknown).
    record_hook: Optional[Callable] = None  # (session, direction, length, frame, ts)
    # Each session's SessionBuilder as it starts (live views read its running client silence).
    builder_hook: Optional[Callable] = None  # (SessionBuilder)
    # Resource limits against hostile or broken captures; each hit is a finding.
    max_connections: int = 10_000  # TCP connections analysed at once (idle ones evicted first)
    max_message: int = 1 << 20  # text/control bytes kept per message (message-too-big)
    max_inflate: int = 64 << 20  # bytes inflated per compressed message (inflate-limit)
    max_http_header: int = 64 << 10  # HTTP request/response head (http-header-overflow)
    # Characters of server text messages kept in Session.messages over the whole capture
    # (0: no limit); beyond it they are only counted (stats["messages_not_kept"]).  The
    # Deepgram layer has read them already: this bounds memory on very large captures.
    max_kept_server_text: int = 16 << 20
    # Shell patterns of self-hosted Deepgram servers (--server-name), besides *.deepgram.com.
    server_names: tuple = ()
    # Keep every non-session connection for the report (--all); else only their summary.
    list_all: bool = False


class _Analysis:
    """State shared by every connection of one capture."""

    def __init__(self, report: CaptureReport, options: Options, shard=None):
        self.report = report
        self.options = options
        # A shards.ShardWork when this process analyses one shard of the capture's
        # connections (the rest are other processes'): it records what the parent merges.
        self.shard = shard
        self.sessions: list[Session] = []
        self.last_time: Optional[float] = None
        self.keylog = KeyLog()
        self.capture = None
        self.decoder: Optional[PacketDecoder] = None
        self.conclude: Callable[[Session], None] = lambda session: None
        self._secrets_seen = 0
        limit = options.max_kept_server_text
        self.text_budget = TextBudget(limit) if limit > 0 else None
        self.dns = DnsNames()
        hosts = HostMatcher(options.server_names)
        self.census = (ConnectionCensus(self.dns, hosts, options.list_all) if shard is None
                       else shard.census(self.dns, hosts, options.list_all))

    def snaplen_cut(self) -> bool:
        """Has the capture cut packets short (a headers-only capture, tcpdump -s 128)?"""
        return self.decoder is not None and self.decoder.snaplen_truncated > 0

    def new_session(self, client: str, server: str, tcp_stream: int, first_frame: Optional[int],
                    first_time: Optional[float]) -> SessionBuilder:
        """A session for one connection, with the builder every engine feeds."""
        s = Session(index=0, client=client, server=server, tcp_stream=tcp_stream)
        s.start_frame, s.start_time = first_frame, first_time
        options = self.options
        budget = self.text_budget
        if self.shard is not None:
            budget = self.shard.session_started(s, budget)
        builder = SessionBuilder(s, options.gap_threshold, budget, hooks=options)
        self.sessions.append(s)
        if options.builder_hook is not None:
            options.builder_hook(builder)
        return builder

    def header_overflow(self, tcp_stream: int, frame: int) -> None:
        """An HTTP head past max_http_header before any session: the capture-level count
        (the first 20 connections named, in the order they overflowed)."""
        if self.shard is not None:
            self.shard.record("overflow", tcp_stream, frame)
            return
        found = self.report.stats.setdefault("http_header_overflow", {
            "count": 0, "limit": self.options.max_http_header, "tcp_streams": [], "frames": []})
        found["count"] += 1
        if len(found["tcp_streams"]) < 20:
            found["tcp_streams"].append(tcp_stream)
            found["frames"].append(frame)

    def sync_embedded_secrets(self) -> None:
        """pcapng Decryption Secrets Blocks arrive while reading: add new ones to the key log."""
        secrets = self.capture.secrets if self.capture is not None else ()
        while self._secrets_seen < len(secrets):
            kind, blob = secrets[self._secrets_seen]
            self._secrets_seen += 1
            if kind == TLS_KEY_LOG_SECRETS:
                self.keylog.load_text(blob.decode("utf-8", "replace"))


class ConnectionAnalyzer:
    """TCP handler for one connection: decides what the bytes carry and routes them.

    Bytes go to the layer that parses them (TLS, HTTP, WebSocket); what the layers find
    goes, as typed events (analyzer/events.py), to the connection's SessionBuilder, which
    builds the session.  An unexpected exception in any layer costs this connection only:
    it becomes the session's internal-error evidence and the connection is not read further.
    """

    # DNS: DNS over TCP (its answers name other connections' servers).  CUT: TLS in a
    # headers-only capture (packets cut by the snap length): the records cannot be followed,
    # so TCP segments stand for them (bytes from sequence numbers).
    SNIFF, HTTP, WEBSOCKET, DONE, DNS, CUT = range(6)

    def __init__(self, conn, analysis: _Analysis):
        self.conn = conn
        self.analysis = analysis
        self.state = self.SNIFF
        self.builder: Optional[SessionBuilder] = None
        self._sniff = ([], [])  # buffered (bytes, frame, ts) per direction while deciding
        self._sniff_len = [0, 0]
        self._req_parser = self._resp_parser = None
        self._early_client = []  # client bytes after the request, before the response
        self._early_len = 0
        self._frame_parsers = None
        self._assemblers = None
        self._ws_feed: Optional[WebSocketFeed] = None
        self._tls: Optional[TlsConnection] = None
        self._next_sync_try = 0  # buffered bytes at which to look for a frame stream again
        self._failed = False
        self._proxy: Optional[ProxyInfo] = None  # an HTTP proxy on the way (CONNECT, forward)
        self._connect_wait = False  # a CONNECT was sent, the proxy's answer is not in yet
        # The tunnel path of the packet that opened the connection (None when untunnelled).
        decoder = analysis.decoder
        self.tunnel = decoder.tunnel if decoder is not None and \
            decoder.tunnel_frame == conn.first_frame else None
        self._client_head = None  # crc32 of the client's first bytes (copies.py)
        self._dns = None  # DnsTcpStream of a DNS-over-TCP connection
        self._settled = False
        # The DNS answers the client had for either address when the connection started
        # (which one is the server's may be decided later, from content).
        dns = analysis.dns
        self._dns_answers = ((bytes(conn.client[0]), dns.lookup(conn.client[0])),
                             (bytes(conn.server[0]), dns.lookup(conn.server[0])))

    @property
    def session(self) -> Optional[Session]:
        return self.builder.session if self.builder is not None else None

    # -- TCP handler interface -------------------------------------------------
    def data(self, direction: int, data, frame: int, ts: float) -> None:
        try:
            if self._tls is not None:
                if self.state == self.CUT:
                    self._cut_segment(direction, len(data), frame, ts)
                else:
                    self._tls_events(self._tls.feed(direction, data, frame, ts))
            elif self.state == self.WEBSOCKET:  # the hot path
                self._ws_data(direction, data, frame, ts)
            else:
                self._app_data(direction, data, frame, ts)
        except Exception as e:
            self._internal_error(e, frame, ts)

    def hole(self, direction: int, size: int, frame: int, ts: float) -> None:
        if self.state == self.CUT or (self._tls is not None and self.analysis.snaplen_cut()):
            # A headers-only capture: missing bytes are the rule, not a finding (the capture
            # has one note about its snap length).
            if self.state != self.CUT:
                self._start_cut(frame)
            self._cut_segment(direction, size, frame, ts)
            return
        try:
            if self.builder is not None:
                self.builder.anomaly("tcp-hole", frame, ts, direction, {"bytes": size})
            if self._tls is not None:
                self._tls_events(self._tls.hole(direction, size, frame, ts))
            elif self.state == self.WEBSOCKET:
                self._frame_parsers[direction].hole(size, frame, ts)
            elif self.state == self.HTTP:
                # A handshake with bytes missing cannot be parsed reliably.
                self.state = self.DONE
            elif self.state == self.DNS and direction == SERVER:
                self._dns.hole()
        except Exception as e:
            self._internal_error(e, frame, ts)

    def tcp_end(self, kind: str, direction: int, frame: int, ts: float) -> None:
        if direction == SERVER and self.state == self.HTTP and self._awaiting_response() \
                and self._resp_parser.head is not None:
            # A response whose body runs until close (a proxy's error page) completes with
            # the server's FIN or RST, as Wireshark shows it.
            try:
                resp = self._resp_parser.finish()
                if resp is not None:
                    self._on_response(resp, frame, ts)
            except Exception as e:
                self._internal_error(e, frame, ts)
        if self.builder is not None:
            try:
                self.builder.tcp_end(TcpEnd(kind, direction, frame, ts))
            except Exception as e:
                self._internal_error(e, frame, ts)

    def finish(self) -> None:
        try:
            self._finish_layers()
        except Exception as e:
            self._internal_error(e, self.conn.last_frame, self.conn.last_time)
        builder = self.builder
        if builder is not None:
            try:
                self._tcp_evidence()
                builder.finish(self.analysis.last_time, self.conn.last_frame, self.conn.last_time,
                               tls_info=TlsInfo(**self._tls.info) if self._tls is not None else None,
                               no_keys_note=self._cut_note if self.state == self.CUT else NO_KEYS_NOTE,
                               gaps_measured_on="tcp-segments" if self.state == self.CUT else None)
                klass = self._settle()
            except Exception as e:
                self._internal_error(e, self.conn.last_frame, self.conn.last_time, "session")
                klass = None
            if klass == OTHER:
                self.analysis.sessions.remove(builder.session)
            else:
                self.analysis.conclude(builder.session)
        elif not self._settled:
            self._settle()
        self.state = self.DONE

    # -- what the connection was: session class, server name, egress --------------
    def _facts(self) -> ConnectionFacts:
        c = self.conn
        client_isn, server_isn = c.isns
        r = c.reassemblers
        session = self.session
        fact = ConnectionFacts(
            c.stream, format_address(*c.client), format_address(*c.server), bytes(c.server[0]),
            next((answer for address, answer in self._dns_answers if address == bytes(c.server[0])), None),
            ConnectionPrint(client_isn, server_isn, self._client_head, c.first_time,
                            (bytes(c.client[0]), bytes(c.server[0])))
            if c.first_time is not None else None,
            encrypted=session is not None and session.transport == "tls",
            tcp_bytes=(r[CLIENT].next_offset, r[SERVER].next_offset) if r else (0, 0),
            span=((c.first_frame, c.first_time), (c.last_frame, c.last_time)),
            protocol="dns" if self.state == self.DNS else "http" if self._req_parser is not None
            else "unknown")
        proxy = session.proxy if session is not None else None
        if proxy is not None and proxy.kind == "connect":  # the tunnel's server is named there
            fact.connect, fact.connect_frame = host_without_port(proxy.authority), proxy.request_frame
        builder = self.builder
        tls = self._tls
        add_tls_facts(fact, TlsInfo(**tls.info) if tls is not None else None,
                      tls.client_hello_frame if tls is not None else None,
                      builder.tls_activity if builder is not None else None,
                      builder.record_timeline if builder is not None else None, self.state == self.CUT)
        return fact

    def _settle(self) -> str:
        """Class, server name and egress of this connection (connections.py); an `other`
        connection only adds to the capture's summary."""
        self._settled = True
        return self.analysis.census.settle(self.session, self._facts(), self.builder)

    # -- headers-only TLS ------------------------------------------------------------
    def _start_cut(self, frame: int) -> None:
        """Stop reading TLS records (they are cut): count TCP segments instead."""
        self.state = self.CUT
        self._cut_last = [None, None]  # frame of the last segment counted per direction
        hello = self._tls.client_hello_frame
        self._cut_note = (
            f"Headers-only capture: the packets were cut by the capture's snap length, so the TLS "
            f"records cannot be read{'' if hello else ' (the ClientHello is cut short, not missing)'}. "
            f"Client bytes, rates and silences are measured from TCP lengths and sequence numbers; "
            f"each TCP segment with data counts as one unit.")
        if hello is None and self.builder is not None:
            self.builder.anomaly("tls-handshake-cut", frame, None, CLIENT, {})

    def _cut_segment(self, direction: int, size: int, frame: int, ts: float) -> None:
        # A cut packet arrives as its captured bytes then a hole, both at its frame: one unit.
        if self._cut_last[direction] == frame:
            self.builder.tls_activity.bytes[direction] += size
            return
        self._cut_last[direction] = frame
        self.builder.tls_record(TlsRecord(direction, 23, size, frame, ts))

    def _finish_layers(self) -> None:
        if self._failed:
            return
        if self._tls is not None and self.state != self.CUT:
            self._tls_events(self._tls.finish())
        if self.state == self.SNIFF and self.conn.syn_frame is None:
            self._try_midstream(final=True)
        if self.state == self.HTTP and self._req_parser is not None and self._awaiting_response():
            resp = self._resp_parser.finish()
            if resp is not None:
                self._on_response(resp, None, None)
        if self._frame_parsers is not None:
            builder = self.builder
            for direction, fp in enumerate(self._frame_parsers):
                f = fp.finish(self.conn.last_frame, self.analysis.last_time)
                if f is not None:
                    builder.ws_frame(direction, f)
                    builder.ws_messages(direction, self._assemblers[direction].frame(f)[0])
                builder.ws_messages(direction, self._assemblers[direction].finish()[0])

    def _layer(self) -> str:
        """The layer that was parsing when something went wrong (internal-error evidence)."""
        if self._tls is not None and self.state == self.SNIFF:
            return "tls"
        return {self.SNIFF: "sniff", self.HTTP: "http", self.WEBSOCKET: "websocket",
                self.DONE: "session"}[self.state]

    def _internal_error(self, e: Exception, frame: Optional[int], ts: Optional[float],
                        layer: Optional[str] = None) -> None:
        """A bug met on this connection's bytes: say so on its session and stop reading it."""
        layer = layer or self._layer()
        if self.builder is None:
            self._new_session(self.conn.first_frame, self.conn.first_time)
        self.builder.anomaly("internal-error", frame, ts, None,
                             {"exception": type(e).__name__, "layer": layer, "message": str(e) or repr(e)})
        self._failed = True
        if self._ws_feed is not None:
            self.conn.redirect_data(None)  # nothing more is read: back to data(), state DONE
        self.state = self.DONE
        self._tls = None
        self._frame_parsers = None
        self._ws_feed = None

    def _app_data(self, direction: int, data, frame: int, ts: float) -> None:
        st = self.state
        if st == self.WEBSOCKET:
            self._ws_data(direction, data, frame, ts)
        elif st == self.HTTP:
            self._http_data(direction, data, frame, ts)
        elif st == self.SNIFF:
            self._sniff_data(direction, data, frame, ts)
        elif st == self.DNS and direction == SERVER:
            self._dns.feed(data, frame)

    def _tcp_evidence(self) -> None:
        reassemblers = self.conn.reassemblers
        if not reassemblers:
            return
        retrans = 0
        for r in reassemblers:
            retrans += r.retransmissions
            for frame, offset, length in r.conflicts:
                # Which direction does not matter to the reader: both copies are in the capture.
                self.builder.anomaly("tcp-overlap-conflict", frame, None, None,
                                     {"stream_offset": offset, "bytes": length})
        if retrans:
            self.builder.session.tcp_retransmissions = retrans
        missing = tuple(MissingData(r.hole_count, r.hole_bytes, r.holes[0][2] if r.holes else None)
                        if r.hole_count else None for r in reassemblers)
        # In a headers-only capture (state CUT) every payload is missing by design: the
        # capture's one snap-length note says so, not a per-session data-missing finding.
        if self.state != self.CUT and (missing[CLIENT] is not None or missing[SERVER] is not None):
            self.builder.session.missing = missing

    # -- deciding what the connection carries -----------------------------------
    def _sniff_data(self, direction: int, data, frame: int, ts: float) -> None:
        data = bytes(data)
        if direction == CLIENT and self._client_head is None:
            self._client_head = head_checksum(data)
        if self.conn.server[1] == 53 and self._tls is None:
            # DNS over TCP: its answers name the servers of other connections.
            self.state = self.DNS
            self._dns = DnsTcpStream(self.analysis.dns)
            for chunk, f, _t in self._sniff[SERVER]:
                self._dns.feed(chunk, f)
            self._sniff = ([], [])
            if direction == SERVER:
                self._dns.feed(data, frame)
            return
        self._sniff[direction].append((data, frame, ts))
        self._sniff_len[direction] += len(data)
        client_bytes = _head(self._sniff[CLIENT])
        server_bytes = _head(self._sniff[SERVER])
        if client_bytes and looks_like_request(client_bytes):
            self._start_http()
            return
        if self._tls is None and client_bytes and looks_like_tls(client_bytes):
            self._start_tls()
            return
        if self.conn.role_guessed and server_bytes and looks_like_request(server_bytes):
            self.conn.swap_roles()
            self._sniff = (self._sniff[SERVER], self._sniff[CLIENT])
            self._sniff_len = [self._sniff_len[SERVER], self._sniff_len[CLIENT]]
            self._start_http()
            return
        if self.conn.syn_frame is not None:
            if (client_bytes and len(client_bytes) >= 8) or max(self._sniff_len) >= PROTOCOL_DECISION_BYTES:
                self._give_up()
            return
        # Searching the whole buffer on every packet would be quadratic: search again only
        # once it has doubled (or is full).
        buffered = self._sniff_len[CLIENT] + self._sniff_len[SERVER]
        if buffered >= self._next_sync_try or max(self._sniff_len) >= PROTOCOL_DECISION_BYTES:
            self._next_sync_try = 2 * buffered
            self._try_midstream(final=False)

    def _give_up(self) -> None:
        self._sniff = ([], [])
        if self._tls is None:
            self._settle()  # counted with the bytes seen so far: nobody follows it further
            self.state = self.DONE
            self.conn.ignore()
        elif self.session is not None and self.session.transport == "tls-decrypted" and \
                not self.builder.requested:
            # Decrypted, and not a WebSocket inside: ordinary HTTPS, not ours to report.
            self.analysis.sessions.remove(self.session)
            self.builder = None
            self._settle()
            self._tls = None
            self.state = self.DONE
            self.conn.ignore()
        else:
            self.state = self.DONE

    # -- TLS -------------------------------------------------------------------
    def _start_tls(self) -> None:
        self.analysis.sync_embedded_secrets()
        keylog = self.analysis.keylog
        self._tls = TlsConnection(keylog if len(keylog) else None)
        first = min((chunks[0][1], chunks[0][2]) for chunks in self._sniff if chunks)
        self._new_session(*first)
        self.session.transport = "tls"
        buffered, self._sniff, self._sniff_len = self._sniff, ([], []), [0, 0]
        for direction in (CLIENT, SERVER):
            for data, frame, ts in buffered[direction]:
                self._tls_events(self._tls.feed(direction, data, frame, ts))

    def _tls_events(self, events) -> None:
        for ev in events:
            kind = ev[0]
            if kind == "plaintext":
                if self.state != self.DONE:
                    self._app_data(ev[1], ev[2], ev[3], ev[4])
            elif self.builder is None:
                continue
            elif kind == "record":
                if ev[2] == CT_APPLICATION_DATA:
                    # The layer's ("record", direction, type, length, frame, ts) as the typed
                    # event, built in C (one per record: TLS without keys is all records).
                    self.builder.tls_record(_as_tls_record(TlsRecord, ev[1:]))
            elif kind == "handshake":
                if ev[1].get("decryption") == "ok":
                    self.builder.session.transport = "tls-decrypted"
            elif kind == "alert":
                self.builder.tls_alert(TlsAlert(*ev[1:]))
            elif kind == "anomaly":
                _, akind, direction, frame, ts, detail = ev
                self.builder.anomaly(akind, frame, ts, direction, detail)

    def _start_http(self) -> None:
        self.state = self.HTTP
        limit = self.analysis.options.max_http_header
        self._req_parser = RequestParser(max_header_bytes=limit)
        self._resp_parser = ResponseParser(max_header_bytes=limit)
        buffered, self._sniff = self._sniff, ([], [])
        for direction in (CLIENT, SERVER):
            for data, frame, ts in buffered[direction]:
                if self.state != self.HTTP:
                    if self.state == self.WEBSOCKET:
                        self._ws_data(direction, data, frame, ts)
                    continue
                self._http_data(direction, data, frame, ts)

    def _try_midstream(self, final: bool) -> None:
        """A connection whose start is not in the capture: look for a WebSocket frame stream."""
        found = {}
        for direction in (CLIENT, SERVER):
            start = find_stream_start([d for d, _, _ in self._sniff[direction]])
            if start is not None:
                found[direction] = start
        if not found or not midstream_evidence_enough([run for _, _, run in found.values()]):
            # Noise that happens to parse as a frame or two is not a session: wait for more.
            if final or max(self._sniff_len) >= PROTOCOL_DECISION_BYTES:
                self._give_up()
            return
        # Masked frames come from the client: trust that over the port guess.
        server_masked = SERVER in found and found[SERVER][1]
        client_masked = CLIENT in found and found[CLIENT][1]
        if self.conn.role_guessed and server_masked and not client_masked:
            self.conn.swap_roles()
            self._sniff = (self._sniff[SERVER], self._sniff[CLIENT])
            found = {1 - d: v for d, v in found.items()}
        buffered, self._sniff = self._sniff, ([], [])
        first = min((chunks[0][1], chunks[0][2]) for chunks in buffered if chunks)
        self._new_session(first[0], first[1])
        self.builder.midstream(MidstreamStart(first[0], first[1]))
        self._open_websocket(deflate=None, extensions=False)
        for direction in (CLIENT, SERVER):
            chunks = buffered[direction]
            if not chunks or direction not in found:
                continue  # no sync in this direction yet: drop what we cannot frame
            skip = found[direction][0]
            for data, frame, ts in chunks:
                if skip >= len(data):
                    skip -= len(data)
                    continue
                self._ws_data(direction, memoryview(data)[skip:], frame, ts)
                skip = 0

    # -- HTTP upgrade ----------------------------------------------------------
    def _http_data(self, direction: int, data, frame: int, ts: float) -> None:
        if direction == CLIENT:
            if self._connect_wait:
                self._early(bytes(data), frame, ts)  # sent before the proxy's answer came
            elif self.builder is None or not self.builder.requested:
                req = self._req_parser.feed(data)
                if req is None:
                    if self._req_parser.error:
                        self._header_overflow(CLIENT, self._req_parser.error, frame, ts)
                        self._give_up()
                    return
                self._on_request(req, frame, ts)
                rest = self._req_parser.leftover
                if rest is not None and len(rest):
                    self._early(bytes(rest), frame, ts)
            else:
                self._early(bytes(data), frame, ts)
        else:
            if self.builder is not None and self.builder.answered:
                return
            resp = self._resp_parser.feed(data)
            if resp is None:
                if self._resp_parser.error and self._header_overflow(SERVER, self._resp_parser.error, frame, ts):
                    self.state = self.DONE  # nothing after an endless head can be framed
                return
            self._on_response(resp, frame, ts)

    def _header_overflow(self, direction: int, error: str, frame: int, ts: float) -> bool:
        """An HTTP head longer than max_http_header: a session anomaly, or (no session yet)
        a capture-level count.  False for other parse errors (not HTTP at all)."""
        if "header section longer than" not in error:
            return False
        limit = self.analysis.options.max_http_header
        if self.builder is not None:
            self.builder.anomaly("http-header-overflow", frame, ts, direction, {"limit": limit})
            return True
        self.analysis.header_overflow(self.conn.stream, frame)
        return True

    def _early(self, data: bytes, frame: int, ts: float) -> None:
        if self._early_len + len(data) > EARLY_CLIENT_BYTES:
            return
        self._early_client.append((data, frame, ts))
        self._early_len += len(data)

    def _on_request(self, req, frame: int, ts: float) -> None:
        if req.method == "CONNECT" and self._proxy is None:
            # A proxy tunnel: its answer decides whether the bytes after it are sniffed.
            self._proxy = ProxyInfo("connect", req.target, frame, ts)
            self._connect_wait = True
            self._resp_parser = ResponseParser("CONNECT", self.analysis.options.max_http_header)
            return
        if not is_websocket_upgrade(req):
            # Plain HTTP: not a WebSocket attempt, nothing for us here.
            self._give_up()
            return
        if self._proxy is None:
            authority = absolute_form_authority(req.target)
            if authority is not None:  # `GET ws://host/path`: sent to a forward proxy
                self._proxy = ProxyInfo("forward", authority, frame, ts)
        self._new_session(frame, ts)
        self.builder.request(HandshakeRequest(req, frame, ts))

    def _awaiting_response(self) -> bool:
        return self._connect_wait or (self.builder is not None and self.builder.requested
                                      and not self.builder.answered)

    def _on_response(self, resp, frame: Optional[int], ts: Optional[float]) -> None:
        if self._connect_wait:
            self._connect_wait = False
            proxy = self._proxy
            proxy.status, proxy.reason = resp.status, resp.reason
            proxy.response_frame, proxy.response_time = frame, ts
            if 200 <= resp.status < 300:
                self._tunnel_open(frame, ts)
            else:  # refused (407, 403, 502...): its own outcome, a session with a finding
                self._new_session(proxy.request_frame, proxy.request_time)
                self._early_client = []
                self.state = self.DONE
            return
        if self.builder is None:
            self.state = self.DONE
            return
        if self.builder.response(HandshakeResponse(resp, frame, ts)):
            hs = self.session.handshake
            self._open_websocket(hs.deflate, extensions=bool(hs.extensions))
            early, self._early_client = self._early_client, []
            for data, f, t in early:
                self._ws_data(CLIENT, data, f, t)
            rest = self._resp_parser.leftover
            if rest is not None and len(rest):
                self._ws_data(SERVER, rest, frame, ts)
        else:
            self.state = self.DONE
            self._early_client = []

    def _tunnel_open(self, frame: Optional[int], ts: Optional[float]) -> None:
        """The proxy said 2xx: from here on it relays bytes, sniffed like a new connection's
        (TLS, decrypted with the key log, or a plain HTTP Upgrade)."""
        early, self._early_client, self._early_len = self._early_client, [], 0
        rest = self._resp_parser.leftover
        self._req_parser = self._resp_parser = None
        self.state = self.SNIFF
        for data, f, t in early:
            self.data(CLIENT, data, f, t)
        if rest:
            self.data(SERVER, rest, frame, ts)

    # -- WebSocket -------------------------------------------------------------
    def _open_websocket(self, deflate, extensions: bool) -> None:
        self.state = self.WEBSOCKET
        options = self.analysis.options
        keep, text = options.keep_binary, options.max_message
        compressed = bool(deflate)
        builder = self.builder
        self._frame_parsers = (FrameParser(True, keep_binary=keep, keep_text=text, deflate=compressed),
                               FrameParser(False, keep_binary=keep, keep_text=text, deflate=compressed))
        hook = options.binary_hook
        if hook is not None:
            session = self.session
            self._frame_parsers[CLIENT].binary_sink = lambda frame, chunk: hook(session, frame, chunk)
        limits = dict(keep_binary=keep, max_message=text, max_inflate=options.max_inflate)
        self._assemblers = (MessageAssembler(True, deflate, extensions, **limits),
                            MessageAssembler(False, deflate, extensions, **limits))
        for direction in (CLIENT, SERVER):
            sink = builder.anomaly_sink(direction)
            self._frame_parsers[direction].on_anomaly = sink
            self._assemblers[direction].on_anomaly = sink
        self._ws_feed = WebSocketFeed(self._frame_parsers, self._assemblers, builder, self._internal_error)
        if self._tls is None:
            # The tracker hands the bytes straight to the WebSocket layers (the hot path).
            self.conn.redirect_data(self._ws_feed.data)

    def _ws_data(self, direction: int, data, frame: int, ts: float) -> None:
        self._ws_feed.feed(direction, data, frame, ts)

    # -- sessions --------------------------------------------------------------
    def _new_session(self, frame: int, ts: float) -> None:
        if self.builder is not None:
            return  # TLS created it already; the decrypted handshake fills it in
        c = self.conn
        self.builder = self.analysis.new_session(format_address(*c.client), format_address(*c.server),
                                                 c.stream, c.first_frame, c.first_time)
        s = self.builder.session
        if self.tunnel is not None:
            s.tunnel = tunnel_layers(self.tunnel)
        proxy = self._proxy
        if proxy is not None:
            s.proxy = proxy
            host = host_without_port(proxy.authority)
            s.server_name = ServerName(host, "connect" if proxy.kind == "connect" else "host",
                                       proxy.request_frame, deepgram=is_deepgram_host(host))


def _signal_point() -> None:
    """Where Ctrl-C lands while the compiled packet loop runs: CPython runs pending signal
    handlers when an interpreted function starts (this one; keep this module interpreted), and
    compiled code never runs them itself.  Without it, Ctrl-C would wait for the end of the
    file and its KeyboardInterrupt would be raised wherever interpreted code ran next, once
    inside compiled code that cannot recover ("fatal: out of memory", tests/test_integrity.py).
    """


class CaptureAnalyzer:
    """The whole pipeline for one capture, sans-I/O: fed packets, gives sessions.

    `analyze_capture()` feeds it from a file; live capture feeds it from a pipe.
    """

    def __init__(self, options: Optional[Options] = None, report: Optional[CaptureReport] = None,
                 shard=None):
        """shard: a shards.ShardWork to analyse only its share of the connections."""
        self.options = options = options or Options()
        self.report = report or CaptureReport(path="-", format=None)
        self.analysis = _Analysis(self.report, options, shard)
        if options.keylog:
            try:
                loaded = self.analysis.keylog.load_file(options.keylog)
            except OSError as e:
                raise CaptureError(f"cannot read key log {options.keylog}: {e.strerror or e}") from None
            if not loaded:
                skipped = self.analysis.keylog.skipped_lines
                self.report.findings.append(Finding(
                    "keylog-empty", WARNING,
                    f"{os.path.basename(options.keylog)} holds 0 usable secrets ({skipped} line"
                    f"{'' if skipped == 1 else 's'} not in the NSS key log format "
                    "'LABEL <client random> <secret>'): no TLS session can be decrypted with it.",
                    details={"keylog": os.path.basename(options.keylog), "skipped_lines": skipped}))
        self.decoder = PacketDecoder()
        self.analysis.decoder = self.decoder
        factory = lambda conn: ConnectionAnalyzer(conn, self.analysis)  # noqa: E731
        if shard is not None:
            factory = shard.factory(factory, self.analysis)
        self.tracker = TcpTracker(factory, max_connections=options.max_connections)
        self.loop = PacketLoop(self.decoder, self.tracker, self.analysis, _signal_point)
        if shard is not None:
            shard.loop = self.loop  # the frame being read dates what the shard records
        self.tracker.on_quiet = self.decoder.mute  # packets of ignored flows stop at the decoder
        self.decoder.dns_sink = self.analysis.dns.udp  # DNS answers name the servers
        self.analysis.decoder = self.decoder
        self.first_time: Optional[float] = None
        self.last_time: Optional[float] = None
        self.packets = 0
        self._ctx = RuleContext(gap_threshold=options.gap_threshold,
                                keylog_name=os.path.basename(options.keylog) if options.keylog else None)
        self.analysis.conclude = self.conclude

    def name_keylog(self, path: str) -> None:
        """A key log given some other way (followed live): findings name it."""
        self._ctx.keylog_name = os.path.basename(path)

    def packet(self, frame_no: int, ts: float, linktype: int, data, start: int = 0,
               end: int = -1) -> None:
        """One packet: data[start:end] (end -1: to the end of data)."""
        loop = self.loop
        loop.packet(frame_no, ts, linktype, data, start, end)
        self.packets = frame_no
        self.first_time, self.last_time = loop.first_time, loop.last_time

    def feed(self, records, progress: Optional[Callable[[int], None]] = None) -> None:
        """packet() for each (frame_no, ts, linktype, buf, start, end) of `records`
        (Capture.spans(): the packet is buf[start:end]), in one tight (compiled) loop.

        The result is the same as calling packet() for each; `packets`, `first_time` and
        `last_time` are brought up to date when the loop ends (also by an exception).
        progress(frame_no), when given, is called every 16384 frames.
        """
        loop = self.loop
        try:
            loop.run(records, progress)
        finally:
            self.packets = loop.frame_no
            self.first_time, self.last_time = loop.first_time, loop.last_time

    def use_secrets_from(self, capture) -> None:
        """Take TLS key logs embedded in a pcapng (read lazily, as the blocks arrive)."""
        self.analysis.capture = capture

    @property
    def sessions(self) -> list[Session]:
        """Sessions so far, in order of discovery (live views read this)."""
        return self.analysis.sessions

    def new_session(self, client: str, server: str, tcp_stream: int, first_frame: Optional[int],
                    first_time: Optional[float]) -> SessionBuilder:
        """A session of this capture and its SessionBuilder (engines that do not read bytes)."""
        return self.analysis.new_session(client, server, tcp_stream, first_frame, first_time)

    def finish(self) -> list[Session]:
        self.end_of_capture()
        return self.conclude_capture(self.analysis.sessions, self.tracker.stats, self.decoder.stats)

    def end_of_capture(self) -> None:
        """No more packets: every connection still open ends (in stream order)."""
        self.analysis.last_time = self.last_time
        if self.analysis.shard is not None:
            self.analysis.shard.capture_ended()
        self.tracker.finish()
        self.decoder.finish()  # fragments still incomplete are lost now

    def conclude_capture(self, sessions: list[Session], tcp_stats: dict, decoder_stats: dict) -> list[Session]:
        """The report's sessions and counters once every connection has ended; `sessions` in
        the order they started (shards.merge_shards passes those of every shard)."""
        connections, sessions = self.analysis.census.summary(tcp_stats["connections"], link_proxy_legs(sessions))
        self.report.connections = connections
        sessions = sorted(sessions, key=lambda s: (s.start_frame or 0, s.tcp_stream))
        for i, s in enumerate(sessions, 1):
            s.index = i
        self.report.sessions = sessions
        self.report.first_time, self.report.last_time = self.first_time, self.last_time
        self.report.stats.setdefault("engine", {"name": "native"})  # tshark: analyzer/engines/tshark.py
        self.report.stats.update(decoder=dict(decoder_stats), tcp=dict(tcp_stats))
        budget = self.analysis.text_budget
        if budget is not None and budget.dropped:
            self.report.stats["messages_not_kept"] = {"server_text_limit": budget.limit,
                                                      "messages": budget.dropped}
        return sessions

    def settle(self, session: Session, builder: SessionBuilder, tls_info: Optional[dict],
               client_hello_frame: Optional[int], server_address: bytes,
               dns_answer: Optional[tuple] = None) -> str:
        """Class, server name and egress of a session built by another engine (which knows
        no TCP byte counts): returns its class; an `other` one is the caller's to drop."""
        s = session
        facts = ConnectionFacts(s.tcp_stream, s.client, s.server, server_address, dns_answer, None,
                                encrypted=s.transport == "tls")
        add_tls_facts(facts, tls_info, client_hello_frame, builder.tls_activity, builder.record_timeline)
        return self.analysis.census.settle(session, facts, builder)

    def conclude(self, session: Session) -> None:
        # Runs as soon as a connection ends, so streaming and live views get final sessions.
        session.findings = run_rules(session, self._ctx)
        for f in session.findings:
            f.display_filter = display_filter(session.tcp_stream, f.frames)
        session.diagnosis = diagnose(session)
        hook = self.options.session_hook
        if hook is not None:
            hook(session)


_as_tls_record = tuple.__new__


def _head(chunks, size: int = 16) -> bytes:
    """The first `size` bytes of buffered (bytes, frame, ts) chunks, without joining them all."""
    out = b""
    for data, _frame, _ts in chunks:
        out += data
        if len(out) >= size:
            return out[:size]
    return out


def analyze_capture(path: str, options: Optional[Options] = None) -> CaptureReport:
    """Analyse one capture file. Raises CaptureError when it cannot be read at all."""
    options = options or Options()
    report, analyzer, cap = read_capture(path, options)
    analyzer.finish()
    keylog = analyzer.analysis.keylog
    add_capture_findings(report, options, (len(keylog), keylog.lookups, keylog.matches), cap, analyzer.decoder)
    return report


def read_capture(path: str, options: Options, shard=None):
    """(report, analyzer, capture) once every packet of the file went through the analyzer
    (shard: only its share of the connections, see shards.py); the analyzer is not finished."""
    cap = open_capture(path)
    report = CaptureReport(path=path, format=cap.format, compressed=cap.compressed)
    analyzer = CaptureAnalyzer(options, report, shard)
    analyzer.use_secrets_from(cap)
    progress = options.progress
    try:
        with cap:
            analyzer.feed(cap.spans(), None if progress is None else
                          (lambda frame_no: progress(cap.bytes_read, frame_no)))
            cap.read_to_end()  # a pipe's size is known at its end
    except KeyboardInterrupt:
        report.stats["interrupted"] = True
    report.bytes = cap.size
    return report, analyzer, cap


def add_capture_findings(report: CaptureReport, options: Options, keylog: tuple, cap, decoder) -> None:
    """The capture's packet count and its own findings (key log, file, decoding), once its
    sessions are concluded.  keylog: (secrets held, TLS sessions looked up, found)."""
    report.packets = cap.packet_count
    secrets, lookups, matches = keylog
    if options.keylog and secrets and lookups and not matches:
        name = os.path.basename(options.keylog)
        report.findings.append(Finding(
            "keylog-no-match", WARNING,
            f"{name} has no entry for the client random of any of the {lookups} TLS session(s) in "
            f"this capture (it holds secrets for {secrets} other connection(s)): it was recorded for "
            "another run; record this client's run with SSLKEYLOGFILE.",
            details={"keylog": name, "tls_sessions": lookups, "client_randoms": secrets}))
    report.findings.extend(capture_findings(cap, decoder, report))


__all__ = ["Options", "CaptureAnalyzer", "analyze_capture", "capture_files", "CaptureError"]
