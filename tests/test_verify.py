"""`dgcap verify`: both engines, a table of disagreements, exit 0 / 1 / 2."""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from analyzer.cli import main
from test_tshark_differences import MASK, audio_session, conversation, ws_frame

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None,
                                  reason="tshark not installed (apt-get install tshark); verify needs it")

MISSING = ("dgcap: error: tshark not found: install it with `apt-get install tshark` (Debian/Ubuntu) "
           "or Wireshark's installer; then re-run\n")


def one_byte_close(tmp_path: Path) -> Path:
    """A session whose server close frame (No. 14) has a one-byte payload: tshark cannot see the
    byte, so the engines disagree (tests/test_tshark_differences.py::test_close_frame_with_one_byte)."""
    path = tmp_path / "close1.pcap"
    segments = audio_session()[:-2] + [("c", ws_frame(8, struct.pack("!H", 1000), mask=MASK)), ("s", ws_frame(8, b"\x03"))]
    path.write_bytes(conversation(segments))
    return path


def verify_json(capsys, *args) -> tuple[int, dict]:
    code = main(["verify", "--format", "json", *map(str, args)])
    return code, json.loads(capsys.readouterr().out)


@needs_tshark
def test_engines_agree(capsys):
    code = main(["verify", str(CAPTURES / "dg_success.pcap"), str(CAPTURES / "dg_401.pcap")])
    out = capsys.readouterr().out
    assert code == 0
    assert f"agree  {CAPTURES / 'dg_success.pcap'}: 1 session, 90 packets" in out
    assert f"agree  {CAPTURES / 'dg_401.pcap'}: 1 session, 10 packets" in out
    assert "2 of 2 captures: engines agree" in out


@needs_tshark
def test_disagreement_is_listed_and_exits_1(tmp_path, capsys):
    path = one_byte_close(tmp_path)
    code, result = verify_json(capsys, path)
    assert code == 1
    (cap,) = result["captures"]
    assert (cap["path"], cap["agree"], cap["packets"]) == (str(path), False, 17)
    assert cap["differences"] == [
        {"tcp_stream": 0, "group": "findings", "name": "findings",
         "native": ["close-payload-one-byte", "closed-before-metadata"], "tshark": ["closed-before-metadata"]},
        {"tcp_stream": 0, "group": "findings", "name": "findings.close-payload-one-byte.frames",
         "native": [14], "tshark": None},
    ]
    assert result["engines"]["tshark"]["name"] == "tshark"


@needs_tshark
def test_rich_table(tmp_path, capsys):
    path = one_byte_close(tmp_path)
    out_file = tmp_path / "verify.txt"
    assert main(["verify", str(path), "-o", str(out_file)]) == 1
    assert capsys.readouterr().out == ""
    text = out_file.read_text()
    assert f"differ {path}: 2 differences" in text
    assert "tcp.stream eq 0  10.0.0.1:40000 -> 10.0.0.2:18099" in text
    rows = [[cell.strip() for cell in line.split("│")[1:5]] for line in text.splitlines() if line.startswith("│")]
    assert rows == [["findings", "findings", '["close-payload-one-byte", "closed-before-metadata"]',
                     '["closed-before-metadata"]'],
                    ["findings", "findings.close-payload-one-byte.frames", "[14]", "-"]]
    assert "0 of 1 capture: engines agree" in text


def test_tshark_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["verify", str(CAPTURES / "dg_success.pcap")]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", MISSING)


