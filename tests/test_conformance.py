"""Conformance against the public corpus: Zeek's and Suricata's own expected outputs.

The captures and oracles live in ../shared/corpus/public (not copied into this repo).
Zeek's events.out files are per-frame traces; we print ours in the same format and
compare line by line.  Suricata's test.yaml give counts per rule; each rule is
translated to the equivalent question about our frames.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from analyzer.model import CLIENT
from analyzer.pipeline import Options, analyze_capture
from analyzer.websocket import OPCODE_NAMES

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "public"
ZEEK = CORPUS / "zeek"
SURI = CORPUS / "suricata-verify"

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"conformance corpus not found at {CORPUS}")


def zeek_escape(data: bytes) -> str:
    out = []
    for b in data:
        if 32 <= b < 127 and b != 0x5C:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


class Trace:
    """Collects frames and messages in Zeek's events.out line format."""

    ZEEK_DATA_BYTES = 120

    def __init__(self):
        self.lines: dict[int, list[str]] = {}
        self.frames: dict[int, list[tuple[int, object]]] = {}
        self.messages: dict[int, list[tuple[int, object]]] = {}

    def options(self, **kw) -> Options:
        return Options(keep_binary=self.ZEEK_DATA_BYTES, frame_hook=self.frame, message_hook=self.message, **kw)

    def frame(self, session, direction, f):
        orig = "T" if direction == CLIENT else "F"
        lines = self.lines.setdefault(session.tcp_stream, [])
        self.frames.setdefault(session.tcp_stream, []).append((direction, f))
        lines.append(f"websocket_frame, {orig}, fin, {'T' if f.fin else 'F'}, rsv, {f.rsv}, opcode, "
                     f"{OPCODE_NAMES.get(f.opcode, f.opcode)}, payload_len, {f.length}")
        if f.length:
            lines.append(f"websocket_frame_data, {orig}, len, {f.length}, data, "
                         f"{zeek_escape(bytes(f.payload[:self.ZEEK_DATA_BYTES]))}")

    def message(self, session, direction, m):
        orig = "T" if direction == CLIENT else "F"
        lines = self.lines.setdefault(session.tcp_stream, [])
        self.messages.setdefault(session.tcp_stream, []).append((direction, m))
        if m.opcode == 8:
            lines.append(f"websocket_close, {orig}, status, {m.close_code or 0}, reason, {m.close_reason}")
        lines.append(f"websocket_message, {orig}, opcode, {OPCODE_NAMES[m.opcode]}")


