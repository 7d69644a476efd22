"""The tshark engine: the session model built from Wireshark's dissection (through pyshark).

`dgcap report --engine tshark` and `dgcap verify` use it as a second opinion on the native
engine: TCP reassembly, TLS decryption, HTTP parsing, WebSocket framing, unmasking, message
reassembly, permessage-deflate and close frames are all tshark's; everything after that
(session recorder: counts, gaps, close; RFC 6455 message rules; Deepgram layer; findings;
diagnosis; renderers) is the same code the native engine feeds.

How a capture is analysed:

1. The native engine runs first, only to learn which server ports carry WebSocket: tshark is
   told with decode-as rules (`-d tcp.port==P,http`; for TLS `-d tcp.port==P,tls -d
   tls.port==P,http`; for a frame stream picked up mid-connection `-d tcp.port==P,websocket`)
   so that tshark never has to guess: HTTP on other ports is only found by its heuristic, and
   its WebSocket heuristic is off by default.  File-level facts that are not dissection
   (format, size, gzip) come from that run too; nothing else does.
2. `tshark -T fields` over every packet (tshark_dissect.stream_table): packet count, capture
   times, each packet's tcp.stream and sender, per stream the first/last packet, SYN, FIN and
   RST packets and the TCP gaps never filled.
3. pyshark over `http || websocket || tls` (tshark_dissect.dissect), at the same time:
   handshakes, frames, TLS.  TCP segments are reordered (`tcp.reassemble_out_of_order`).
4. Per tcp.stream, tshark's records are replayed in frame order as the typed events of
   analyzer/events.py (HandshakeRequest/Response from tshark's HTTP fields, WsFrame from its
   WebSocket fields, TlsRecord, TcpEnd from the FIN/RST packets, Anomaly) into the same
   session.SessionBuilder the native pipeline feeds; RFC 6455 message rules run in the same
   MessageAssembler (with tshark's decompression, `_Inflated`).  The capture's conclude step
   (rules, display filters, diagnosis) is CaptureAnalyzer.conclude.

Frame numbers and tcp.stream numbers are tshark's own.  TLS keys: `-o tls.keylog_file:FILE`
for --keylog / SSLKEYLOGFILE; tshark reads pcapng Decryption Secrets Blocks itself.
This module uses only public names of the native engine.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import shutil
import subprocess
import time
from typing import Optional

from ..capture import CaptureError, format_address
from ..egress import OTHER
from ..events import HandshakeRequest, HandshakeResponse, MidstreamStart, TcpEnd, TlsAlert, TlsRecord
from ..http import Request, Response, is_websocket_upgrade
from ..http.head import parse_query
from ..model import CLIENT, ERROR, SERVER, CaptureReport, Finding, MissingData, Session, TlsInfo
from ..pipeline import CaptureAnalyzer, Options, analyze_capture
from ..session import SessionBuilder
from ..tls.connection import CT_APPLICATION_DATA
from ..tls.suites import suite_name, version_name
from ..websocket import Frame, MessageAssembler
from ..websocket.frames import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT
from .tshark_dissect import (DISPLAY_FILTER, Packet, StreamInfo, TsharkFailed, WsFrame, _truncated,
                             dissect, stream_table, tshark_problems)

TSHARK_MISSING = ("tshark not found: install it with `apt-get install tshark` (Debian/Ubuntu) "
                  "or Wireshark's installer; then re-run")

KEEP_TEXT = 1 << 20  # as the native FrameParser: text and control payloads kept whole up to this


class TsharkNotFound(CaptureError):
    def __init__(self):
        super().__init__(TSHARK_MISSING)


def find_tshark() -> Optional[str]:
    return shutil.which("tshark")


@functools.lru_cache(maxsize=4)
def tshark_version(tshark: str) -> str:
    """"4.0.17" from `tshark --version` (the first line: "TShark (Wireshark) 4.0.17 (...)")."""
    try:
        out = subprocess.run([tshark, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    m = re.search(r"TShark \(Wireshark\) (\d+(?:\.\d+)*)", out)
    return m.group(1) if m else "unknown"


def decode_as_rules(native: CaptureReport) -> dict:
    """Decode-as rules telling tshark what the native engine found on each server port."""
    rules: dict = {}
    for s in native.sessions:
        try:
            port = int(s.server.rsplit(":", 1)[1])
        except (ValueError, IndexError):
            continue
        if s.transport.startswith("tls"):
            rules.setdefault(f"tcp.port=={port}", "tls")
            rules.setdefault(f"tls.port=={port}", "http")
        elif s.midstream:
            rules.setdefault(f"tcp.port=={port}", "websocket")
        else:
            rules.setdefault(f"tcp.port=={port}", "http")
    return rules


def analyze_capture_tshark(path: str, options: Optional[Options] = None,
                           native: Optional[CaptureReport] = None) -> CaptureReport:
    """Analyse one capture with tshark's dissectors. Raises CaptureError when it cannot be read.

    `native`: the native engine's report of the same file with the same options, when the
    caller has it already (dgcap verify); otherwise the native engine is run here first.
    """
    options = options or Options()
    tshark = find_tshark()
    if tshark is None:
        raise TsharkNotFound()
    started = time.perf_counter()
    if native is None:
        # Only to learn the ports: without the caller's hooks (they are for the tshark run).
        hooks = {f.name: None for f in dataclasses.fields(options) if f.name.endswith("_hook") or f.name == "progress"}
        native = analyze_capture(path, dataclasses.replace(options, **hooks))
    native_seconds = time.perf_counter() - started
    report = CaptureReport(path=path, format=native.format, compressed=native.compressed)
    report.bytes = native.bytes
    rules = decode_as_rules(native)
    prefs = {"tls.keylog_file": options.keylog} if options.keylog else {}
    t0 = time.perf_counter()
    # The stream table (a plain tshark run) first, then pyshark: run side by side in two
    # threads, pyshark's tshark was now and then reaped by the other thread's wait
    # (asyncio: "Unknown child process pid ..., will report returncode 255"), a false failure.
    try:
        table = stream_table(tshark, path)
        t1 = time.perf_counter()
        packets, problem = dissect(tshark, path, rules, prefs, version=tshark_version(tshark),
                                   keep_binary=None if options.binary_hook is not None else options.keep_binary)
    except TsharkFailed as e:
        raise CaptureError(f"tshark cannot read it: {e}") from None
    if problem is not None and not any(_truncated(line) for line in table.warnings):
        # Not a capture tshark read up to a cut or a corrupt record: a failure.
        raise CaptureError(f"tshark (through pyshark) failed: {problem}")
    packets = table.place(packets)
    t2 = time.perf_counter()

    builder = _Builder(report, options, table, native)
    builder.build(packets)

    report.packets = table.packets
    report.first_time, report.last_time = table.first_time, table.last_time
    report.stats.update(
        engine={"name": "tshark", "version": tshark_version(tshark)},
        tshark={"decode_as": [f"{k},{v}" for k, v in rules.items()],
                "display_filter": DISPLAY_FILTER,
                "seconds": {"native_port_discovery": round(native_seconds, 3),
                            "stream_table": round(t1 - t0, 3), "pyshark": round(t2 - t1, 3),
                            "model": round(time.perf_counter() - t2, 3)}},
        tcp={"connections": len(table.streams)})
    for i, line in enumerate(table.warnings):
        if _truncated(line):
            # With its detail, "(pcap: File has 4294967040-byte packet, ...)", on the next line.
            lines = [line] + list(itertools.takewhile(lambda w: w.startswith("("), table.warnings[i + 1:]))
            report.findings.append(Finding(
                "capture-truncated", ERROR,
                f"tshark: {tshark_problems(lines, path)} The report covers the {table.packets} packets "
                "before it.",
                [table.packets] if table.packets else [], table.last_time,
                {"packets_read": table.packets}))
            break
    return report


# -- tshark's records into the native message rules -------------------------------------

class _Inflated:
    """Stands in for the assembler's Inflater: tshark already decompressed the message.

    Fed the decompressed payload tshark shows (see _payloads); keeps a prefix like the
    Inflater does and reports tshark's "Decompression failed" as an inflate error.
    """

    def __init__(self, max_inflate: int):
        self.max_inflate = max_inflate
        self.pending_error: Optional[str] = None
        self.full_size: Optional[int] = None
        self.begin(0)

    def begin(self, keep: int) -> None:
        self.keep = keep
        self.output: list = []
        self.kept = self.size = 0
        self.limit_hit = self.window_exceeded = self.context_lost = self.stopped = False
        self.error: Optional[str] = None

    def feed(self, piece) -> None:
        # The frame's payload may be a prefix of what tshark decompressed; full_size is all of it.
        size, self.full_size = (self.full_size if self.full_size is not None else len(piece)), None
        self.size += size
        if self.size > self.max_inflate:
            self.limit_hit = True  # as the native Inflater: a decompression bomb is an error finding
        room = self.keep - self.kept
        if room > 0 and piece:
            part = bytes(piece[:room])
            self.output.append(part)
            self.kept += len(part)

    def stop(self) -> None:
        pass  # pieces are tshark's decompressed bytes, not a deflate stream that a gap breaks

    def end(self, final: bool) -> None:
        if self.pending_error is not None:
            self.error, self.pending_error = self.pending_error, None


class _TsharkAssembler(MessageAssembler):
    """The native message rules over tshark's frames, with tshark's decompression."""

    def __init__(self, from_client: bool, deflate, extensions: bool, **limits):
        self._inflated = _Inflated(limits.get("max_inflate", 64 << 20)) if deflate is not None else None
        super().__init__(from_client, deflate, extensions, inflater=self._inflated, **limits)

    def frame(self, frame):
        inflater = self._inflated
        if inflater is not None and isinstance(frame, _TFrame):
            if frame.inflate_failed:
                inflater.pending_error = "tshark: Decompression failed"
            inflater.full_size = frame.full_size
        return super().frame(frame)


class _TFrame(Frame):
    """A Frame from tshark's fields; `payload` is what tshark shows (see _payloads), maybe a prefix."""
    __slots__ = ("inflate_failed", "full_size")


