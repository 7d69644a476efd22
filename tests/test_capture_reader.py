"""Capture files -> numbered packet records (analyzer.capture.open_capture)."""
from __future__ import annotations

import gzip
import logging
import shutil
import struct
import subprocess
import zlib

import pytest

from analyzer.capture import CaptureError, open_capture
from tests.support import capture_synth as synth

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed: cross-check skipped")

FRAME_A = synth.ethernet(synth.ipv4(synth.tcp(50000, 443, 1000, 0, synth.SYN)))
FRAME_B = synth.ethernet(synth.ipv4(synth.tcp(443, 50000, 7000, 1001, synth.SYN | synth.ACK)))
FRAME_C = synth.ethernet(synth.ipv4(synth.tcp(50000, 443, 1001, 7001, synth.ACK, b"GET / HTTP/1.1\r\n")))
RAW_V4 = synth.ipv4(synth.tcp(1, 2, 3, 4, synth.ACK, b"raw"))
RAW_V6 = synth.ipv6(synth.tcp(1, 2, 3, 4, synth.ACK, b"raw6"))


@pytest.fixture
def scapy_log():
    """Records scapy's log messages (its logger does not propagate to caplog)."""
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("scapy")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def write(tmp_path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def read_all(path):
    with open_capture(path) as cap:
        records = list(cap.packets())
        return cap, records


def tshark_frames(path) -> list:
    """[(frame_no, epoch string or '', captured length)] as tshark numbers them."""
    out = subprocess.run([TSHARK, "-r", str(path), "-T", "fields", "-e", "frame.number",
                          "-e", "frame.time_epoch", "-e", "frame.cap_len"],
                         capture_output=True, text=True, check=False).stdout
    rows = []
    for line in out.splitlines():
        number, epoch, cap_len = line.split("\t")
        rows.append((int(number), epoch, int(cap_len)))
    return rows


# --- pcap ---------------------------------------------------------------------------------------

def test_pcap_microseconds_little_endian(tmp_path):
    content = synth.pcap([(1700000000, 123456, FRAME_A), (1700000001, 999999, FRAME_B),
                          (1700000002, 0, FRAME_C)])
    path = write(tmp_path, "us.pcap", content)
    cap, records = read_all(path)
    assert [(n, ts, lt, data) for n, ts, lt, data in records] == [
        (1, 1700000000.123456, 1, FRAME_A),
        (2, 1700000001.999999, 1, FRAME_B),
        (3, 1700000002.0, 1, FRAME_C),
    ]
    assert cap.format == "pcap"
    assert cap.compressed is False
    assert cap.size == len(content) == 24 + 3 * 16 + 60 + 60 + 70
    assert cap.packet_count == 3
    assert cap.truncated is None
    assert cap.interfaces == [(1, 262144, 1_000_000)]
    assert cap.secrets == []
    assert cap.bytes_read == cap.size


def test_pcap_nanoseconds_exact(tmp_path):
    path = write(tmp_path, "ns.pcap", synth.pcap(
        [(1700000000, 123456789, FRAME_A), (1700000000, 999999999, FRAME_B)], nano=True))
    cap, records = read_all(path)
    assert [ts for _, ts, _, _ in records] == [1700000000.123456789, 1700000000.999999999]
    assert records[0][3] == FRAME_A
    assert cap.interfaces == [(1, 262144, 1_000_000_000)]


@pytest.mark.parametrize("nano, fraction, expected", [(False, 250000, 1600000000.25),
                                                      (True, 250000001, 1600000000.250000001)])
def test_pcap_big_endian(tmp_path, nano, fraction, expected):
    content = synth.pcap([(1600000000, fraction, RAW_V4)], linktype=101, nano=nano, big_endian=True)
    assert content[:4] == (b"\xa1\xb2\x3c\x4d" if nano else b"\xa1\xb2\xc3\xd4")
    cap, records = read_all(write(tmp_path, "be.pcap", content))
    assert records == [(1, expected, 101, RAW_V4)]


def test_pcap_linktype_fcs_bits_are_masked(tmp_path):
    # Bits 28-31 of the link-type field say "FCS present, 4 bytes"; the link type is the low 16.
    content = bytearray(synth.pcap([(1, 0, FRAME_A)]))
    struct.pack_into("<I", content, 20, 0x10000000 | 0x04000000 | 1)
    _, records = read_all(write(tmp_path, "fcs.pcap", bytes(content)))
    assert records[0][2] == 1


def test_pcap_header_only_has_no_packets(tmp_path):
    cap, records = read_all(write(tmp_path, "header.pcap", synth.pcap([])))
    assert records == []
    assert cap.packet_count == 0
    assert cap.truncated is None


def test_pcap_record_larger_than_65535_is_not_cut(tmp_path):
    # scapy's own reader cuts records at its MTU (65535) without a word.
    big = synth.linux_sll(synth.ipv4(synth.tcp(1, 2, 3, 4, synth.ACK, b"z" * 65480)))
    assert len(big) > 65535
    _, records = read_all(write(tmp_path, "big.pcap", synth.pcap([(1, 0, big)], linktype=113)))
    assert records[0][3] == big


def test_pcap_truncated_inside_record_data(tmp_path):
    content = synth.pcap([(1, 0, FRAME_A), (2, 0, FRAME_B), (3, 0, FRAME_C)])
    path = write(tmp_path, "cut.pcap", content[:-30])
    cap, records = read_all(path)
    assert [n for n, *_ in records] == [1, 2]
    third_record_at = 24 + 2 * (16 + 60)
    assert cap.truncated[0] == third_record_at == 176
    assert "record 3" in cap.truncated[1] and "40 of 70" in cap.truncated[1]


def test_pcap_truncated_inside_record_header(tmp_path):
    content = synth.pcap([(1, 0, FRAME_A), (2, 0, FRAME_B)])
    cap, records = read_all(write(tmp_path, "cuthdr.pcap", content[:24 + 76 + 10]))
    assert len(records) == 1
    assert cap.truncated[0] == 100
    assert "10 of 16" in cap.truncated[1]


def test_pcap_records_across_read_blocks_and_cut_anywhere(tmp_path):
    # Records are cut out of 32 KiB blocks of the file: records straddling a block edge, and
    # a file ending at any byte around one, give the packets and the truncation message a
    # record-by-record reading gives.
    frames = [synth.ethernet(synth.ipv4(synth.tcp(1, 2, i, 0, synth.ACK, bytes([i]) * (300 + i * 7))))
              for i in range(200)]
    content = synth.pcap([(1, i, f) for i, f in enumerate(frames)])
    assert len(content) > 3 * 65536
    starts = [24]
    for f in frames:
        starts.append(starts[-1] + 16 + len(f))
    for cut in [*range(65536 - 40, 65536 + 1500, 13), len(content) - 5, 131072, 131072 + 16]:
        cap, records = read_all(write(tmp_path, "cut.pcap", content[:cut]))
        whole = sum(1 for end in starts[1:] if end <= cut)
        assert [(n, data) for n, _, _, data in records] == [(i + 1, frames[i]) for i in range(whole)]
        at = starts[whole]
        present = cut - at
        assert cap.truncated[0] == at
        if present < 16:
            assert cap.truncated[1] == (f"file ends inside the header of packet record {whole + 1} at "
                                        f"byte {at} ({present} of 16 bytes present)")
        else:
            assert cap.truncated[1] == (f"file ends inside packet record {whole + 1} at byte {at} "
                                        f"({present - 16} of {len(frames[whole])} captured bytes present)")
    with open_capture(write(tmp_path, "whole.pcap", content)) as cap:
        spans = [(n, ts, linktype, buf[start:end]) for n, ts, linktype, buf, start, end in cap.spans()]
        assert cap.truncated is None and cap.packet_count == 200
    assert spans == read_all(tmp_path / "whole.pcap")[1]


HUGE_RECORD_PCAP = (synth.pcap([(1, 0, FRAME_A)])
                    + struct.pack("<IIII", 2, 0, 0xFFFFFFFF, 0xFFFFFFFF) + FRAME_B
                    + synth.pcap([(3, 0, FRAME_C)])[24:])


def test_pcap_record_length_4gb_stops_cleanly(tmp_path, scapy_log):
    cap, records = read_all(write(tmp_path, "huge.pcap", HUGE_RECORD_PCAP))
    assert records == [(1, 1.0, 1, FRAME_A)]
    assert cap.truncated[0] == 100
    assert "4294967295" in cap.truncated[1]
    assert scapy_log == []


def test_scapy_stock_reader_misreads_4gb_record(tmp_path, scapy_log):
    # Why records() replaces scapy's: it yields a bogus second packet and only logs.
    from scapy.utils import RawPcapReader
    path = write(tmp_path, "huge.pcap", HUGE_RECORD_PCAP)
    with RawPcapReader(str(path)) as reader:
        packets = [data for data, _meta in reader]
    assert len(packets) == 2 and packets[1] == HUGE_RECORD_PCAP[100 + 16:]  # the rest of the file
    assert [r.getMessage() for r in scapy_log] == ["Pcap: packet has been truncated"]


@needs_tshark
def test_pcap_truncation_matches_tshark(tmp_path):
    content = synth.pcap([(1, 0, FRAME_A), (2, 0, FRAME_B), (3, 0, FRAME_C)])
    path = write(tmp_path, "cut.pcap", content[:-5])
    _, records = read_all(path)
    assert [(n, len(d)) for n, _, _, d in records] == [(n, c) for n, _, c in tshark_frames(path)]


# --- pcapng -------------------------------------------------------------------------------------

def two_interface_pcapng() -> bytes:
    return (synth.shb()
            + synth.idb(1, snaplen=0)                         # Ethernet, microseconds
            + synth.idb(101, snaplen=65535, tsresol=9)        # raw IP, nanoseconds
            + synth.idb(229, snaplen=0, tsresol=0x80 | 20)    # raw IPv6, 2^-20 s
            + synth.epb(0, 1700000000_123456, FRAME_A)
            + synth.epb(1, 1700000000_123456789, RAW_V4)
            + synth.epb(2, 1700000000 * 2**20 + 2**19, RAW_V6)
            + synth.epb(0, 1700000001_000001, FRAME_B))


def test_pcapng_interfaces_with_different_linktypes_and_tsresol(tmp_path):
    cap, records = read_all(write(tmp_path, "ifaces.pcapng", two_interface_pcapng()))
    assert records == [
        (1, 1700000000.123456, 1, FRAME_A),
        (2, 1700000000.123456789, 101, RAW_V4),
        (3, 1700000000.5, 229, RAW_V6),
        (4, 1700000001.000001, 1, FRAME_B),
    ]
    assert cap.format == "pcapng"
    assert cap.interfaces == [(1, 0, 10**6), (101, 65535, 10**9), (229, 0, 2**20)]
    assert cap.truncated is None
    assert cap.packet_count == 4


@needs_tshark
def test_pcapng_interfaces_match_tshark(tmp_path):
    path = write(tmp_path, "ifaces.pcapng", two_interface_pcapng())
    _, records = read_all(path)
    expected = tshark_frames(path)
    assert [(n, len(d)) for n, _, _, d in records] == [(n, c) for n, _, c in expected]
    assert [ts for _, ts, _, _ in records] == [float(epoch) for _, epoch, _ in expected]


def test_pcapng_tsoffset(tmp_path):
    content = synth.shb() + synth.idb(1, tsoffset=1_600_000_000) + synth.epb(0, 5_250000, FRAME_A)
    _, records = read_all(write(tmp_path, "off.pcapng", content))
    assert records[0][1] == 1600000005.25


def test_pcapng_simple_packet_block(tmp_path):
    content = (synth.shb() + synth.idb(1, snaplen=40)
               + synth.epb(0, 1700000000_000005, FRAME_A[:40], wire_length=60)
               + synth.spb(FRAME_B[:40], wire_length=60)
               + synth.epb(0, 1700000000_000007, FRAME_C[:40], wire_length=70))
    cap, records = read_all(write(tmp_path, "spb.pcapng", content))
    # An SPB has no timestamp: it takes the previous packet's.
    assert records == [(1, 1700000000.000005, 1, FRAME_A[:40]),
                       (2, 1700000000.000005, 1, FRAME_B[:40]),
                       (3, 1700000000.000007, 1, FRAME_C[:40])]


def test_pcapng_simple_packet_block_with_unlimited_snaplen(tmp_path):
    # snaplen 0 means "no limit": scapy's reader returns an empty packet here.
    content = synth.shb() + synth.idb(1, snaplen=0) + synth.spb(FRAME_C)
    _, records = read_all(write(tmp_path, "spb0.pcapng", content))
    assert records == [(1, 0.0, 1, FRAME_C)]


def test_pcapng_obsolete_packet_block(tmp_path):
    content = synth.shb() + synth.idb(1) + synth.packet_block(0, 1700000000_000042, FRAME_A)
    _, records = read_all(write(tmp_path, "pb.pcapng", content))
    assert records == [(1, 1700000000.000042, 1, FRAME_A)]


def multi_section_pcapng() -> bytes:
    return (synth.shb() + synth.idb(1)
            + synth.epb(0, 1700000000_000001, FRAME_A)
            # Second section, big-endian, whose interface 0 is raw IPv4, not Ethernet.
            + synth.shb(">") + synth.idb(228, tsresol=3, endian=">")
            + synth.epb(0, 1700000000_002, RAW_V4, endian=">")
            + synth.spb(RAW_V4, endian=">")
            # Third section: Ethernet again.
            + synth.shb() + synth.idb(1)
            + synth.epb(0, 1700000000_000003, FRAME_C))


def test_pcapng_multiple_sections_reset_interfaces(tmp_path):
    cap, records = read_all(write(tmp_path, "sections.pcapng", multi_section_pcapng()))
    assert records == [(1, 1700000000.000001, 1, FRAME_A),
                       (2, 1700000000.002, 228, RAW_V4),
                       (3, 1700000000.002, 228, RAW_V4),
                       (4, 1700000000.000003, 1, FRAME_C)]
    assert cap.interfaces == [(1, 0, 10**6), (228, 0, 10**3), (1, 0, 10**6)]
    assert cap.truncated is None


@needs_tshark
def test_pcapng_multiple_sections_match_tshark(tmp_path):
    path = write(tmp_path, "sections.pcapng", multi_section_pcapng())
    _, records = read_all(path)
    expected = tshark_frames(path)
    assert [(n, len(d)) for n, _, _, d in records] == [(n, c) for n, _, c in expected]
    for (_, ts, _, _), (_, epoch, _) in zip(records, expected):
        if epoch:  # tshark shows no time for the SPB
            assert ts == float(epoch)


def numbered_and_skipped_blocks_pcapng() -> bytes:
    return (synth.shb() + synth.idb(1)
            + synth.epb(0, 1700000000_000001, FRAME_A)
            + synth.pcapng_block(0x12345678, b"unknown block type")
            + synth.pcapng_block(4, b"\x00" * 4)                       # NRB with only end-of-records
            + synth.pcapng_block(5, struct.pack("<III", 0, 0, 0))      # ISB
            + synth.epb(0, 1700000000_000002, FRAME_B)
            + synth.pcapng_block(0x00000BAD, struct.pack("<I", 32473) + b"custom")
            + synth.epb(0, 1700000000_000003, FRAME_C)
            + synth.pcapng_block(9, b"__REALTIME_TIMESTAMP=1700000000000004\nMESSAGE=x\n")
            + synth.epb(0, 1700000000_000005, FRAME_A))


def test_pcapng_unknown_blocks_skipped_numbered_records_counted(tmp_path):
    cap, records = read_all(write(tmp_path, "blocks.pcapng", numbered_and_skipped_blocks_pcapng()))
    # Unknown/NRB/ISB take no number; Wireshark numbers the custom block (3) and the
    # systemd journal entry (5) as frames although they are not packets.
    assert [(n, ts) for n, ts, _, _ in records] == [
        (1, 1700000000.000001), (2, 1700000000.000002), (4, 1700000000.000003),
        (6, 1700000000.000005)]
    assert cap.packet_count == 4
    assert cap.truncated is None


@needs_tshark
def test_pcapng_numbering_matches_tshark(tmp_path):
    path = write(tmp_path, "blocks.pcapng", numbered_and_skipped_blocks_pcapng())
    _, records = read_all(path)
    numbers = {n: (epoch, c) for n, epoch, c in tshark_frames(path)}
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]
    for n, ts, _, data in records:
        assert (float(numbers[n][0]), numbers[n][1]) == (ts, len(data))


