"""The HTML report: one self-contained file to attach to a support ticket.

No network fetches of any kind (a Content-Security-Policy of default-src 'none'
says so to the browser too): inline CSS, inline SVG timelines drawn in Python, no
script.  Light and dark mode follow prefers-color-scheme; @media print gives a
clean light document for a PDF.  Everything taken from a capture is escaped with
html.escape(quote=True).
"""
from __future__ import annotations

from html import escape
from typing import Optional

from .. import __version__
from ..model import CaptureReport, Report, Session
from . import content as C
from . import egress_text
from .summary import GROUPS, headline
from .timeline import legend_html, timeline_svg
from .text import clock, finding_counts

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root{--bg:#fff;--fg:#1d2330;--muted:#5d6675;--line:#d9dde5;--panel:#f6f7f9;--code:#eef0f4;
--err:#c62828;--err-bg:#fdecea;--warn:#a15c00;--warn-bg:#fff4e0;--info:#00739e;--info-bg:#e6f5fb;
--ok:#2e7d32;--ok-bg:#e8f5e9;--audio:#3f7fd8;--client:#2a9d8f;--server:#8e5bd6;--gap:#e06c3c;
--grid:#eceef2;--axis:#9aa2b1}
@media (prefers-color-scheme:dark){:root{--bg:#14171c;--fg:#e3e6eb;--muted:#9aa3b2;--line:#313743;
--panel:#1c2027;--code:#262b34;--err:#ff6b6b;--err-bg:#3a1f22;--warn:#f0b450;--warn-bg:#3a2f1c;
--info:#4fc3f7;--info-bg:#1a2f3a;--ok:#66bb6a;--ok-bg:#1d3320;--audio:#6ea2ef;--client:#4cc4b5;
--server:#b08cf0;--gap:#f08a5d;--grid:#232831;--axis:#5c6574}}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px;padding-top:10px;border-top:2px solid var(--line)}
h3{font-size:16px;margin:0 0 8px}h4{font-size:14px;margin:14px 0 6px}
code,.code{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--code);
border-radius:4px;padding:1px 4px;overflow-wrap:anywhere;white-space:pre-wrap}
.meta,.note,.muted{color:var(--muted)}.note{font-size:12.5px}
table{border-collapse:collapse;margin:6px 0 10px}th,td{text-align:left;vertical-align:top;padding:3px 10px 3px 0}
table.grid th{border-bottom:1px solid var(--line);font-weight:600;color:var(--muted);font-size:12.5px}
table.grid td{border-bottom:1px solid var(--line)}table.grid td.num,table.grid th.num{text-align:right}
table.kv th{font-weight:600;white-space:nowrap;padding-right:14px}
table.headers td,table.headers th{font-size:12.5px}
.session{border:1px solid var(--line);border-left:6px solid var(--ok);border-radius:8px;padding:14px 18px;
margin:16px 0;background:var(--panel)}
.session.sev-error{border-left-color:var(--err)}.session.sev-warning{border-left-color:var(--warn)}
.session.sev-info{border-left-color:var(--info)}
.diagnosis{font-weight:600;padding:8px 12px;border-radius:6px;margin:0 0 12px;background:var(--ok-bg);color:var(--ok)}
.diagnosis.sev-error{background:var(--err-bg);color:var(--err)}
.diagnosis.sev-warning{background:var(--warn-bg);color:var(--warn)}
.diagnosis.sev-info{background:var(--info-bg);color:var(--info)}
.v.error,.error{color:var(--err)}
.badge{display:inline-block;border-radius:10px;padding:0 7px;font-size:12px;font-weight:600;margin-right:3px}
.badge.error{background:var(--err-bg);color:var(--err)}.badge.warning{background:var(--warn-bg);color:var(--warn)}
.badge.info{background:var(--info-bg);color:var(--info)}.badge.ok{background:var(--ok-bg);color:var(--ok)}
.cols{display:flex;flex-wrap:wrap;gap:6px 36px}.cols>div{min-width:300px;flex:1 1 380px}
ol.findings{list-style:none;padding:0;margin:6px 0}
ol.findings li{padding:6px 10px;margin:6px 0;border-left:4px solid var(--info);background:var(--bg);border-radius:4px}
ol.findings li.sev-error{border-left-color:var(--err)}ol.findings li.sev-warning{border-left-color:var(--warn)}
.fnum{font-weight:700}.fhead{display:flex;flex-wrap:wrap;gap:4px 10px;align-items:baseline}
.filter{font-size:12.5px;color:var(--muted);margin-top:3px}
.explain{border:1px solid var(--line);border-radius:6px;padding:10px 14px;background:var(--bg);margin:10px 0}
.explain h4{margin-top:0}.explain ol{margin:4px 0 4px 20px;padding:0}
figure.chart{margin:8px 0 12px;padding:8px;border:1px solid var(--line);border-radius:6px;background:var(--bg)}
figure.chart figcaption{font-size:12px;color:var(--muted);margin-top:4px}
svg.tl{display:block;font:10px system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
svg.tl text{fill:var(--fg)}svg.tl .tick,svg.tl .rowsub{fill:var(--muted)}svg.tl .rowlabel{font-weight:600}
svg.tl .grid{stroke:var(--grid);stroke-width:1}svg.tl .axis{stroke:var(--axis);stroke-width:1}
svg.tl .audio{fill:var(--audio)}svg.tl .client{fill:var(--client)}svg.tl .server{fill:var(--server)}
svg.tl .gap rect{fill:var(--gap);fill-opacity:.16;stroke:var(--gap);stroke-opacity:.6;stroke-dasharray:3 2}
svg.tl .gap-audio rect{fill:var(--gap);fill-opacity:.10}
svg.tl .gaplabel{fill:var(--gap);font-weight:700}
svg.tl .m-results{stroke:var(--info);stroke-width:1.6}svg.tl .m-metadata{fill:var(--server)}
svg.tl .m-error{fill:var(--err)}svg.tl .m-warning{fill:var(--warn)}
svg.tl .m-keepalive{fill:var(--client)}svg.tl .m-finalize{fill:var(--warn)}
svg.tl .m-closestream{fill:var(--err)}svg.tl .m-other{fill:var(--axis)}
svg.tl .ev-open line{stroke:var(--ok);stroke-width:1.4;stroke-dasharray:4 3}svg.tl .ev-open text{fill:var(--ok)}
svg.tl .ev-close line{stroke:var(--server);stroke-width:1.6}svg.tl .ev-close text{fill:var(--server);font-weight:600}
svg.tl .ev-end line{stroke:var(--axis);stroke-width:1.6;stroke-dasharray:2 2}
svg.tl .ev-end.rst line{stroke:var(--err)}svg.tl .ev-end.rst text{fill:var(--err);font-weight:700}
svg.tl .pin circle{fill:var(--info);stroke:var(--bg);stroke-width:1.2}svg.tl .pin line{stroke:var(--info);stroke-width:1}
svg.tl .pin-error circle{fill:var(--err)}svg.tl .pin-error line{stroke:var(--err)}
svg.tl .pin-warning circle{fill:var(--warn)}svg.tl .pin-warning line{stroke:var(--warn)}
svg.tl .pin text{fill:#fff;font-weight:700;font-size:9.5px}
.legend{display:flex;flex-wrap:wrap;gap:2px 14px;font-size:12px;color:var(--muted);margin-top:4px}
.lg{display:inline-flex;align-items:center;gap:4px}.lg svg{display:inline-block}
a{color:var(--info)}
footer{margin-top:30px;font-size:12px;color:var(--muted)}
@media print{
:root{--bg:#fff;--fg:#000;--muted:#444;--line:#bbb;--panel:#fff;--code:#f1f1f1;--grid:#e6e6e6;--axis:#888}
body{padding:0;font-size:11.5px}*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
.session{break-before:page;border-width:1px 1px 1px 6px}
.capture:first-of-type .session:first-of-type{break-before:auto}
figure.chart,table,ol.findings li,.explain,.diagnosis{break-inside:avoid}
h2,h3,h4{break-after:avoid}a{color:inherit;text-decoration:none}}
"""


def h(x) -> str:
    return escape("" if x is None else str(x), quote=True)


def _badges(s: Session) -> str:
    c = finding_counts(s)
    out = [f'<span class="badge {sev}">{c[sev]} {label}</span>'
           for sev, label in (("error", "error"), ("warning", "warn"), ("info", "info")) if c.get(sev)]
    return "".join(out) or '<span class="badge ok">ok</span>'


def _kv(rows: list[C.Row]) -> str:
    if not rows:
        return ""
    out = ['<table class="kv">']
    for r in rows:
        cls = "v" + (f" {r.style}" if r.style else "")
        value = f'<code class="{cls}">{h(r.value)}</code>' if r.style == "code" else f'<span class="{cls}">{h(r.value)}</span>'
        note = f' <span class="note">({h(r.note)})</span>' if r.note else ""
        out.append(f"<tr><th>{h(r.label)}</th><td>{value}{note}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _grid(columns, rows, numeric_from: int = 1) -> str:
    head = "".join(f'<th class="{"num" if i >= numeric_from else ""}">{h(c)}</th>' for i, c in enumerate(columns))
    body = "".join("<tr>" + "".join(f'<td class="{"num" if i >= numeric_from else ""}">{h(v)}</td>'
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _link(url: Optional[str]) -> str:
    safe = C.safe_link(url)
    return f'<a href="{h(safe)}" rel="noreferrer">{h(safe)}</a>' if safe else h(url)


def _findings_html(items: list[C.FindingItem], key: str) -> str:
    out = ['<ol class="findings">']
    for f in items:
        out.append(
            f'<li class="sev-{h(f.severity)}" id="{h(key)}-f{f.number}"><div class="fhead">'
            f'<span class="fnum">F{f.number}</span><span class="badge {h(f.severity)}">{h(f.severity)}</span>'
            f'<code>{h(f.id)}</code><span class="note">{h(f.frames)} · {h(f.time)}</span></div>'
            f'<div class="fmsg">{h(f.message)}</div>'
            f'<div class="filter">Wireshark filter: <code>{h(f.display_filter)}</code></div></li>')
    out.append("</ol>")
    return "".join(out)


def _explain_html(x: C.Explanation) -> str:
    out = [f'<div class="explain"><h4>Deepgram: {h(x.heading)}</h4>']
    if x.frame is not None:
        out.append(f'<p class="note">Server close at No. {h(x.frame)}, {h(clock(x.time))}</p>')
    if x.text:
        out.append(f"<p>{h(x.text)}</p>")
    if x.evidence:
        out.append(f"<p><b>In this capture:</b> {h(x.evidence)}</p>")
    if x.steps:
        out.append("<p><b>Next steps</b></p><ol>" + "".join(f"<li>{h(step)}</li>" for step in x.steps) + "</ol>")
    if x.link:
        out.append(f'<p class="note">More: {_link(x.link)}</p>')
    out.append("</div>")
    return "".join(out)


MAX_CHARTS = 300  # a report of thousands of sessions stays openable


def _session(s: Session, key: str, transcript: bool, chart: bool = True) -> str:
    v = C.session_view(s, transcript)
    sev = v.severity
    items = C.finding_items(s.findings)
    out = [f'<article class="session sev-{sev}" id="{h(key)}"><h3>{h(v.title)}</h3>']
    if v.verdict:
        out.append(f'<p class="diagnosis sev-{sev}">{h(v.verdict)}</p>')
    for line in v.lead:
        out.append(f'<p class="egress"><strong>{h(line)}</strong></p>')
    out.append('<div class="facts">' + _kv(v.facts) + "</div>")
    drawn = timeline_svg(s, items, key) if chart else None
    if not chart and s.websocket:
        out.append(f'<p class="note">Timeline omitted: the report has more than {MAX_CHARTS} WebSocket '
                   "sessions (see the tables below, or the JSON report).</p>")
    if drawn:
        svg, used = drawn
        out.append(f'<figure class="chart">{svg}{legend_html(used, s.transport == "tls")}<figcaption>'
                   "Timeline: times are seconds from the first packet shown; hover a mark for its frame "
                   "number and time.</figcaption></figure>")
    for sec in v.sections:
        if sec.explanation is not None:
            out.append(_explain_html(sec.explanation))
            continue
        out.append(f"<h4>{h(sec.title)}</h4>")
        if sec.rows:
            out.append(_kv(sec.rows))
        if sec.columns and sec.title == "Headers":
            out.append('<table class="headers kv">' + "".join(
                f'<tr><td class="muted">{h(d)}</td><th>{h(n)}</th><td><code>{h(val)}</code></td></tr>'
                for d, n, val in sec.grid) + "</table>")
        elif sec.columns:
            out.append(_grid(sec.columns, sec.grid, 1))
        if sec.findings:
            out.append(_findings_html(sec.findings, key))
        if sec.text:
            out.append(f"<p>{h(sec.text)}</p>")
        if sec.block:
            out.append(f'<pre class="code">{h(sec.block)}</pre>')
    out.append("</article>")
    return "".join(out)


def _capture(cap: CaptureReport, ci: int, transcript: bool, charts: list, view: C.ViewOptions) -> str:
    out = [f'<section class="capture" id="c{ci}"><h2>Capture <code>{h(cap.path)}</code></h2>']
    if cap.error:
        out.append(f'<p class="error"><b>Could not read:</b> {h(cap.error)}</p></section>')
        return "".join(out)
    out.append(f"<p>{h(C.capture_line(cap))}</p>")
    for line in egress_text.deepgram_headline(cap):
        out.append(f'<p class="egress"><strong>{h(line)}</strong></p>')
    connections = egress_text.connections_line(cap)
    if connections:
        out.append(f"<p>{h(connections)}</p>")
    others = egress_text.other_rows(cap)
    if others:
        out.append("<h4>Other connections</h4>" + _grid(egress_text.OTHER_COLUMNS, others))
    if cap.findings:
        out.append(_findings_html(C.finding_items(cap.findings), f"c{ci}"))
    if not cap.sessions:
        out.append('<p class="muted">No WebSocket sessions or upgrade attempts found.</p></section>')
        return "".join(out)
    if len(cap.sessions) >= C.SUMMARY_FROM or view.summary_only:
        out.append('<h4>Summary</h4><ul class="summary">'
                   + "".join(f"<li>{h(line)}</li>" for line in C.capture_summary_lines(cap)) + "</ul>")
    note = view.note(cap)
    if note:
        out.append(f'<p class="note">{h(note)}</p>')
    head = "".join(f"<th>{h(c)}</th>" for c in C.SESSION_COLUMNS)
    rows = []
    for s in cap.sessions:
        cells = C.session_row(s)
        key = f"c{ci}-s{s.index}"
        rows.append(f'<tr><td><a href="#{key}">{h(cells[0])}</a></td>'
                    + "".join(f"<td>{h(v)}</td>" for v in cells[1:-1]) + f"<td>{_badges(s)}</td></tr>")
    out.append(f'<h4>Sessions</h4><table class="grid sessions"><thead><tr>{head}</tr></thead>'
               f'<tbody>{"".join(rows)}</tbody></table>')
    for s in view.shown(cap):
        allowed = charts[0] < MAX_CHARTS
        if allowed and s.websocket:
            charts[0] += 1
        out.append(_session(s, f"c{ci}-s{s.index}", transcript, allowed))
    out.append("</section>")
    return "".join(out)


def _summary(summary: dict) -> str:
    out = [f'<section class="summary" id="summary"><h2>Summary of {summary["captures"]} captures</h2>'
           f"<p>{h(headline(summary))}</p><div class=\"cols\">"]
    for key, title in GROUPS:
        rows = []
        for g in summary[key]:
            sev = g.get("severity")
            label = f'<span class="badge {h(sev)}">{h(g["key"])}</span>' if sev else h(g["key"])
            ex = ", ".join(f'<a href="#c{e["capture"]}-s{e["session"]}">{h(e["path"])} #{h(e["session"])}</a>'
                           for e in g["examples"])
            if g["sessions"] > len(g["examples"]):
                ex += " …"
            rows.append(f'<tr><td>{label}</td><td class="num">{g["sessions"]}</td><td class="note">{ex}</td></tr>')
        out.append(f'<div><h4>Sessions by {h(title)}</h4><table class="grid"><thead><tr><th>{h(title)}</th>'
                   f'<th class="num">sessions</th><th>e.g.</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    out.append("</div></section>")
    return "".join(out)


def render_html(report: Report, transcript: bool = False, summary: Optional[dict] = None,
                view: Optional[C.ViewOptions] = None) -> str:
    view = view or C.ViewOptions()
    names = ", ".join(c.path.rsplit("/", 1)[-1] for c in report.captures[:3])
    if len(report.captures) > 3:
        names += f" and {len(report.captures) - 3} more"
    opts = report.options or {}
    meta = [f"dgcap {__version__}", f"schema dgcap.report/1"]
    if "gap_threshold" in opts:
        meta.append(f"gap threshold {opts['gap_threshold']:g} s")
    if opts.get("secrets_redacted", True):
        meta.append("secrets redacted")
    else:
        meta.append("SECRETS NOT REDACTED: do not attach to a ticket")
    meta.append(f"{len(report.captures)} capture(s)")
    body = [f"<header><h1>dgcap report</h1><p class=\"meta\">{h(' · '.join(meta))}</p></header>"]
    if summary is not None:
        body.append(_summary(summary))
    charts = [0]
    for ci, cap in enumerate(report.captures):
        body.append(_capture(cap, ci, transcript, charts, view))
    body.append('<footer>Frame numbers are Wireshark\'s "No." column; paste a finding\'s filter into '
                "Wireshark's display filter bar to see its evidence. Times are UTC.</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{h(CSP)}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="color-scheme" content="light dark">'
            '<meta name="referrer" content="no-referrer">'
            f"<title>dgcap report: {h(names)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
