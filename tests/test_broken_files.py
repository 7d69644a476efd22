"""Broken input files through the real CLI: no traceback, one clear line, and the readable
part reported.

Every broken file is made from a real recording in captures/ (cut, corrupted, recompressed),
so the part before the damage is a known good session.  Where part of a file is readable the
report covers it and carries a `capture-truncated` finding with the byte offset of the damage
(exit 1: it is an error finding); where nothing is readable the exit status is 2 and stderr
holds one `dgcap: error: ...` line.
"""
from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.pipeline import Options, analyze_capture

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"
SUCCESS = CAPTURES / "dg_success.pcap"
MULTI = CAPTURES / "dg_multi.pcapng"


def dgcap(*args, cwd=None) -> subprocess.CompletedProcess:
    """`python -m analyzer.cli ...` on this checkout (whatever `dgcap` is installed elsewhere)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               COLUMNS="200")
    env.pop("SSLKEYLOGFILE", None)
    proc = subprocess.run([sys.executable, "-m", "analyzer.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT, env=env, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout
    return proc


def stderr_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def json_report(*paths) -> tuple[subprocess.CompletedProcess, dict]:
    proc = dgcap("report", "-q", "--format", "json", *paths)
    return proc, json.loads(proc.stdout)


def pcap_records(data: bytes) -> list[tuple[int, int]]:
    """(offset, total record length) of every record of a little-endian pcap."""
    out, offset = [], 24
    while offset < len(data):
        caplen = struct.unpack_from("<I", data, offset + 8)[0]
        out.append((offset, 16 + caplen))
        offset += 16 + caplen
    return out


def pcapng_blocks(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, length) of every block of a little-endian pcapng."""
    out, offset = [], 0
    while offset < len(data):
        block_type, length = struct.unpack_from("<II", data, offset)
        out.append((offset, block_type, length))
        offset += length
    return out


def truncated_finding(capture: dict) -> dict:
    [finding] = [f for f in capture["findings"] if f["id"] == "capture-truncated"]
    assert finding["severity"] == "error"
    assert "\n" not in finding["message"]
    return finding


def assert_warning_line(proc, path: Path, offset: int) -> None:
    [line] = [l for l in stderr_lines(proc) if "warning" in l]
    assert line.startswith(f"dgcap: warning: {path}: The capture file is cut or corrupt at byte {offset}:")


# --- nothing readable: exit 2, one line --------------------------------------------------------

