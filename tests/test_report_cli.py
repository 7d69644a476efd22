"""`dgcap report` over many captures: the cross-capture summary, -j N, --stream, progress."""
from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support import capture_synth as synth
from analyzer.report.progress import ProgressDisplay, printable, stream_line
from test_report_helpers import (CAPTURES, REPO, TEST_KEY, expected, hostile_capture, run_cli,
                                 sample_folder)

# folder layout for the summary test: nested, with a file that is not a capture
TREE = {"": ["dg_401.pcap", "dg_400.pcap"], "a": ["dg_net0001.pcap", "dg_rst.pcap"],
        "a/b": ["dg_multi.pcapng", "dg_keepalive_only.pcap"], "c": ["dg_success.pcap", "dg_data0000.pcap",
                                                                    "README.md"]}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("captures")
    for folder, names in TREE.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(CAPTURES / name, root / folder / name)
    return root


def _oracle_groups() -> tuple[Counter, Counter]:
    """Sessions by handshake status and by close, from the captures' tshark expectations."""
    by_status, by_close = Counter(), Counter()
    for names in TREE.values():
        for name in names:
            if not name.endswith((".pcap", ".pcapng")):
                continue
            for e in expected(CAPTURES / name)["sessions"]:
                by_status[str(e["handshake"]["status"])] += 1
                close = e["close"]
                if not e["websocket"]:
                    by_close["no WebSocket"] += 1
                elif close.get("initiator"):
                    by_close[f"{close[close['initiator']]['code']} from {close['initiator']}"] += 1
                else:
                    by_close[f"no close frame, TCP {close['tcp_end'].upper()}"] += 1
    return by_status, by_close


def test_folder_summary_counts(tree):
    r = run_cli("report", str(tree), "--format", "json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    s = doc["summary"]
    assert [c["path"] for c in doc["captures"]] == [
        str(tree / "dg_400.pcap"), str(tree / "dg_401.pcap"), str(tree / "a/dg_net0001.pcap"),
        str(tree / "a/dg_rst.pcap"), str(tree / "a/b/dg_keepalive_only.pcap"), str(tree / "a/b/dg_multi.pcapng"),
        str(tree / "c/dg_data0000.pcap"), str(tree / "c/dg_success.pcap")]
    assert (s["captures"], s["unreadable"], s["sessions"], s["websocket_sessions"]) == (8, 0, 10, 7)
    assert (s["sessions_with_errors"], s["sessions_with_warnings"], s["sessions_ok"]) == (7, 1, 2)
    groups = {k: {g["key"]: g["sessions"] for g in s[k]} for k in ("by_top_finding", "by_handshake", "by_close")}
    by_status, by_close = _oracle_groups()
    assert groups["by_handshake"] == dict(by_status) == {"101": 7, "401": 2, "400": 1}
    assert groups["by_close"] == dict(by_close) == {"1000 from server": 3, "no WebSocket": 3,
                                                    "1011 from server": 2, "1008 from server": 1,
                                                    "no close frame, TCP RST": 1}
    assert groups["by_top_finding"] == {"deepgram-close": 3, "handshake-cause": 3, "none": 2,
                                        "abnormal-closure": 1, "empty-binary-frame": 1}
    # ordered by count, then name; examples point at real sessions
    assert [g["key"] for g in s["by_top_finding"]] == ["deepgram-close", "handshake-cause", "none",
                                                       "abnormal-closure", "empty-binary-frame"]
    rst = next(g for g in s["by_top_finding"] if g["key"] == "abnormal-closure")
    assert rst["examples"] == [{"capture": 3, "path": str(tree / "a/dg_rst.pcap"), "session": 1}]
    assert rst["severity"] == "error"


def test_folder_summary_comes_first_in_every_format(tree, tmp_path):
    md = run_cli("report", str(tree), "--format", "markdown").stdout
    assert md.index("## Summary of 8 captures") < md.index("## Capture `")
    assert "8 captures (0 unreadable), 10 sessions (7 WebSocket): 7 with errors, 1 with warnings only, " \
           "2 without either" in md
    assert "| `deepgram-close` | 3 |" in md and "| `no close frame, TCP RST` | 1 |" in md
    page = run_cli("report", str(tree), "--format", "html").stdout
    assert page.index('<section class="summary" id="summary">') < page.index('<section class="capture" id="c0">')
    assert '<span class="badge error">deepgram-close</span></td><td class="num">3</td>' in page
    out = tmp_path / "rich.txt"
    run_cli("report", str(tree), "-o", str(out))
    text = out.read_text()
    assert text.index("Summary of 8 captures") < text.index("Capture ")
    assert re.search(r"│ handshake-cause +│ +3 │", text) and re.search(r"│ 401 +│ +2 │", text)
    # a single capture has no summary
    one = run_cli("report", str(CAPTURES / "dg_401.pcap"), "--format", "json")
    assert "summary" not in json.loads(one.stdout)
    assert "Summary of" not in run_cli("report", str(CAPTURES / "dg_401.pcap"), "--format", "markdown").stdout


@pytest.mark.parametrize("fmt", ["json", "markdown", "html", "rich"])
def test_parallel_report_equals_sequential(fmt, tmp_path):
    outs = {}
    samples = sample_folder(tmp_path)
    for jobs in ("1", "2", "0"):
        out = tmp_path / f"j{jobs}.out"
        r = run_cli("report", str(samples), "-j", jobs, "--format", fmt, "-o", str(out))
        outs[jobs] = (r.returncode, r.stderr, out.read_bytes())
    assert outs["1"] == outs["2"] == outs["0"]
    assert outs["1"][0] == 1
    if fmt == "json":
        doc = json.loads(outs["1"][2])
        assert len(doc["captures"]) == len([p for p in CAPTURES.glob("*") if p.suffix in (".pcap", ".pcapng")])


def test_parallel_errors_are_reported_in_input_order(tmp_path):
    (tmp_path / "a_bad.pcap").write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 5)  # a header cut short
    shutil.copy(CAPTURES / "dg_401.pcap", tmp_path / "b.pcap")
    (tmp_path / "c_bad.pcap").write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x01" * 7)
    seq, par = (run_cli("report", str(tmp_path), "-j", j, "--format", "json") for j in ("1", "3"))
    assert seq.returncode == par.returncode == 2
    assert seq.stdout == par.stdout
    assert seq.stderr == par.stderr
    lines = par.stderr.splitlines()
    assert len(lines) == 2 and "a_bad.pcap" in lines[0] and "c_bad.pcap" in lines[1]
    doc = json.loads(par.stdout)
    assert [c["error"] is not None for c in doc["captures"]] == [True, False, True]


