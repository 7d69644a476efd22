"""What a report says, independent of how it is drawn.

The Markdown and HTML renderers take their text from here so that every format
carries the same content as the terminal report (rich_report.py): capture line,
sessions table, and per session the diagnosis, handshake, frames, gaps, close,
findings (with their Wireshark display filters), Deepgram's explanation and next
steps, TLS and stream details.  Values are plain, unescaped strings: escaping is
the renderer's job (everything here may come from a hostile capture).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ..egress import human_rate
from ..model import CLIENT, SERVER, CaptureReport, Finding, Session, gap_end
from .text import (clock, close_summary, duration, finding_counts, frames_summary,
                   handshake_summary, sorted_findings)

SEVERITIES = ("error", "warning", "info")
SESSION_COLUMNS = ("#", "client → server", "server name", "endpoint", "transport", "handshake",
                   "dg-request-id", "frames C/S", "close", "findings")
# Frame payload bytes as declared on the wire: compressed under permessage-deflate (the Stream
# section's audio bytes are inflated), so the header says which.
FRAME_COLUMNS = ("", "text", "binary", "empty bin", "cont", "ping", "pong", "close", "payload bytes (wire)",
                 "first", "last")
GAP_COLUMNS = ("kind", "seconds", "from", "to", "ended by")
# Links we make clickable: Deepgram's documentation and short links only (a close
# reason can carry any text; everything else stays plain text).
SAFE_LINK = re.compile(r"https://(?:dpgr\.am|developers\.deepgram\.com|deepgram\.com)/[A-Za-z0-9/_.~#%-]*\Z")
MAX_FRAMES_LISTED = 12


@dataclass
class Row:
    """A label/value line: `value` is the main text, `note` the frame/time reference."""
    label: str
    value: str
    note: str = ""
    style: str = ""  # "" | "code" | "error" | "muted"


@dataclass
class FindingItem:
    number: int
    severity: str
    id: str
    message: str
    frames: str
    time: str
    display_filter: str
    at: Optional[float]


@dataclass
class Explanation:
    heading: str  # "1011 NET-0001: no audio or text message from the client for 10 s"
    text: str
    evidence: str
    steps: list[str] = field(default_factory=list)
    link: Optional[str] = None  # a safe https link, or None
    frame: Optional[int] = None
    time: Optional[float] = None


def safe_link(url: Any) -> Optional[str]:
    return url if isinstance(url, str) and SAFE_LINK.match(url) else None


def capture_line(cap: CaptureReport) -> str:
    return (f"{cap.format}{' (gzip)' if cap.compressed else ''}, {cap.packets} packets, "
            f"{clock(cap.first_time, date=True)} to {clock(cap.last_time)} UTC "
            f"({duration(cap.first_time, cap.last_time)}), {len(cap.sessions)} session(s)")


def session_title(s: Session) -> str:
    return f"Session {s.index}: {s.client} → {s.server} (tcp.stream {s.tcp_stream}, {s.transport})"


def worst_severity(s: Session) -> Optional[str]:
    present = {f.severity for f in s.findings}
    for sev in SEVERITIES:
        if sev in present:
            return sev
    return None


def findings_badge(s: Session) -> str:
    c = finding_counts(s)
    parts = []
    if c["error"]:
        parts.append(f"{c['error']} error")
    if c["warning"]:
        parts.append(f"{c['warning']} warn")
    if c["info"]:
        parts.append(f"{c['info']} info")
    return " ".join(parts) if parts else "ok"


def session_row(s: Session) -> list[str]:
    return [str(s.index), f"{s.client} → {s.server}", s.server_name.name if s.server_name else "-",
            s.endpoint or "-", s.transport,
            handshake_summary(s), s.handshake.dg_request_id or "-", frames_summary(s), close_summary(s),
            findings_badge(s)]


def frame_ref(frame: Optional[int], ts: Optional[float]) -> str:
    return f"No. {frame}, {clock(ts)}" if frame is not None else clock(ts)


def path_rows(s: Session) -> list[Row]:
    """How the stream travelled: tunnels around its packets, an HTTP proxy and its legs, the
    server name the client asked for, and bytes missing from the capture."""
    rows: list[Row] = []
    if s.tunnel:
        rows.append(Row("Tunnel", " in ".join(
            layer.type + (f" {layer.id_name} {layer.id}" if layer.id is not None and layer.id_name
                          else "")
            + (f" ({layer.outer_src} → {layer.outer_dst})" if layer.outer_src else "")
            for layer in reversed(s.tunnel))))
    proxy = s.proxy
    if proxy is not None:
        if proxy.kind == "connect":
            answer = (f"{proxy.status} {proxy.reason or ''}".strip() if proxy.status is not None
                      else "no answer in the capture")
            rows.append(Row("Proxy", f"CONNECT {proxy.authority} → {answer}",
                            frame_ref(proxy.response_frame or proxy.request_frame,
                                      proxy.response_time or proxy.request_time),
                            "error" if proxy.refused else "code"))
        else:
            rows.append(Row("Proxy", f"forward proxy (absolute-form request to {proxy.authority})",
                            frame_ref(proxy.request_frame, proxy.request_time), "code"))
        for leg in proxy.legs:
            rows.append(Row(f"Leg {leg.leg}", f"{leg.client} → {leg.server} "
                                              f"(tcp.stream {leg.tcp_stream})"))
    if s.server_name is not None:
        rows.append(Row("Server name", f"{s.server_name.name} (from {s.server_name.source})",
                        f"No. {s.server_name.frame}" if s.server_name.frame else ""))
    for side, missing in (("client", s.missing[CLIENT]), ("server", s.missing[SERVER])):
        if missing is not None:
            rows.append(Row(f"Missing ({side})", f"{missing.bytes:,} bytes in {missing.holes} "
                                                 f"gap{'s' if missing.holes != 1 else ''}",
                            f"No. {missing.first_frame}" if missing.first_frame else "",
                            "error"))
    return rows


def handshake_rows(s: Session) -> list[Row]:
    hs = s.handshake
    rows: list[Row] = path_rows(s)
    if hs.request_frame is not None:
        rows.append(Row("Request", f"{hs.method} {hs.target}", frame_ref(hs.request_frame, hs.request_time),
                        "code"))
    elif s.midstream:
        rows.append(Row("Request", "not in the capture (connection picked up mid-stream)", style="muted"))
    elif s.transport == "tls":
        rows.append(Row("Request", "encrypted: the HTTP upgrade cannot be seen without the TLS keys",
                        style="muted"))
    if hs.status is not None:
        rows.append(Row("Response", f"{hs.status} {hs.reason or ''}".strip(),
                        frame_ref(hs.response_frame, hs.response_time),
                        "" if hs.status == 101 else "error"))
    elif hs.request_frame is not None:
        rows.append(Row("Response", "none in the capture", style="error"))
    if hs.dg_request_id:
        rows.append(Row("dg-request-id", hs.dg_request_id, style="code"))
    if hs.dg_error:
        rows.append(Row("dg-error", hs.dg_error, style="error"))
    if hs.body:
        rows.append(Row("Body", handshake_body(s), style="code"))
    if hs.accept_valid is False:
        rows.append(Row("Sec-WebSocket-Accept", "does not match the key", style="error"))
    if hs.subprotocol:
        rows.append(Row("Subprotocol", hs.subprotocol, style="code"))
    if hs.deflate:
        rows.append(Row("Compression", "permessage-deflate " + ", ".join(
            f"{k}={v}" for k, v in hs.deflate.items())))
    return rows


def handshake_body(s: Session, limit: int = 2000) -> str:
    body = s.handshake.body or ""
    return body if len(body) <= limit else body[:limit] + "…"


def header_rows(s: Session) -> list[tuple[str, str, str]]:
    """(">" request | "<" response, name, value) for every header, in order (already redacted)."""
    hs = s.handshake
    return ([(">", n, v) for n, v in hs.request_headers]
            + [("<", n, v) for n, v in hs.response_headers])


def frame_rows(s: Session) -> list[list[str]]:
    rows = []
    for name, c in (("client", s.frames[CLIENT]), ("server", s.frames[SERVER])):
        rows.append([name, str(c.text), str(c.binary), str(c.empty_binary), str(c.continuation),
                     str(c.ping), str(c.pong), str(c.close), f"{c.payload_bytes:,}",
                     f"No. {c.first_frame}" if c.first_frame else "-",
                     f"No. {c.last_frame}" if c.last_frame else "-"])
    return rows


def gap_rows(s: Session) -> list[list[str]]:
    return [[g.kind, f"{g.seconds:.3f}", f"No. {g.after_frame} {clock(g.start)}",
             f"{'No. ' + str(g.before_frame) if g.before_frame else '-'} {clock(g.end)}", gap_end(s, g)]
            for g in s.gaps]


def close_frame_text(cf) -> str:
    """'1011 "NET-0001 ..."', '1000 (no reason)', '(empty)': the same words in every format."""
    if cf.code is None:
        return "(empty: no code, no reason)"
    return f"{cf.code} {quoted_reason(cf.reason)}"


def quoted_reason(reason: Optional[str]) -> str:
    """A close reason in double quotes (JSON escapes: a newline stays visible as \\n)."""
    return json.dumps(reason, ensure_ascii=False) if reason else "(no reason)"


def close_rows(s: Session) -> list[Row]:
    c = s.close
    rows = []
    for name, cf in (("Client close", c.client), ("Server close", c.server)):
        if cf is not None:
            rows.append(Row(name, close_frame_text(cf), frame_ref(cf.frame, cf.time),
                            "" if cf.code in (1000, None) else "error"))
    if c.initiator:
        rows.append(Row("Closed first by", c.initiator))
    end = {"fin": "FIN", "rst": "RST", "open": "still open at the end of the capture"}[c.tcp_end]
    note = ""
    if c.tcp_end != "open":
        end += f" from the {c.tcp_end_by}"
        note = frame_ref(c.tcp_end_frame, c.tcp_end_time)
    rows.append(Row("TCP end", end, note, "error" if c.tcp_end == "rst" else ""))
    later = c.later_rst
    if later is not None:
        rows.append(Row("Later RST", f"from the {later.by}, {later.time - c.tcp_end_time:.1f} s after the "
                        f"{c.tcp_end.upper()}", frame_ref(later.frame, later.time)))
    return rows


def frames_text(frames: list[int]) -> str:
    if not frames:
        return "-"
    listed = ", ".join(str(f) for f in frames[:MAX_FRAMES_LISTED])
    more = f" … (+{len(frames) - MAX_FRAMES_LISTED})" if len(frames) > MAX_FRAMES_LISTED else ""
    return f"No. {listed}{more}"


def finding_items(findings: list[Finding]) -> list[FindingItem]:
    return [FindingItem(i, f.severity, f.id, f.message, frames_text(f.frames), clock(f.time),
                        f.display_filter or "", f.time)
            for i, f in enumerate(sorted_findings(findings), 1)]


def explanation(s: Session) -> Optional[Explanation]:
    """Deepgram's explanation of the server's close code, with next steps."""
    x = s.deepgram.close_explanation if s.deepgram is not None else None
    if x is None:
        return None
    heading = f"{x.label}: {x.entry.title}" if x.entry.title else x.label
    text = normal_end_text(s) if x.entry.name == "normal" else x.entry.explanation
    return Explanation(heading, text, x.evidence, list(x.entry.steps),
                       safe_link(x.link) or safe_link(x.entry.doc), x.frame, x.time)


def normal_end_text(s: Session) -> str:
    """A 1000 close explained by what happened: whether the client ended the stream
    (CloseStream, Close, an empty binary frame) and who closed the WebSocket first."""
    dg, c = s.deepgram, s.close
    end = dg.stream_end if dg is not None else None
    server = f"Deepgram's close (No. {c.server.frame})" if c.server is not None else "Deepgram's close"
    if end is not None:
        article = "an " if end.type[0].islower() else ""
        sent = f"the client sent {article}{end.type} (No. {end.frame})"
        if c.initiator == "client" and c.client is not None:
            return (f"The client ended the stream: {sent}, then closed the WebSocket itself "
                    f"(No. {c.client.frame}) before {server}; results still on the way may be lost.")
        summary = " and the summary Metadata" if dg.metadata is not None else ""
        rest = "audio" if "speak" in (s.endpoint or "") else "results"
        return (f"The stream ended normally: {sent}, Deepgram sent its remaining {rest}{summary}, "
                f"then closed (No. {c.server.frame})." if c.server is not None else
                f"The stream ended normally: {sent}.")
    if c.initiator == "client" and c.client is not None:
        return (f"The client closed the WebSocket (No. {c.client.frame}) without ending the stream first "
                f"(no CloseStream); {server} only answered it, so results for the last audio may be lost.")
    return (f"Deepgram closed the WebSocket with 1000{' (No. ' + str(c.server.frame) + ')' if c.server else ''} "
            "although the client never ended the stream (no CloseStream).")


def deepgram_rows(s: Session) -> list[Row]:
    """Other Deepgram-layer conclusions: the handshake cause, parameter problems, server errors."""
    dg = s.deepgram
    if dg is None:
        return []
    rows = []
    cause = dg.handshake_cause
    if cause is not None and cause.message:
        rows.append(Row("Handshake cause", cause.message, style="error"))
    for p in dg.param_problems:
        text = f"{p.param}={p.value}: {p.message}"
        if p.breaks:
            text += f" ({p.breaks})"
        rows.append(Row("Parameter", text, style="error" if p.severity == "error" else ""))
    errors = dg.server_errors
    if errors.count:
        rows.append(Row("Server Error messages", str(errors.count),
                        frame_ref(errors.first_frame, errors.first_time), "error"))
    warnings = dg.server_warnings
    if warnings.count:
        rows.append(Row("Server Warning messages", str(warnings.count),
                        frame_ref(warnings.first_frame, warnings.first_time)))
    rid = dg.request_id
    if rid and rid != s.handshake.dg_request_id:
        rows.append(Row("Request id (Metadata)", rid, style="code"))
    return rows


def _counts(d: dict[str, int]) -> str:
    if not d:
        return "none"
    return ", ".join(f"{k} {v}" for k, v in d.items())


def stream_rows(s: Session) -> list[Row]:
    """Audio, messages, results and latency from the Deepgram layer (when it ran)."""
    rows = []
    if s.endpoint:
        rows.append(Row("Endpoint", s.endpoint))
    audio = s.audio
    if audio is not None and s.websocket:
        pace = audio.pace
        fmt = [audio.encoding] if audio.encoding else []
        if audio.sample_rate:
            fmt.append(f"{audio.sample_rate} Hz")
        if audio.channels:
            fmt.append(f"{audio.channels} ch")
        if audio.format:
            fmt.append(f"sniffed {audio.format}")
        # Payload bytes as the application sent them: say so when they were compressed on the wire.
        inflated = " (payload, inflated)" if s.handshake.deflate is not None else ""
        text = f"{pace.bytes:,} bytes{inflated} in {pace.chunks} chunks"
        if pace.seconds is not None:
            text += f" = {pace.seconds} s"
        if pace.bytes_per_second is not None:
            text += f" at {human_rate(pace.bytes_per_second)}"
        if pace.realtime_factor is not None:
            text += f", real-time factor {pace.realtime_factor}"
        if pace.chunk_ms is not None:
            text += f", chunks every {pace.chunk_ms.median} ms (median)"
        rows.append(Row("Audio", (" ".join(fmt) + ": " if fmt else "") + text))
        server = audio.server
        if server.frames:
            rows.append(Row("Server audio", f"{server.bytes:,} bytes in {server.frames} frames",
                            frame_ref(server.first_frame, server.first_time)))
    counts = s.message_counts
    if counts is not None and s.websocket:
        rows.append(Row("Client messages", _counts(counts.client)))
        rows.append(Row("Server messages", _counts(counts.server)))
    dg = s.deepgram
    if dg is not None:
        results = dg.results
        if results.final or results.interim:
            text = f"{results.final} final, {results.interim} interim"
            if results.mean_confidence is not None:
                text += f", mean confidence {results.mean_confidence}"
            rows.append(Row("Results", text, frame_ref(results.first_frame, results.first_time)))
        meta = dg.metadata
        if meta is not None:
            rows.append(Row("Metadata", f"duration {meta.duration} s, {meta.channels} channel(s)",
                            frame_ref(meta.frame, meta.time)))
    latency = s.latency
    if latency is not None and latency.samples:
        rows.append(Row("Latency", f"p50 {latency.p50} s, p95 {latency.p95} s, "
                        f"max {latency.max} s ({plural(latency.samples, 'sample')})"))
    return rows


def plural(n: int, word: str, words: Optional[str] = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"


def tls_rows(s: Session) -> list[Row]:
    tls = s.tls
    if tls is None:
        return []
    rows = [Row("TLS", " ".join(x for x in (tls.version, tls.cipher_suite) if x) or "?")]
    if tls.sni:
        rows.append(Row("SNI", tls.sni, style="code"))
    if tls.alpn:
        rows.append(Row("ALPN", tls.alpn))
    if tls.resumed:
        rows.append(Row("Resumed", "yes"))
    dec = tls.decryption
    text = dec or "-"
    if tls.decryption_error:
        text += f": {tls.decryption_error}"
    rows.append(Row("Decryption", text, style="" if dec == "ok" else "error"))
    records = tls.records or {}
    if any(records.values()):
        rows.append(Row("Records", ", ".join(
            f"{side} {plural(records.get(side, 0), 'record')} ({(tls.record_bytes or {}).get(side, 0):,} bytes)"
            for side in ("client", "server"))))
    if tls.alerts:
        rows.append(Row("Alerts", ", ".join(
            f"{a['direction']} level {a['level']} description {a['description']} (No. {a['frame']})"
            for a in tls.alerts[:8])))
    if tls.note:
        rows.append(Row("Note", tls.note, style="muted"))
    return rows


def transcript(s: Session) -> str:
    return s.transcript or ""


# -- one session as sections: every renderer draws exactly these, in this order -------


@dataclass
class Section:
    """A titled part of a session: key/value rows, a grid, findings, an explanation or text."""
    title: str
    rows: list[Row] = field(default_factory=list)
    columns: tuple[str, ...] = ()
    grid: list[list[str]] = field(default_factory=list)
    findings: list[FindingItem] = field(default_factory=list)
    explanation: Optional[Explanation] = None
    text: str = ""
    block: str = ""  # preformatted (a response body)


@dataclass
class SessionView:
    title: str
    severity: str  # error | warning | info | ok
    verdict: Optional[str]  # the one-line diagnosis
    lead: list[str]  # the egress and copy lines
    facts: list[Row]  # what the verdict rests on: status, dg-error, request id, close
    sections: list[Section]


def verdict_facts(s: Session) -> list[Row]:
    """The facts behind the verdict, shown right under it."""
    hs = s.handshake
    rows = [Row("Handshake", handshake_summary(s),
                frame_ref(hs.response_frame, hs.response_time) if hs.response_frame is not None else "",
                "" if hs.status in (101, None) else "error")]
    if hs.dg_error:
        rows.append(Row("dg-error", hs.dg_error, style="error"))
    rid = hs.dg_request_id or (s.deepgram.request_id if s.deepgram is not None else None)
    if rid:
        rows.append(Row("dg-request-id", rid, style="code"))
    c = s.close
    for name, cf in (("Client close", c.client), ("Server close", c.server)):
        if cf is not None:
            rows.append(Row(name, close_frame_text(cf), frame_ref(cf.frame, cf.time),
                            "" if cf.code in (1000, None) else "error"))
    if s.websocket and c.client is None and c.server is None:
        end = {"fin": "FIN", "rst": "RST"}.get(c.tcp_end)
        rows.append(Row("Close", f"no close frame; TCP {end} from the {c.tcp_end_by}" if end
                        else "no close frame; still open at the end of the capture",
                        frame_ref(c.tcp_end_frame, c.tcp_end_time) if end else "",
                        "error" if c.tcp_end == "rst" else ""))
    return rows


def session_view(s: Session, transcript_wanted: bool = False) -> SessionView:
    # Findings and Deepgram's explanation first: the evidence for the verdict, then the details.
    sections = []
    items = finding_items(s.findings)
    if items:
        sections.append(Section("Findings", findings=items))
    x = explanation(s)
    if x is not None:
        sections.append(Section("Deepgram: " + x.heading, explanation=x))
    sections.append(Section("Handshake", rows=[r for r in handshake_rows(s) if r.label != "Body"]))
    if s.handshake.body:
        sections.append(Section("Response body", block=handshake_body(s)))
    if s.websocket:
        sections.append(Section("Frames", columns=FRAME_COLUMNS, grid=frame_rows(s)))
    if s.gaps:
        sections.append(Section("Client silences over the threshold", columns=GAP_COLUMNS, grid=gap_rows(s)))
    sections.append(Section("Close", rows=close_rows(s)))
    for title, rows in (("Deepgram", deepgram_rows(s)), ("Stream", stream_rows(s)), ("TLS", tls_rows(s))):
        if rows:
            sections.append(Section(title, rows=rows))
    headers = header_rows(s)
    if headers:
        sections.append(Section("Headers", columns=("", "header", "value"), grid=[list(h) for h in headers]))
    if transcript_wanted and transcript(s):
        sections.append(Section("Transcript", text=transcript(s)))
    from . import egress_text
    lead = [line for line in (egress_text.egress_line(s), egress_text.copy_line(s)) if line]
    return SessionView(session_title(s), worst_severity(s) or "ok", s.diagnosis, lead, verdict_facts(s),
                       sections)


# -- which sessions a report shows (--session, --errors-only) --------------------------


@dataclass
class ViewOptions:
    sessions: tuple[int, ...] = ()  # session indexes to show (empty: all)
    errors_only: bool = False
    summary_only: bool = False

    def shown(self, cap: CaptureReport) -> list[Session]:
        if self.summary_only:
            return []
        out = cap.sessions
        if self.sessions:
            out = [s for s in out if s.index in self.sessions]
        if self.errors_only:
            out = [s for s in out if worst_severity(s) == "error"]
        return out

    def note(self, cap: CaptureReport) -> Optional[str]:
        """What was left out, said in the report itself."""
        shown = len(self.shown(cap))
        if shown == len(cap.sessions):
            return None
        why = []
        if self.summary_only:
            why.append("--summary")
        if self.sessions:
            why.append("--session " + ",".join(str(i) for i in self.sessions))
        if self.errors_only:
            why.append("--errors-only")
        return f"Showing {shown} of {plural(len(cap.sessions), 'session')} ({' '.join(why)})."


SUMMARY_FROM = 6  # a capture with more sessions than a handful opens with a summary


def capture_summary_lines(cap: CaptureReport) -> list[str]:
    """A capture's sessions counted by severity, top finding, handshake and close (each line
    sums to the number of sessions), with example session numbers."""
    from .summary import GROUPS, cross_summary
    summary = cross_summary([cap])
    lines = [f"{plural(summary['sessions'], 'session')} ({summary['websocket_sessions']} WebSocket): "
             f"{summary['sessions_with_errors']} with errors, {summary['sessions_with_warnings']} with "
             f"warnings only, {summary['sessions_ok']} without either."]
    for key, title in GROUPS:
        parts = []
        for g in summary[key]:
            examples = ", ".join(f"#{e['session']}" for e in g["examples"])
            more = " …" if g["sessions"] > len(g["examples"]) else ""
            parts.append(f"{g['key']} {g['sessions']} ({examples}{more})")
        lines.append(f"By {title}: " + "; ".join(parts) + ".")
    return lines
