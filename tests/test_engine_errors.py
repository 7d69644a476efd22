"""Both engines on cut and corrupt captures: one line on stderr (never a pyshark traceback), a
partial report where the packets before the damage could be read, and `dgcap verify`'s summary
counting the captures it could not compare."""
from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "captures"
ENV = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200", TERM="dumb")
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None,
                                  reason="tshark not installed (apt-get install tshark); the tshark engine needs it")


def tshark_version() -> str:
    from analyzer.engines.tshark import find_tshark, tshark_version
    return tshark_version(find_tshark())


def dgcap(*args) -> tuple[int, str, str]:
    r = subprocess.run([sys.executable, "-m", "analyzer.cli", *map(str, args)], cwd=REPO, env=ENV,
                       capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


def corrupt_length(tmp_path: Path) -> Path:
    """dg_success.pcap with record 20's captured length (byte 18236 + 8) set to 4294967040."""
    data = bytearray((CAPTURES / "dg_success.pcap").read_bytes())
    struct.pack_into("<I", data, 18236 + 8, 0xFFFFFF00)
    path = tmp_path / "corrupt_length.pcap"
    path.write_bytes(data)
    return path


def cut_pcapng(tmp_path: Path) -> Path:
    data = (CAPTURES / "dg_multi.pcapng").read_bytes()
    path = tmp_path / "cut.pcapng"
    path.write_bytes(data[:len(data) // 2 + 3])  # inside the Enhanced Packet Block at byte 81604
    return path


def garbage(tmp_path: Path, name: str, keep: int) -> Path:
    rng = random.Random(1)
    path = tmp_path / name
    path.write_bytes((CAPTURES / name.replace("garbage", "dg_success" if name.endswith("pcap") else "dg_multi"))
                     .read_bytes()[:keep] + bytes(rng.randrange(256) for _ in range(200)))
    return path


NATIVE_CORRUPT = ("The capture file is cut or corrupt at byte 18236: corrupt packet record 20 at byte 18236: "
                  "captured length 4294967040 exceeds the maximum 262144. The report covers the 19 packets "
                  "before it.")
TSHARK_CORRUPT = ("tshark: The file appears to be damaged or corrupt. (pcap: File has 4294967040-byte packet, "
                  "bigger than maximum of 262144) The report covers the 19 packets before it.")
NATIVE_CUT = ("The capture file is cut or corrupt at byte 81604: file ends inside the pcapng block at byte 81604 "
              "(type 0x00000006, 3308 bytes, 1761 present). The report covers the 76 packets before it.")
TSHARK_CUT = ("tshark: The file appears to have been cut short in the middle of a packet. The report covers the "
              "76 packets before it.")


@pytest.mark.parametrize("engine", ["native", pytest.param("tshark", marks=needs_tshark)])
@pytest.mark.parametrize("damage", ["corrupt length", "cut pcapng"])
def test_partial_report_and_one_warning(tmp_path, engine, damage):
    path = corrupt_length(tmp_path) if damage == "corrupt length" else cut_pcapng(tmp_path)
    message = {("native", "corrupt length"): NATIVE_CORRUPT, ("tshark", "corrupt length"): TSHARK_CORRUPT,
               ("native", "cut pcapng"): NATIVE_CUT, ("tshark", "cut pcapng"): TSHARK_CUT}[engine, damage]
    code, out, err = dgcap("report", "--engine", engine, path, "--format", "json")
    assert (code, err) == (1, f"dgcap: warning: {path}: {message}\n")
    assert f'"message": "{message}"' in out


@needs_tshark
@pytest.mark.parametrize("name,keep,line", [
    ("garbage.pcap", 24, "The file appears to be damaged or corrupt. (pcap: File has 251211883-byte packet, "
                         "bigger than maximum of 262144)"),
    ("garbage.pcapng", 200, "The file appears to be damaged or corrupt. (pcapng: Not enough data to handle "
                            "option of length 15490)"),
])
def test_tshark_engine_failure_is_one_line(tmp_path, name, keep, line):
    """Nothing readable after the header: one line and exit 2, no "Exception ignored in ...
    TSharkCrashException" traceback when pyshark's capture object is collected."""
    path = garbage(tmp_path, name, keep)
    code, out, err = dgcap("report", "--engine", "tshark", path, "--format", "json")
    assert (code, err) == (2, f"dgcap: error: {path}: tshark cannot read it: {line}\n")


def test_native_engine_on_garbage_after_the_header(tmp_path):
    path = garbage(tmp_path, "garbage.pcap", 24)
    code, _out, err = dgcap("report", path, "--format", "json")
    assert (code, err) == (1, f"dgcap: warning: {path}: The capture file is cut or corrupt at byte 24: corrupt "
                              "packet record 1 at byte 24: captured length 251211883 exceeds the maximum 262144. "
                              "The report covers the 0 packets before it.\n")


@needs_tshark
def test_verify_counts_what_it_could_not_compare(tmp_path):
    bad = garbage(tmp_path, "garbage.pcap", 24)
    good = CAPTURES / "dg_401.pcap"
    code, out, err = dgcap("verify", bad, good)
    assert code == 2
    assert err == (f"dgcap: error: {bad}: tshark cannot read it: The file appears to be damaged or corrupt. "
                   "(pcap: File has 251211883-byte packet, bigger than maximum of 262144)\n")
    assert out.splitlines() == [  # in the order given
        f"failed {bad}: not compared (the error is on stderr)",
        f"agree  {good}: 1 session, 10 packets",
        f"1 of 2 captures: engines agree, 1 could not be read (native vs tshark {tshark_version()}); known tshark "
        "limitations: docs/tshark-differences.md"]


@needs_tshark
def test_verify_of_a_damaged_capture_warns_per_engine(tmp_path):
    path = corrupt_length(tmp_path)
    code, out, err = dgcap("verify", path)
    assert code == 0  # both engines read the same 19 packets and agree on them
    assert err == (f"dgcap: warning: {path}: native engine: {NATIVE_CORRUPT}\n"
                   f"dgcap: warning: {path}: tshark engine: {TSHARK_CORRUPT.removeprefix('tshark: ')}\n")
    assert out.splitlines()[-1] == (f"1 of 1 capture: engines agree (native vs tshark {tshark_version()}); known "
                                    "tshark limitations: docs/tshark-differences.md")


@needs_tshark
def test_verify_json_summary(tmp_path):
    import json
    bad = garbage(tmp_path, "garbage.pcapng", 200)
    code, out, _err = dgcap("verify", "--format", "json", bad, CAPTURES / "dg_401.pcap")
    doc = json.loads(out)
    assert code == 2
    assert doc["summary"] == {"captures": 2, "agree": 1, "differ": 0, "failed": 1}
    assert doc["failed"] == [{"path": str(bad), "error": f"{bad}: tshark cannot read it: The file appears to be "
                              "damaged or corrupt. (pcapng: Not enough data to handle option of length 15490)"}]