def test_empty_file(tmp_path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    proc = dgcap("report", path)
    assert proc.returncode == 2
    assert stderr_lines(proc) == [f"dgcap: error: {path}: empty file (0 bytes)"]


def test_wav_file_is_named_as_such(tmp_path):
    # The WAV file a client streamed in dg_wav_container.pcap, exported from the capture.
    chunks = []
    analyze_capture(str(CAPTURES / "dg_wav_container.pcap"),
                    Options(binary_hook=lambda s, f, c: chunks.append(bytes(c)) if not isinstance(c, int) else None))
    wav = b"".join(chunks)
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    path = tmp_path / "audio.pcap"
    path.write_bytes(wav)
    proc = dgcap("report", "--format", "json", path)
    assert proc.returncode == 2
    assert stderr_lines(proc) == [
        f"dgcap: error: {path}: file is a RIFF file (WAV audio?), not a pcap or pcapng capture"]
    capture = json.loads(proc.stdout)["captures"][0]
    assert capture["error"] == f"{path}: file is a RIFF file (WAV audio?), not a pcap or pcapng capture"
    assert capture["sessions"] == []


def test_text_file(tmp_path):
    path = tmp_path / "notes.pcap"
    path.write_bytes((CAPTURES / "README.md").read_bytes())
    proc = dgcap("report", path)
    assert proc.returncode == 2
    assert stderr_lines(proc) == [
        f"dgcap: error: {path}: file is not a pcap or pcapng capture (starts with 23 20 53 61)"]


def test_pcap_file_header_cut(tmp_path):
    path = tmp_path / "cut-header.pcap"
    path.write_bytes(SUCCESS.read_bytes()[:10])
    proc = dgcap("report", path)
    assert proc.returncode == 2
    assert stderr_lines(proc) == [
        f"dgcap: error: {path}: not a readable pcap file: incomplete pcap file header (needs 24 bytes)"]


def test_pcapng_section_header_corrupt(tmp_path):
    data = bytearray(MULTI.read_bytes())
    struct.pack_into("<I", data, 4, 7)  # the first SHB's length
    path = tmp_path / "bad-shb.pcapng"
    path.write_bytes(bytes(data))
    proc = dgcap("report", path)
    assert proc.returncode == 2
    assert stderr_lines(proc) == [
        f"dgcap: error: {path}: not a readable pcapng file: Section Header Block has a corrupt length 7"]


def test_gzip_cut_inside_its_header(tmp_path):
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(gzip.compress(SUCCESS.read_bytes(), mtime=0)[:15])
    proc = dgcap("report", path)
    assert proc.returncode == 2
    assert stderr_lines(proc) == [
        f"dgcap: error: {path}: gzip-compressed, but the compressed data cannot be read"]


def test_folder_with_a_broken_file_reports_the_good_one_and_exits_2(tmp_path):
    (tmp_path / "a.pcap").write_bytes(SUCCESS.read_bytes())
    (tmp_path / "b.pcap").write_bytes(SUCCESS.read_bytes()[:20])
    proc, report = json_report(tmp_path)
    assert proc.returncode == 2
    assert stderr_lines(proc) == [
        f"dgcap: error: {tmp_path / 'b.pcap'}: not a readable pcap file: incomplete pcap file header "
        "(needs 24 bytes)"]
    good, bad = report["captures"]
    assert len(good["sessions"]) == 1 and good["error"] is None and good["packets"] == 90
    assert bad["sessions"] == [] and bad["error"].endswith("incomplete pcap file header (needs 24 bytes)")


# --- header only: a valid, empty capture ----------------------------------------------------

def test_pcap_header_only(tmp_path):
    path = tmp_path / "header.pcap"
    path.write_bytes(SUCCESS.read_bytes()[:24])
    proc, report = json_report(path)
    assert proc.returncode == 0 and stderr_lines(proc) == []
    [capture] = report["captures"]
    assert (capture["packets"], capture["sessions"], capture["findings"], capture["error"]) == (0, [], [], None)
    text = dgcap("report", path)
    assert text.returncode == 0
    assert "0 packets" in text.stdout and "No WebSocket sessions or upgrade attempts found." in text.stdout


def test_pcapng_section_and_interface_only(tmp_path):
    data = MULTI.read_bytes()
    blocks = pcapng_blocks(data)
    assert [t for _, t, _ in blocks[:2]] == [0x0A0D0D0A, 1]
    path = tmp_path / "header.pcapng"
    path.write_bytes(data[:blocks[2][0]])
    proc, report = json_report(path)
    assert proc.returncode == 0 and stderr_lines(proc) == []
    [capture] = report["captures"]
    assert (capture["format"], capture["packets"], capture["sessions"], capture["findings"]) == ("pcapng", 0, [], [])


# --- partly readable: the report covers the readable part ----------------------------------------

@pytest.mark.parametrize("inside", ["data", "header"])
def test_pcap_record_cut_in_the_middle(tmp_path, inside):
    data = SUCCESS.read_bytes()
    records = pcap_records(data)
    offset, length = records[45]  # record 46: a 3274-byte audio packet
    cut = offset + (length // 2 if inside == "data" else 7)
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:cut])
    proc, report = json_report(path)
    assert proc.returncode == 1
    assert_warning_line(proc, path, offset)
    [capture] = report["captures"]
    finding = truncated_finding(capture)
    assert finding["details"] == {"offset": offset, "packets_read": 45}
    if inside == "data":
        assert f"file ends inside packet record 46 at byte {offset} ({length // 2 - 16} of {length - 16} " \
               "captured bytes present)" in finding["message"]
    else:
        assert f"file ends inside the header of packet record 46 at byte {offset} (7 of 16 bytes present)" \
            in finding["message"]
    assert capture["packets"] == 45
    # The session up to the cut is all there: the handshake, and the frames of packets 1-45.
    [session] = capture["sessions"]
    assert session["handshake"]["status"] == 101
    assert session["frames"]["client"]["first_frame"] == 8
    assert session["frames"]["client"]["last_frame"] <= 45
    assert session["close"]["tcp_end"] == "open"


