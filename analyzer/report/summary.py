"""The cross-capture summary shown first when a report covers several captures.

Counts sessions by what went wrong: the top finding of each session (most severe,
then earliest; "none" when it has no finding), the handshake status, and how the
WebSocket ended.  Every group sums to the number of sessions.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from ..model import CaptureReport, Session
from .text import handshake_summary, sorted_findings

MAX_EXAMPLES = 3
GROUPS = (("by_top_finding", "top finding"), ("by_handshake", "handshake"), ("by_close", "close"))


def top_finding(s: Session) -> str:
    ordered = sorted_findings(s.findings)
    return ordered[0].id if ordered else "none"


def handshake_kind(s: Session) -> str:
    return handshake_summary(s, none="none", reason=False)


def close_kind(s: Session) -> str:
    if not s.websocket:
        return "no WebSocket"
    c = s.close
    first = c.client if c.initiator == "client" else c.server if c.initiator == "server" else None
    if first is not None:
        code = first.code if first.code is not None else "empty"
        return f"{code} from {c.initiator}"
    if c.tcp_end == "open":
        return "no close frame, still open"
    return f"no close frame, TCP {c.tcp_end.upper()}"


def session_ref(cap_index: int, cap: CaptureReport, s: Session) -> dict:
    return {"capture": cap_index, "path": cap.path, "session": s.index}


def cross_summary(captures: list[CaptureReport]) -> dict[str, Any]:
    """Counts over every session of every capture (plain JSON)."""
    sessions = [(ci, cap, s) for ci, cap in enumerate(captures) for s in cap.sessions]
    out: dict[str, Any] = {
        "captures": len(captures),
        "unreadable": sum(1 for c in captures if c.error),
        "capture_findings": sum(len(c.findings) for c in captures),
        "sessions": len(sessions),
        "websocket_sessions": sum(1 for _, _, s in sessions if s.websocket),
        "sessions_with_errors": sum(1 for _, _, s in sessions if any(f.severity == "error" for f in s.findings)),
        "sessions_with_warnings": sum(
            1 for _, _, s in sessions
            if any(f.severity == "warning" for f in s.findings) and not any(f.severity == "error" for f in s.findings)),
    }
    out["sessions_ok"] = out["sessions"] - out["sessions_with_errors"] - out["sessions_with_warnings"]
    for key, fn in (("by_top_finding", top_finding), ("by_handshake", handshake_kind), ("by_close", close_kind)):
        counts: Counter = Counter()
        examples: dict[str, list] = {}
        severity: dict[str, str] = {}
        for ci, cap, s in sessions:
            k = fn(s)
            counts[k] += 1
            ex = examples.setdefault(k, [])
            if len(ex) < MAX_EXAMPLES:
                ex.append(session_ref(ci, cap, s))
            if key == "by_top_finding" and s.findings:
                severity[k] = sorted_findings(s.findings)[0].severity
        groups = []
        for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            g = {"key": k, "sessions": n, "examples": examples[k]}
            if key == "by_top_finding":
                g["severity"] = severity.get(k)
            groups.append(g)
        out[key] = groups
    return out


def example_text(g: dict) -> str:
    return ", ".join(f"{e['path']} #{e['session']}" for e in g["examples"]) + \
        (" …" if g["sessions"] > len(g["examples"]) else "")


def headline(summary: dict) -> str:
    return (f"{summary['captures']} captures ({summary['unreadable']} unreadable), "
            f"{summary['sessions']} sessions ({summary['websocket_sessions']} WebSocket): "
            f"{summary['sessions_with_errors']} with errors, {summary['sessions_with_warnings']} with warnings "
            f"only, {summary['sessions_ok']} without either")


def render_summary_rich(summary: dict, console) -> None:
    from rich.table import Table
    from rich.text import Text
    console.rule(Text(f"Summary of {summary['captures']} captures", style="bold"))
    console.print(Text(headline(summary)))
    for key, title in GROUPS:
        t = Table(title=f"Sessions by {title}", title_justify="left")
        t.add_column(title, overflow="fold")
        t.add_column("sessions", justify="right")
        t.add_column("e.g.", overflow="fold")
        for g in summary[key]:
            style = {"error": "bold red", "warning": "yellow", "info": "cyan"}.get(g.get("severity") or "", "")
            t.add_row(Text(g["key"], style=style), str(g["sessions"]), Text(example_text(g)))
        console.print(t)
