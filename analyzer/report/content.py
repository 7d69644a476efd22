"""What a report says, independent of how it is drawn.

The Markdown and HTML renderers take their text from here so that every format
carries the same content as the terminal report (rich_report.py): capture line,
sessions table, and per session the diagnosis, handshake, frames, gaps, close,
findings (with their Wireshark display filters), Deepgram's explanation and next
steps, TLS and stream details.  Values are plain, unescaped strings: escaping is
the renderer's job (everything here may come from a hostile capture).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ..model import CLIENT, SERVER, CaptureReport, Finding, Session
from .text import (clock, close_summary, duration, finding_counts, frames_summary,
                   handshake_summary, sorted_findings)

SEVERITIES = ("error", "warning", "info")
SESSION_COLUMNS = ("#", "client → server", "server name", "endpoint", "transport", "handshake",
                   "dg-request-id", "frames C/S", "close", "findings")
FRAME_COLUMNS = ("", "text", "binary", "empty bin", "cont", "ping", "pong", "close", "payload bytes",
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
            str(s.extra.get("endpoint") or "-"), s.transport,
            handshake_summary(s), s.handshake.dg_request_id or "-", frames_summary(s), close_summary(s),
            findings_badge(s)]


def frame_ref(frame: Optional[int], ts: Optional[float]) -> str:
    return f"No. {frame}, {clock(ts)}" if frame is not None else clock(ts)


def handshake_rows(s: Session) -> list[Row]:
    hs = s.handshake
    rows: list[Row] = []
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
             f"{'No. ' + str(g.before_frame) if g.before_frame else '-'} {clock(g.end)}", g.ended_by]
            for g in s.gaps]


def close_rows(s: Session) -> list[Row]:
    c = s.close
    rows = []
    for name, cf in (("Client close", c.client), ("Server close", c.server)):
        if cf is not None:
            code = str(cf.code) if cf.code is not None else "(empty)"
            rows.append(Row(name, f"{code} {cf.reason!r}", frame_ref(cf.frame, cf.time),
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
    x = (s.extra.get("deepgram") or {}).get("close_explanation")
    if not isinstance(x, dict):
        return None
    code, name = x.get("code"), x.get("name")
    label = f"{code}" if name in (None, "normal") else f"{code} {name}"
    heading = f"{label}: {x.get('title')}" if x.get("title") else label
    steps = [str(step) for step in x.get("steps") or []]
    return Explanation(heading, str(x.get("explanation") or ""), str(x.get("evidence") or ""), steps,
                       safe_link(x.get("link")) or safe_link(x.get("doc")), x.get("frame"), x.get("time"))


def deepgram_rows(s: Session) -> list[Row]:
    """Other Deepgram-layer conclusions: the handshake cause, parameter problems, server errors."""
    dg = s.extra.get("deepgram") or {}
    rows = []
    cause = dg.get("handshake_cause")
    if isinstance(cause, dict) and cause.get("message"):
        rows.append(Row("Handshake cause", str(cause["message"]), style="error"))
    for p in dg.get("param_problems") or []:
        if isinstance(p, dict):
            text = f"{p.get('param')}={p.get('value')}: {p.get('message')}"
            if p.get("breaks"):
                text += f" ({p['breaks']})"
            rows.append(Row("Parameter", text, style="error" if p.get("severity") == "error" else ""))
    errors = dg.get("server_errors") or {}
    if errors.get("count"):
        rows.append(Row("Server Error messages", str(errors["count"]),
                        frame_ref(errors.get("first_frame"), errors.get("first_time")), "error"))
    warnings = dg.get("server_warnings") or {}
    if warnings.get("count"):
        rows.append(Row("Server Warning messages", str(warnings["count"]),
                        frame_ref(warnings.get("first_frame"), warnings.get("first_time"))))
    rid = dg.get("request_id")
    if rid and rid != s.handshake.dg_request_id:
        rows.append(Row("Request id (Metadata)", str(rid), style="code"))
    return rows


def _counts(d: Any) -> str:
    if not isinstance(d, dict) or not d:
        return "none"
    return ", ".join(f"{k} {v}" for k, v in d.items())


def stream_rows(s: Session) -> list[Row]:
    """Audio, messages, results and latency from the Deepgram layer (when it ran)."""
    rows = []
    if s.extra.get("endpoint"):
        rows.append(Row("Endpoint", str(s.extra["endpoint"])))
    audio = s.extra.get("audio")
    if isinstance(audio, dict) and s.websocket:
        fmt = [str(audio[k]) for k in ("encoding",) if audio.get(k)]
        if audio.get("sample_rate"):
            fmt.append(f"{audio['sample_rate']} Hz")
        if audio.get("channels"):
            fmt.append(f"{audio['channels']} ch")
        if audio.get("format"):
            fmt.append(f"sniffed {audio['format']}")
        text = f"{audio.get('bytes', 0):,} bytes in {audio.get('chunks', 0)} chunks"
        if audio.get("seconds") is not None:
            text += f" = {audio['seconds']} s"
        if audio.get("realtime_factor") is not None:
            text += f", real-time factor {audio['realtime_factor']}"
        chunk = audio.get("chunk_ms")
        if isinstance(chunk, dict):
            text += f", chunks every {chunk.get('median')} ms (median)"
        rows.append(Row("Audio", (" ".join(fmt) + ": " if fmt else "") + text))
        server = audio.get("server") or {}
        if server.get("frames"):
            rows.append(Row("Server audio", f"{server.get('bytes', 0):,} bytes in {server['frames']} frames",
                            frame_ref(server.get("first_frame"), server.get("first_time"))))
    messages = s.extra.get("messages")
    if isinstance(messages, dict) and s.websocket:
        rows.append(Row("Client messages", _counts(messages.get("client"))))
        rows.append(Row("Server messages", _counts(messages.get("server"))))
    dg = s.extra.get("deepgram") or {}
    results = dg.get("results")
    if isinstance(results, dict) and (results.get("final") or results.get("interim")):
        text = f"{results.get('final', 0)} final, {results.get('interim', 0)} interim"
        if results.get("mean_confidence") is not None:
            text += f", mean confidence {results['mean_confidence']}"
        rows.append(Row("Results", text, frame_ref(results.get("first_frame"), results.get("first_time"))))
    meta = dg.get("metadata")
    if isinstance(meta, dict):
        rows.append(Row("Metadata", f"duration {meta.get('duration')} s, {meta.get('channels')} channel(s)",
                        frame_ref(meta.get("frame"), meta.get("time"))))
    latency = s.extra.get("latency")
    if isinstance(latency, dict) and latency.get("samples"):
        rows.append(Row("Latency", f"p50 {latency.get('p50')} s, p95 {latency.get('p95')} s, "
                        f"max {latency.get('max')} s ({latency['samples']} samples)"))
    return rows


def tls_rows(s: Session) -> list[Row]:
    tls = s.extra.get("tls")
    if not isinstance(tls, dict):
        return []
    rows = [Row("TLS", " ".join(str(x) for x in (tls.get("version"), tls.get("cipher_suite")) if x) or "?")]
    if tls.get("sni"):
        rows.append(Row("SNI", str(tls["sni"]), style="code"))
    if tls.get("alpn"):
        rows.append(Row("ALPN", str(tls["alpn"])))
    if tls.get("resumed"):
        rows.append(Row("Resumed", "yes"))
    dec = tls.get("decryption")
    text = str(dec or "-")
    if tls.get("decryption_error"):
        text += f": {tls['decryption_error']}"
    rows.append(Row("Decryption", text, style="" if dec == "ok" else "error"))
    alerts = tls.get("alerts") or []
    if alerts:
        rows.append(Row("Alerts", ", ".join(
            f"{a.get('direction')} level {a.get('level')} description {a.get('description')} (No. {a.get('frame')})"
            for a in alerts[:8] if isinstance(a, dict))))
    if tls.get("note"):
        rows.append(Row("Note", str(tls["note"]), style="muted"))
    return rows


def transcript(s: Session) -> str:
    t = s.extra.get("transcript")
    return t if isinstance(t, str) else ""