class _TsharkConnection:
    """One tcp.stream as tshark dissected it: its records become events for a SessionBuilder."""

    def __init__(self, info: StreamInfo, client, server, analysis):
        self.info = info
        self.analysis = analysis
        self.client, self.server = client, server
        self.builder: Optional[SessionBuilder] = None
        self.websocket = False
        self.done = False
        self._assemblers = None

    @property
    def session(self) -> Optional[Session]:
        return self.builder.session if self.builder is not None else None

    def new_session(self) -> SessionBuilder:
        if self.builder is None:
            info = self.info
            self.builder = self.analysis.new_session(format_address(*self.client), format_address(*self.server),
                                                     info.stream, info.first_frame, info.first_time)
        return self.builder

    def request(self, req: Request, frame: int, ts: float) -> None:
        self.new_session().request(HandshakeRequest(req, frame, ts))

    def response(self, resp: Response, frame: int, ts: float) -> None:
        if self.builder.response(HandshakeResponse(resp, frame, ts)):
            hs = self.builder.session.handshake
            self._open_websocket(hs.deflate, bool(hs.extensions))
        else:
            self.done = True

    def start_midstream(self, frame: int, ts: float) -> None:
        self.new_session().midstream(MidstreamStart(frame, ts))
        self._open_websocket(None, False)

    def _open_websocket(self, deflate, extensions: bool) -> None:
        self.websocket = True
        limits = _limits(self.analysis.options)
        self._assemblers = (_TsharkAssembler(True, deflate, extensions, **limits),
                            _TsharkAssembler(False, deflate, extensions, **limits))
        for direction in (CLIENT, SERVER):
            self._assemblers[direction].on_anomaly = self.builder.anomaly_sink(direction)

    def frame(self, direction: int, f: Frame) -> None:
        self.builder.ws_frame(direction, f)
        self.builder.ws_messages(direction, self._assemblers[direction].frame(f)[0])

    def anomaly(self, direction: Optional[int], kind: str, frame: int, ts: float, detail: dict) -> None:
        if self.builder is not None:
            self.builder.anomaly(kind, frame, ts, direction, detail)
            if kind == "tcp-hole" and direction is not None:
                # Exact totals per side, as native's reassembler gives them (Session.missing).
                session = self.builder.session
                missing = list(session.missing)
                found = missing[direction] or MissingData(0, 0, frame)
                found.holes += 1
                found.bytes += detail.get("bytes", 0)
                missing[direction] = found
                session.missing = tuple(missing)

    def tcp_end(self, kind: str, direction: int, frame: int, ts: float) -> None:
        if self.builder is not None:
            self.builder.tcp_end(TcpEnd(kind, direction, frame, ts))

    def finish(self, capture_end: Optional[float], tls_info: Optional[TlsInfo]) -> Optional[Session]:
        if self.builder is None:
            return None
        if self._assemblers is not None:
            for direction in (CLIENT, SERVER):
                self.builder.ws_messages(direction, self._assemblers[direction].finish()[0])
        info = self.info
        return self.builder.finish(capture_end, info.last_frame, info.last_time, tls_info=tls_info)


