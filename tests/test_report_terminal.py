"""The terminal report: the same facts as the HTML report, the verdict first, and no
address, port, frame number or request id broken across lines at any width."""
from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from analyzer.report.content import ViewOptions, session_view
from analyzer.report.html import render_html
from analyzer.report.rich_report import render_rich, wrap
from rich.text import Text
from test_report_helpers import REPO, analyzed, keylog_for, run_cli, sample_captures

SAMPLES = sample_captures()
LAB = sorted((REPO / "captures" / "lab").glob("*.pcap"))


def terminal(report, width: int, **view) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    render_rich(report, console, transcript=True, view=ViewOptions(**view))
    return console.file.getvalue()


class _Facts(HTMLParser):
    """The text of every value cell of the HTML report's sessions: key/value tables
    (td), grids (td), finding messages and ids."""

    def __init__(self):
        super().__init__()
        self.depth = 0  # inside a <td> or a finding message
        self.buf: list[str] = []
        self.facts: list[str] = []
        self.in_article = 0

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class") or ""
        if tag == "article":
            self.in_article += 1
        if self.in_article and (tag == "td" or (tag == "div" and cls == "fmsg")):
            self.depth += 1
            self.buf = []

    def handle_endtag(self, tag):
        if tag == "article":
            self.in_article -= 1
        if self.depth and tag in ("td", "div"):
            self.depth -= 1
            text = " ".join("".join(self.buf).split())
            if text:
                self.facts.append(text)

    def handle_data(self, data):
        if self.depth:
            self.buf.append(data)


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("path", SAMPLES + LAB, ids=[p.name for p in SAMPLES + LAB])
def test_terminal_shows_every_fact_of_the_html_report(path):
    report = analyzed(str(path), keylog_for(path))
    parser = _Facts()
    parser.feed(render_html(report, transcript=True))
    facts = set(parser.facts)
    assert bool(facts) == bool(report.captures[0].sessions), path
    shown = _flat(terminal(report, 400))
    missing = sorted(f for f in facts if f not in shown)
    assert missing == []
    # and the TLS, stream and latency rows are among them wherever the model has them
    for s in report.captures[0].sessions:
        titles = [sec.title for sec in session_view(s).sections]
        if s.tls is not None:
            assert "TLS" in titles
        if s.latency is not None and s.latency.samples:
            assert "Stream" in titles


def _never_split(text: str, token: str) -> None:
    assert token in text, token
    for k in range(1, len(token)):
        pattern = re.escape(token[:k]) + r" *\n *" + re.escape(token[k:])
        assert not re.search(pattern, text), (token, k)


def _tokens(report) -> list[str]:
    out = []
    for s in report.captures[0].sessions:
        out += [s.client, s.server]
        if s.handshake.dg_request_id:
            out.append(s.handshake.dg_request_id)
        for f in s.findings:
            out += [f"No. {n}" for n in f.frames[:3]]
    return out


WIDTH_CAPTURES = ["dg_401.pcap", "dg_multi.pcapng", "dg_ipv6.pcap", "tls13_net0001.pcap", "dg_net0001.pcap"]


@pytest.mark.parametrize("width", [80, 100, 160])
@pytest.mark.parametrize("name", WIDTH_CAPTURES)
def test_no_address_port_or_id_is_broken(name, width):
    path = REPO / "captures" / name
    report = analyzed(str(path), keylog_for(path))
    text = terminal(report, width)
    assert max(len(line) for line in text.splitlines()) <= width
    for token in _tokens(report):
        _never_split(text, token)


@pytest.mark.parametrize("name", WIDTH_CAPTURES)
def test_report_to_a_file_keeps_every_address_whole(name, tmp_path):
    out = tmp_path / "r.txt"
    keys = keylog_for(REPO / "captures" / name)
    r = run_cli("report", f"captures/{name}", "-o", str(out), *(["--keylog", keys] if keys else []),
                env={"COLUMNS": ""})
    assert r.returncode in (0, 1), r.stderr
    text = out.read_text()
    assert max(len(line) for line in text.splitlines()) <= 120
    report = analyzed(str(REPO / "captures" / name), keylog_for(REPO / "captures" / name))
    for token in _tokens(report):
        _never_split(text, token)


