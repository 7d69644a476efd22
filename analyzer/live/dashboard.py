"""The live dashboard (rich): a status line, one row per session, recent findings."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..egress import human_rate
from ..report.text import SEVERITY_ORDER
from .state import RATE_WINDOW, LiveState, SessionView

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
SILENT_STYLE = {"ok": "green", "warn": "bold yellow", "silent": "bold white on red"}
SILENT_MARK = "SILENT"
MAX_ROWS = 20
MAX_FINDINGS = 6
LEGEND = (f"silent: since the client's last audio or text frame (Deepgram's NET-0001 clock; pings and pongs "
          f"do not reset it). audio: payload bytes/s, inflated, over the last {RATE_WINDOW:g} s (the whole "
          f"stream once it ended)")
COLUMNS = (("#", "right"), ("client → server", "left"), ("endpoint", "left"), ("handshake", "left"),
           ("dg-request-id", "left"), ("audio", "right"), ("RTF", "right"), ("silent", "right"),
           ("pings", "right"), ("srv msgs", "right"), ("close", "left"))


@dataclass
class Status:
    """The capture itself, for the first line."""
    interface: str
    bpf: str
    elapsed: float = 0.0
    packets: int = 0
    writing: Optional[str] = None  # file being written
    written: int = 0
    keylog: Optional[str] = None
    keys: int = 0
    state: str = "capturing"  # capturing | stopping | stopped
    lag: float = 0.0
    note: Optional[str] = None


def fmt_rate(rate: Optional[float]) -> str:
    return "-" if rate is None else human_rate(rate)


def fmt_size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


def tenths(seconds: float) -> str:
    """Seconds cut (not rounded) to tenths: 2.96 s shows 2.9 s, so the colour changes exactly
    when the shown value reaches half the threshold, and red never shows a value below it."""
    return f"{math.floor(seconds * 10 + 1e-9) / 10:.1f} s"


def silent_text(v: SessionView) -> Text:
    if v.silent is None:
        return Text("-", style="dim")
    text = Text(tenths(v.silent), style=SILENT_STYLE[v.silent_level])
    if v.silent_level == "silent":
        text.append(f" {SILENT_MARK}", style="bold red")
    return text


def pings_text(v: SessionView) -> Text:
    """Client pings and pongs: shown so a reader sees the connection is alive while the
    silent counter (data frames only) keeps running."""
    if not v.pings:
        return Text("-", style="dim")
    age = f" ({tenths(v.ping_age)} ago)" if v.ping_age is not None else ""
    return Text(f"{v.pings}{age}")


def short_handshake(v: SessionView) -> str:
    return "101" if v.status == 101 else v.handshake


def _handshake_style(v: SessionView) -> str:
    if v.status == 101:
        return "green"
    if v.status is not None and v.status >= 300:
        return "bold red"
    return "yellow"


def _close_style(v: SessionView) -> str:
    if v.close == "open":
        return "dim"
    if v.close_code in (1000, None) and "RST" not in v.close:
        return "green" if v.close_code == 1000 else ""
    return "bold red"


def status_line(st: Status, state: LiveState, sessions: int, active: int) -> Text:
    t = Text()
    t.append("dgcap watch ", style="bold")
    t.append(st.interface, style="bold magenta")
    t.append(f"  filter: {st.bpf}", style="dim")
    t.append(f"  {int(st.elapsed) // 60:02d}:{int(st.elapsed) % 60:02d}")
    t.append(f"  {st.packets} packets")
    t.append(f"  {sessions} session(s), {active} active")
    counts = state.finding_counts
    if counts.get("error"):
        t.append(f"  {counts['error']} error(s)", style="bold red")
    if counts.get("warning"):
        t.append(f"  {counts['warning']} warning(s)", style="yellow")
    if st.writing:
        t.append(f"\nwriting {st.writing} ({fmt_size(st.written)})", style="dim")
    if st.keylog:
        t.append(f"\nkey log {st.keylog}: {st.keys} connection(s) known"
                 + (f"; view {st.lag:.1f} s behind so keys can arrive" if st.lag else ""), style="dim")
    if st.state != "capturing":
        t.append(f"\n{st.state}…", style="bold yellow")
    if st.note:
        t.append(f"\n{st.note}", style="bold yellow")
    return t


def sessions_table(views: list[SessionView], threshold: float) -> Table:
    t = Table(title=f"Sessions (silence: yellow at {threshold / 2:g} s, red over {threshold:g} s)",
              title_justify="left", expand=False, pad_edge=False)
    for name, justify in COLUMNS:
        t.add_column(name, justify=justify, overflow="fold",
                     no_wrap=name in ("silent", "audio", "close", "RTF", "#", "pings"))
    shown = _rows(views)
    hidden = len(views) - len(shown)
    if hidden:
        t.add_row("", Text(f"… {hidden} earlier ended session(s)", style="dim"), *[""] * (len(COLUMNS) - 2))
    for v in shown:
        t.add_row(
            str(v.number),
            Text(pair(v.client, v.server), style="dim" if v.ended else ""),
            v.endpoint + ("" if v.transport == "tcp" else f" ({'tls' if v.transport == 'tls' else 'tls, decrypted'})"),
            Text(short_handshake(v), style=_handshake_style(v)),
            v.request_id or "-",
            fmt_rate(v.rate),
            f"{v.realtime_factor:.2f}×" if v.realtime_factor is not None else "-",
            silent_text(v),
            pings_text(v),
            str(v.server_messages),
            Text(v.close, style=_close_style(v)),
        )
    return t


def pair(client: str, server: str) -> str:
    """client → server, without repeating the host when both ends share it (loopback)."""
    c_host, _, _ = client.rpartition(":")
    s_host, _, s_port = server.rpartition(":")
    if c_host and c_host == s_host:
        return f"{client} → :{s_port}"
    return f"{client} → {server}"


def _rows(views: list[SessionView]) -> list[SessionView]:
    """Active sessions always; ended ones most recent first, up to MAX_ROWS rows."""
    if len(views) <= MAX_ROWS:
        return views
    active = [v for v in views if not v.ended]
    room = max(0, MAX_ROWS - len(active))
    ended = [v for v in views if v.ended][-room:] if room else []
    keep = {id(v) for v in active + ended}
    return [v for v in views if id(v) in keep]


def findings_table(state: LiveState) -> Optional[Table]:
    recent = state.recent_findings(MAX_FINDINGS)
    if not recent:
        return None
    t = Table(title="Recent findings", title_justify="left", box=None, pad_edge=False, show_header=False)
    t.add_column(no_wrap=True)
    t.add_column(no_wrap=True)
    t.add_column(no_wrap=True)
    t.add_column(overflow="fold")
    for number, f in sorted(recent, key=lambda x: (x[0], SEVERITY_ORDER.get(x[1].severity, 3))):
        t.add_row(f"#{number}", Text(f.severity, style=SEVERITY_STYLE.get(f.severity, "")),
                  Text(f.id, style="bold"), f.message)
    return t


def render(status: Status, state: LiveState, views: list[SessionView]) -> Group:
    active = sum(1 for v in views if not v.ended)
    parts = [status_line(status, state, len(views), active)]
    if views:
        parts.append(sessions_table(views, state.gap_threshold))
        parts.append(Text(LEGEND, style="dim"))
    else:
        parts.append(Text("No WebSocket session yet: start your client.", style="dim"))
    f = findings_table(state)
    if f is not None:
        parts.append(f)
    return Group(*parts)