def test_pcap_record_cut_rich_output_names_the_offset(tmp_path):
    data = SUCCESS.read_bytes()
    offset, length = pcap_records(data)[45]
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:offset + 100])
    proc = dgcap("report", path)
    assert proc.returncode == 1
    assert f"capture-truncated: The capture file is cut or corrupt at byte {offset}:" in proc.stdout
    assert_warning_line(proc, path, offset)


def test_pcap_record_length_4gb(tmp_path):
    data = bytearray(SUCCESS.read_bytes())
    offset, _ = pcap_records(bytes(data))[9]
    struct.pack_into("<I", data, offset + 8, 0xFFFFFFFF)
    path = tmp_path / "4gb.pcap"
    path.write_bytes(bytes(data))
    proc, report = json_report(path)
    assert proc.returncode == 1
    assert_warning_line(proc, path, offset)
    [capture] = report["captures"]
    finding = truncated_finding(capture)
    assert finding["details"] == {"offset": offset, "packets_read": 9}
    assert (f"corrupt packet record 10 at byte {offset}: captured length 4294967295 exceeds the "
            "maximum 262144") in finding["message"]
    [session] = capture["sessions"]
    assert session["handshake"]["status"] == 101 and session["frames"]["client"]["text"] == 1


def test_packets_cut_by_snaplen_keep_every_frame_count(tmp_path):
    # tcpdump -s 400: every audio packet loses its tail; frame headers start segments, so
    # each frame is still counted, with its payload marked missing.
    data = SUCCESS.read_bytes()
    out = bytearray(data[:24])
    struct.pack_into("<I", out, 16, 400)
    cut = 0
    for offset, length in pcap_records(data):
        seconds, fraction, caplen, wirelen = struct.unpack_from("<IIII", data, offset)
        out += struct.pack("<IIII", seconds, fraction, min(caplen, 400), wirelen)
        out += data[offset + 16:offset + 16 + min(caplen, 400)]
        cut += caplen > 400
    path = tmp_path / "snap400.pcap"
    path.write_bytes(bytes(out))
    proc, report = json_report(path)
    assert proc.returncode == 0 and stderr_lines(proc) == []
    [capture] = report["captures"]
    assert [(f["id"], f["details"]) for f in capture["findings"]] == [("snaplen-truncated", {"count": cut})]
    assert cut == 36
    expected = json.loads((CAPTURES / "dg_success.expected.json").read_text())["sessions"][0]
    [session] = capture["sessions"]
    assert session["frames"] == expected["frames"]
    assert session["close"]["client"]["code"] == session["close"]["server"]["code"] == 1000
    ids = {f["id"] for f in session["findings"]}
    assert {"tcp-hole", "frame-payload-missing"} <= ids


def test_packets_cut_below_the_handshake_are_reported_not_fatal(tmp_path):
    data = SUCCESS.read_bytes()
    out = bytearray(data[:24])
    struct.pack_into("<I", out, 16, 100)
    for offset, length in pcap_records(data):
        seconds, fraction, caplen, wirelen = struct.unpack_from("<IIII", data, offset)
        out += struct.pack("<IIII", seconds, fraction, min(caplen, 100), wirelen)
        out += data[offset + 16:offset + 16 + min(caplen, 100)]
    path = tmp_path / "snap100.pcap"
    path.write_bytes(bytes(out))
    proc, report = json_report(path)
    assert proc.returncode == 0
    [capture] = report["captures"]
    assert capture["packets"] == 90
    assert [(f["id"], f["details"]) for f in capture["findings"]] == [("snaplen-truncated", {"count": 38})]


