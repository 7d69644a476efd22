"""Limits never hide a kind of evidence, and a bug in one connection costs only that connection."""
from __future__ import annotations

import json
import struct
from pathlib import Path

from tests.support.capture_synth import ACK, CLIENT_IP, PSH, SERVER_IP, SYN, ethernet, ipv4, tcp
from analyzer.cli import main
from analyzer.limits import SESSION_ANOMALY_RECORDS
from analyzer import pipeline
from analyzer.pipeline import CaptureAnalyzer, Options, analyze_capture
from analyzer.session import SessionBuilder

CAPTURES = Path(__file__).resolve().parents[1] / "captures"

REQUEST = (b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
RESPONSE = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


def long_stream_with_holes(holes: int, header_hole_at: int, frames: int):
    """A client sending 1000-byte binary frames, each in two packets of which the second is
    missing for the first `holes` frames, except frame `header_hole_at`, whose first packet
    (the header) is missing instead: `holes` TCP holes, one of them costing the frame sync."""
    analyzer = CaptureAnalyzer(Options())
    state = {"no": 0, "t": 1000.0}

    def packet(from_client: bool, seq: int, ack: int, flags: int, payload: bytes = b"") -> None:
        state["no"] += 1
        state["t"] += 0.01
        if from_client:
            data = ethernet(ipv4(tcp(50000, 80, seq, ack, flags, payload)))
        else:
            data = ethernet(ipv4(tcp(80, 50000, seq, ack, flags, payload), src=SERVER_IP, dst=CLIENT_IP))
        analyzer.packet(state["no"], state["t"], 1, data)

    cseq, sseq = 1000, 5000
    packet(True, cseq, 0, SYN)
    packet(False, sseq, cseq + 1, SYN | ACK)
    cseq, sseq = cseq + 1, sseq + 1
    packet(True, cseq, sseq, PSH | ACK, REQUEST)
    cseq += len(REQUEST)
    packet(False, sseq, cseq, PSH | ACK, RESPONSE)
    sseq += len(RESPONSE)
    wire = bytes([0x82, 0x80 | 126]) + struct.pack("!H", 1000) + b"\x01\x02\x03\x04" + bytes(1000)
    first, second = wire[:500], wire[500:]
    for i in range(frames):
        if i != header_hole_at:
            packet(True, cseq, sseq, ACK, first)
        cseq += len(first)
        if i >= holes or i == header_hole_at:
            packet(True, cseq, sseq, ACK, second)
        cseq += len(second)
        packet(False, sseq, cseq, ACK)
    (session,) = analyzer.finish()
    return session


def test_2400_holes_report_2400_and_keep_the_sync_lost_and_resync_findings():
    s = long_stream_with_holes(holes=2400, header_hole_at=2300, frames=2410)
    assert len(s.anomalies) == SESSION_ANOMALY_RECORDS
    by_id = {f.id: f for f in s.findings}
    assert by_id["tcp-hole"].details == {"count": 2400, "bytes": 2399 * 508 + 500}
    # Frames 0-2299 (from 2300 on, frames are found again only once the holes stop).
    assert by_id["frame-payload-missing"].details == {"count": 2300}
    # Found after the cap was full: still findings, with their true count and frames.
    assert (by_id["sync-lost"].details, by_id["sync-lost"].frames) == ({"count": 1}, [4606])
    assert (by_id["resync"].details, by_id["resync"].frames) == ({"count": 1}, [4811])
    tally = s.anomaly_overflow["tcp-hole"]
    assert (tally.count, tally.last_frame) == (1400, 4804)  # the first 1000 are records
    assert s.to_json()["anomalies_dropped"] == 1400 + 1300 + 1 + 1


def test_an_exception_in_one_connection_becomes_its_internal_error_finding(monkeypatch, capsys):
    path = str(CAPTURES / "dg_multi.pcapng")
    healthy = analyze_capture(path).sessions

    # The failure is raised at the start of SessionBuilder.ws_frame, through its frame hook:
    # a Python-level call in both builds (the compiled build calls ws_frame itself natively,
    # where patching the class would not reach).
    def failing(session, direction, f):
        if session.tcp_stream == 2 and f.frame == 63:
            raise ValueError("injected failure")

    def builder_with_failure(*args, **kwargs):
        builder = SessionBuilder(*args, **kwargs)
        builder._frame_hook = failing
        return builder

    monkeypatch.setattr(pipeline, "SessionBuilder", builder_with_failure)
    report = analyze_capture(path)
    assert [s.tcp_stream for s in report.sessions] == [0, 1, 2]
    # The other connections are reported exactly as without the failure.
    assert [s.to_json() for s in report.sessions[:2]] == [s.to_json() for s in healthy[:2]]
    broken = report.sessions[2]
    (err,) = [f for f in broken.findings if f.id == "internal-error"]
    assert (err.severity, err.frames) == ("error", [63])
    assert err.details == {"count": 1, "exception": "ValueError", "layer": "websocket",
                           "message": "injected failure"}
    assert "ValueError in the websocket layer at No. 63: injected failure" in err.message
    # What came before the failure is kept; nothing after it is read.
    assert (broken.frames[0].first_frame, broken.frames[0].last_frame) == (45, 59)

    # The command reports every session and exits 1 (an error finding), not 2.
    assert main(["report", str(CAPTURES / "dg_multi.pcapng"), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [[f["id"] for f in s["findings"]] for s in out["captures"][0]["sessions"]][:2] == \
        [[f.id for f in s.findings] for s in healthy[:2]]


def test_an_exception_in_one_finding_rule_costs_that_rule_only(monkeypatch):
    from analyzer.findings import registry

    path = str(CAPTURES / "dg_net0001.pcap")
    healthy = [f.id for f in analyze_capture(path).sessions[0].findings]  # (loads every rule)

    def broken(s, ctx):
        raise KeyError("no such field")

    monkeypatch.setattr(registry, "RULES", [("broken", broken)] + list(registry.RULES))
    (s,) = analyze_capture(path).sessions
    assert [f.id for f in s.findings] == ["internal-error"] + healthy
    err = s.findings[0]
    assert (err.severity, err.frames, err.details) == (
        "error", [], {"count": 1, "exception": "KeyError", "layer": "findings (broken)",
                      "message": "'no such field'"})
