"""Integrity: inputs are only read, reports are written atomically, Ctrl-C stops cleanly.

* Every open() of a capture or key log during `dgcap report` is read-only (builtins.open,
  io.open, os.open and gzip are watched), and the files are byte-for-byte unchanged after.
* -o FILE goes through a temporary file in the same folder and a rename: a render that fails,
  a write that fails half-way or a rename that fails leave neither a partial report nor a
  temporary file, and an existing report is left as it was.
* SIGINT during the analysis of a large capture: no traceback, the packets read so far are
  reported, marked incomplete by an `analysis-interrupted` finding (exit 1: an error finding).
"""
from __future__ import annotations

import builtins
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzer import cli
from tests.support import capture_synth as synth

from test_limits import PcapWriter, Tcp, upgrade, ws_frame

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"


def env() -> dict:
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.pop("SSLKEYLOGFILE", None)
    return e


def digest(path: Path) -> tuple:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, stat.S_IMODE(st.st_mode)


# --- read-only inputs ------------------------------------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("dg_success.pcap", "dg_multi.pcapng", "tls13_aes128_success.pcap",
                 "tls13_aes128_success.keys"):
        shutil.copy(CAPTURES / name, folder / name)
    (folder / "dg_deflate.pcap.gz").write_bytes(gzip.compress((CAPTURES / "dg_deflate.pcap").read_bytes()))
    for p in folder.iterdir():
        p.chmod(0o444)
    return folder


def test_inputs_are_opened_read_only(inputs, tmp_path, monkeypatch, capsys):
    seen: list[tuple[str, str]] = []
    watched = {str(p) for p in inputs.iterdir()}

    def note(file, how):
        try:
            name = os.fspath(file)
        except TypeError:
            return
        if isinstance(name, bytes):
            name = name.decode()
        if os.path.abspath(name) in watched:
            seen.append((os.path.basename(name), how))

    real_open, real_io_open, real_os_open = builtins.open, io.open, os.open

    def fake_open(file, mode="r", *args, **kwargs):
        note(file, mode)
        return real_open(file, mode, *args, **kwargs)

    def fake_io_open(file, mode="r", *args, **kwargs):
        note(file, mode)
        return real_io_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        note(path, f"os.open flags {flags:#o}")
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_io_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    before = {p.name: digest(p) for p in inputs.iterdir()}
    out = tmp_path / "report.json"
    code = cli.main(["report", "-q", "--format", "json", "-o", str(out),
                     "--keylog", str(inputs / "tls13_aes128_success.keys"), str(inputs)])
    monkeypatch.undo()
    assert code == 1  # the 401 in dg_multi
    opened = {name for name, _ in seen}
    # Non-vacuous: every capture and the key log were opened through the watched calls.
    assert opened == {"dg_success.pcap", "dg_multi.pcapng", "tls13_aes128_success.pcap",
                      "tls13_aes128_success.keys", "dg_deflate.pcap.gz"}, seen
    for name, how in seen:
        assert how in ("r", "rb") or (how.startswith("os.open") and
                                      int(how.split()[-1], 8) & _WRITE_FLAGS == 0), (name, how)
    assert {p.name: digest(p) for p in inputs.iterdir()} == before
    report = json.loads(out.read_text())
    assert [c["error"] for c in report["captures"]] == [None] * 4
    assert [s["transport"] for c in report["captures"] for s in c["sessions"]
            if "tls" in s["transport"]] == ["tls-decrypted"]


def test_read_only_copies_analyse_like_the_originals(inputs):
    # 0444 files (what a read-only mount or another user's capture looks like).
    proc = subprocess.run([sys.executable, "-m", "analyzer.cli", "report", "-q", "--format", "json",
                           str(inputs / "dg_success.pcap")], capture_output=True, text=True,
                          env=env(), cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    [capture] = json.loads(proc.stdout)["captures"]
    assert (capture["packets"], len(capture["sessions"]), capture["error"]) == (90, 1, None)
    assert stat.S_IMODE((inputs / "dg_success.pcap").stat().st_mode) == 0o444


# --- atomic output ---------------------------------------------------------------------------------

def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".dgcap-"))


