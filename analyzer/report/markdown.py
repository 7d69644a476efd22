"""The Markdown report (GitHub-flavoured): the rich report's content as text for a ticket.

Everything taken from a capture is escaped: in running text and table cells the
Markdown/HTML metacharacters get a backslash (``\\|``, ``\\[``, ``\\<``...) and newlines
become spaces; code spans use a backtick fence longer than any run inside; blocks
(error bodies) go in fenced code blocks whose fence cannot occur in the content.
"""
from __future__ import annotations

import re
from typing import Optional

from .. import __version__
from ..model import CaptureReport, Report, Session
from . import content as C
from . import egress_text
from .summary import GROUPS, headline
from .text import clock

# Backslash-escapable ASCII punctuation that can start Markdown or HTML constructs.
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
# Only at the start of a line: headings, block quotes, lists, setext underlines.
_LINE_START = re.compile(r"\A([#>+=-]|\d+(?=[.)]))")
_NEWLINES = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def _flat(text) -> str:
    return _CONTROL.sub("\ufffd", _NEWLINES.sub(" ", "" if text is None else str(text)))


def esc(text) -> str:
    """Text inside a line or a table cell: one line, nothing interpreted."""
    return _SPECIAL.sub(r"\\\1", _flat(text))


def para(text) -> str:
    """Text that starts a line (or a list item's line): no heading, quote or list either."""
    t = esc(text)
    m = _LINE_START.match(t)
    if m:
        t = t[:m.end()] + "\\" + t[m.end():] if m.group(1)[0].isdigit() else "\\" + t
    return t


def code(text, cell: bool = False) -> str:
    """An inline code span that shows `text` literally (in a table cell when `cell`)."""
    t = _flat(text)
    longest = max((len(m) for m in re.findall(r"`+", t)), default=0)
    fence = "`" * (longest + 1)
    if t.startswith("`") or t.endswith("`") or (t.startswith(" ") and t.endswith(" ") and t.strip()):
        t = f" {t} "
    if cell:
        # GFM splits table cells on | before parsing code spans; \| is read as a literal |.
        t = t.replace("|", "\\|")
    return f"{fence}{t}{fence}" if t else "` `"