def zeek_events(path: Path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("websocket_") and not line.startswith("websocket_established"):
            # Drop the connection uid column: ours has no equivalent.
            head, _uid, rest = line.split(", ", 2)
            out.append(f"{head}, {rest}")
    return out


ZEEK_TRACES = [
    ("broker-websocket.pcap", "broker-websocket.pcap.expected.scripts.base.protocols.websocket.events.out"),
    ("jupyter-websocket.pcap", "jupyter-websocket.pcap.expected.scripts.base.protocols.websocket.events.out"),
    ("message-too-big-status.pcap",
     "message-too-big-status.pcap.expected.scripts.base.protocols.websocket.events.out"),
    ("two-binary-fragments.pcap",
     "two-binary-fragments.pcap.expected.scripts.base.protocols.websocket.events.out"),
    ("wstunnel-http.pcap", "wstunnel-http.pcap.expected.scripts.base.protocols.websocket.events.out"),
    ("reply-ping-separate.pcap",
     "reply-ping-separate.pcap.expected.scripts.base.protocols.websocket.coalesced-reply-ping.out-separate"),
    ("reply-ping-coalesced.pcap",
     "reply-ping-coalesced.pcap.expected.scripts.base.protocols.websocket.coalesced-reply-ping.out-coalesced"),
]


@pytest.mark.parametrize("capture,oracle", ZEEK_TRACES, ids=[c for c, _ in ZEEK_TRACES])
def test_zeek_frame_trace(capture, oracle):
    trace = Trace()
    report = analyze_capture(str(ZEEK / capture), trace.options())
    assert len(report.sessions) == 1
    ours = trace.lines[report.sessions[0].tcp_stream]
    expected = zeek_events(ZEEK / oracle)
    if not any(line.startswith("websocket_message") for line in expected):
        # The coalesced-reply-ping baselines print frames and closes only.
        ours = [line for line in ours if not line.startswith("websocket_message")]
    assert ours == expected


def test_zeek_all_events_file_covers_the_same_sessions():
    # ALL...events.out concatenates several captures' traces under their names.
    text = (ZEEK / "ALL.expected.scripts.base.protocols.websocket.events.out").read_text().splitlines()
    sections: dict[str, list[str]] = {}
    current = None
    for line in text:
        if line.endswith(".pcap"):
            current = line
            sections[current] = []
        elif current and line.startswith("websocket_") and not line.startswith("websocket_established"):
            head, _uid, rest = line.split(", ", 2)
            sections[current].append(f"{head}, {rest}")
    assert set(sections) == {"jupyter-websocket.pcap", "wstunnel-http.pcap", "broker-websocket.pcap",
                             "message-too-big-status.pcap", "two-binary-fragments.pcap"}
    for name, expected in sections.items():
        trace = Trace()
        report = analyze_capture(str(ZEEK / name), trace.options())
        assert trace.lines[report.sessions[0].tcp_stream] == expected, name


def zeek_log_rows(path: Path) -> list[dict[str, str]]:
    fields, rows = None, []
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line.startswith("ts\t"):
            fields = line.split("\t")
        elif line and not line.startswith("#") and fields:
            rows.append(dict(zip(fields, line.split("\t"))))
    return rows


def _zeek_list(value: str | None) -> str:
    return value if value else "-"


WEBSOCKET_LOGS = [
    ("broker-websocket.pcap",
     "broker-websocket.pcap.expected.scripts.base.protocols.websocket.broker-websocket.websocket.log"),
    ("jupyter-websocket.pcap",
     "jupyter-websocket.pcap.expected.scripts.base.protocols.websocket.jupyter-websocket.websocket.log"),
    ("wstunnel-http.pcap", "wstunnel-http.pcap.expected.scripts.base.protocols.websocket.wstunnel-http.websocket.log"),
    ("wstunnel-https.pcap",
     "wstunnel-https.pcap.expected.scripts.base.protocols.websocket.wstunnel-https.websocket.log"),
    ("wstunnel-ssh.pcap", "wstunnel-ssh.pcap.expected.scripts.base.protocols.websocket.wstunnel-ssh.websocket.log"),
    ("wrong-accept-header.pcap",
     "wrong-accept-header.pcap.expected.scripts.base.protocols.websocket.key-accept-wrong.websocket.log"),
    ("http-websocket.pcap",
     "http-websocket.pcap.expected.scripts.base.protocols.http.101-switching-protocols.websocket.log"),
    ("websocket_compressed.pcap", "websocket_compressed.pcap.expected.UNMERGED-PR5646.permessage-deflate.websocket.log"),
]


@pytest.mark.parametrize("capture,oracle", WEBSOCKET_LOGS, ids=[c for c, _ in WEBSOCKET_LOGS])
def test_zeek_websocket_log_handshake_fields(capture, oracle):
    rows = zeek_log_rows(ZEEK / oracle)
    report = analyze_capture(str(ZEEK / capture))
    sessions = [s for s in report.sessions if s.handshake.status == 101]
    assert len(sessions) == len(rows)
    for s, row in zip(sessions, rows):
        hs = s.handshake
        assert s.client == f"{row['id.orig_h']}:{row['id.orig_p']}"
        assert s.server == f"{row['id.resp_h']}:{row['id.resp_p']}"
        assert _zeek_list(hs.request_header("host")) == row["host"]
        assert hs.target == row["uri"]
        assert _zeek_list(hs.request_header("user-agent")) == row["user_agent"]
        assert _zeek_list(hs.subprotocol) == row["subprotocol"]
        offered = ",".join(p.strip() for v in _all(hs.request_headers, "sec-websocket-protocol")
                           for p in v.split(","))
        assert _zeek_list(offered) == row["client_protocols"]
        assert _zeek_list(hs.extensions) == row["server_extensions"]
        assert _zeek_list(",".join(_all(hs.request_headers, "sec-websocket-extensions"))) == row["client_extensions"]


def _all(headers, name):
    return [v for k, v in headers if k.lower() == name]


def _counts(report):
    out = []
    for s in report.sessions:
        c, v = s.frames
        out.append({"client": (c.text, c.binary, c.ping, c.pong, c.close, c.continuation),
                    "server": (v.text, v.binary, v.ping, v.pong, v.close, v.continuation)})
    return out


def test_zeek_wrong_accept_header():
    report = analyze_capture(str(ZEEK / "wrong-accept-header.pcap"))
    (s,) = report.sessions
    weird = zeek_log_rows(ZEEK / "wrong-accept-header.pcap.expected.scripts.base.protocols.websocket."
                                 "key-accept-wrong.weird.log")[0]
    m = re.match(r"expected=(\S+), found=(\S+)", weird["addl"])
    assert s.handshake.accept_valid is False
    assert s.handshake.ws_accept == m.group(2)
    from analyzer.http import websocket_accept
    assert websocket_accept(s.handshake.ws_key) == m.group(1)
    ids = [f.id for f in s.findings]
    assert "bad-accept" in ids
    # It ends with FIN and no close frame (corpus README).
    assert s.close.tcp_end == "fin" and s.close.client is None and s.close.server is None
    assert "abnormal-closure" in ids


def test_zeek_oversized_close_frame():
    trace = Trace()
    report = analyze_capture(str(ZEEK / "oversized-close-frame.pcapng"), trace.options())
    (s,) = report.sessions
    closes = [m for _, m in trace.messages[s.tcp_stream] if m.opcode == 8]
    (close,) = closes
    # Zeek's uncapped analyzers print "Close length: 256" (the reason after the 2-byte code).
    expected = int((ZEEK / "oversized-close-frame.pcapng.expected.scripts.base.protocols.websocket."
                           "close-too-large.out-pac-uncapped").read_text().split("Close length:")[1])
    assert len(close.close_reason.encode()) == expected == 256
    weird = zeek_log_rows(ZEEK / "oversized-close-frame.pcapng.expected.scripts.base.protocols.websocket."
                                 "close-too-large.weird-pac.log")[0]
    assert weird["name"] == "websocket_control_frame_size_exceeded" and weird["addl"] == "258 > 125"
    (finding,) = [f for f in s.findings if f.id == "control-frame-too-long"]
    (anomaly,) = [a for a in s.anomalies if a.kind == "control-frame-too-long"]
    assert anomaly.detail.get("length") == 258


def test_zeek_fragmented_http_reply():
    trace = Trace()
    report = analyze_capture(str(ZEEK / "fragmented-http-reply.pcap"), trace.options())
    (s,) = report.sessions
    oracle = (ZEEK / "fragmented-http-reply.pcap.expected.scripts.base.protocols.websocket."
                     "fragmented-http-reply.out").read_text().splitlines()
    assert "websocket_established" in oracle
    assert s.handshake.status == 101
    # Zeek's http_header lines come from the HTTP exchange tunnelled INSIDE the binary
    # messages (its HTTP analyzer runs on the WebSocket payload).
    tunnelled = {0: b"", 1: b""}
    for d, m in trace.messages[s.tcp_stream]:
        if m.opcode == 2:
            tunnelled[d] += bytes(m.data)
    for line in oracle:
        if line.startswith("http_header"):
            _, is_orig, name, value = [p.strip() for p in line.split(",", 3)]
            head = tunnelled[0 if is_orig == "T" else 1].decode()
            fields = [ln.split(":", 1) for ln in head.split("\r\n")[1:] if ":" in ln]
            assert [name, value] in [[k.strip().upper(), v.strip()] for k, v in fields]
    # The corpus README: a 5-fragment binary message of lengths 1, 7, 9, 18, 21 in one TCP segment.
    frames = [f for d, f in trace.frames[s.tcp_stream] if d == 1 and f.opcode in (0, 2)]
    assert [f.length for f in frames[:5]] == [1, 7, 9, 18, 21]
    assert len({f.frame for f in frames[:5]}) == 1
    binary = [m for d, m in trace.messages[s.tcp_stream] if d == 1 and m.opcode == 2]
    assert binary[0].fragments == 5 and binary[0].size == 56


def test_zeek_http_websocket_counts():
    report = analyze_capture(str(ZEEK / "http-websocket.pcap"))
    (s,) = [s for s in report.sessions if s.handshake.status == 101]
    c, v = s.frames
    assert c.text + v.text == 3
    assert c.binary + v.binary == 4
    assert (c.close, v.close) == (1, 1)
    assert s.close.client.code is None and s.close.server.code is None


def test_zeek_wstunnel_counts():
    https = analyze_capture(str(ZEEK / "wstunnel-https.pcap"))
    (s,) = https.sessions
    assert s.frames[0].binary + s.frames[1].binary == 36
    assert s.close.client.code == 1000 and s.close.server.code == 1000
    ssh = analyze_capture(str(ZEEK / "wstunnel-ssh.pcap"))
    assert len(ssh.sessions) == 2
    assert sum(s.frames[0].binary + s.frames[1].binary for s in ssh.sessions) == 144
    assert sum(s.frames[0].ping + s.frames[1].ping for s in ssh.sessions) == 7
    assert sum(s.frames[0].close + s.frames[1].close for s in ssh.sessions) == 4
    http = analyze_capture(str(ZEEK / "wstunnel-http.pcap"))
    (s,) = http.sessions
    assert "unmasked-client-frame" in [f.id for f in s.findings]


def test_zeek_permessage_deflate_payloads():
    texts = {}
    for name in ("websocket_compressed.pcap", "websocket_baseline.pcap"):
        trace = Trace()
        report = analyze_capture(str(ZEEK / name), trace.options())
        (s,) = report.sessions
        texts[name] = [(d, bytes(m.data)) for d, m in trace.messages[s.tcp_stream] if m.opcode == 1]
        if name == "websocket_compressed.pcap":
            assert s.handshake.deflate == {"server_no_context_takeover": False, "client_no_context_takeover": False,
                                           "server_max_window_bits": 12, "client_max_window_bits": 12}
            assert any(m.compressed for _, m in trace.messages[s.tcp_stream])
    assert texts["websocket_compressed.pcap"] == texts["websocket_baseline.pcap"]
    server = [t for d, t in texts["websocket_compressed.pcap"] if d == 1]
    assert b"Zeek_WebSocket_Test_String_" * 50 in server
    client = [t for d, t in texts["websocket_compressed.pcap"] if d == 0]
    assert any(t.startswith(b"Hello_Zeek_Analyzer_") for t in client)


# -- Suricata -----------------------------------------------------------------

def test_suricata_basic_websockets():
    trace = Trace()
    report = analyze_capture(str(SURI / "basic_websockets.pcap"), trace.options())
    (s,) = report.sessions
    frames = trace.frames[s.tcp_stream]
    client = [f for d, f in frames if d == 0]
    server = [f for d, f in frames if d == 1]
    texts = [f for f in client + server if f.opcode == 1]
    assert len(texts) == 17
    # sid 3: 14 server text frames; sid 4/5: 3 masked client frames with FIN.
    assert len([f for f in server if f.opcode == 1]) == 14
    assert len([f for f in client if f.masked and f.mask != b"\0\0\0\0"]) == 3
    assert len([f for f in client if f.fin]) == 3
    # The websocket event with mask 3803616749 (0xe2b695ed): the first client frame's key.
    assert int.from_bytes(client[0].mask, "big") == 3803616749 and client[0].opcode == 1
    # sid 1: exactly one client frame whose header starts 81 88 (FIN text, masked, 8 bytes).
    assert len([f for f in client if f.fin and f.opcode == 1 and f.masked and f.length == 8]) == 1
    # sid 2 / 21: one server frame "|81 15|version,hybi-draft-13".
    assert len([f for f in server if f.opcode == 1 and f.length == 0x15
                and bytes(f.payload) == b"version,hybi-draft-13"]) == 1
    # sid 6: one client payload contains "version,".
    assert len([f for f in client if b"version," in bytes(f.payload)]) == 1


def test_suricata_example_websocket_deflate():
    trace = Trace()
    report = analyze_capture(str(SURI / "example_websocket.pcap"), trace.options())
    (s,) = report.sessions
    assert s.handshake.status == 101 and s.handshake.reason == ""
    assert s.handshake.deflate is not None and s.handshake.deflate["client_max_window_bits"] == 15
    server_frames = [f for d, f in trace.frames[s.tcp_stream] if d == 1 and f.opcode == 1]
    assert len(server_frames) == 10 and all(f.rsv & 4 for f in server_frames)
    stream = b"".join(bytes(m.data) for _, m in trace.messages[s.tcp_stream] if m.opcode == 1)
    assert stream.count(b"TOGGLE=5659131662f54334") == 1


def test_suricata_control_frame_between_fragments():
    trace = Trace()
    report = analyze_capture(str(SURI / "websocket-control-frag.pcap"), trace.options())
    (s,) = report.sessions
    msgs = trace.messages[s.tcp_stream]
    text = [m for d, m in msgs if d == 0 and m.opcode == 1]
    assert any(b"MALWARE_DOWNLOAD cmd.exe /c powershell" in bytes(m.data) for m in text)
    frames = [f.opcode for d, f in trace.frames[s.tcp_stream] if d == 0]
    first_data = frames.index(1)
    assert 9 in frames[first_data:]  # a ping between the fragments
    (msg,) = [m for m in text if b"MALWARE" in bytes(m.data)]
    assert msg.fragments > 1


def test_suricata_websocket_ping_frame_numbers():
    trace = Trace()
    report = analyze_capture(str(SURI / "websocket-ping.pcap"), trace.options())
    (s,) = report.sessions
    pings = [(d, f) for d, f in trace.frames[s.tcp_stream] if f.opcode == 9]
    pongs = [(d, f) for d, f in trace.frames[s.tcp_stream] if f.opcode == 10]
    assert [(d, f.frame, f.masked) for d, f in pings] == [(0, 8, False)]
    assert [(d, f.frame) for d, f in pongs] == [(1, 11)]
    assert "unmasked-client-frame" in [f.id for f in s.findings]


def test_suricata_unanswered_upgrade():
    report = analyze_capture(str(SURI / "http-request-header-multi.pcap"))
    (s,) = report.sessions
    assert s.handshake.status is None and s.handshake.request_frame is not None
    assert s.handshake.method == "GET" and s.handshake.path.endswith("/ws")
    assert s.handshake.request_header("user-agent") == "Go-http-client/1.1"
    assert "handshake-unanswered" in [f.id for f in s.findings]
    assert not s.websocket


def test_every_corpus_capture_analyses_without_error():
    files = sorted(p for p in CORPUS.rglob("*") if p.suffix in (".pcap", ".pcapng"))
    assert len(files) == 20
    for p in files:
        report = analyze_capture(str(p))
        assert report.packets > 0, p
        assert report.sessions, p
        assert not [f for f in report.findings if f.id == "capture-truncated"], p
