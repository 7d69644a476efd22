"""The HTML report in a real browser: renders with no error, makes no network request,
escapes a hostile capture, follows dark mode and prints one session per page.

Network requests are watched over the DevTools protocol (Network.requestWillBeSent) with
the report's Content-Security-Policy removed, so any external reference would really be
fetched; with the CSP in place a blocked fetch shows up as a console error.  Negative
controls prove both detectors fire.
"""
from __future__ import annotations

import json

import html
import re
from pathlib import Path

import pytest

from analyzer.report.content import SAFE_LINK
from analyzer.report.html import CSP, render_html
from test_report_helpers import (HOSTILE_REASON, HOSTILE_REQUEST_ID, HOSTILE_UA, TEST_KEY, Browser, analyzed,
                                 corpus_captures, hostile_capture, keylog_for, run_cli, sample_captures)

SAMPLES = sample_captures()
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{html.escape(CSP, quote=True)}">'
DOM_FACTS = """JSON.stringify({
  charts: document.querySelectorAll('svg.tl[id]').length,
  sessions: document.querySelectorAll('article.session').length,
  scripts: document.querySelectorAll('script').length,
  images: document.querySelectorAll('img, iframe, object, embed, link, video, audio').length,
  findings: document.querySelectorAll('ol.findings li').length,
  pins: document.querySelectorAll('svg.tl g.pin').length,
  title: document.title,
  text: document.body.innerText.length,
  width: document.documentElement.scrollWidth
})"""


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _facts(result) -> dict:
    import json
    return json.loads(result["value"])


def _clean(result) -> None:
    assert result["loaded"]
    assert result["requests"] == []
    assert result["errors"] == []
    assert result["console"] == []


def test_detectors_catch_a_fetch_and_an_error(browser, tmp_path):
    """Negative controls: an external image and a script error are seen (so a clean run means something)."""
    page = render_html(analyzed(str(Path("captures/dg_net0001.pcap").resolve())))
    bad = page.replace("</footer>", '</footer><img src="http://127.0.0.1:9/leak.png" alt="">')
    with_csp = browser.load(_write(tmp_path, "bad_csp.html", bad))
    assert "http://127.0.0.1:9/leak.png" in with_csp["requests"]  # the attempt is seen...
    assert any("Content Security Policy" in c for c in with_csp["console"])  # ...and the CSP blocks it
    without_csp = browser.load(_write(tmp_path, "bad_nocsp.html", bad.replace(CSP_META, "")))
    assert "http://127.0.0.1:9/leak.png" in without_csp["requests"]
    boom = page.replace(CSP_META, "").replace("</footer>", "</footer><script>throw new Error('boom')</script>")
    assert any("boom" in e for e in browser.load(_write(tmp_path, "boom.html", boom))["errors"])


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_reports_render_cleanly_offline(browser, tmp_path, path):
    report = analyzed(str(path), keylog_for(path))
    page = render_html(report, transcript=True)
    cap = report.captures[0]
    for strip in (False, True):  # as shipped, and with the CSP removed so any reference would be fetched
        text = page.replace(CSP_META, "") if strip else page
        result = browser.load(_write(tmp_path, f"r{int(strip)}.html", text), DOM_FACTS)
        _clean(result)
        facts = _facts(result)
        assert facts["sessions"] == len(cap.sessions)
        assert facts["charts"] == sum(1 for s in cap.sessions if s.websocket)
        assert facts["findings"] == sum(len(s.findings) for s in cap.sessions) + len(cap.findings)
        assert facts["pins"] == sum(1 for s in cap.sessions if s.websocket for f in s.findings if f.time is not None)
        assert facts["scripts"] == 0 and facts["images"] == 0
        assert facts["title"] == f"dgcap report: {path.name}"
        assert facts["width"] <= 1200  # nothing overflows the window sideways
    assert result["all_requests"] == [path_uri(tmp_path / "r1.html")]


def path_uri(p: Path) -> str:
    return p.resolve().as_uri()