def test_bad_input(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nope.pcap")]) == 2
    assert capsys.readouterr().err == f"dgcap: error: {tmp_path / 'nope.pcap'}: no such file or folder\n"
    assert main(["verify", "--gap-threshold", "0", str(CAPTURES / "dg_success.pcap")]) == 2
    assert capsys.readouterr().err == "dgcap: error: --gap-threshold must be a positive number of seconds\n"


@needs_tshark
def test_folder_of_captures(tmp_path, capsys):
    shutil.copy(CAPTURES / "dg_success.pcap", tmp_path / "a.pcap")
    one_byte_close(tmp_path)
    (tmp_path / "notes.txt").write_text("not a capture")
    code, result = verify_json(capsys, tmp_path)
    assert code == 1
    assert [(Path(c["path"]).name, c["agree"], len(c["differences"])) for c in result["captures"]] == \
        [("a.pcap", True, 0), ("close1.pcap", False, 2)]


@needs_tshark
def test_gap_threshold_is_used_by_both_engines(capsys):
    """dg_silence_7s.pcap has a 7 s client silence: no gap at 10 s, a gap of each kind at 5 s."""
    path = CAPTURES / "dg_silence_7s.pcap"
    code, result = verify_json(capsys, path)
    assert (code, result["captures"][0]["sessions"][0]["gaps"]) == (0, 0)
    code, result = verify_json(capsys, path, "--gap-threshold", "5")
    (session,) = result["captures"][0]["sessions"]
    assert (code, session["gaps"], session["findings"]) == (0, 2, ["client-gap", "audio-gap"])


@needs_tshark
def test_keylog_is_used_by_both_engines(capsys, monkeypatch):
    path = CAPTURES / "tls13_aes128_success.pcap"
    keys = CAPTURES / "tls13_aes128_success.keys"
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)
    # Without keys a short stream to "localhost" is a session only when named as a server.
    code, result = verify_json(capsys, path, "--server-name", "localhost")
    assert (code, result["captures"][0]["sessions"][0]["transport"]) == (0, "tls")
    code, result = verify_json(capsys, path, "--keylog", keys)
    assert (code, result["captures"][0]["sessions"][0]["transport"]) == (0, "tls-decrypted")
    monkeypatch.setenv("SSLKEYLOGFILE", str(keys))
    code, result = verify_json(capsys, path)
    assert (code, result["captures"][0]["sessions"][0]["transport"]) == (0, "tls-decrypted")


def tshark_version() -> str:
    from analyzer.engines.tshark import find_tshark, tshark_version
    return tshark_version(find_tshark())


def deep_folder(tmp_path: Path) -> Path:
    """A folder whose path is over 120 characters: lines naming it must still not wrap."""
    folder = tmp_path.joinpath(*["a-rather-long-folder-name"] * 5)
    folder.mkdir(parents=True)
    assert len(str(folder)) > 120
    return folder


@needs_tshark
def test_long_path_at_80_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    folder = deep_folder(tmp_path)
    path = one_byte_close(folder)
    agreeing = folder / "dg_401.pcap"
    agreeing.write_bytes((CAPTURES / "dg_401.pcap").read_bytes())
    assert main(["verify", str(path), str(agreeing)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        # The table (137 columns) does not fit in 80: one block per difference instead.
        f"differ {path}: 2 differences",
        "tcp.stream eq 0  10.0.0.1:40000 -> 10.0.0.2:18099",
        "  findings findings",
        '    native: ["close-payload-one-byte", "closed-before-metadata"]',
        f'    tshark {tshark_version()}: ["closed-before-metadata"]',
        "  findings findings.close-payload-one-byte.frames",
        "    native: [14]",
        f"    tshark {tshark_version()}: -",
        f"agree  {agreeing}: 1 session, 10 packets",
        f"1 of 2 captures: engines agree, 1 differs (native vs tshark {tshark_version()}); known tshark limitations: "
        "docs/tshark-differences.md",
    ]


@needs_tshark
def test_long_path_in_a_file(tmp_path, capsys):
    path = one_byte_close(deep_folder(tmp_path))
    out_file = tmp_path / "verify.txt"
    assert main(["verify", str(path), "-o", str(out_file)]) == 1
    lines = out_file.read_text().splitlines()
    assert lines[:3] == [f"differ {path}: 2 differences", "tcp.stream eq 0  10.0.0.1:40000 -> 10.0.0.2:18099",
                         "┏" + "━" * 10 + "┳" + "━" * 40 + "┳" + "━" * 54 + "┳" + "━" * 28 + "┓"]
    assert max(len(line) for line in lines[2:-1]) == 137  # the table, whole, in the file's 140 columns
