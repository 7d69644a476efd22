"""Markdown and HTML reports carry the rich report's content, exactly, and no secrets.

Values are checked against the recorded captures' expectations (captures/*.expected.json,
computed with tshark) where those exist, and against dgcap's own findings otherwise.
"""
from __future__ import annotations

import json

import html
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from analyzer.report.content import explanation, frames_text
from analyzer.report.html import CSP, render_html
from analyzer.report.markdown import code, esc, render_markdown
from analyzer.report.text import clock
from test_report_helpers import (TEST_KEY, WSTUNNEL_JWT_PARTS, CORPUS, analyzed, corpus_captures,
                                 expected, keylog_for, run_cli, sample_captures)

SAMPLES = sample_captures()
MD = MarkdownIt("commonmark").enable("table")


def _render(path: Path):
    report = analyzed(str(path), keylog_for(path))
    return report, render_markdown(report, transcript=True), render_html(report, transcript=True)


def _h(text) -> str:
    return html.escape(str(text), quote=True)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_reports_carry_the_expected_values(path):
    report, md, page = _render(path)
    exp = expected(path)
    assert exp is not None, f"{path.name} has no expected.json"
    (cap,) = report.captures
    by_stream = {s.tcp_stream: s for s in cap.sessions}
    assert sorted(by_stream) == sorted(e["tcp_stream"] for e in exp["sessions"])
    for e in exp["sessions"]:
        s = by_stream[e["tcp_stream"]]
        hs = e.get("handshake", {})
        title = f"Session {s.index}: {e['client']} → {e['server']} (tcp.stream {e['tcp_stream']}, {e['transport']})"
        assert f"### {esc(title)}\n" in md
        assert f"<h3>{_h(title)}</h3>" in page
        # this session's part of each report
        md_s = md.split(f"### {esc(title)}\n")[1].split("\n### ")[0].split("\n## ")[0]
        page_s = page.split(f'<article class="session')[s.index].split("</article>")[0]
        assert f"<h3>{_h(title)}</h3>" in page_s
        if hs.get("dg_request_id"):
            assert f"| dg-request-id | {code(hs['dg_request_id'], cell=True)} |" in md_s
            assert f'<th>dg-request-id</th><td><code class="v code">{_h(hs["dg_request_id"])}</code>' in page_s
        if hs.get("status") is not None:
            status = f"{hs['status']} {hs.get('reason') or ''}".strip()
            note = f"(No. {hs['response_frame']}, {clock(s.handshake.response_time)})"
            bold = "" if hs["status"] == 101 else "**"
            assert f"| Response | {bold}{esc(status)}{bold} {esc(note)} |" in md_s
            assert re.search(rf'<th>Response</th><td><span class="v[^"]*">{re.escape(_h(status))}</span> '
                             rf'<span class="note">{re.escape(_h(note))}</span>', page_s)
        if hs.get("dg_error"):
            assert esc(hs["dg_error"]) in md_s and _h(hs["dg_error"]) in page_s
        close = e.get("close", {})
        for side, label in (("client", "Client close"), ("server", "Server close")):
            cf = close.get(side)
            if cf:
                reason = json.dumps(cf["reason"], ensure_ascii=False) if cf["reason"] else "(no reason)"
                value = f"{cf['code']} {reason}" if cf["code"] is not None else "(empty: no code, no reason)"
                frame_note = f"No. {cf['frame']}, "
                row = re.search(rf"^\| {label} \| (.*) \|$", md_s, re.M)
                assert row and esc(value) in row.group(1) and frame_note in row.group(1), (label, row)
                assert re.search(rf"<th>{label}</th><td><span class=\"v[^\"]*\">{re.escape(_h(value))}</span> "
                                 rf"<span class=\"note\">\({re.escape(frame_note)}", page_s)
        if close.get("tcp_end") in ("fin", "rst"):
            end = f"{close['tcp_end'].upper()} from the {close['tcp_end_by']}"
            assert f"| TCP end | {'**' if close['tcp_end'] == 'rst' else ''}{end}" in md_s
            assert f"(No. {close['tcp_end_frame']}, " in md_s
        for fid in e.get("findings", []):
            assert f"** `{fid}` — " in md_s, fid
            assert f"<code>{_h(fid)}</code>" in page_s, fid
        for fid in e.get("absent_findings", []):
            assert f"** `{fid}` — " not in md_s and f"<code>{_h(fid)}</code>" not in page_s
    for s in cap.sessions:
        for f in s.findings:
            assert f.display_filter and f.display_filter.startswith(f"tcp.stream eq {s.tcp_stream}")
            frames = frames_text(f.frames)
            assert f"— {esc(frames)} at {esc(clock(f.time))}  \n" in md
            assert f"   Wireshark filter: `{f.display_filter}`" in md
            assert f"Wireshark filter: <code>{_h(f.display_filter)}</code>" in page
            assert f'<span class="note">{_h(frames)} · {_h(clock(f.time))}</span>' in page
            for frame in f.frames[:12]:
                assert re.search(rf"No\. (\d+, )*{frame}\b", frames)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_reports_give_deepgrams_explanation_and_next_steps(path):
    report, md, page = _render(path)
    for s in report.captures[0].sessions:
        x = explanation(s)
        if s.deepgram is not None and s.deepgram.close_explanation is not None:
            assert x is not None
        if x is None:
            continue
        assert f"**Deepgram: {esc(x.heading)}**" in md
        assert f"<h4>Deepgram: {_h(x.heading)}</h4>" in page
        for step in x.steps:
            assert f"- {esc(step)}" in md and f"<li>{_h(step)}</li>" in page
        if x.link:
            assert f"More: <{x.link}>" in md and f'<a href="{_h(x.link)}" rel="noreferrer">' in page