def test_jobs_must_not_be_negative():
    r = run_cli("report", str(CAPTURES / "dg_401.pcap"), "-j", "-1")
    assert r.returncode == 2 and "-j/--jobs" in r.stderr


def _stream_streams(lines: list[str]) -> list[int]:
    return [int(line.split("tcp.stream ")[1].split()[0]) for line in lines]


def test_stream_prints_each_session_when_its_connection_ends(tmp_path):
    out = tmp_path / "r.md"
    r = run_cli("report", str(CAPTURES / "dg_multi.pcapng"), "--stream", "--format", "markdown", "-o", str(out))
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    # the 401 (stream 1) ends first, then the session with the empty frame (2), then the long one (0)
    assert _stream_streams(lines) == [1, 2, 0]
    assert lines[0] == (f"{CAPTURES / 'dg_multi.pcapng'}: tcp.stream 1 127.0.0.1:43802 → 127.0.0.1:18012 | listen | "
                        "handshake 401 Unauthorized | dg-request-id d9c0a1e2-0000-4000-8000-018012000002 | "
                        "close FIN | 2 error: Handshake rejected with HTTP 401 Unauthorized (dg-error: \"Invalid "
                        "credentials.\"): the API key (****ffff) was rejected: it is wrong, deleted or expired; "
                        "check it in the Deepgram console.")
    assert "| frames 34/7 | close C:1000 S:1000 FIN | ok: Stream completed normally" in lines[2]
    assert out.read_text().startswith("# dgcap report")


def test_stream_then_report_on_stdout(tmp_path):
    r = run_cli("report", str(CAPTURES / "dg_net0001.pcap"), "--stream")
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"{CAPTURES / 'dg_net0001.pcap'}: tcp.stream 0 ")
    assert "close C:1011 S:1011 FIN | 1 error 2 warn: Deepgram closed the stream with 1011 NET-0001" in lines[0]
    assert "Capture" in lines[1]  # the full report follows


def test_stream_lines_go_to_stderr_when_stdout_is_json(tmp_path):
    for jobs in ("1", "2"):
        r = run_cli("report", str(CAPTURES / "dg_multi.pcapng"), str(CAPTURES / "dg_401.pcap"), "--stream",
                    "--format", "json", "-j", jobs)
        doc = json.loads(r.stdout)
        assert len(doc["captures"]) == 2
        lines = r.stderr.splitlines()
        assert len(lines) == 4
        assert sorted(_stream_streams(lines)) == [0, 0, 1, 2]
        assert TEST_KEY not in r.stderr and "****" in r.stderr


def test_stream_lines_are_redacted_single_lines(tmp_path):
    cap = hostile_capture(tmp_path / "hostile.pcap")
    r = run_cli("report", str(cap), "--stream", "--format", "json", "-q")
    lines = r.stderr.splitlines()
    assert len(lines) == 1  # the close reason's newline does not break the line
    assert "`?# owned <b>" in lines[0]
    assert TEST_KEY not in r.stderr
    assert printable("a\x1b[31mred\nb\u202e") == "a?[31mred?b?"


