"""Captures from standard input and pipes: `-`, /dev/stdin, FIFOs, process substitution, gzip.

The report of a pipe is the report of the same bytes in a file, apart from the capture's
name: `-` for standard input, the path as given otherwise (/dev/stdin, /dev/fd/63).
"""
from __future__ import annotations

import gzip
import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from analyzer.capture import open_capture

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "captures"
ENV = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="100", TERM="dumb")
DGCAP = [sys.executable, "-m", "analyzer.cli"]


def dgcap(*args, stdin=None, input: bytes = None) -> subprocess.CompletedProcess:
    return subprocess.run([*DGCAP, *map(str, args)], cwd=REPO, env=ENV, input=input, stdin=stdin,
                          capture_output=True, timeout=120)


def shell(command: str) -> subprocess.CompletedProcess:
    """bash -c COMMAND, with `dgcap` this checkout's command (for pipes and <(...))."""
    dg = " ".join(shlex.quote(a) for a in DGCAP)
    return subprocess.run(["bash", "-c", command.replace("dgcap ", dg + " ")], cwd=REPO, env=ENV,
                          capture_output=True, timeout=120)


def named(text: bytes, path, name: str) -> bytes:
    """The output with the capture's name replaced, to compare a pipe's report with a file's."""
    return text.replace(str(path).encode(), name.encode())


def capture_bytes(name: str, compress: bool = False) -> bytes:
    data = (CAPTURES / name).read_bytes()
    return gzip.compress(data, mtime=0) if compress else data


def record_offsets(data: bytes) -> list[int]:
    """Where each record of a little-endian pcap starts."""
    offsets, offset = [], 24
    while offset < len(data):
        offsets.append(offset)
        offset += 16 + struct.unpack_from("<I", data, offset + 8)[0]
    return offsets


@pytest.mark.parametrize("name,compress,code", [("dg_success.pcap", False, 0), ("dg_multi.pcapng", False, 1),
                                                ("dg_success.pcap", True, 0)])
@pytest.mark.parametrize("fmt", ["json", "rich"])
def test_stdin_report_equals_the_files(tmp_path, name, compress, code, fmt):
    data = capture_bytes(name, compress)
    path = tmp_path / (name + (".gz" if compress else ""))
    path.write_bytes(data)
    from_file = dgcap("report", path, "--format", fmt, "--width", 100)
    from_pipe = dgcap("report", "-", "--format", fmt, "--width", 100, input=data)
    assert from_pipe.returncode == from_file.returncode == code
    assert from_pipe.stderr == from_file.stderr == b""
    if fmt == "rich":  # the header rule is as long as the line less the name
        header, _, rest = from_pipe.stdout.decode().partition("\n")
        assert header == "─" * 44 + " Capture - " + "─" * 45
        assert rest == from_file.stdout.decode().partition("\n")[2]
    else:
        assert from_pipe.stdout == named(from_file.stdout, path, "-")
    if fmt == "json":
        (cap,) = json.loads(from_pipe.stdout)["captures"]
        assert (cap["path"], cap["bytes"], cap["compressed"]) == ("-", len(data), compress)


def test_dev_stdin_process_substitution_and_fifo(tmp_path):
    path = CAPTURES / "dg_multi.pcapng"
    expected = dgcap("report", path, "--format", "json").stdout
    dev_stdin = shell(f"cat {path} | dgcap report /dev/stdin --format json")
    assert dev_stdin.returncode == 1  # dg_multi has an error finding
    assert dev_stdin.stdout == named(expected, path, "/dev/stdin")
    substituted = shell(f"dgcap report --format json <(cat {path})")
    assert substituted.returncode == 1
    name = json.loads(substituted.stdout)["captures"][0]["path"]
    assert name.startswith("/dev/fd/")
    assert substituted.stdout == named(expected, path, name)
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(gzip.compress(path.read_bytes())))
    writer.start()
    result = dgcap("report", fifo, "--format", "json")
    writer.join(10)
    assert result.returncode == 1
    doc = json.loads(result.stdout)["captures"][0]
    assert (doc["path"], doc["packets"], len(doc["sessions"]), doc["compressed"]) == (str(fifo), 151, 3, True)


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_tcpdump_writing_into_a_pipe():
    """`tcpdump -w - | dgcap report -`, with tcpdump re-writing a capture instead of capturing."""
    path = CAPTURES / "dg_success.pcap"
    result = shell(f"tcpdump -r {path} -w - 2>/dev/null | dgcap report - --format json")
    assert result.returncode == 0
    assert result.stdout == named(dgcap("report", path, "--format", "json").stdout, path, "-")