def test_pcapng_decryption_secrets_collected_quietly(tmp_path, scapy_log, caplog, capsys):
    keylog = b"CLIENT_RANDOM " + b"ab" * 32 + b" " + b"cd" * 48 + b"\n"
    content = (synth.shb() + synth.idb(1)
               + synth.dsb(0x544C534B, keylog)
               + synth.epb(0, 1700000000_000001, FRAME_A)
               + synth.dsb(0x57474B4C, b"wg-key"))
    with caplog.at_level(logging.DEBUG):
        cap, records = read_all(write(tmp_path, "dsb.pcapng", content))
    assert cap.secrets == [(0x544C534B, keylog), (0x57474B4C, b"wg-key")]
    assert [n for n, *_ in records] == [1]
    assert scapy_log == [] and caplog.records == []
    assert capsys.readouterr() == ("", "")


def test_pcapng_header_only(tmp_path):
    cap, records = read_all(write(tmp_path, "shb.pcapng", synth.shb()))
    assert records == [] and cap.truncated is None and cap.interfaces == []
    cap, records = read_all(write(tmp_path, "idb.pcapng", synth.shb() + synth.idb(1)))
    assert records == [] and cap.truncated is None and cap.interfaces == [(1, 0, 10**6)]


def test_pcapng_big_endian_file(tmp_path):
    content = (synth.shb(">") + synth.idb(1, endian=">")
               + synth.epb(0, 1700000000_000009, FRAME_B, endian=">"))
    _, records = read_all(write(tmp_path, "be.pcapng", content))
    assert records == [(1, 1700000000.000009, 1, FRAME_B)]