def test_pcapng_unknown_block_is_skipped(tmp_path):
    data = MULTI.read_bytes()
    blocks = pcapng_blocks(data)
    unknown = struct.pack("<II", 0x0000ABCD, 20) + b"anything" + struct.pack("<I", 20)
    at = blocks[5][0]
    path = tmp_path / "unknown.pcapng"
    path.write_bytes(data[:at] + unknown + data[at:])
    proc, report = json_report(path)
    original_proc, original = json_report(MULTI)
    assert proc.returncode == original_proc.returncode == 1  # the 401 in stream 1
    assert stderr_lines(proc) == []
    [capture] = report["captures"]
    [reference] = original["captures"]
    assert capture["findings"] == [] and capture["packets"] == reference["packets"] == 151
    assert capture["sessions"] == reference["sessions"]


@pytest.mark.parametrize("damage", ["length-not-aligned", "length-4gb", "trailer-differs",
                                    "unknown-interface"])
def test_pcapng_corrupt_block(tmp_path, damage):
    data = bytearray(MULTI.read_bytes())
    blocks = pcapng_blocks(bytes(data))
    offset, block_type, length = blocks[30]
    assert block_type == 6
    packets_before = sum(1 for _, t, _ in blocks[:30] if t == 6)
    if damage == "length-not-aligned":
        struct.pack_into("<I", data, offset + 4, 7)
        why = f"corrupt pcapng block at byte {offset}: block length 7 (type 0x00000006)"
    elif damage == "length-4gb":
        struct.pack_into("<I", data, offset + 4, 0xFFFFFFFC)
        why = f"corrupt pcapng block at byte {offset}: block length 4294967292 (type 0x00000006)"
    elif damage == "trailer-differs":
        struct.pack_into("<I", data, offset + length - 4, length + 4)
        why = f"corrupt pcapng block at byte {offset}: lengths at start ({length}) and end differ"
    else:
        struct.pack_into("<I", data, offset + 8, 5)
        why = (f"bad pcapng block at byte {offset}: packet on interface 5, but the section "
               "describes 1")
    path = tmp_path / f"{damage}.pcapng"
    path.write_bytes(bytes(data))
    proc, report = json_report(path)
    assert proc.returncode == 1
    assert_warning_line(proc, path, offset)
    [capture] = report["captures"]
    finding = truncated_finding(capture)
    assert finding["details"] == {"offset": offset, "packets_read": packets_before}
    assert why in finding["message"]
    assert capture["packets"] == packets_before == 28
    assert capture["sessions"] and capture["sessions"][0]["handshake"]["status"] == 101


def test_truncated_gzip(tmp_path):
    data = SUCCESS.read_bytes()
    packed = gzip.compress(data, mtime=0)
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(packed[:len(packed) // 2])
    proc, report = json_report(path)
    assert proc.returncode == 1
    [capture] = report["captures"]
    assert capture["compressed"] is True
    finding = truncated_finding(capture)
    offset, read = finding["details"]["offset"], finding["details"]["packets_read"]
    # The offset is in the decompressed data, at the record that could not be completed.
    records = pcap_records(data)
    assert 0 < read < len(records)
    assert offset == records[read][0]
    assert capture["packets"] == read
    assert f"at byte {offset}" in finding["message"]
    assert_warning_line(proc, path, offset)
    [session] = capture["sessions"]
    assert session["handshake"]["status"] == 101


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-3"])
def test_gap_threshold_must_be_a_positive_finite_number(value):
    proc = dgcap("report", "--format", "json", f"--gap-threshold={value}", SUCCESS)
    assert proc.returncode == 2 and proc.stdout == ""
    assert stderr_lines(proc) == ["dgcap: error: --gap-threshold must be a positive number of seconds"]