# -- building the sessions ------------------------------------------------------------------

def _is_upgrade(req: Request) -> bool:
    upgrade = (req.header("upgrade") or "").lower()
    return "websocket" in upgrade or req.header("sec-websocket-key") is not None


class _Builder:
    def __init__(self, report: CaptureReport, options: Options, table, native: CaptureReport):
        self.report = report
        self.options = options
        self.table = table
        self.native_roles = {s.tcp_stream: s.client for s in native.sessions}
        # The DNS answers the native engine matched to each session's server (this engine
        # reads no DNS): (name, frame) by tcp.stream.
        self.native_dns = {s.tcp_stream: s.server_name.dns_answer() for s in native.sessions
                           if s.server_name is not None and s.server_name.dns_answer() is not None}
        # The native CaptureAnalyzer provides the sessions' shared state (new_session) and
        # the conclude step (finding rules, display filters, diagnosis, session hook).
        self.capture = CaptureAnalyzer(options, report)

    def build(self, packets: dict) -> None:
        for stream in sorted(packets):
            info = self.table.streams.get(stream)
            if info is None:
                continue
            self._stream(info, packets[stream])
        sessions = sorted(self.capture.sessions, key=lambda s: (s.start_frame or 0, s.tcp_stream))
        for i, s in enumerate(sessions, 1):
            s.index = i
        self.report.sessions = sessions

    def _roles(self, info: StreamInfo, packets: list) -> tuple:
        if info.syn_sender is not None:
            client = info.syn_sender
        elif info.synack_receiver is not None:
            client = info.synack_receiver
        else:
            client = next((p.src for p in packets for m in p.http if m.kind == "request"), None)
            if client is None:
                client = self._native_client(info)
            if client is None:
                client = next((p.src for p in packets for f in p.ws if f.masked), info.first_sender)
        others = [e for e in info.endpoints if e != client]
        server = others[0] if others else client
        return client, server

    def _native_client(self, info: StreamInfo):
        text = self.native_roles.get(info.stream)
        if text is None:
            return None
        for e in info.endpoints:
            if format_address(*e) == text:
                return e
        return None

    def _stream(self, info: StreamInfo, packets: list) -> None:
        client, server = self._roles(info, packets)
        options = self.options
        ca = _TsharkConnection(info, client, server, self.capture)
        tls_stream = any(p.tls is not None for p in packets)
        decrypted = tls_stream and any(p.tls is not None and p.tls.decrypted for p in packets)
        tls_state = _TlsState() if tls_stream else None
        _payloads(packets, client)

        events = [(p.frame, 0, p) for p in packets]
        events += [(end[2], 1, end) for end in info.ends]
        events += [(hole[1], -1, hole) for hole in info.holes]
        events.sort(key=lambda e: (e[0], e[1]))
        binary_hook = options.binary_hook
        continuing_binary = [False, False]
        for _, order, ev in events:
            if order == 1:
                kind, sender, frame, ts = ev
                ca.tcp_end(kind, CLIENT if sender == client else SERVER, frame, ts)
                continue
            if order == -1:
                sender, frame, ts, missing = ev
                ca.anomaly(CLIENT if sender == client else SERVER, "tcp-hole", frame, ts, {"bytes": missing})
                continue
            p: Packet = ev
            direction = CLIENT if p.src == client else SERVER
            if tls_state is not None and p.tls is not None:
                if ca.builder is None:
                    # As native: a TLS connection is a session from its first record; the
                    # decrypted handshake fills it in, and it is dropped at the end if it turns
                    # out to be decrypted traffic that is not a WebSocket upgrade.
                    ca.new_session().session.transport = "tls"
                    if not decrypted:
                        ca.done = True
                tls_state.packet(p, direction, ca.builder)
            for m in p.http:
                if m.kind == "request" and direction == CLIENT:
                    if not ca.done and (ca.builder is None or (tls_stream and not ca.builder.requested)):
                        req = Request(m.method or "", m.target or "", m.path or "", parse_query(m.query or ""),
                                      m.version or "", m.headers)
                        if is_websocket_upgrade(req):
                            ca.request(req, m.frame, m.time)
                            if decrypted:
                                ca.session.transport = "tls-decrypted"
                elif m.kind == "response" and direction == SERVER:
                    if ca.builder is not None and ca.builder.requested and not ca.builder.answered:
                        resp = Response(m.version or "", m.status if m.status is not None else 0,
                                        m.reason or "", m.headers, body=m.body)
                        ca.response(resp, m.frame, m.time)
            for wf in p.ws:
                if not ca.websocket:
                    if ca.builder is None and info.syn_frame is None and not tls_stream:
                        first = info.first_data or (wf.frame, wf.time)
                        ca.start_midstream(*first)
                    else:
                        continue
                f = _frame(wf, options.keep_binary, getattr(options, "max_message", KEEP_TEXT))
                _length_anomalies(ca, direction, wf)
                if binary_hook is not None and direction == CLIENT and wf.payload is not None:
                    if wf.opcode == OP_BINARY or (wf.opcode == OP_CONTINUATION and continuing_binary[direction]):
                        if not wf.compressed:
                            binary_hook(ca.session, f, wf.payload)
                if wf.opcode in (OP_TEXT, OP_BINARY):
                    continuing_binary[direction] = wf.opcode == OP_BINARY and not wf.fin
                elif wf.opcode == OP_CONTINUATION and wf.fin:
                    continuing_binary[direction] = False
                ca.frame(direction, f)
        if ca.builder is None:
            return
        tls_info = None
        if tls_state is not None:
            if decrypted and not ca.builder.requested:
                self.capture.sessions.remove(ca.session)  # ordinary HTTPS: not ours to report
                return
            tls_info = tls_state.info(ca.builder, options.keylog)
        last_time = self.table.last_time
        session = ca.finish(last_time, tls_info)
        hello = tls_state.client_hello_frame if tls_state is not None else None
        if self.capture.settle(session, ca.builder, tls_info, hello, bytes(ca.server[0]),
                               self.native_dns.get(info.stream)) == OTHER:
            self.capture.sessions.remove(session)  # not a session: one of the other connections
            return
        self.capture.conclude(session)