def test_pcapng_truncated_inside_block(tmp_path):
    content = synth.shb() + synth.idb(1) + synth.epb(0, 1, FRAME_A) + synth.epb(0, 2, FRAME_B)
    second_epb_at = len(content) - len(synth.epb(0, 2, FRAME_B))
    cap, records = read_all(write(tmp_path, "cut.pcapng", content[:-7]))
    assert [n for n, *_ in records] == [1]
    assert cap.truncated[0] == second_epb_at == 28 + 20 + 92
    assert "file ends inside" in cap.truncated[1]


def test_pcapng_corrupt_block_length_4gb(tmp_path):
    good = synth.shb() + synth.idb(1) + synth.epb(0, 1, FRAME_A)
    content = good + struct.pack("<II", 6, 0xFFFFFFF0) + b"\x00" * 64
    cap, records = read_all(write(tmp_path, "huge.pcapng", content))
    assert [n for n, *_ in records] == [1]
    assert cap.truncated[0] == len(good) == 140
    assert "4294967280" in cap.truncated[1]


def test_pcapng_trailing_length_mismatch(tmp_path):
    block = bytearray(synth.epb(0, 2, FRAME_B))
    block[-4:] = struct.pack("<I", len(block) + 4)
    good = synth.shb() + synth.idb(1) + synth.epb(0, 1, FRAME_A)
    cap, records = read_all(write(tmp_path, "trailer.pcapng", good + bytes(block)))
    assert [n for n, *_ in records] == [1]
    assert cap.truncated[0] == len(good)


