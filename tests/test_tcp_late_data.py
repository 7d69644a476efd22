"""Span ports that delay one direction, and data that really is missing.

Built from the real recording captures/dg_success.pcap (server port 18001): the server's
packets are re-timestamped 100 ms later and the file re-sorted, so every server message comes
after the client's ACK for it, as on a span port whose two directions are merged apart.
"""
from __future__ import annotations

from pathlib import Path

from analyzer.pipeline import analyze_capture

from tunnel_wrap import skew_capture

ROOT = Path(__file__).resolve().parents[1]
PLAIN = ROOT / "captures" / "dg_success.pcap"
SERVER_PORT = 18001


def _counts(session: dict) -> dict:
    return {side: {k: v for k, v in session["frames"][side].items()
                   if k not in ("first_frame", "last_frame")} for side in ("client", "server")}


def test_server_direction_100ms_late_keeps_every_server_message(tmp_path):
    plain = analyze_capture(str(PLAIN)).sessions[0].to_json()
    path = tmp_path / "skewed.pcap"
    order = skew_capture(PLAIN, path, SERVER_PORT, 0.100)
    assert order != sorted(order)  # the skew really reorders the file
    report = analyze_capture(str(path))
    session = report.sessions[0].to_json()
    assert report.stats["tcp"]["holes"] == 0
    assert "missing" not in session
    assert [f["id"] for f in session["findings"]] == [f["id"] for f in plain["findings"]]
    assert _counts(session) == _counts(plain)
    assert session["messages"] == plain["messages"]
    assert session["transcript"] == plain["transcript"]
    for side in ("client", "server"):
        assert session["close"][side]["code"] == 1000
    assert session["diagnosis"] == plain["diagnosis"]


def test_lost_server_data_is_never_called_normal(tmp_path):
    plain = analyze_capture(str(PLAIN)).sessions[0].to_json()
    assert plain["diagnosis"].startswith("Stream completed normally")
    # Frame 83 is the server's Metadata message (418 bytes); leave it out of the capture.
    path = tmp_path / "lost.pcap"
    skew_capture(PLAIN, path, SERVER_PORT, 0.0, drop_frames={83})
    report = analyze_capture(str(path))
    session = report.sessions[0].to_json()
    missing = session["missing"]
    assert missing["client"] is None
    assert missing["server"]["holes"] == 1
    assert missing["server"]["bytes"] == 418
    assert "completed normally" not in session["diagnosis"]
    assert session["diagnosis"].startswith(
        f"Part of the session is missing from the capture: {418:,} bytes the "
        "server sent (1 gap, first at frame 83); server messages in them are lost.")
    # Frame 83 of the new file is the client's ACK for the missing bytes (source frame 84).
    assert missing["server"]["first_frame"] == 83
    assert session["frames"]["server"]["text"] == plain["frames"]["server"]["text"] - 1
