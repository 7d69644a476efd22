"""Everything taken from a capture is inert in the Markdown and HTML reports.

A crafted capture puts script payloads (<script>, <img onerror>, attribute break-outs, <svg
onload>, javascript: URLs) everywhere a peer controls text: request target and query, request
and response headers, subprotocol, close reasons, the transcript, server error messages,
unknown message types, a non-JSON text message, and a failed handshake's dg-error and JSON
body.  Each payload would mark the page (`data-xss-N` on <html>) if it ran.

The reports are loaded in headless Chromium and the DOM after loading is checked: nothing
ran.  The HTML report is also loaded with its Content-Security-Policy removed, so escaping
alone is what is tested; the Markdown report is rendered to HTML with raw HTML allowed (as
many Markdown viewers do).  A control page with a real payload proves the check can fail.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.commands.report import FORMATS

from test_limits import PcapWriter, Tcp, upgrade, ws_frame

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome",
                                           "google-chrome-stable") if shutil.which(n)), None)


def mark(n: int) -> str:
    return f"document.documentElement.setAttribute('data-xss-{n}','ran')"


PAYLOADS = {
    1: f"<script>{mark(1)}</script>",
    2: f'<img src=x onerror="{mark(2)}">',
    3: f'"><img src=x onerror={mark(3)}>',
    4: f"</title></style></textarea><svg onload={mark(4)}>",
    5: f"javascript:{mark(5)}",
    6: f"<script>{mark(6)}</script>",
    7: f"<img src=x onerror={mark(7)}>",
    8: f"'><script>{mark(8)}</script>",
    9: f"<svg><script>{mark(9)}</script></svg>",
    10: f"<iframe srcdoc='<script>parent.{mark(10)}</script>'></iframe>",
    11: f"<img src=x onerror={mark(11)}>",
    12: f"<script>{mark(12)}</script>",
    13: "<details open ontoggle=document.documentElement.dataset.xss13='ran'>",  # fits an 80-char preview
    14: f"<img src=x onerror={mark(14)}>",
}
PLACES = {
    1: "request header X-Evil", 2: "request header User-Agent", 3: "request header Origin",
    4: "subprotocol", 5: "request header Referer", 6: "request query value", 7: "response dg-request-id",
    8: "server close reason", 9: "client close reason", 10: "transcript", 11: "server Error description",
    12: "unknown server message type", 13: "client non-JSON text", 14: "400 dg-error and body",
}


def write_hostile_capture(path: Path) -> None:
    w = PcapWriter(path)
    tcp = Tcp(w, cport=50001)
    query = f"model=nova-3&encoding=linear16&sample_rate=16000&tag={PAYLOADS[6]}".replace(" ", "%20")
    upgrade(tcp, path=f"/v1/listen?{query}",
            request_headers=(("X-Evil", PAYLOADS[1]), ("User-Agent", PAYLOADS[2]), ("Origin", PAYLOADS[3]),
                             ("Sec-WebSocket-Protocol", PAYLOADS[4]), ("Referer", PAYLOADS[5])),
            response_headers=(("dg-request-id", PAYLOADS[7]),))
    tcp.send(0, ws_frame(2, bytes(range(256)) * 12 + bytes(128), True))
    tcp.send(0, ws_frame(1, PAYLOADS[13].encode(), True))
    results = {"type": "Results", "is_final": True, "speech_final": True, "start": 0.0, "duration": 0.1,
               "channel_index": [0, 1], "channel": {"alternatives": [{"transcript": PAYLOADS[10],
                                                                      "confidence": 0.9}]}}
    tcp.send(1, ws_frame(1, json.dumps(results).encode(), False))
    tcp.send(1, ws_frame(1, json.dumps({"type": "Error", "description": PAYLOADS[11],
                                        "code": PAYLOADS[11]}).encode(), False))
    tcp.send(1, ws_frame(1, json.dumps({"type": PAYLOADS[12]}).encode(), False))
    tcp.send(1, ws_frame(8, b"\x03\xf3" + PAYLOADS[8].encode(), False))
    tcp.send(0, ws_frame(8, b"\x03\xe8" + PAYLOADS[9].encode(), True))
    tcp.close()
    # A failed handshake: the error header and JSON body come from the server.
    bad = Tcp(w, cport=50002)
    bad.open()
    target = f"/v1/listen?model={PAYLOADS[14]}".replace(" ", "%20")
    bad.send(0, (f"GET {target} HTTP/1.1\r\nHost: api.deepgram.com\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    body = json.dumps({"err_code": PAYLOADS[14], "err_msg": PAYLOADS[14], "request_id": PAYLOADS[14]}).encode()
    bad.send(1, (f"HTTP/1.1 400 Bad Request\r\ndg-error: {PAYLOADS[14]}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    bad.close()
    w.close()


def dgcap_report(capture: Path, fmt: str, out: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SSLKEYLOGFILE", None)
    proc = subprocess.run([sys.executable, "-m", "analyzer.cli", "report", "-q", "--transcript",
                           "--format", fmt, "-o", str(out), str(capture)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert "Traceback" not in proc.stderr and proc.returncode in (0, 1), proc.stderr
    return out.read_text()


def executed(page: Path) -> set[int]:
    """Payload numbers whose mark is on <html> after Chromium loaded `page`."""
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    assert "<body" in dom, proc.stderr[-2000:]
    html_tag = re.search(r"<html[^>]*>", dom).group(0)
    return {int(n) for n in re.findall(r'data-xss-?(\d+)="ran"', html_tag)}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    capture = folder / "hostile.pcap"
    write_hostile_capture(capture)
    return folder, capture


def test_the_payloads_reach_the_report(hostile):
    # Non-vacuous: every payload is in the analysis (the JSON report shows them as text).
    folder, capture = hostile
    report = json.loads(dgcap_report(capture, "json", folder / "r.json"))
    strings = []

    def walk(v):
        if isinstance(v, str):
            strings.append(v)
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(k)
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(report)
    missing = [PLACES[n] for n, p in PAYLOADS.items() if not any(p in x for x in strings)]
    assert missing == []
    sessions = report["captures"][0]["sessions"]
    assert [s["handshake"]["status"] for s in sessions] == [101, 400]
    assert sessions[0]["close"]["server"]["reason"] == PAYLOADS[8]
    assert sessions[0]["close"]["client"]["reason"] == PAYLOADS[9]
    assert PAYLOADS[10] in sessions[0]["transcript"]


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f == "html"])
def test_html_report_escapes_everything(hostile, fmt):
    folder, capture = hostile
    page = dgcap_report(capture, fmt, folder / "r.html")
    for n, payload in PAYLOADS.items():
        for dangerous in ("<script>", "<img src=x", "<svg", "<iframe", "<details"):
            if dangerous in payload:
                fragment = payload[payload.index(dangerous):][:40]
                assert fragment not in page, (PLACES[n], fragment)
    # A javascript: URL is harmless as text; it must never become a link or a source.
    assert not re.search(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", page, re.I)
    assert page.count("<script") == 0  # the report itself has no script at all


def test_markdown_report_escapes_everything(hostile):
    if "markdown" not in FORMATS:
        pytest.skip("no markdown format")
    from markdown_it import MarkdownIt
    folder, capture = hostile
    text = dgcap_report(capture, "markdown", folder / "r.md")
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(text)
    assert "<script>" not in rendered.replace("&lt;script&gt;", "")
    assert not re.search(r"<(img|svg|iframe|details)\b", rendered)


def _strip_csp(page: str) -> str:
    out = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    assert out != page
    return out


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed")
def test_nothing_executes_in_chromium(hostile):
    folder, capture = hostile
    pages = {}
    if "html" in FORMATS:
        html_page = dgcap_report(capture, "html", folder / "report.html")
        pages["html"] = folder / "report.html"
        (folder / "report-nocsp.html").write_text(_strip_csp(html_page))
        pages["html without CSP"] = folder / "report-nocsp.html"
    if "markdown" in FORMATS:
        from markdown_it import MarkdownIt
        md = dgcap_report(capture, "markdown", folder / "report.md")
        body = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
        (folder / "report-md.html").write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head>"
                                               f"<body>{body}</body></html>")
        pages["markdown as HTML"] = folder / "report-md.html"
    assert pages, "no markup format to check"
    # Control: the same page with one real payload appended does mark itself.
    control = folder / "control.html"
    control.write_text(_strip_csp(pages.get("html") and (folder / "report.html").read_text()
                                  or "<html><head><meta http-equiv=\"Content-Security-Policy\" content=\"\">"
                                     "</head><body></body></html>")
                       .replace("</body>", PAYLOADS[1] + PAYLOADS[2] + "</body>"))
    assert executed(control) == {1, 2}
    ran = {name: executed(page) for name, page in pages.items()}
    assert ran == {name: set() for name in pages}


def test_json_report_is_strict_json_whatever_the_peer_sends(tmp_path):
    # Python's json reads NaN, Infinity and 1e999 (= inf); written back they would make the
    # report invalid JSON (jq and browsers refuse it).  The peer's non-finite numbers are null.
    path = tmp_path / "nan.pcap"
    w = PcapWriter(path)
    tcp = Tcp(w)
    upgrade(tcp)
    tcp.send(0, ws_frame(2, bytes(3200), True))
    tcp.send(1, ws_frame(1, b'{"type":"Results","is_final":false,"start":NaN,"duration":Infinity,'
                            b'"channel":{"alternatives":[{"transcript":"a","confidence":NaN}]}}', False))
    tcp.send(1, ws_frame(1, b'{"type":"Results","is_final":true,"start":1e999,"duration":-Infinity,'
                            b'"channel":{"alternatives":[{"transcript":"b","confidence":-1e999}]}}', False))
    tcp.send(1, ws_frame(1, b'{"type":"TurnInfo","event":"Update","audio_window_end":NaN}', False))
    tcp.send(1, ws_frame(1, b'{"type":"Metadata","duration":NaN,"channels":Infinity,"sha256":"x"}', False))
    tcp.close()
    w.close()
    out = tmp_path / "r.json"
    text = dgcap_report(path, "json", out)

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    report = json.loads(text, parse_constant=refuse)
    [session] = report["captures"][0]["sessions"]
    assert session["transcript"] == "b"
    assert session["deepgram"]["results"]["final"] == 1 and session["deepgram"]["results"]["interim"] == 1
    assert session["deepgram"]["metadata"]["duration"] is None
    assert session["deepgram"]["metadata"]["channels"] is None
    assert (session["latency"]["p50"], session["latency"]["max"]) == (None, None)