def test_pcapng_packet_on_undeclared_interface_stops(tmp_path):
    good = synth.shb() + synth.idb(1) + synth.epb(0, 1, FRAME_A)
    content = good + synth.epb(3, 2, FRAME_B) + synth.epb(0, 3, FRAME_C)
    cap, records = read_all(write(tmp_path, "iface.pcapng", content))
    assert [n for n, *_ in records] == [1]
    assert cap.truncated[0] == len(good)
    assert "interface 3" in cap.truncated[1]


def test_pcapng_caplen_beyond_block_stops(tmp_path):
    block = bytearray(synth.epb(0, 2, FRAME_B))
    struct.pack_into("<I", block, 20, 500)  # captured length field
    good = synth.shb() + synth.idb(1)
    cap, records = read_all(write(tmp_path, "caplen.pcapng", good + bytes(block)))
    assert records == []
    assert cap.truncated[0] == len(good)


def test_pcapng_corrupt_first_section_header_is_capture_error(tmp_path):
    content = bytearray(synth.shb() + synth.idb(1))
    content[8:12] = b"\x00\x00\x00\x00"  # byte-order magic
    with pytest.raises(CaptureError, match="byte-order magic"):
        open_capture(write(tmp_path, "bom.pcapng", bytes(content)))


# --- gzip ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, content", [
    ("c.pcap.gz", synth.pcap([(1700000000, 5, FRAME_A), (1700000000, 6, FRAME_B)])),
    ("c.pcapng.gz", synth.shb() + synth.idb(1) + synth.epb(0, 1700000000_000005, FRAME_A)
     + synth.shb() + synth.idb(1) + synth.epb(0, 1700000000_000006, FRAME_B)),
    ("no-suffix", synth.pcap([(1700000000, 5, FRAME_A), (1700000000, 6, FRAME_B)])),
])
def test_gzip_compressed_captures(tmp_path, name, content):
    compressed = gzip.compress(content)
    cap, records = read_all(write(tmp_path, name, compressed))
    assert records == [(1, 1700000000.000005, 1, FRAME_A), (2, 1700000000.000006, 1, FRAME_B)]
    assert cap.compressed is True
    assert cap.format == ("pcapng" if "pcapng" in name else "pcap")
    assert cap.size == len(compressed)
    assert cap.bytes_read == len(compressed)
    assert cap.truncated is None


