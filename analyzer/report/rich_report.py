"""The terminal report (rich): a summary table, then one panel per session."""
from __future__ import annotations

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..model import CLIENT, SERVER, CaptureReport, Report, Session
from . import egress_text
from .text import (clock, close_summary, duration, finding_counts, frames_summary,
                   handshake_summary, sorted_findings)

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
INTERESTING_HEADERS = ("host", "authorization", "sec-websocket-protocol", "sec-websocket-extensions",
                       "user-agent", "dg-request-id", "dg-error", "dg-model-name", "content-type")


def render_rich(report: Report, console: Console, transcript: bool = False) -> None:
    for cap in report.captures:
        _capture(cap, console, transcript)


def _capture(cap: CaptureReport, console: Console, transcript: bool) -> None:
    title = Text.assemble(("Capture ", "bold"), (cap.path, "bold magenta"))
    console.rule(title)
    if cap.error:
        console.print(Text(f"Could not read: {cap.error}", style="bold red"))
        return
    console.print(
        f"{cap.format}{' (gzip)' if cap.compressed else ''}, {cap.packets} packets, "
        f"{clock(cap.first_time, date=True)} to {clock(cap.last_time)} UTC "
        f"({duration(cap.first_time, cap.last_time)}), {len(cap.sessions)} session(s)",
        highlight=False)
    for line in egress_text.deepgram_headline(cap):
        console.print(Text(line, style="bold"), highlight=False)
    connections = egress_text.connections_line(cap)
    if connections:
        console.print(connections, highlight=False)
    others = egress_text.other_rows(cap)
    if others:
        t = Table(title="Other connections", title_justify="left", expand=False)
        for col in egress_text.OTHER_COLUMNS:
            t.add_column(col, overflow="fold")
        for row in others:
            t.add_row(*row)
        console.print(t)
    engine = cap.stats.get("engine") or {}
    if engine.get("name") not in (None, "native"):
        console.print(Text(f"Built by the {engine['name']} engine {engine.get('version', '')}".rstrip(),
                           style="dim"))
    for f in cap.findings:
        console.print(Text(f"[{f.severity}] {f.id}: {f.message}", style=SEVERITY_STYLE.get(f.severity, "")))
    if not cap.sessions:
        console.print(Text("No WebSocket sessions or upgrade attempts found.", style="dim"))
        return
    console.print(_summary_table(cap))
    for s in cap.sessions:
        console.print(_session_panel(s, transcript))


def _summary_table(cap: CaptureReport) -> Table:
    t = Table(title="Sessions", title_justify="left", show_lines=False, expand=False)
    for col in ("#", "client → server", "server name", "endpoint", "transport", "handshake",
                "dg-request-id", "frames C/S", "close", "findings"):
        t.add_column(col, overflow="fold")
    for s in cap.sessions:
        c = finding_counts(s)
        badge = Text()
        if c["error"]:
            badge.append(f"{c['error']} error ", style="bold red")
        if c["warning"]:
            badge.append(f"{c['warning']} warn ", style="yellow")
        if c["info"]:
            badge.append(f"{c['info']} info", style="cyan")
        t.add_row(str(s.index), f"{s.client} → {s.server}", s.server_name.name if s.server_name else "-",
                  s.endpoint or "-", s.transport,
                  handshake_summary(s), s.handshake.dg_request_id or "-", frames_summary(s),
                  close_summary(s), badge if badge.plain else Text("ok", style="green"))
    return t


def _session_panel(s: Session, transcript: bool) -> Panel:
    parts = []
    for line in (egress_text.egress_line(s), egress_text.copy_line(s)):
        if line:
            parts.append(Text(line, style="bold"))
    diagnosis = s.diagnosis
    if diagnosis:
        worst = min((f.severity for f in s.findings), key=lambda x: {"error": 0, "warning": 1}.get(x, 2),
                    default="info")
        parts.append(Text(diagnosis, style="bold red" if worst == "error" else
                          "bold yellow" if worst == "warning" else "bold green"))
    parts.append(_handshake(s))
    if s.websocket:
        parts.append(_frames_table(s))
    if s.gaps:
        parts.append(_gaps_table(s))
    parts.append(_close(s))
    if s.findings:
        parts.append(_findings(s))
    explained = _explanation(s)
    if explained is not None:
        parts.append(explained)
    if transcript and s.transcript:
        parts.append(Text.assemble(("Transcript: ", "bold"), s.transcript))
    title = f"Session {s.index}: {s.client} → {s.server}  (tcp.stream {s.tcp_stream}, {s.transport})"
    return Panel(Group(*parts), title=escape(title), title_align="left")