def test_net0001_report_values():
    """One capture spelled out: the values a support engineer looks for, in both formats."""
    report, md, page = _render(Path("captures/dg_net0001.pcap").resolve())
    for text in ("d9c0a1e2-0000-4000-8000-018004000001", "C:1011 S:1011 FIN", "No. 26, 30",
                 "tcp.stream eq 0 && frame.number == 30",
                 "tcp.stream eq 0 && frame.number >= 26 && frame.number <= 30",
                 "Ensure audio is sent within 10 seconds of opening the connection.", "10.008"):
        assert text in md, text
        assert _h(text) in page, text
    assert "**Deepgram: 1011 NET-0001: no audio or text message from the client for 10 s**" in md
    assert "More: <https://dpgr.am/net0001>" in md
    assert '<a href="https://dpgr.am/net0001" rel="noreferrer">https://dpgr.am/net0001</a>' in page
    # the timeline: both gaps shaded with their length, three findings pinned
    assert ">silence 10.008 s</text>" in page and ">no audio 10.008 s</text>" in page
    assert len(re.findall(r'<g class="pin pin-(error|warning)"><title>F\d', page)) == 3
    assert '<g class="ev-close"><title>server close 1011 (No. 30 ' in page
    assert '<g class="ev-end"><title>TCP FIN from the server (No. 33 ' in page


def test_success_timeline_marks_messages():
    report, _, page = _render(Path("captures/dg_success.pcap").resolve())
    (s,) = report.captures[0].sessions
    svg = page.split('<svg class="tl" id="c0-s1-timeline"')[1].split("</svg>")[0]
    assert svg.count('class="m-keepalive"') == 1
    assert svg.count('class="m-finalize"') == 1
    assert svg.count('class="m-closestream"') == 1
    assert svg.count('class="m-metadata"') == 1
    # five Results messages (two may share a pixel: then the tooltip says so)
    results = re.findall(r"<title>No\. (\d+) Results [^<]*?(?: \(\+(\d+) more here\))?</title>", svg)
    assert sum(1 + int(more or 0) for _, more in results) == 5
    assert "<title>No. 80 CloseStream " in svg
    assert '<g class="ev-open"><title>101 Switching Protocols</title>' in svg
    assert svg.count('class="audio"') >= 3 and svg.count('class="client"') >= 3


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_markdown_tables_keep_their_shape(path):
    _, md, _ = _render(path)
    _assert_tables(md)


def _assert_tables(md: str) -> None:
    tokens = MD.parse(md)
    header_cells, cells, in_row, tables = None, 0, False, 0
    for t in tokens:
        if t.type == "table_open":
            tables += 1
            header_cells = None
        elif t.type == "tr_open":
            cells = 0
        elif t.type in ("th_open", "td_open"):
            cells += 1
        elif t.type == "tr_close":
            if header_cells is None:
                header_cells = cells
            assert cells == header_cells
    assert tables >= 1


