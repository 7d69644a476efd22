"""RFC 6455 boundaries pinned exactly: 125-byte control frames, the top bit of 64-bit
lengths, the plausibility bounds used to find a frame stream again, and the last offset
find_frame_sync can find one at.  Hand-built bytes (unit edge cases)."""
from __future__ import annotations

import struct

import pytest

from analyzer.websocket import FrameParser, MessageAssembler, find_frame_sync, find_stream_start
from analyzer.websocket.frames import Frame

MASK = b"\x11\x22\x33\x44"


def header(opcode: int, length: int, *, fin: bool = True, encoding: int = 0, masked: bool = False) -> bytes:
    """A frame header; `encoding` 16 or 64 forces the extended length encoding."""
    b0 = (0x80 if fin else 0) | opcode
    m = 0x80 if masked else 0
    if encoding == 64 or (not encoding and length > 0xFFFF):
        out = bytes([b0, m | 127]) + struct.pack("!Q", length)
    elif encoding == 16 or (not encoding and length > 125):
        out = bytes([b0, m | 126]) + struct.pack("!H", length)
    else:
        out = bytes([b0, m | length])
    return out + (MASK if masked else b"")


# -- control-frame-too-long: 125 bytes is the limit ------------------------------------

@pytest.mark.parametrize("length, too_long", [(125, False), (126, True)])
def test_control_frame_of_125_bytes_is_fine_and_126_is_too_long(length, too_long):
    assembler = MessageAssembler(from_client=False, deflate=None, extensions_negotiated=False)
    f = Frame(True, 0, 9, False, None, length, 4, 7, 1.5, 7, 1.5)
    f.payload = b"p" * length
    _, anomalies = assembler.frame(f)
    assert [a for a in anomalies if a[0] == "control-frame-too-long"] == \
        ([("control-frame-too-long", 7, 1.5, {"opcode": 9, "length": 126})] if too_long else [])


# -- the top bit of a 64-bit length ------------------------------------------------------

@pytest.mark.parametrize("length, msb", [((1 << 63) - 1, False), (1 << 62, False), (1 << 63, True),
                                         ((1 << 64) - 1, True)])
def test_length_msb_set_exactly_when_the_top_bit_is(length, msb):
    parser = FrameParser(from_client=False)
    assert parser.feed(header(2, length, encoding=64) + b"x" * 10, 3, 0.3) == []
    kinds = [a[0] for a in parser.anomalies]
    assert kinds == (["length-msb-set"] if msb else [])
    if msb:
        assert parser.anomalies[0] == ("length-msb-set", 3, 0.3, {"length": length})


# -- find_frame_sync: what a plausible header is -------------------------------------------

GARBAGE = b"\x03" * 9  # reserved opcode 3 at every offset: never a header


def test_a_run_of_three_headers_ending_the_data_is_found_at_the_last_possible_offset():
    run = header(2, 0) * 3  # the shortest run: three empty binary frames, 6 bytes
    assert find_frame_sync(run) == 0
    assert find_frame_sync(GARBAGE + run) == len(GARBAGE)
    assert find_frame_sync(GARBAGE + run[:-1]) is None  # the third header is incomplete


@pytest.mark.parametrize("length, found", [(125, True), (126, False)])
def test_control_frames_of_up_to_125_bytes_are_plausible(length, found):
    ping = header(9, length) + b"p" * length  # 126: the 16-bit length encoding, never valid for control
    data = GARBAGE + ping + header(2, 0) * 2
    assert find_frame_sync(data) == (len(GARBAGE) if found else None)


@pytest.mark.parametrize("length, found", [(125, False), (126, True)])
def test_16_bit_lengths_below_126_are_not_plausible(length, found):
    data = GARBAGE + header(2, length, encoding=16) + b"a" * length + header(2, 0) * 2
    assert find_frame_sync(data) == (len(GARBAGE) if found else None)


@pytest.mark.parametrize("length, found", [(65535, False), (65536, True), ((1 << 63) - 1, True),
                                           (1 << 63, False)])