def _handshake(s: Session) -> Table:
    hs = s.handshake
    t = Table.grid(padding=(0, 1))
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    if hs.request_frame is not None:
        t.add_row("Request", Text(f"{hs.method} {hs.target}  (No. {hs.request_frame}, {clock(hs.request_time)})"))
    elif s.midstream:
        t.add_row("Request", Text("not in the capture (connection picked up mid-stream)"))
    if hs.status is not None:
        t.add_row("Response", Text(f"{hs.status} {hs.reason or ''}  (No. {hs.response_frame}, "
                                   f"{clock(hs.response_time)})"))
    elif hs.request_frame is not None:
        t.add_row("Response", Text("none in the capture", style="red"))
    if hs.dg_request_id:
        t.add_row("dg-request-id", Text(hs.dg_request_id))
    if hs.dg_error:
        t.add_row("dg-error", Text(hs.dg_error, style="red"))
    if hs.body:
        t.add_row("Body", Text(hs.body[:500]))
    for name, value in hs.request_headers:
        if name.lower() in INTERESTING_HEADERS:
            t.add_row(f"> {name}", Text(value))
    for name, value in hs.response_headers:
        if name.lower() in INTERESTING_HEADERS and name.lower() not in ("dg-request-id", "dg-error"):
            t.add_row(f"< {name}", Text(value))
    if hs.deflate:
        t.add_row("Compression", Text("permessage-deflate " + ", ".join(
            f"{k}={v}" for k, v in hs.deflate.items())))
    return t


def _frames_table(s: Session) -> Table:
    t = Table(title="Frames", title_justify="left", box=None, pad_edge=False)
    for col in ("", "text", "binary", "empty bin", "cont", "ping", "pong", "close", "payload bytes",
                "first", "last"):
        t.add_column(col, justify="right" if col else "left")
    for name, c in (("client", s.frames[CLIENT]), ("server", s.frames[SERVER])):
        t.add_row(name, str(c.text), str(c.binary), str(c.empty_binary), str(c.continuation), str(c.ping),
                  str(c.pong), str(c.close), f"{c.payload_bytes:,}",
                  f"No. {c.first_frame}" if c.first_frame else "-",
                  f"No. {c.last_frame}" if c.last_frame else "-")
    return t


def _gaps_table(s: Session) -> Table:
    t = Table(title="Client silences over the threshold", title_justify="left", box=None, pad_edge=False)
    for col in ("kind", "seconds", "from", "to", "ended by"):
        t.add_column(col)
    for g in s.gaps:
        t.add_row(g.kind, f"{g.seconds:.3f}", f"No. {g.after_frame} {clock(g.start)}",
                  f"{'No. ' + str(g.before_frame) if g.before_frame else '-'} {clock(g.end)}", g.ended_by)
    return t


def _close(s: Session) -> Table:
    t = Table.grid(padding=(0, 1))
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    c = s.close
    for name, cf in (("Client close", c.client), ("Server close", c.server)):
        if cf is not None:
            code = cf.code if cf.code is not None else "(empty)"
            t.add_row(name, Text(f"{code} {cf.reason!r}  (No. {cf.frame}, {clock(cf.time)})"))
    if c.initiator:
        t.add_row("Closed first by", c.initiator)
    end = {"fin": "FIN", "rst": "RST", "open": "still open at the end of the capture"}[c.tcp_end]
    if c.tcp_end != "open":
        end += f" from the {c.tcp_end_by} (No. {c.tcp_end_frame}, {clock(c.tcp_end_time)})"
    t.add_row("TCP end", end)
    later = c.later_rst
    if later is not None:
        t.add_row("Later RST", f"from the {later.by} (No. {later.frame}, {clock(later.time)}), "
                  f"{later.time - c.tcp_end_time:.1f} s after the {c.tcp_end.upper()}")
    return t


def _findings(s: Session) -> Table:
    t = Table(title="Findings", title_justify="left", box=None, pad_edge=False, show_header=False)
    t.add_column(no_wrap=True)
    t.add_column(no_wrap=True)
    t.add_column(overflow="fold")
    for f in sorted_findings(s.findings):
        t.add_row(Text(f.severity, style=SEVERITY_STYLE.get(f.severity, "")), Text(f.id, style="bold"),
                  Text(f.message))
        if f.display_filter:
            t.add_row("", "", Text(f"filter: {f.display_filter}", style="dim"))
    return t


def _explanation(s: Session):
    """Deepgram's explanation of the server's close code, with next steps (report/content.py)."""
    from .content import explanation
    x = explanation(s)
    if x is None:
        return None
    lines = [Text.assemble(("Deepgram: ", "bold"), (x.heading, "bold"))]
    if x.text:
        lines.append(Text(x.text))
    if x.evidence:
        lines.append(Text.assemble(("In this capture: ", "bold"), x.evidence))
    if x.steps:
        lines.append(Text("Next steps:", style="bold"))
        lines += [Text(f"  {i}. {step}") for i, step in enumerate(x.steps, 1)]
    if x.link:
        lines.append(Text(f"More: {x.link}", style="dim"))
    return Group(*lines)