def test_markdown_lines_match_rendered_tables():
    """Every table line of the Markdown renders as one table row (no cell lost or added)."""
    _, md, _ = _render(Path("captures/dg_multi.pcapng").resolve())
    rendered = MD.render(md)
    table_lines = [line for line in md.splitlines() if line.startswith("|") and not line.startswith("|---")]
    assert rendered.count("<tr>") == len(table_lines)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_reports_are_redacted(path):
    report, md, page = _render(path)
    for out in (md, page):
        assert TEST_KEY not in out
        assert "0123456789abcdef0123456789abcdef" not in out
    if any(k.lower() == "authorization" for s in report.captures[0].sessions for k, _ in s.handshake.request_headers):
        assert "****cdef" in md or "****ffff" in md


@pytest.mark.parametrize("fmt", ["markdown", "html", "json", "rich"])
def test_corpus_bearer_jwt_never_appears(fmt, tmp_path):
    path = CORPUS / "zeek" / "wstunnel-http.pcap"
    out = tmp_path / "report.out"
    r = run_cli("report", str(path), "--format", fmt, "-o", str(out), "--transcript")
    assert r.returncode in (0, 1), r.stderr
    text = out.read_text()
    assert "authorization.bearer." in text.lower()  # the subprotocol is there, masked
    for part in WSTUNNEL_JWT_PARTS:
        assert part not in text
        assert _h(part) not in text


@pytest.mark.parametrize("path", corpus_captures(), ids=[p.name for p in corpus_captures()])
def test_corpus_reports_render_completely(path):
    report = analyzed(str(path), None)
    md, page = render_markdown(report), render_html(report)
    for s in report.captures[0].sessions:
        assert f"### {esc(f'Session {s.index}: {s.client} → {s.server}')}" in md
        assert f'id="c0-s{s.index}"' in page
        for f in s.findings:
            assert f"`{f.display_filter}`" in md and _h(f.display_filter) in page
    for part in WSTUNNEL_JWT_PARTS:
        assert part not in md and part not in page
    assert f'<meta http-equiv="Content-Security-Policy" content="{_h(CSP)}">' in page
    _assert_tables(md)


def test_rich_report_shows_display_filters_and_next_steps(tmp_path):
    out = tmp_path / "r.txt"
    r = run_cli("report", "captures/dg_net0001.pcap", "-o", str(out))
    assert r.returncode == 1
    text = re.sub(r"[│ \n]+", " ", out.read_text())
    assert "filter: tcp.stream eq 0 && frame.number == 30" in text
    assert "filter: tcp.stream eq 0 && frame.number >= 26 && frame.number <= 30" in text
    assert "Deepgram: 1011 NET-0001: no audio or text message from the client for 10 s" in text
    assert "Next steps: 1. Ensure audio is sent within 10 seconds of opening the connection." in text
    assert "More: https://dpgr.am/net0001" in text


def test_html_caps_the_number_of_charts(monkeypatch):
    import analyzer.report.html as html_report
    monkeypatch.setattr(html_report, "MAX_CHARTS", 1)
    page = html_report.render_html(analyzed(str(Path("captures/dg_multi.pcapng").resolve())))
    assert page.count('<svg class="tl" id=') == 1
    assert page.count("Timeline omitted: the report has more than 1 WebSocket sessions") == 1


def test_hostile_capture_markdown_is_inert(tmp_path):
    """Rendered with raw HTML allowed (CommonMark's default), nothing from the capture becomes markup."""
    from test_report_helpers import HOSTILE_REQUEST_ID, hostile_capture
    cap = hostile_capture(tmp_path / "hostile.pcap")
    r = run_cli("report", str(cap), "--format", "markdown", "--transcript")
    assert r.returncode == 0, r.stderr
    md = r.stdout
    assert TEST_KEY not in md
    rendered = MD.render(md)
    for tag in ("<script", "<img", "<b>", "</title>", 'href="http://evil', "<h1>owned", "<h1># owned"):
        assert tag not in rendered, tag
    assert "<h1>dgcap report</h1>" in rendered and rendered.count("<h1>") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered  # shown as text
    assert f"<code>{_h(HOSTILE_REQUEST_ID)}</code>" in rendered  # the | inside the code span is kept
    _assert_tables(md)
    # every line of the report is either ours or escaped: no line starts a heading from the capture
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert all(re.match(r"#{1,4} (dgcap report|Capture |Session \d|Handshake|Frames|Client silences|Close|"
                        r"Findings|Deepgram|Stream|Headers|Transcript)", h) for h in headings), headings
