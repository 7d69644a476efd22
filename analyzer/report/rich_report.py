"""The terminal report (rich), drawn from the same content as Markdown and HTML (content.py).

Each session opens with its verdict and the facts behind it, then the details.  Tables
are drawn only when they fit the width; otherwise each row is stacked as "column value"
pairs, so an address, port, frame number or request id is never split across lines
(text wraps at spaces only, and none of those contain one).
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..model import CaptureReport, Report
from . import content as C
from . import egress_text

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan", "ok": "green"}
VERDICT_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan", "ok": "bold green"}
ROW_STYLE = {"error": "red", "muted": "dim", "code": "", "": ""}
INDENT = 2


def render_rich(report: Report, console: Console, transcript: bool = False,
                view: Optional[C.ViewOptions] = None) -> None:
    view = view or C.ViewOptions()
    for cap in report.captures:
        _capture(cap, console, transcript, view)


# A word for wrapping: non-blank characters, with a frame reference "No. 123" kept whole.
WORD = re.compile(r"(?:No\. \d|\S)+")


def wrap(text: Text, width: int) -> list[Text]:
    """`text` in lines of at most `width` cells, broken at spaces only (never inside an
    address, id or "No. N"); a single word longer than the width is folded."""
    plain = text.plain
    lines: list[Text] = []
    start = end = None
    for m in WORD.finditer(plain):
        a, b = m.span()
        while b - a > width:  # fold an over-long word
            if start is not None:
                lines.append(text[start:end])
                start = None
            lines.append(text[a:a + width])
            a += width
        if start is None:
            start, end = a, b
        elif cell_len(plain[start:b]) <= width:
            end = b
        else:
            lines.append(text[start:end])
            start, end = a, b
    if start is not None:
        lines.append(text[start:end])
    return lines or [Text("")]


def _line(console: Console, text, style: str = "", indent: int = 0, hang: int = 0) -> None:
    """Print `text` wrapped to the console width, `indent` cells in (continuations `hang` more)."""
    t = text if isinstance(text, Text) else Text(str(text), style=style)
    width = max(console.width - indent - hang, 20)
    for i, piece in enumerate(wrap(t, width)):
        pad = indent + (hang if i else 0)
        console.print(Text(" " * pad) + piece, highlight=False, no_wrap=True, overflow="ignore", crop=False)


def _capture(cap: CaptureReport, console: Console, transcript: bool, view: C.ViewOptions) -> None:
    console.rule(Text.assemble(("Capture ", "bold"), (cap.path, "bold magenta")))
    if cap.error:
        _line(console, f"Could not read: {cap.error}", "bold red")
        return
    _line(console, C.capture_line(cap))
    for line in egress_text.deepgram_headline(cap):
        _line(console, line, "bold")
    connections = egress_text.connections_line(cap)
    if connections:
        _line(console, connections)
    others = egress_text.other_rows(cap)
    if others:
        _grid(console, "Other connections", egress_text.OTHER_COLUMNS, others)
    engine = cap.stats.get("engine") or {}
    if engine.get("name") not in (None, "native"):
        _line(console, f"Built by the {engine['name']} engine {engine.get('version', '')}".rstrip(), "dim")
    for f in C.finding_items(cap.findings):
        _line(console, Text(f"[{f.severity}] {f.id}: {f.message}", style=SEVERITY_STYLE.get(f.severity, "")),
              hang=2)
    if not cap.sessions:
        _line(console, "No WebSocket sessions or upgrade attempts found.", "dim")
        return
    if len(cap.sessions) >= C.SUMMARY_FROM or view.summary_only:
        _line(console, "Summary", "bold")
        for line in C.capture_summary_lines(cap):
            _line(console, line, indent=INDENT)
    note = view.note(cap)
    if note:
        _line(console, note, "dim")
    shown = view.shown(cap)
    if len(shown) > 1 or (view.summary_only and cap.sessions):
        listed = shown if not view.summary_only else cap.sessions
        _grid(console, "Sessions", C.SESSION_COLUMNS, [C.session_row(s) for s in listed])
    for s in shown:
        _session(console, C.session_view(s, transcript))


def _session(console: Console, v: C.SessionView) -> None:
    console.print()
    _line(console, v.title, "bold reverse")
    verdict = v.verdict or "No finding: nothing went wrong that dgcap can see."
    _line(console, Text.assemble((v.severity.upper() if v.severity != "ok" else "OK", SEVERITY_STYLE[v.severity]),
                                 "  ", (verdict, VERDICT_STYLE[v.severity])))
    for line in v.lead:
        _line(console, line, "bold")
    _rows(console, v.facts)
    for section in v.sections:
        _section(console, section)


def _section(console: Console, sec: C.Section) -> None:
    if sec.explanation is not None:
        _explanation(console, sec.explanation)
        return
    _line(console, sec.title, "bold underline")
    if sec.rows:
        _rows(console, sec.rows, INDENT)
    if sec.columns:
        _grid(console, None, sec.columns, sec.grid, INDENT)
    if sec.findings:
        _findings(console, sec.findings, INDENT)
    if sec.text:
        _line(console, sec.text, indent=INDENT)
    if sec.block:
        for line in sec.block.splitlines() or [""]:
            _line(console, line, indent=INDENT)


def _rows(console: Console, rows: Sequence[C.Row], indent: int = 0) -> None:
    """Label/value lines; values wrap under themselves."""
    if not rows:
        return
    label_width = min(max(cell_len(r.label) for r in rows), 24) + 2
    for r in rows:
        line = Text(r.label.ljust(label_width), style="bold")
        line.append(r.value, style=ROW_STYLE.get(r.style, ""))
        if r.note:
            line.append(f" ({r.note})", style="dim")
        _line(console, line, indent=indent, hang=label_width)


def _indented(console: Console, renderable, indent: int) -> None:
    if indent:
        from rich.padding import Padding
        renderable = Padding(renderable, (0, 0, 0, indent))
    console.print(renderable)


def _grid(console: Console, title: Optional[str], columns: Sequence[str], rows: list[list[str]],
          indent: int = 0) -> None:
    """A table when its natural width fits, else one stacked block per row."""
    if title:
        _line(console, title, "bold underline", indent)
    widths = [max([cell_len(c)] + [cell_len(str(r[i])) for r in rows]) for i, c in enumerate(columns)]
    natural = indent + sum(widths) + 3 * len(columns) + 1
    if natural <= console.width:
        t = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 1))
        for col in columns:
            t.add_column(col, no_wrap=True, header_style="bold")
        for r in rows:
            t.add_row(*[str(x) for x in r])
        _indented(console, t, indent)
        return
    for r in rows:
        head = str(r[0])
        parts = [f"{col} {val}" for col, val in zip(columns[1:], r[1:]) if val not in ("", "-")]
        # "#3: ...", "tcp.stream 4: ...", or the row's own name ("client: ...")
        name = f"#{head}" if columns[0] == "#" else f"{columns[0]} {head}" if columns[0] else head
        text = Text(name, style="bold")
        text.append(": " + " · ".join(parts))
        _line(console, text, indent=indent, hang=2)


def _findings(console: Console, items: list[C.FindingItem], indent: int) -> None:
    for f in items:
        where = " at ".join(x for x in (f.frames, f.time) if x != "-")
        _line(console, Text.assemble((f.severity, SEVERITY_STYLE.get(f.severity, "")), " ", (f.id, "bold"),
                                     f"  {where}" if where else ""), indent=indent)
        _line(console, f.message, indent=indent + 2)
        if f.display_filter:
            _line(console, f"filter: {f.display_filter}", "dim", indent + 2)


def _explanation(console: Console, x: C.Explanation) -> None:
    _line(console, Text.assemble(("Deepgram: ", "bold"), (x.heading, "bold")))
    if x.frame is not None:
        _line(console, f"Server close at No. {x.frame}, {C.clock(x.time)}.", "dim", INDENT)
    if x.text:
        _line(console, x.text, indent=INDENT)
    if x.evidence:
        _line(console, Text.assemble(("In this capture: ", "bold"), x.evidence), indent=INDENT)
    if x.steps:
        _line(console, "Next steps:", "bold", INDENT)
        for i, step in enumerate(x.steps, 1):
            _line(console, f"{i}. {step}", indent=INDENT + 2)
    if x.link:
        _line(console, f"More: {x.link}", "dim", INDENT)


def console_width(requested: Optional[int], to_terminal: bool) -> Optional[int]:
    """--width, else the terminal's (COLUMNS too), else 120 for a file or a pipe."""
    if requested:
        return requested
    if to_terminal:
        return None
    import os
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else 120