def test_report_file_is_complete_and_no_temporary_file_remains(tmp_path):
    out = tmp_path / "report.json"
    code = cli.main(["report", "-q", "--format", "json", "-o", str(out), str(CAPTURES / "dg_success.pcap")])
    assert code == 0
    assert json.loads(out.read_text())["captures"][0]["packets"] == 90
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("failure", ["rename", "write"])
def test_failing_write_leaves_the_old_report_and_no_temporary_file(tmp_path, monkeypatch, failure):
    out = tmp_path / "report.txt"
    out.write_text("the previous report\n")
    if failure == "rename":
        def fail(src, dst):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(os, "replace", fail)
    else:
        real_fdopen = os.fdopen

        class HalfWriter:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, text):
                self.f.write(text[:len(text) // 2])
                self.f.flush()
                raise OSError(28, "No space left on device")
        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: HalfWriter(real_fdopen(fd, *a, **k)))
    with pytest.raises(OSError) as exc:
        cli.write_output("x" * 100_000, str(out))
    assert exc.value.filename == str(out) and "No space left on device" in str(exc.value)
    assert out.read_text() == "the previous report\n"
    assert leftovers(tmp_path) == []


_FAILING_RENDER = """
import sys
from analyzer import cli
from analyzer.commands import report
def boom(*args, **kwargs):
    raise RuntimeError("renderer exploded")
report.render = boom
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("fmt", ["json", "html"])
def test_failing_render_leaves_no_file_and_no_traceback(tmp_path, fmt):
    out = tmp_path / f"report.{fmt}"
    proc = subprocess.run([sys.executable, "-c", _FAILING_RENDER, "report", "-q", "--format", fmt,
                           "-o", str(out), str(CAPTURES / "dg_success.pcap")],
                          capture_output=True, text=True, env=env(), cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "dgcap: error: internal error: RuntimeError: renderer exploded (set DGCAP_DEBUG=1 for details; "
        "please report it)"]
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("target", ["missing-folder", "a-folder"])
def test_unwritable_output_is_one_line(tmp_path, target):
    out = tmp_path / "nope" / "report.json" if target == "missing-folder" else tmp_path
    proc = subprocess.run([sys.executable, "-m", "analyzer.cli", "report", "-q", "--format", "json",
                           "-o", str(out), str(CAPTURES / "dg_success.pcap")],
                          capture_output=True, text=True, env=env(), cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    reason = "No such file or directory" if target == "missing-folder" else "Is a directory"
    assert proc.stderr.splitlines() == [f"dgcap: error: {out}: cannot write the report: {reason}"]
    assert leftovers(tmp_path) == [] and leftovers(tmp_path.parent) == []


# --- Ctrl-C ----------------------------------------------------------------------------------------

def write_large_capture(path: Path, sessions: int = 20, chunks: int = 1500) -> int:
    """`sessions` concurrent WebSocket sessions streaming 3200-byte audio frames in 1448-byte
    segments (~100 MB, ~90 000 packets); returns the packet count."""
    w = PcapWriter(path)
    conns = []
    for i in range(sessions):
        tcp = Tcp(w, cport=30000 + i)
        upgrade(tcp)
        conns.append(tcp)
    frame = ws_frame(2, bytes(range(256)) * 12 + bytes(128), True)
    pieces = [frame[i:i + 1448] for i in range(0, len(frame), 1448)]
    headers = {tcp.cport: bytearray(synth.ethernet(synth.ipv4(synth.tcp(tcp.cport, 80, 0, 0, synth.ACK | synth.PSH)),
                                                   pad_to=0)) for tcp in conns}
    f, t = w.f, w.t
    for _ in range(chunks):
        for tcp in conns:
            head = headers[tcp.cport]
            for piece in pieces:
                struct.pack_into("!H", head, 16, 40 + len(piece))
                struct.pack_into("!II", head, 38, tcp.seq[0] & 0xFFFFFFFF, tcp.seq[1])
                t += 0.0001
                sec = int(t)
                f.write(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(head) + len(piece),
                                    len(head) + len(piece)) + head + piece)
                tcp.seq[0] += len(piece)
                w.packets += 1
    w.t = t
    for tcp in conns:
        tcp.send(0, ws_frame(8, b"\x03\xe8", True))
        tcp.send(1, ws_frame(8, b"\x03\xe8", False))
        tcp.close()
    w.close()
    return w.packets


def read_position(pid: int, path: Path):
    """Where process `pid` is in `path` (its open file's offset), or None if not open."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    for line in info:
                        if line.startswith("pos:"):
                            return int(line.split()[1])
        except OSError:
            continue
    return None


@pytest.mark.skipif(not os.path.isdir("/proc/self/fdinfo"), reason="needs /proc to see the read position")
@pytest.mark.parametrize("output", ["stdout", "file"])
def test_ctrl_c_reports_what_was_read_marked_incomplete(tmp_path, output):
    big = tmp_path / "big.pcap"
    total = write_large_capture(big)
    size = big.stat().st_size
    out = tmp_path / "report.json"
    # One process: Ctrl-C on a capture split over workers (--shards auto, 100 MB) gives no partial
    # report (README, "Both cores for one capture").
    args = [sys.executable, "-m", "analyzer.cli", "report", "-q", "--shards", "off", "--format", "json", str(big)]
    if output == "file":
        args[5:5] = ["-o", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(), cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            position = read_position(proc.pid, big)
            if position is not None and position > size // 50:
                break
            if proc.poll() is not None:
                pytest.fail("the analysis ended before it could be interrupted")
            time.sleep(0.005)
        assert position < size * 0.9, "the analysis was too fast to interrupt mid-file"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = stderr.decode()
    assert "Traceback" not in stderr
    assert proc.returncode == 1, stderr
    report = json.loads(out.read_text() if output == "file" else stdout)
    [capture] = report["captures"]
    read = capture["packets"]
    assert 0 < read < total
    [finding] = [f for f in capture["findings"] if f["id"] == "analysis-interrupted"]
    assert finding["severity"] == "error"
    assert finding["details"] == {"packets_read": read}
    assert finding["message"] == f"Analysis was interrupted after {read} packets: the report is incomplete."
    assert capture["stats"]["interrupted"] is True
    assert stderr.splitlines() == [f"dgcap: warning: {big}: {finding['message']}"]
    # What was read is reported: all 20 sessions, their handshakes and frames so far.
    assert len(capture["sessions"]) == 20
    assert all(s["handshake"]["status"] == 101 and s["frames"]["client"]["binary"] > 0
               for s in capture["sessions"])
    assert leftovers(tmp_path) == []