@pytest.mark.parametrize("path", corpus_captures(), ids=[p.name for p in corpus_captures()])
def test_corpus_reports_render_cleanly_offline(browser, tmp_path, path):
    page = render_html(analyzed(str(path), None)).replace(CSP_META, "")
    _clean(browser.load(_write(tmp_path, "c.html", page)))


@pytest.mark.parametrize("path", SAMPLES[:6] + corpus_captures()[:6], ids=lambda p: p.name)
def test_html_references_nothing_outside_the_file(path):
    page = render_html(analyzed(str(path), keylog_for(path)))
    assert page.count(CSP_META) == 1
    lowered = page.lower()
    for needle in ("<script", "<link", "<img", "<iframe", "@import", "url(", " src=", "srcset", "<object",
                   "<embed", "http-equiv=\"refresh\""):
        assert needle not in lowered, needle
    for href in re.findall(r'href="([^"]*)"', page):
        assert href.startswith("#") or SAFE_LINK.match(html.unescape(href)), href


def test_hostile_capture_is_shown_not_executed(browser, tmp_path):
    cap = hostile_capture(tmp_path / "hostile.pcap")
    out = tmp_path / "hostile.html"
    r = run_cli("report", str(cap), "--format", "html", "--transcript", "-o", str(out))
    assert r.returncode == 0, r.stderr  # only warnings: an unknown close reason, gaps
    page = out.read_text()
    assert TEST_KEY not in page
    for raw in ("<script>alert", "<img src=x", "<b>", "</title><script>"):
        assert raw not in page
    assert 'href="http://evil' not in page
    # the browser sees the hostile strings as text, with the CSP removed so that an injection would run
    probe = """JSON.stringify({scripts: document.querySelectorAll('script').length,
      imgs: document.querySelectorAll('img').length, bold: document.querySelectorAll('b').length,
      links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')).filter(h => !h.startsWith('#')),
      text: document.body.innerText, title: document.title})"""
    result = browser.load(_write(tmp_path, "h.html", page.replace(CSP_META, "")), probe)
    _clean(result)
    facts = _facts(result)
    assert facts["scripts"] == 0 and facts["imgs"] == 0 and facts["links"] == []
    bolds_in_clean_report = page.count("<b>")
    assert facts["bold"] == bolds_in_clean_report  # only the report's own <b> labels
    assert HOSTILE_UA in facts["text"]
    assert HOSTILE_REQUEST_ID in facts["text"]
    assert json.dumps(HOSTILE_REASON) in facts["text"]  # the close reason, quoted like the rich report
    assert "<script>alert(2)</script> | `x`" in facts["text"]  # the transcript
    assert facts["title"] == "dgcap report: hostile.pcap"


def test_dark_mode_and_print(browser, tmp_path):
    page = render_html(analyzed(str(Path("captures/dg_multi.pcapng").resolve())))
    path = _write(tmp_path, "multi.html", page)
    bg = "getComputedStyle(document.body).backgroundColor"
    assert browser.load(path, bg, features={"prefers-color-scheme": "light"})["value"] == "rgb(255, 255, 255)"
    assert browser.load(path, bg, features={"prefers-color-scheme": "dark"})["value"] == "rgb(20, 23, 28)"
    # printing is light whatever the screen's scheme, and keeps the chart colours
    assert browser.load(path, bg, media="print", features={"prefers-color-scheme": "dark"})["value"] == \
        "rgb(255, 255, 255)"
    pdf = browser.load(path, pdf=True)["pdf"]
    assert pdf.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages >= 3  # each of the 3 sessions starts a page


def test_screenshot_renders(browser, tmp_path):
    """What docs/report-screenshot.png shows: the net0001 report has its chart and findings on screen."""
    page = render_html(analyzed(str(Path("captures/dg_net0001.pcap").resolve())))
    probe = """JSON.stringify([...document.querySelectorAll('svg.tl[id], ol.findings')].map(
      e => Math.round(e.getBoundingClientRect().top)))"""
    import json
    tops = json.loads(browser.load(_write(tmp_path, "n.html", page), probe, width=1200, height=1600)["value"])
    assert len(tops) == 2 and all(0 < t < 1600 for t in tops)