def _limits(options: Options) -> dict:
    """The assembler limits the native engine uses (the max_* options, where this version has them)."""
    limits = {"keep_binary": options.keep_binary}
    for name in ("max_message", "max_inflate"):
        if hasattr(options, name):
            limits[name] = getattr(options, name)
    return limits


def _frame(wf: WsFrame, keep_binary: int, keep_text: int = KEEP_TEXT) -> Frame:
    header_len = 2 + (2 if wf.length_field == 126 else 8 if wf.length_field == 127 else 0) + (4 if wf.masked else 0)
    f = _TFrame(wf.fin, wf.rsv, wf.opcode, wf.masked, wf.mask, wf.length, header_len,
                wf.frame, wf.time, wf.frame, wf.time)
    payload = wf.payload or b""
    keep = keep_text if wf.opcode in (OP_TEXT, OP_CLOSE, OP_PING, OP_PONG, OP_CONTINUATION) else keep_binary
    f.payload = payload if len(payload) <= keep else payload[:keep]
    f.inflate_failed = wf.inflate_failed
    f.full_size = len(payload)
    return f


def _length_anomalies(ca: _TsharkConnection, direction: int, wf: WsFrame) -> None:
    """What the native FrameParser notices in a header: a longer length encoding than needed."""
    if wf.length_field == 126 and wf.length < 126:
        ca.anomaly(direction, "length-not-minimal", wf.frame, wf.time, {"length": wf.length, "bits": 16})
    elif wf.length_field == 127:
        if wf.length < 65536:
            ca.anomaly(direction, "length-not-minimal", wf.frame, wf.time, {"length": wf.length, "bits": 64})
        if wf.length >> 63:
            ca.anomaly(direction, "length-msb-set", wf.frame, wf.time, {"length": wf.length})