def block(text: str, lang: str = "") -> str:
    """A fenced code block that the content cannot close."""
    t = _CONTROL.sub("\ufffd", text.replace("\r\n", "\n").replace("\r", "\n"))
    longest = max((len(m) for m in re.findall(r"`{3,}|~{3,}", t)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{t}\n{fence}"


def _table(columns, rows) -> list[str]:
    out = ["| " + " | ".join(esc(c) if c else " " for c in columns) + " |",
           "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        out.append("| " + " | ".join(row) + " |")
    return out


def _kv(rows: list[C.Row]) -> list[str]:
    if not rows:
        return []
    out = []
    for r in rows:
        value = code(r.value, cell=True) if r.style == "code" else esc(r.value)
        if r.style == "error":
            value = f"**{value}**"
        if r.note:
            value += f" ({esc(r.note)})"
        out.append([esc(r.label), value])
    return _table(("", ""), out) + [""]


def _link(url: Optional[str]) -> str:
    safe = C.safe_link(url)
    return f"<{safe}>" if safe else esc(url)


def _findings(items: list[C.FindingItem]) -> list[str]:
    out = []
    for f in items:
        out.append(f"{f.number}. **{esc(f.severity)}** {code(f.id)} — {esc(f.frames)} at {esc(f.time)}  ")
        out.append(f"   {para(f.message)}  ")
        out.append(f"   Wireshark filter: {code(f.display_filter)}")
    return out + [""]


def _explanation(x: C.Explanation) -> list[str]:
    out = [f"**Deepgram: {esc(x.heading)}**", ""]
    if x.frame is not None:
        out += [f"Server close at No. {x.frame}, {esc(clock(x.time))}.", ""]
    if x.text:
        out += [para(x.text), ""]
    if x.evidence:
        out += [f"In this capture: {esc(x.evidence)}", ""]
    if x.steps:
        out += ["Next steps:", ""] + [f"- {para(step)}" for step in x.steps] + [""]
    if x.link:
        out += [f"More: {_link(x.link)}", ""]
    return out


def _session(s: Session, transcript: bool) -> list[str]:
    v = C.session_view(s, transcript)
    out = [f"### {esc(v.title)}", ""]
    if v.verdict:
        out += [f"> **{esc(v.severity)}:** {esc(v.verdict)}", ""]
    for line in v.lead:
        out += [f"**{esc(line)}**", ""]
    out += _kv(v.facts)
    for sec in v.sections:
        if sec.explanation is not None:
            out += _explanation(sec.explanation)
            continue
        out += [f"#### {esc(sec.title)}", ""]
        out += _kv(sec.rows)
        if sec.columns:
            if sec.title == "Headers":
                rows = [[esc(d), esc(n), code(val, cell=True)] for d, n, val in sec.grid]
            else:
                rows = [[esc(x) for x in r] for r in sec.grid]
            out += _table(sec.columns, rows) + [""]
        if sec.findings:
            out += _findings(sec.findings)
        if sec.text:
            out += [para(sec.text), ""]
        if sec.block:
            out += [block(sec.block), ""]
    return out


def _capture(cap: CaptureReport, transcript: bool, view: C.ViewOptions) -> list[str]:
    out = [f"## Capture {code(cap.path)}", ""]
    if cap.error:
        return out + [f"**Could not read:** {esc(cap.error)}", ""]
    out += [para(C.capture_line(cap)), ""]
    for line in egress_text.deepgram_headline(cap):
        out += [f"**{esc(line)}**", ""]
    connections = egress_text.connections_line(cap)
    if connections:
        out += [para(connections), ""]
    others = egress_text.other_rows(cap)
    if others:
        out += ["**Other connections**", ""]
        out += _table(egress_text.OTHER_COLUMNS, [[esc(v) for v in r] for r in others]) + [""]
    if cap.findings:
        out += _findings(C.finding_items(cap.findings))
    if not cap.sessions:
        return out + ["No WebSocket sessions or upgrade attempts found.", ""]
    if len(cap.sessions) >= C.SUMMARY_FROM or view.summary_only:
        out += ["**Summary**", ""] + [f"- {esc(line)}" for line in C.capture_summary_lines(cap)] + [""]
    note = view.note(cap)
    if note:
        out += [f"_{esc(note)}_", ""]
    out += ["**Sessions**", ""]
    out += _table(C.SESSION_COLUMNS, [[esc(v) for v in C.session_row(s)] for s in cap.sessions]) + [""]
    for s in view.shown(cap):
        out += _session(s, transcript)
    return out


def _summary(summary: dict) -> list[str]:
    out = [f"## Summary of {summary['captures']} captures", "", para(headline(summary)), ""]
    for key, title in GROUPS:
        out += [f"**Sessions by {esc(title)}**", ""]
        rows = [[code(g["key"], cell=True), str(g["sessions"]),
                 esc(", ".join(f"{e['path']} #{e['session']}" for e in g["examples"])
                     + (" …" if g["sessions"] > len(g["examples"]) else ""))] for g in summary[key]]
        out += _table((title, "sessions", "e.g."), rows) + [""]
    return out


def render_markdown(report: Report, transcript: bool = False, summary: Optional[dict] = None,
                    view: Optional[C.ViewOptions] = None) -> str:
    view = view or C.ViewOptions()
    opts = report.options or {}
    meta = [f"dgcap {__version__}", "schema dgcap.report/1"]
    if "gap_threshold" in opts:
        meta.append(f"gap threshold {opts['gap_threshold']:g} s")
    meta.append("secrets redacted" if opts.get("secrets_redacted", True)
                else "**SECRETS NOT REDACTED: do not attach to a ticket**")
    meta.append(f"{len(report.captures)} capture(s)")
    out = ["# dgcap report", "", " · ".join(meta), ""]
    if summary is not None:
        out += _summary(summary)
    for cap in report.captures:
        out += _capture(cap, transcript, view)
    out += ["---", "", "Frame numbers are Wireshark's \"No.\" column; paste a finding's filter into "
            "Wireshark's display filter bar to see its evidence. Times are UTC.", ""]
    return "\n".join(out)
