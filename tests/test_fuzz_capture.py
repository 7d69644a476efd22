"""The capture reader on cut and corrupted real captures: exact truncation reports.

A file cut anywhere is read up to the last whole record, and the reader says exactly where
the damage starts (the offset of the first incomplete record or block) and how many packets
came before it; a cut on a boundary is a clean end.  The same holds inside gzip (offsets in the
decompressed data).  Arbitrary bytes after a valid header never raise (see also
tests/test_fuzz_harnesses.py, which replays the atheris harness fuzz/fuzz_pcap.py).
"""
from __future__ import annotations

import bisect
import gzip
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.capture import CaptureError, PacketDecoder, open_capture

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
PCAPS = sorted(p.name for p in CAPTURES.glob("*.pcap"))
PCAPNGS = sorted(p.name for p in CAPTURES.glob("*.pcapng"))
_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def pcap_offsets(data: bytes) -> list[int]:
    """Offsets of every record, then the end of the file."""
    out, offset = [], 24
    while offset < len(data):
        out.append(offset)
        offset += 16 + struct.unpack_from("<I", data, offset + 8)[0]
    return out + [offset]


def pcapng_blocks(data: bytes) -> list[tuple[int, int]]:
    out, offset = [], 0
    while offset < len(data):
        block_type, length = struct.unpack_from("<II", data, offset)
        out.append((offset, block_type))
        offset += length
    return out + [(offset, None)]


def read_all(path) -> tuple[int, object]:
    decoder = PacketDecoder()
    with open_capture(path) as cap:
        n = 0
        for frame_no, _ts, linktype, data in cap.packets():
            n += 1
            decoder.decode(frame_no, linktype, data)
        assert cap.packet_count == n
        return n, cap.truncated


@settings(max_examples=80, **_SETTINGS)
@given(st.sampled_from(PCAPS), st.data())
def test_pcap_cut_anywhere_reports_the_record_it_cut(tmp_path, name, data):
    original = (CAPTURES / name).read_bytes()
    offsets = pcap_offsets(original)
    cut = data.draw(st.integers(24, len(original)))
    path = tmp_path / "cut.pcap"
    path.write_bytes(original[:cut])
    packets, truncated = read_all(path)
    whole = bisect.bisect_right(offsets, cut) - 1  # records that end at or before the cut
    if cut in offsets:
        assert (packets, truncated) == (offsets.index(cut), None)
    else:
        assert packets == whole
        offset, why = truncated
        assert offset == offsets[whole] and f"record {whole + 1} at byte {offset}" in why


@settings(max_examples=40, **_SETTINGS)
@given(st.sampled_from(PCAPNGS), st.data())
def test_pcapng_cut_anywhere_reports_the_block_it_cut(tmp_path, name, data):
    original = (CAPTURES / name).read_bytes()
    blocks = pcapng_blocks(original)
    starts = [o for o, _ in blocks]
    first_packet = next(o for o, t in blocks if t == 6)
    cut = data.draw(st.integers(first_packet, len(original)))
    path = tmp_path / "cut.pcapng"
    path.write_bytes(original[:cut])
    packets, truncated = read_all(path)
    index = bisect.bisect_right(starts, cut) - 1
    expected_packets = sum(1 for o, t in blocks[:index] if t == 6)
    assert packets == expected_packets
    if cut in starts:
        assert truncated is None
    else:
        assert truncated[0] == starts[index]


@settings(max_examples=25, **_SETTINGS)
@given(st.sampled_from(["dg_success.pcap", "dg_400.pcap", "dg_multi.pcapng"]), st.data())
def test_gzip_cut_anywhere_reads_whole_records_only(tmp_path, name, data):
    original = (CAPTURES / name).read_bytes()
    packed = gzip.compress(original, mtime=0)
    cut = data.draw(st.integers(20, len(packed) - 1))
    path = tmp_path / (name + ".gz")
    path.write_bytes(packed[:cut])
    try:
        packets, truncated = read_all(path)
    except CaptureError as exc:
        assert "\n" not in str(exc)
        return
    if name.endswith(".pcap"):
        offsets = pcap_offsets(original)
        assert truncated is not None and truncated[0] in offsets
        assert packets == offsets.index(truncated[0])
    else:
        starts = [o for o, _ in pcapng_blocks(original)]
        assert truncated is not None and truncated[0] in starts


@settings(max_examples=150, **_SETTINGS)
@given(st.sampled_from(PCAPS + PCAPNGS), st.binary(max_size=2000), st.integers(0, 400))
def test_real_header_then_anything_never_raises(tmp_path, name, tail, keep):
    head = (CAPTURES / name).read_bytes()[:keep + (24 if name.endswith(".pcap") else 0)]
    path = tmp_path / "any.cap"
    path.write_bytes(head + tail)
    try:
        packets, truncated = read_all(path)
    except CaptureError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    if truncated is not None:
        assert isinstance(truncated[0], int) and "\n" not in truncated[1]