def test_each_session_opens_with_its_verdict_and_facts():
    path = REPO / "captures" / "dg_401.pcap"
    lines = terminal(analyzed(str(path)), 80).splitlines()
    start = lines.index("Session 1: 127.0.0.1:59982 → 127.0.0.1:18002 (tcp.stream 0, tcp)")
    assert lines[start + 1] == ("ERROR  Handshake rejected with HTTP 401 Unauthorized (dg-error: \"Invalid")
    assert lines[start + 4] == "No client data left the network to 127.0.0.1 127.0.0.1:18002 (Host header in"
    assert lines[start + 6:start + 9] == [
        "Handshake      401 Unauthorized (No. 6, 05:11:31.756)",
        "dg-error       Invalid credentials.",
        "dg-request-id  d9c0a1e2-0000-4000-8000-018002000001",
    ]
    # a single session gets no sessions table
    assert not any(line.startswith(("Sessions", "#1")) for line in lines)


def test_net0001_facts_name_the_close_code_and_reason():
    path = REPO / "captures" / "dg_net0001.pcap"
    text = terminal(analyzed(str(path)), 160)
    lines = text.splitlines()
    start = lines.index("Session 1: 127.0.0.1:52260 → 127.0.0.1:18004 (tcp.stream 0, tcp)")
    assert lines[start + 1].startswith("ERROR  Deepgram closed the stream with 1011 NET-0001")
    facts = _flat("\n".join(lines[start + 1:start + 12]))
    assert ('Server close 1011 "Deepgram did not receive audio data or a text message within the timeout '
            'window. See https://dpgr.am/net0001" (No. 30, 05:07:45.402)') in facts
    assert "Latency          p50 0.0 s, p95 0.0 s, max 0.0 s (1 sample)" in text


def test_empty_close_reason_reads_no_reason():
    path = REPO / "captures" / "dg_success.pcap"
    text = terminal(analyzed(str(path)), 160)
    assert "1000 (no reason)" in text and "1000 ''" not in text


def test_many_sessions_get_a_summary_and_focus_flags():
    path = REPO / "captures" / "dg_multi.pcapng"
    report = analyzed(str(path))
    text = terminal(report, 100, summary_only=True)
    # handshake-cause and handshake-failed are both errors at frame 6: either is the top one
    assert re.search(r"^  By top finding: empty-binary-frame 1 \(#3\); handshake-(cause|failed) 1 \(#2\); "
                     r"none 1 \(#1\)\.$", text, re.M)
    assert "  By close: 1000 from server 2 (#1, #3); no WebSocket 1 (#2)." in text
    assert "Showing 0 of 3 sessions (--summary)." in text
    assert "Session 1: " not in text
    only = terminal(report, 100, sessions=(3,))
    assert "Showing 1 of 3 sessions (--session 3)." in only
    assert [line for line in only.splitlines() if line.startswith("Session ")] == [
        "Session 3: 127.0.0.1:43814 → 127.0.0.1:18012 (tcp.stream 2, tcp)"]
    errors = terminal(report, 100, errors_only=True)
    assert [line.split(":")[0] for line in errors.splitlines() if line.startswith("Session ")] == ["Session 2"]
    r = run_cli("report", "captures/dg_multi.pcapng", "--errors-only", "--session", "1", "--width", "90")
    assert r.returncode == 1 and "Showing 0 of 3 sessions (--session 1 --errors-only)." in r.stdout


def test_width_flag_is_checked():
    r = run_cli("report", "captures/dg_401.pcap", "--width", "10")
    assert (r.returncode, r.stderr) == (2, "dgcap: error: --width must be at least 40 columns\n")


def test_wrap_keeps_frame_references_whole():
    lines = [t.plain for t in wrap(Text("from the client's last frame (No. 26 at 05:07:35.395)"), 33)]
    assert lines == ["from the client's last frame", "(No. 26 at 05:07:35.395)"]
    assert [t.plain for t in wrap(Text("x" * 25), 10)] == ["x" * 10, "x" * 10, "x" * 5]