def _payloads(packets: list, client) -> None:
    """Decide each frame's payload from what tshark shows, so messages come out as tshark has them.

    tshark shows a fragmented message whole at its final fragment (websocket.fragments, then
    the reassembled payload, decompressed when compressed); the earlier fragments show nothing
    (or, for some continuations, their own bytes).  Uncompressed: each fragment gets its own
    bytes back from the reassembly's fragment list, so the message rules see every fragment.
    Compressed: the decompressed message goes with the final fragment (the assembler's
    stand-in inflater only collects it).  Close frames get code + reason as payload.
    """
    pending: list = [[], []]  # frames of the data message in progress, per direction
    for p in packets:
        d = CLIENT if p.src == client else SERVER
        for f in p.ws:
            if f.opcode == OP_CLOSE:
                if f.close_code is not None:
                    f.payload = f.close_code.to_bytes(2, "big") + (f.close_reason or b"")
                elif f.payload is None:
                    f.payload = b""
                continue
            if f.opcode >= 8:
                continue
            if f.opcode in (OP_TEXT, OP_BINARY):
                pending[d] = [f]
            elif f.opcode == OP_CONTINUATION:
                pending[d].append(f)
            if not f.fin:
                continue
            frames, pending[d] = pending[d], []
            if len(frames) < 2:
                continue
            compressed = frames[0].compressed
            if compressed:
                for g in frames[:-1]:
                    g.payload = b""
                f.payload = f.reassembled if f.reassembled is not None else (f.payload or b"")
            elif f.fragments is not None and len(f.fragments) == len(frames):
                for g, (_, piece) in zip(frames, f.fragments):
                    g.payload = piece