def test_messages_from_stdin():
    path = CAPTURES / "ws_fragmented_ping.pcap"
    from_pipe = dgcap("messages", "-", input=path.read_bytes())
    assert from_pipe.returncode == 0
    assert from_pipe.stdout == dgcap("messages", path).stdout


@pytest.mark.parametrize("damage", ["cut", "corrupt length"])
def test_cut_or_corrupt_pipe_reports_like_the_file(tmp_path, damage):
    data = bytearray(capture_bytes("dg_success.pcap"))
    record_20 = record_offsets(bytes(data))[19]
    if damage == "cut":
        data = data[:record_20 + 100]
    else:
        struct.pack_into("<I", data, record_20 + 8, 0xFFFFFF00)
    path = tmp_path / "damaged.pcap"
    path.write_bytes(data)
    from_file = dgcap("report", path, "--format", "json")
    from_pipe = dgcap("report", "-", "--format", "json", input=bytes(data))
    assert from_pipe.returncode == from_file.returncode == 1
    assert from_pipe.stdout == named(from_file.stdout, path, "-")
    (finding,) = json.loads(from_pipe.stdout)["captures"][0]["findings"]
    why = ("file ends inside packet record 20 at byte 18236 (84 of 3274 captured bytes present)"
           if damage == "cut" else
           "corrupt packet record 20 at byte 18236: captured length 4294967040 exceeds the maximum 262144")
    assert finding["message"] == (f"The capture file is cut or corrupt at byte 18236: {why}. "
                                  "The report covers the 19 packets before it.")
    assert from_pipe.stderr == named(from_file.stderr, path, "-") == \
        f"dgcap: warning: -: {finding['message']}\n".encode()
    # The whole stream was read (its size is the file's), not only up to the damage.
    assert json.loads(from_pipe.stdout)["captures"][0]["bytes"] == len(data)


def test_cut_gzip_pipe_reports_like_the_file(tmp_path):
    data = gzip.compress((CAPTURES / "dg_multi.pcapng").read_bytes(), mtime=0)[:30000]
    path = tmp_path / "cut.pcapng.gz"
    path.write_bytes(data)
    from_file = dgcap("report", path, "--format", "json")
    from_pipe = dgcap("report", "-", "--format", "json", input=data)
    assert from_pipe.returncode == from_file.returncode == 1
    assert from_pipe.stdout == named(from_file.stdout, path, "-")
    (finding,) = json.loads(from_pipe.stdout)["captures"][0]["findings"]
    assert from_pipe.stderr == named(from_file.stderr, path, "-") == f"dgcap: warning: -: {finding['message']}\n".encode()
    assert finding["message"].endswith("of the decompressed data: Compressed file ended before the end-of-stream "
                                       "marker was reached. The report covers the 40 packets before it.")


def test_pipe_is_read_as_it_arrives(tmp_path):
    """Packets come out before the writer has written the rest: the pipe is never read whole."""
    data = capture_bytes("dg_success.pcap")
    first_ten = record_offsets(data)[10]
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    tenth_packet_seen = threading.Event()
    waited = []

    def write() -> None:
        with open(fifo, "wb") as f:
            f.write(data[:first_ten])
            f.flush()
            waited.append(tenth_packet_seen.wait(30))
            f.write(data[first_ten:] * 1)

    writer = threading.Thread(target=write)
    writer.start()
    cap = open_capture(str(fifo))
    frames = []
    with cap:
        for frame_no, _ts, _linktype, _payload in cap.packets():
            frames.append(frame_no)
            if frame_no == 10:
                assert cap.bytes_read == first_ten  # all the writer has written so far
                tenth_packet_seen.set()
    writer.join(10)
    assert waited == [True]
    assert (frames[-1], cap.truncated, cap.size, cap.format) == (90, None, len(data), "pcap")


