"""`dgcap messages` and `dgcap report --format har` on the recorded captures.

The HAR is validated against a JSON Schema written from the HAR 1.2 spec
(tests/data/har-1.2.schema.json), parsed by hario-core (a maintained HAR parser with Chrome
DevTools' `_webSocketMessages` model), and imported by DevTools itself: headless Chromium opens
its bundled DevTools frontend and runs the network panel's HAR importer on it.
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import jsonschema
import pytest
from hario_core.models.extensions.chrome_devtools import DevToolsEntry
from hario_core.parse.har_parser import parse as parse_har

from tests.test_report_helpers import CAPTURES, TEST_KEY, Browser, run_cli
from tests.test_ticket_extract import tshark_rows

HAR_SCHEMA = json.loads((Path(__file__).parent / "data" / "har-1.2.schema.json").read_text())


def har_of(tmp_path, capture: str, *extra: str) -> tuple[dict, Path]:
    out = tmp_path / (Path(capture).stem + ".har")
    r = run_cli("report", str(CAPTURES / capture), "--format", "har", "-o", str(out), *extra)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(out.read_text()), out


def expected_frames(capture: str) -> list[dict]:
    name = capture.rsplit(".", 1)[0]
    return [s["frames"] for s in json.loads((CAPTURES / f"{name}.expected.json").read_text())["sessions"]]


# -- messages --------------------------------------------------------------------------------

FRAGMENTED_TEXT = """\
Session 1: 127.0.0.1:56390 -> 127.0.0.1:18011 (tcp.stream 0, tcp), 5 messages
05:08:29.327908  No. 10     server  ping         6  ping-1
05:08:29.328117  No. 12     client  pong         6  ping-1
05:08:29.529526  No. 16     server  text        23  Hello, fragmented world  [3 fragments from No. 8]
05:08:29.780614  No. 18     client  close        6  1000 "done"
05:08:29.780784  No. 20     server  close        6  1000 "done"
"""


def test_messages_text_exact():
    r = run_cli("messages", str(CAPTURES / "ws_fragmented_ping.pcap"))
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == FRAGMENTED_TEXT


def test_messages_jsonl_exact():
    r = run_cli("messages", str(CAPTURES / "ws_fragmented_ping.pcap"), "--format", "jsonl")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows[2] == {"session": 1, "tcp_stream": 0, "frame": 16, "time": 1795237709.529526,
                       "direction": "server", "opcode": 1, "type": "text", "length": 23,
                       "fragments": 3, "first_frame": 8, "text": "Hello, fragmented world"}
    assert rows[3] == {"session": 1, "tcp_stream": 0, "frame": 18, "time": 1795237709.780614,
                       "direction": "client", "opcode": 8, "type": "close", "length": 6,
                       "close_code": 1000, "close_reason": "done"}
    assert [(m["frame"], m["type"]) for m in rows] == [(10, "ping"), (12, "pong"), (16, "text"),
                                                       (18, "close"), (20, "close")]


def test_messages_jsonl_counts_and_binary_hashes_of_a_session():
    r = run_cli("messages", str(CAPTURES / "dg_success.pcap"), "--session", "1", "--format", "jsonl")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    frames = expected_frames("dg_success.pcap")[0]
    for direction in ("client", "server"):
        mine = [m for m in rows if m["direction"] == direction]
        for kind in ("text", "binary", "close", "ping", "pong"):
            assert sum(m["type"] == kind for m in mine) == frames[direction][kind], (direction, kind)
    binary = [m for m in rows if m["type"] == "binary"]
    assert len(binary) == 30 and all(m["length"] == 3200 for m in binary)
    assert [m["frame"] for m in rows] == sorted(m["frame"] for m in rows)
    assert rows[0]["text"] == '{"type": "KeepAlive"}' and rows[0]["frame"] == 8


def test_messages_inflated_and_redacted():
    r = run_cli("messages", str(CAPTURES / "dg_deflate.pcap"), "--format", "jsonl")
    first = json.loads(r.stdout.splitlines()[0])
    assert (first["text"], first["length"], first["wire_length"]) == ('{"type": "KeepAlive"}', 21, 23)
    tls = run_cli("messages", str(CAPTURES / "tls13_multi.pcap"), "--keylog", str(CAPTURES / "tls13_multi.keys"))
    assert tls.returncode == 0 and TEST_KEY not in tls.stdout
    assert tls.stdout.count("Session ") == 3
    assert tls.stdout.endswith('06:04:19.425850  No. 74     client  close       52  1008 "DATA-0000: The payload cannot be decoded as audio."\n')


def test_messages_failed_handshake_and_bad_session():
    r = run_cli("messages", str(CAPTURES / "dg_multi.pcapng"), "--session", "2")
    assert r.returncode == 0
    assert r.stdout.splitlines()[1] == "  (no WebSocket: the handshake got 401)"
    bad = run_cli("messages", str(CAPTURES / "dg_multi.pcapng"), "--session", "7")
    assert (bad.returncode, bad.stderr) == (
        2, f"dgcap: error: {CAPTURES / 'dg_multi.pcapng'}: no session 7; the capture has 3 sessions (1-3)\n")


# -- HAR -------------------------------------------------------------------------------------

@pytest.mark.parametrize("capture,keylog", [
    ("dg_multi.pcapng", None), ("ws_fragmented_ping.pcap", None), ("dg_deflate.pcap", None),
    ("dg_401.pcap", None), ("tls13_multi.pcap", "tls13_multi.keys"), ("tts_speak.pcap", None),
])
def test_har_validates_and_parses_with_the_right_message_counts(tmp_path, capture, keylog):
    extra = ("--keylog", str(CAPTURES / keylog)) if keylog else ()
    har, path = har_of(tmp_path, capture, *extra)
    jsonschema.validate(har, HAR_SCHEMA, format_checker=jsonschema.FormatChecker())
    parsed = parse_har(str(path))
    frames = expected_frames(capture)
    assert len(parsed.entries) == len(frames)
    for entry, raw, f in zip(parsed.entries, har["log"]["entries"], frames):
        assert isinstance(entry, DevToolsEntry) and entry.resourceType == "websocket"
        # No fragmented messages in these sessions except ws_fragmented_ping's text (3 frames).
        data_frames = sum(f[d][k] for d in ("client", "server") for k in ("text", "binary", "close", "ping", "pong"))
        assert len(entry.webSocketMessages or []) == data_frames
        sends = sum(1 for m in entry.webSocketMessages or [] if m.type == "send")
        assert sends == sum(f["client"][k] for k in ("text", "binary", "close", "ping", "pong"))
        t = raw["timings"]
        assert raw["time"] == pytest.approx(t["send"] + t["wait"] + t["receive"], abs=1e-3)
    assert TEST_KEY not in path.read_text()


def test_har_messages_exact(tmp_path):
    har, _ = har_of(tmp_path, "ws_fragmented_ping.pcap")
    entry = har["log"]["entries"][0]
    assert entry["request"]["url"] == "ws://127.0.0.1:18011/ws"
    assert {"name": "Authorization", "value": "Token ****cdef"} in entry["request"]["headers"]
    assert (entry["response"]["status"], entry["response"]["statusText"]) == (101, "Switching Protocols")
    assert entry["_webSocketMessages"] == [
        {"type": "receive", "time": 1795237709.327908, "opcode": 9, "data": "ping-1", "_frame": 10},
        {"type": "send", "time": 1795237709.328117, "opcode": 10, "data": "ping-1", "_frame": 12},
        {"type": "receive", "time": 1795237709.529526, "opcode": 1, "data": "Hello, fragmented world", "_frame": 16},
        {"type": "send", "time": 1795237709.780614, "opcode": 8, "data": "1000 done", "_closeCode": 1000,
         "_closeReason": "done", "_frame": 18},
        {"type": "receive", "time": 1795237709.780784, "opcode": 8, "data": "1000 done", "_closeCode": 1000,
         "_closeReason": "done", "_frame": 20},
    ]
    # Message times are the capture times of the frames they name.
    times = dict(tshark_rows(CAPTURES / "ws_fragmented_ping.pcap", ["frame.number", "frame.time_epoch"], "websocket"))
    for m in entry["_webSocketMessages"]:
        assert m["time"] == pytest.approx(float(times[str(m["_frame"])]), abs=1e-6)


def test_har_binary_summary_and_base64(tmp_path):
    har, _ = har_of(tmp_path, "dg_success.pcap")
    binary = [m for m in har["log"]["entries"][0]["_webSocketMessages"] if m["opcode"] == 2]
    assert len(binary) == 30
    assert binary[0]["data"] == f"[binary 3200 bytes, sha256 {binary[0]['_sha256']}]"
    full, _ = har_of(tmp_path, "dg_success.pcap", "--har-binary")
    payloads = [base64.b64decode(m["data"]) for m in full["log"]["entries"][0]["_webSocketMessages"]
                if m["opcode"] == 2]
    assert [hashlib.sha256(p).hexdigest() for p in payloads] == [m["_sha256"] for m in binary]
    # What the server of the recording says it received, byte for byte.
    scenario = json.loads((CAPTURES / "dg_success.expected.json").read_text())["scenario"]["sessions"][0]
    audio = b"".join(payloads)
    assert len(audio) == scenario["audio_bytes_received"] == 96000
    assert hashlib.sha256(audio).hexdigest() == scenario["audio_sha256"]


def test_har_failed_handshake_keeps_the_error_body(tmp_path):
    har, _ = har_of(tmp_path, "dg_401.pcap")
    entry = har["log"]["entries"][0]
    assert entry["response"]["status"] == 401 and entry["_webSocketMessages"] == []
    assert "INVALID_AUTH" in entry["response"]["content"]["text"]
    assert entry["_dgcap"]["findings"] == [
        {"id": "handshake-cause", "severity": "error", "frames": [6]},
        {"id": "handshake-failed", "severity": "error", "frames": [4, 6]}]


# -- Chrome DevTools' own HAR importer (the network panel's "Import HAR file") ------------------

DEVTOOLS = "devtools://devtools/bundled/devtools_app.html"
IMPORT_HAR = """(async () => {
  const har = await import('./models/har/har.js');
  const requests = har.Importer.Importer.requestsFromHARLog(new har.HARFormat.HARLog(%s.log));
  return requests.map(r => ({url: r.url(), type: r.resourceType().name(), status: r.statusCode,
                             frames: r.frames().map(f => [f.type, f.opCode, f.text, f.time])}));
})()"""


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def test_devtools_imports_the_har_with_every_message(browser, tmp_path):
    har, _ = har_of(tmp_path, "ws_fragmented_ping.pcap")
    imported = browser.evaluate_at(DEVTOOLS, IMPORT_HAR % json.dumps(har))
    assert imported == [{"url": "ws://127.0.0.1:18011/ws", "type": "websocket", "status": 101, "frames": [
        ["receive", 9, "ping-1", 1795237709.327908],
        ["send", 10, "ping-1", 1795237709.328117],
        ["receive", 1, "Hello, fragmented world", 1795237709.529526],
        ["send", 8, "1000 done", 1795237709.780614],
        ["receive", 8, "1000 done", 1795237709.780784]]}]


def test_devtools_imports_a_decrypted_multi_session_har(browser, tmp_path):
    har, _ = har_of(tmp_path, "tls13_multi.pcap", "--keylog", str(CAPTURES / "tls13_multi.keys"))
    imported = browser.evaluate_at(DEVTOOLS, IMPORT_HAR % json.dumps(har))
    frames = expected_frames("tls13_multi.pcap")
    assert [(r["url"], r["type"], r["status"]) for r in imported] == [
        ("wss://localhost:18041/v1/listen?model=nova-3&encoding=linear16&sample_rate=16000", "websocket", 101)] * 3
    for r, f in zip(imported, frames):
        for direction, kind in (("client", "send"), ("server", "receive")):
            assert sum(1 for fr in r["frames"] if fr[0] == kind) == sum(
                f[direction][k] for k in ("text", "binary", "close", "ping", "pong"))
    assert imported[2]["frames"][-1][1:3] == [8, "1008 DATA-0000: The payload cannot be decoded as audio."]