class _TlsState:
    """TLS facts tshark shows for one connection, in the shape of the native `tls` object.

    As the native engine: application-data records (outer type 23) go to the session
    builder as TlsRecord events (activity, and the silences used when the session turns
    out not to be decrypted).
    """

    def __init__(self):
        self.client_hello: Optional[dict] = None
        self.client_hello_frame: Optional[int] = None
        self.server_hello: Optional[dict] = None
        self.server_hello_frame: Optional[tuple] = None
        self.first: Optional[tuple] = None
        self.records = [0, 0]
        self.record_bytes = [0, 0]
        self.server_handshakes: set = set()

    def packet(self, p: Packet, direction: int, builder: Optional[SessionBuilder]) -> None:
        t = p.tls
        if self.first is None:
            self.first = (p.frame, p.time)
        if t.client_hello is not None and self.client_hello is None:
            self.client_hello = t.client_hello
            self.client_hello_frame = p.frame
        if t.server_hello is not None and self.server_hello is None:
            self.server_hello = t.server_hello
            self.server_hello_frame = (p.frame, p.time)
        if direction == SERVER:
            self.server_handshakes |= t.handshake_types
        for content_type, length in t.records:
            self.records[direction] += 1
            self.record_bytes[direction] += length
            if content_type == CT_APPLICATION_DATA and builder is not None:
                builder.tls_record(TlsRecord(direction, content_type, length, p.frame, p.time))
        if builder is not None:
            for level, description in t.alerts:
                builder.tls_alert(TlsAlert(direction, level, description, p.frame, p.time))

    def info(self, builder: SessionBuilder, keylog: Optional[str]) -> TlsInfo:
        session = builder.session
        ch, sh = self.client_hello or {}, self.server_hello or {}
        suite = sh.get("cipher_suite")
        decrypted = session.transport == "tls-decrypted" and \
            session.frames[CLIENT].total + session.frames[SERVER].total > 0
        if sh.get("version") == 0x0304:
            resumed = 41 in sh.get("extensions", ())  # pre_shared_key accepted
        else:
            resumed = bool(sh) and 11 not in self.server_handshakes  # no Certificate: abbreviated
        ok = session.transport == "tls-decrypted"
        if not decrypted and session.transport == "tls":
            where = self.server_hello_frame or self.first
            if where is not None:
                builder.anomaly("tls-no-keys", where[0], where[1], None, {"reason": "not decrypted by tshark"})
        return TlsInfo(
            version=version_name(sh.get("version")) if sh.get("version") is not None else None,
            sni=ch.get("sni"),
            alpn_offered=ch.get("alpn_offered", []),
            alpn=sh.get("alpn"),
            cipher_suite=suite_name(suite) if suite is not None else None,
            cipher_suite_id=suite,
            resumed=resumed,
            versions_offered=[version_name(v) for v in ch.get("versions_offered", []) if v is not None],
            decryption="ok" if ok else "no-keys",
            decryption_error=None if ok else (
                "tshark did not decrypt it: no key log given and no secrets embedded in the capture"
                if keylog is None else "tshark did not decrypt it with the key log given"),
            decrypted_by="tshark",
            records={"client": self.records[CLIENT], "server": self.records[SERVER]},
            record_bytes={"client": self.record_bytes[CLIENT], "server": self.record_bytes[SERVER]},
        )


__all__ = ["analyze_capture_tshark", "find_tshark", "tshark_version", "decode_as_rules",
           "TsharkNotFound", "TSHARK_MISSING"]