def test_64_bit_lengths_must_be_minimal_and_keep_the_top_bit_clear(length, found):
    # The 64-bit frame is the third: its payload is not needed to judge the run.  Client
    # frames (masked): the zero bytes of the length cannot pass for headers.
    data = GARBAGE + header(2, 0, masked=True) * 2 + header(2, length, encoding=64, masked=True)
    assert find_frame_sync(data, from_client=True) == (len(GARBAGE) if found else None)


def test_a_resync_needs_three_chained_headers_after_the_hole():
    parser = FrameParser(from_client=False)
    parser.feed(header(2, 4) + b"abcd", 1, 0.1)
    parser.hole(3, 2, 0.2)  # inside the next header: sync is lost
    got = parser.feed(b"\x00" * 5 + header(1, 2) + b"hi" + header(2, 0) + header(8, 2) + b"\x03\xe8", 3, 0.3)
    assert [(f.opcode, f.length) for f in got] == [(1, 2), (2, 0), (8, 2)]
    assert [a[0] for a in parser.anomalies] == ["sync-lost", "resync"]
    # 6 bytes of the first frame, then the 3 missing and 5 garbage bytes skipped.
    assert parser.anomalies == [("sync-lost", 2, 0.2, {"skipped": 3, "offset": 6}),
                                ("resync", 3, 0.3, {"skipped": 8, "offset": 14})]


def test_a_chain_from_a_packet_start_through_the_end_wins_over_an_earlier_chance_run():
    # Offset 0 holds three plausible empty headers; the packet start at 6 chains a ping,
    # a close and a text frame exactly to the end of the data.
    chain = header(9, 1) + b"p" + header(8, 2) + b"\x03\xe8" + header(1, 3) + b"abc"
    data = header(2, 0) * 3 + chain
    assert find_frame_sync(data) == 0
    assert find_frame_sync(data, prefer=[6]) == 6
    assert find_frame_sync(data, prefer=[len(data)]) == 0  # a start at the very end is no start
    assert find_frame_sync(data, prefer=[8]) == 0  # from 8 ("p": RSV bits) nothing chains: the ordinary search
    assert find_frame_sync(chain + b"\x03", prefer=[0]) == 0  # one byte past the last frame: still the tail
    masked = header(2, 0, masked=True) * 2 + header(1, 1, masked=True) + b"x"
    assert find_frame_sync(b"\x03" + masked, from_client=True, prefer=[1]) == 1
    assert find_frame_sync(b"\x03" + masked, from_client=False, prefer=[1]) is None


def test_find_stream_start_reports_the_offset_across_packets_and_whether_frames_are_masked():
    masked = header(2, 0, masked=True) * 3
    # (offset, masked, (evidence frames, packets holding a frame start, mask bit))
    assert find_stream_start([b"\x03\x03", masked[:4], masked[4:]]) == (2, True, (3, 2, 1))
    assert find_stream_start([header(2, 0) * 3]) == (0, False, (3, 1, 0))
    assert find_stream_start([b"\x03" * 4]) is None
    assert find_stream_start([]) is None


@pytest.mark.parametrize("fin, found", [(True, True), (False, False)])
def test_a_close_frame_must_be_final_to_be_plausible(fin, found):
    data = GARBAGE + header(8, 0, fin=fin) + header(2, 0) * 2
    assert find_frame_sync(data) == (len(GARBAGE) if found else None)


@pytest.mark.parametrize("opcode, deflate, found", [(1, True, True), (2, True, True), (0, True, False),
                                                    (8, True, False), (1, False, False)])
def test_rsv1_is_plausible_only_on_text_and_binary_frames_with_deflate(opcode, deflate, found):
    first = bytes([0x80 | 0x40 | opcode, 0])  # RSV1 set
    data = GARBAGE + first + header(2, 0) * 2
    assert find_frame_sync(data, deflate=deflate) == (len(GARBAGE) if found else None)