def test_stream_line_redacts_literal_secrets():
    from tests.support.deepgram_session import ScriptedSession
    b = ScriptedSession(headers=[["Host", "api.deepgram.com"], ["Authorization", f"Token {TEST_KEY}"]])
    s = b.finish()
    s.diagnosis = f"the key {TEST_KEY} was used"
    line = stream_line("x.pcap", s)
    assert TEST_KEY not in line and "****cdef" in line
    assert TEST_KEY in stream_line("x.pcap", s, show_secrets=True)


# -- progress ------------------------------------------------------------------------------

class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_progress_appears_only_after_half_a_second(monkeypatch, tmp_path):
    from rich.console import Console
    f = tmp_path / "x.pcap"
    f.write_bytes(b"\x00" * 1000)
    clock = _Clock()
    monkeypatch.setattr("analyzer.report.progress.time.monotonic", clock)
    monkeypatch.delenv("DGCAP_PROGRESS_DELAY", raising=False)
    buf = io.StringIO()
    d = ProgressDisplay([str(f)], enabled=True, console=Console(file=buf, force_terminal=True, width=100))
    clock.t += 0.3
    d.update(0, 400, 20000)
    assert not d.started
    clock.t += 0.3
    d.update(0, 800, 40000)
    assert d.started
    d.close()
    assert "x.pcap" in buf.getvalue() and "packets/s" in buf.getvalue() and "0.8/1.0 kB" in buf.getvalue()
    # finished before the delay: never shown
    d2 = ProgressDisplay([str(f)], enabled=True, console=Console(file=io.StringIO(), force_terminal=True))
    clock.t += 0.2
    d2.done(0)
    clock.t += 5
    d2.refresh()
    assert not d2.started


@pytest.fixture(scope="module")
def many_packets(tmp_path_factory) -> Path:
    """A capture of 120k small TCP packets: several progress callbacks (one per 16384 packets)."""
    path = tmp_path_factory.mktemp("big") / "many.pcap"
    frame = synth.ethernet(synth.ipv4(synth.tcp(50000, 443, 1, 1, synth.ACK, b"x" * 10)))
    record = frame
    import struct
    with open(path, "wb") as out:
        out.write(synth.pcap([]))
        head = struct.Struct("<IIII")
        for i in range(120_000):
            out.write(head.pack(1_700_000_000 + i // 1000, (i % 1000) * 1000, len(record), len(record)) + record)
    return path


def _run_in_pty(*args: str, env: dict) -> tuple[int, str, str]:
    """Run dgcap with stderr on a pseudo-terminal; returns (exit code, stdout, terminal output)."""
    master, slave = pty.openpty()
    e = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="120", TERM="xterm", **env)
    proc = subprocess.Popen([sys.executable, "-m", "analyzer.cli", *args], cwd=REPO, env=e,
                            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    stdout = proc.stdout.read().decode()
    proc.wait()
    os.close(master)
    return proc.returncode, stdout, b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_on_a_terminal(many_packets):
    code, stdout, tty = _run_in_pty("report", str(many_packets), "--format", "json",
                                    env={"DGCAP_PROGRESS_DELAY": "0"})
    assert code == 0
    assert "analysing" in tty and "many.pcap" in tty and "packets/s" in tty and "MB" in tty
    assert json.loads(stdout)["captures"][0]["packets"] == 120_000  # stdout is untouched
    code, _, tty = _run_in_pty("report", str(many_packets), "-q", "--format", "json",
                               env={"DGCAP_PROGRESS_DELAY": "0"})
    assert code == 0 and "analysing" not in tty
    # --stream lines go to the redirected stdout, not into the terminal with the bar
    code, stdout, tty = _run_in_pty("report", str(CAPTURES / "dg_multi.pcapng"), str(many_packets), "--stream",
                                    "-o", os.devnull, env={"DGCAP_PROGRESS_DELAY": "0"})
    assert code == 1 and "analysing" in tty
    assert _stream_streams(stdout.splitlines()) == [1, 2, 0] and "tcp.stream" not in tty
    # -j 2: the bar counts both captures
    code, _, tty = _run_in_pty("report", str(many_packets), str(CAPTURES / "dg_401.pcap"), "-j", "2",
                               "--format", "json", env={"DGCAP_PROGRESS_DELAY": "0"})
    assert code == 1 and "captures" in tty and "packets/s" in tty


def test_no_progress_when_stderr_is_not_a_terminal(many_packets):
    r = run_cli("report", str(many_packets), "--format", "json", env={"DGCAP_PROGRESS_DELAY": "0"})
    assert r.returncode == 0 and r.stderr == ""


def test_no_progress_for_a_quick_capture():
    code, _, tty = _run_in_pty("report", str(CAPTURES / "dg_401.pcap"), "--format", "json", env={})
    assert code == 1 and "analysing" not in tty