def test_gzip_truncated_stream(tmp_path):
    frames = [synth.ethernet(synth.ipv4(synth.tcp(1, 2, i, 0, synth.ACK, bytes([i]) * 500)))
              for i in range(200)]
    record_len = 16 + len(frames[0])
    compressed = gzip.compress(synth.pcap([(1, i, f) for i, f in enumerate(frames)]))
    cut = compressed[:len(compressed) // 2]
    # Every record that zlib can recover from the cut stream must be yielded.
    recoverable = (len(zlib.decompressobj(wbits=31).decompress(cut)) - 24) // record_len
    assert 0 < recoverable < 200
    cap, records = read_all(write(tmp_path, "cut.pcap.gz", cut))
    assert len(records) == recoverable
    assert all(data == frames[n - 1] for n, _, _, data in records)
    assert cap.truncated[0] == 24 + recoverable * record_len
    assert "decompressed" in cap.truncated[1]


def test_gzip_missing_end_of_stream_after_whole_records(tmp_path):
    content = synth.pcap([(1, 0, FRAME_A)])
    compressed = gzip.compress(content)
    cap, records = read_all(write(tmp_path, "noeos.pcap.gz", compressed[:-8]))  # CRC + size trailer
    assert [n for n, *_ in records] == [1]
    assert cap.truncated is not None and cap.truncated[0] == len(content)


# --- not a capture ------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(CaptureError, match="no such file"):
        open_capture(tmp_path / "nope.pcap")


def test_empty_file(tmp_path):
    with pytest.raises(CaptureError, match="empty file"):
        open_capture(write(tmp_path, "empty.pcap", b""))


def test_wav_file(tmp_path):
    fmt_chunk = struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    wav = b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + fmt_chunk + b"data" + struct.pack("<I", 0)
    with pytest.raises(CaptureError, match="WAV") as info:
        open_capture(write(tmp_path, "audio.pcap", wav))
    assert "\n" not in str(info.value)


def test_directory(tmp_path):
    with pytest.raises(CaptureError, match="directory"):
        open_capture(tmp_path)


def test_unreadable_gzip_header(tmp_path):
    with pytest.raises(CaptureError, match="gzip"):
        open_capture(write(tmp_path, "bad.gz", b"\x1f\x8b\x08\xff" + b"\x00" * 4 + b"garbage"))


def test_gzip_of_not_a_capture(tmp_path):
    with pytest.raises(CaptureError, match="gzip-compressed data is not a pcap"):
        open_capture(write(tmp_path, "text.gz", gzip.compress(b"hello world, not packets")))


def test_gzip_cut_inside_capture_header(tmp_path):
    compressed = gzip.compress(synth.pcap([(1, 0, FRAME_A)]))
    with pytest.raises(CaptureError, match="compressed data ends or is corrupt inside the file header"):
        open_capture(write(tmp_path, "cut.pcap.gz", compressed[:22]))


def test_incomplete_pcap_header(tmp_path):
    with pytest.raises(CaptureError, match="incomplete pcap file header"):
        open_capture(write(tmp_path, "short.pcap", synth.pcap([])[:10]))


def test_tiny_file(tmp_path):
    with pytest.raises(CaptureError, match="too short"):
        open_capture(write(tmp_path, "tiny", b"\xd4\xc3"))


# --- the Capture object -------------------------------------------------------------------------

def test_packets_iterates_once_and_counts_progress(tmp_path):
    path = write(tmp_path, "p.pcap", synth.pcap([(1, 0, FRAME_A), (2, 0, FRAME_B)]))
    with open_capture(path) as cap:
        packets = cap.packets()
        assert cap.bytes_read == 24
        next(packets)
        assert cap.packet_count == 1
        with pytest.raises(RuntimeError):
            cap.packets()
        assert [n for n, *_ in packets] == [2]
        assert cap.packet_count == 2
    assert cap.bytes_read == cap.size  # still answers after close


def test_context_manager_closes_file(tmp_path):
    path = write(tmp_path, "p.pcap", synth.pcap([(1, 0, FRAME_A)]))
    with open_capture(path) as cap:
        raw = cap._raw_file
    assert raw.closed


def test_reading_a_capture_does_not_import_scapy():
    # scapy was the reader's base class only; importing it was ~0.1 s and 23 MiB per start-up.
    import os
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys\n"
            "from analyzer.cli import main\n"
            "from analyzer.pipeline import analyze_capture\n"
            "report = analyze_capture('captures/dg_success.pcap')\n"
            "print(report.packets, 'scapy' in sys.modules, sorted(m for m in sys.modules if m.startswith('scapy')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=repo), check=True).stdout
    assert out == "90 False []\n"


def test_record_times_equal_the_decimal_they_write_in_both_resolutions():
    """_timestamp takes a float path for microseconds and Python's int division for
    nanoseconds: both must give float("<sec>.<frac>") exactly, at the extremes too."""
    import random
    from analyzer.capture.reader import _timestamp
    rng = random.Random(19)
    cases = [(0, 0), (1, 1), (0xFFFFFFFF, 999999), (1700000000, 123456), (1600000000, 250000)]
    cases += [(rng.randrange(1 << 32), rng.randrange(10**6)) for _ in range(2000)]
    for seconds, fraction in cases:
        assert _timestamp(seconds, fraction, 10**6) == float(f"{seconds}.{fraction:06d}")
    for seconds, fraction in [(0xFFFFFFFF, 999999999), (1700000000, 123456789)] + \
            [(rng.randrange(1 << 32), rng.randrange(10**9)) for _ in range(2000)]:
        assert _timestamp(seconds, fraction, 10**9) == float(f"{seconds}.{fraction:09d}")
