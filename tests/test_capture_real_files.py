"""Real captures of three HTTP requests on loopback, written by tcpdump and dumpcap.

tests/data/capture/:
  loopback-http-sll2.pcap        tcpdump -i any     (Linux cooked v2, microseconds)
  loopback-http-snaplen100.pcap  tcpdump -i lo -s 100 (Ethernet, payloads cut by snaplen)
  loopback-http-dumpcap.pcapng   tshark -i lo -w    (pcapng, nanoseconds, SHB/IDB options, ISB)
"""
from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

from analyzer.capture import PacketDecoder, format_address, open_capture

DATA = pathlib.Path(__file__).parent / "data" / "capture"
TSHARK = shutil.which("tshark")


def decode_file(name: str):
    decoder = PacketDecoder()
    rows = []
    with open_capture(DATA / name) as cap:
        for frame_no, ts, linktype, data in cap.packets():
            seg = decoder.decode(frame_no, linktype, data)
            rows.append((frame_no, ts, linktype, seg))
        return cap, decoder, rows


@pytest.mark.parametrize("name, linktype, tsresol, snaplen", [
    ("loopback-http-sll2.pcap", 276, 10**6, 262144),
    ("loopback-http-snaplen100.pcap", 1, 10**6, 100),
    ("loopback-http-dumpcap.pcapng", 1, 10**9, 262144),
])
def test_real_capture_reads_completely(name, linktype, tsresol, snaplen):
    cap, decoder, rows = decode_file(name)
    assert cap.truncated is None
    assert cap.interfaces == [(linktype, snaplen, tsresol)]
    assert [n for n, *_ in rows] == list(range(1, 43))
    assert decoder.stats["tcp"] == 42 and decoder.stats["packets"] == 42
    first = rows[0][3]
    assert (format_address(first[0], first[2]), format_address(first[1], first[3]), first[6]) == (
        "127.0.0.1:35402", "127.0.0.1:8765", 2)  # the first SYN
    request = rows[3][3]  # frame 4: the first GET, 118 bytes
    assert request[6] == 0x18
    assert len(request[7]) + request[8] == 118
    assert bytes(request[7][:14]) == b"GET / HTTP/1.1"


def test_real_capture_snaplen_cut_reports_missing_bytes():
    _, decoder, rows = decode_file("loopback-http-snaplen100.pcap")
    assert decoder.stats["snaplen_truncated"] == 9
    assert sum(len(seg[7]) for *_, seg in rows) == 306
    assert sum(seg[8] for *_, seg in rows) == 3828
    # Same traffic captured whole: per frame, captured + missing equals the full payload.
    _, _, full = decode_file("loopback-http-sll2.pcap")
    assert [len(seg[7]) + seg[8] for *_, seg in rows] == [len(seg[7]) for *_, seg in full]
    assert sum(len(seg[7]) for *_, seg in full) == 4134


def test_real_pcapng_nanosecond_timestamps():
    _, _, rows = decode_file("loopback-http-dumpcap.pcapng")
    assert rows[0][1] == 1795237446.6293373
    assert rows[3][1] == 1795237446.6295116


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed: cross-check skipped")
@pytest.mark.parametrize("name", ["loopback-http-sll2.pcap", "loopback-http-snaplen100.pcap",
                                  "loopback-http-dumpcap.pcapng"])
def test_real_capture_matches_tshark(name):
    _, _, rows = decode_file(name)
    ours = [(n, ts, seg[2], seg[3], seg[4], seg[5], seg[6], len(seg[7]) + seg[8])
            for n, ts, _, seg in rows]
    out = subprocess.run([TSHARK, "-r", str(DATA / name), "-T", "fields", "-e", "frame.number",
                          "-e", "frame.time_epoch", "-e", "tcp.srcport", "-e", "tcp.dstport",
                          "-e", "tcp.seq_raw", "-e", "tcp.ack_raw", "-e", "tcp.flags", "-e", "tcp.len"],
                         capture_output=True, text=True, check=False).stdout
    theirs = []
    for line in out.splitlines():
        number, epoch, *fields = line.split("\t")
        theirs.append((int(number), float(epoch), *(int(v, 0) for v in fields)))
    assert len(theirs) == 42
    assert ours == theirs