def test_empty_stdin():
    result = dgcap("report", "-", "--format", "json", input=b"")
    assert (result.returncode, result.stderr) == (2, b"dgcap: error: -: empty input (0 bytes)\n")


def test_stdin_not_a_capture():
    result = dgcap("report", "-", "--format", "json", input=b"hello world\n")
    assert (result.returncode, result.stderr) == (
        2, b"dgcap: error: -: input is not a pcap or pcapng capture (starts with 68 65 6c 6c)\n")


def test_stdin_is_a_terminal():
    import pty
    master, slave = pty.openpty()
    try:
        result = dgcap("report", "-", stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert (result.returncode, result.stderr) == (
        2, b"dgcap: error: -: is a terminal, not a capture: pipe one in (tcpdump -w - | dgcap report -)\n")


@pytest.mark.parametrize("args,line", [
    (["report", "-", "-"], "-: standard input can be given only once"),
    (["report", "-j", "2", "-", CAPTURES / "dg_401.pcap"],
     "-: standard input cannot be handed to worker processes (-j/--scheduler): save it to a file, or drop "
     "-j/--scheduler"),
    (["report", "--engine", "tshark", "-"],
     "-: standard input can be read only once, and the tshark engine reads each capture twice (dgcap finds the "
     "WebSocket ports, then tshark dissects): save it to a file first"),
    (["audio", "-"], "-: standard input can be read only once, and dgcap audio reads the capture twice (its "
                     "sessions, then their audio): save it to a file first"),
    (["extract", "-", "--session", "1"],
     "-: standard input can be read only once, and dgcap extract reads the capture twice (its sessions, then "
     "their packets): save it to a file first"),
    (["verify", "-"], "-: standard input can be read only once, and dgcap verify reads each capture twice (once "
                      "per engine): save it to a file first"),
])
def test_commands_that_cannot_take_stdin(args, line):
    result = dgcap(*args, input=capture_bytes("dg_success.pcap"))
    if args[0] == "verify" and shutil.which("tshark") is None:
        line = ("tshark not found: install it with `apt-get install tshark` (Debian/Ubuntu) or Wireshark's "
                "installer; then re-run")
    assert (result.returncode, result.stderr.decode(), result.stdout) == (2, f"dgcap: error: {line}\n", b"")


def test_audio_of_a_process_substitution_is_refused():
    result = shell(f"dgcap audio <(cat {CAPTURES / 'dg_success.pcap'})")
    name = result.stderr.decode().split(":")[2].strip()
    assert name.startswith("/dev/fd/")
    assert (result.returncode, result.stderr.decode()) == (
        2, f"dgcap: error: {name}: a pipe can be read only once, and dgcap audio reads the capture twice (its "
           "sessions, then their audio): save it to a file first\n")


def test_a_fifo_inside_a_folder_is_not_opened(tmp_path):
    """`dgcap report DIR` looks at regular files only: a FIFO in the folder would block it."""
    os.mkfifo(tmp_path / "waiting.pcap")
    (tmp_path / "dg_401.pcap").write_bytes(capture_bytes("dg_401.pcap"))
    result = dgcap("report", tmp_path, "--format", "json")
    assert result.returncode == 1  # dg_401's handshake-failed
    assert [c["path"] for c in json.loads(result.stdout)["captures"]] == [str(tmp_path / "dg_401.pcap")]


def test_progress_of_a_pipe_counts_bytes_without_a_total(monkeypatch):
    import io
    from rich.console import Console
    from analyzer.report.progress import ProgressDisplay
    monkeypatch.setattr("analyzer.report.progress.time.monotonic", lambda: 100.0)
    buf = io.StringIO()
    display = ProgressDisplay(["-"], enabled=True, delay=0,
                              console=Console(file=buf, force_terminal=True, width=100))
    display.update(0, 800_000, 40000)
    display.done(0)
    display.close()
    # rich's DownloadColumn without a total; a pipe taken as 0 bytes long showed "0/1 bytes"
    assert "800.0/? kB" in buf.getvalue()
