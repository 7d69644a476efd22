"""Bad inputs to every command: one line on stderr with the path once, exit 2."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analyzer.cli import main

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None,
                                  reason="tshark not installed (apt-get install tshark); verify needs it")
EXTRA = {"extract": ["--session", "1"]}


def inputs(tmp_path: Path) -> dict:
    (tmp_path / "empty.pcap").write_bytes(b"")
    (tmp_path / "text.pcap").write_text("hello\n")
    (tmp_path / "folder").mkdir()
    return {"missing": tmp_path / "missing.pcap", "empty": tmp_path / "empty.pcap",
            "text": tmp_path / "text.pcap", "folder": tmp_path / "folder"}


def run(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("command", ["audio", "extract", "messages"])
@pytest.mark.parametrize("kind,line", [
    ("missing", "{path}: no such file"),
    ("empty", "{path}: empty file (0 bytes)"),
    ("text", "{path}: file is not a pcap or pcapng capture (starts with 68 65 6c 6c)"),
    ("folder", "{path}: is a folder; dgcap {command} takes one capture file (dgcap report takes folders)"),
])
def test_single_capture_commands(tmp_path, capsys, monkeypatch, command, kind, line):
    monkeypatch.chdir(tmp_path)  # audio and extract write next to it when the input is good
    path = inputs(tmp_path)[kind]
    assert run(capsys, command, path, *EXTRA.get(command, [])) == \
        (2, f"dgcap: error: {line.format(path=path, command=command)}\n")


@pytest.mark.parametrize("kind,line", [
    ("missing", "{path}: no such file or folder"),
    ("empty", "{path}: empty file (0 bytes)"),
    ("text", "{path}: file is not a pcap or pcapng capture (starts with 68 65 6c 6c)"),
    ("folder", "no capture files (pcap/pcapng) found in {path}"),
])
def test_report(tmp_path, capsys, kind, line):
    path = inputs(tmp_path)[kind]
    assert run(capsys, "report", path, "--format", "json", "-o", tmp_path / "r.json") == \
        (2, f"dgcap: error: {line.format(path=path)}\n")


@needs_tshark
@pytest.mark.parametrize("kind,line", [
    ("empty", "{path}: empty file (0 bytes)"),  # was "{path}: {path}: empty file (0 bytes)"
    ("text", "{path}: file is not a pcap or pcapng capture (starts with 68 65 6c 6c)"),
])
def test_verify_names_the_path_once(tmp_path, capsys, kind, line):
    path = inputs(tmp_path)[kind]
    code, err = run(capsys, "verify", path, "--format", "json")
    assert (code, err) == (2, f"dgcap: error: {line.format(path=path)}\n")


def test_extract_into_a_missing_folder(tmp_path, capsys):
    """Named after the output, not the temporary file beside it (.dgcap-XXXX.pcapng)."""
    out = tmp_path / "nowhere" / "x.pcapng"
    assert run(capsys, "extract", CAPTURES / "dg_success.pcap", "--session", "1", "-o", out) == \
        (2, f"dgcap: error: -o {out}: folder {out.parent} does not exist\n")
