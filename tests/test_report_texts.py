"""Report texts say what happened, the same way in every format (exact texts)."""
from __future__ import annotations

import copy
import html
import io

from rich.console import Console

from analyzer.findings.registry import RuleContext
from analyzer.findings.rules import anomalies
from analyzer.model import CLIENT, SERVER, Anomaly, Session
from analyzer.report.content import explanation, gap_rows
from analyzer.report.html import render_html
from analyzer.report.markdown import render_markdown
from analyzer.report.rich_report import render_rich
from test_report_helpers import REPO, analyzed, run_cli


def _session(name: str):
    return analyzed(str(REPO / "captures" / name)).captures[0].sessions[0]


def _terminal(name: str) -> str:
    console = Console(file=io.StringIO(), width=400, color_system=None)
    render_rich(analyzed(str(REPO / "captures" / name)), console)
    return console.file.getvalue()


def test_normal_close_after_closestream():
    assert explanation(_session("dg_success.pcap")).text == (
        "The stream ended normally: the client sent CloseStream (No. 80), Deepgram sent its remaining "
        "results and the summary Metadata, then closed (No. 85).")


def test_normal_close_without_closestream_says_who_closed_first():
    text = ("The client closed the WebSocket (No. 62) without ending the stream first (no CloseStream); "
            "Deepgram's close (No. 64) only answered it, so results for the last audio may be lost.")
    assert explanation(_session("dg_no_closestream.pcap")).text == text
    assert text in _terminal("dg_no_closestream.pcap")
    assert "after CloseStream" not in _terminal("dg_no_closestream.pcap")


def test_normal_close_after_an_empty_binary_frame_and_tts_close():
    assert explanation(_session("dg_empty_binary.pcap")).text.startswith(
        "The stream ended normally: the client sent an empty binary frame (No. 62), ")
    assert explanation(_session("tts_speak.pcap")).text == (
        "The stream ended normally: the client sent Close (No. 30), Deepgram sent its remaining audio, "
        "then closed (No. 31).")


def test_gap_end_named_by_side_and_frame_everywhere():
    s = _session("dg_net0001.pcap")
    ended = "the server's close frame (No. 30)"
    assert [r[4] for r in gap_rows(s)] == [ended, ended]
    audio = next(f for f in s.findings if f.id == "audio-gap")
    assert audio.message == ("The client sent no audio (binary) frame for 10.008 s: from the client's last "
                             "frame (No. 26 at 05:07:35.395) to the server's close frame (No. 30) at "
                             "05:07:45.402; threshold 10 s.")
    report = analyzed(str(REPO / "captures" / "dg_net0001.pcap"))
    assert html.escape(ended) in render_html(report) and ended in render_markdown(report) and ended in _terminal(
        "dg_net0001.pcap")
    assert "ended by close" not in render_html(report)


def test_gap_ended_by_the_clients_close_frame():
    s = copy.deepcopy(_session("dg_keepalive_only.pcap"))
    assert [r[4] for r in gap_rows(s)] == ["the server's close frame (No. 16)"]
    s.close.server.frame = 99  # the same gap, had the client's close (No. 17) ended it
    s.gaps[0].before_frame = 17
    assert [r[4] for r in gap_rows(s)] == ["the client's close frame (No. 17)"]


def test_anomaly_texts_are_sentences():
    s = Session(1, "10.0.0.1:5000", "10.0.0.2:443", 0)
    s.anomalies = [Anomaly("tls-truncated-record", 282, 1.0, CLIENT, {}),
                   Anomaly("tls-hole", 300, 2.0, CLIENT, {}), Anomaly("tls-hole", 310, 3.0, SERVER, {})]
    got = sorted(f.message for f in anomalies(s, RuleContext(gap_threshold=10.0)))
    assert got == ["A TLS record was cut off at the end of the connection (from the client): once, frame 282.",
                   "TLS record bytes are missing from the capture (from the client and the server): 2 times, "
                   "frames 300, 310."]


def test_server_empty_binary_frames_are_counted():
    """docs/json-contract.md: empty_binary counts both directions; only the client's are
    Deepgram's end-of-stream signal (session.empty_binary)."""
    from support.deepgram_session import ScriptedSession
    from analyzer.model import CLIENT, SERVER
    script = ScriptedSession(path="/v1/speak")
    script.server_binary(0, 1.0, frame=10)
    script.server_binary(320, 1.1, frame=11)
    script.client_binary(0, 1.2, frame=12)
    s = script.finish()
    assert (s.frames[SERVER].empty_binary, s.frames[SERVER].binary) == (1, 2)
    assert (s.frames[CLIENT].empty_binary, [e.frame for e in s.empty_binary]) == (1, [12])


def test_json_names_the_tool_version():
    import json
    from analyzer import __version__
    r = run_cli("report", "captures/dg_success.pcap", "--format", "json")
    doc = json.loads(r.stdout)
    assert (doc["tool"], doc["tool_version"]) == ("dgcap", __version__)


def test_report_help_has_a_description_and_the_exit_codes():
    r = run_cli("report", "--help")
    assert r.returncode == 0
    assert "Report every WebSocket session in pcap/pcapng captures" in r.stdout
    assert r.stdout.rstrip().endswith("exit codes:\n  0  no error finding\n  1  at least one error finding\n"
                                      "  2  input or usage error (one line on stderr)")
