"""FrameParser and find_frame_sync: RFC 6455 framing over arbitrarily chunked, holey streams."""
from __future__ import annotations

import struct
import tracemalloc

import pytest
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode

from analyzer.websocket import OPCODE_NAMES, FrameParser, find_frame_sync, unmask

MASK = b"\x37\xfa\x21\x3d"


def ws_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
             mask: bytes | None = None, length_bits: int | None = None,
             declared: int | None = None) -> bytes:
    """Hand-built frame; `length_bits` forces an encoding, `declared` a length."""
    length = len(payload) if declared is None else declared
    if length_bits is None:
        length_bits = 7 if length < 126 else (16 if length < 65536 else 64)
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    if length_bits == 7:
        head += bytes([mask_bit | length])
    elif length_bits == 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if mask is not None:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def pattern(n: int, seed: int = 0) -> bytes:
    # Deterministic, non-repeating at mask period, and no accidental run of zeros.
    return bytes((i * 131 + seed * 17 + 7) % 251 for i in range(n))


def feed_all(parser: FrameParser, chunks, first_no: int = 1):
    frames = []
    for i, chunk in enumerate(chunks):
        frames += parser.feed(chunk, first_no + i, float(first_no + i) / 10)
    return frames


# -- headers split at every byte --------------------------------------------

HEADER_CASES = [
    # (opcode, payload length, masked, expected header length)
    (1, 5, False, 2), (1, 5, True, 6),
    (1, 300, False, 4), (1, 300, True, 8),
    (2, 70000, False, 10), (2, 70000, True, 14),
]


@pytest.mark.parametrize("opcode,size,masked,header_len", HEADER_CASES)
def test_header_split_at_every_offset(opcode, size, masked, header_len):
    payload = pattern(size)
    wire = ws_frame(opcode, payload, mask=MASK if masked else None)
    trailer = ws_frame(9, b"hi", mask=MASK if masked else None)
    expected_payload = payload if opcode == 1 else payload[:64]
    for cut in range(1, header_len + 1):
        parser = FrameParser(from_client=masked)
        frames = feed_all(parser, [wire[:cut], wire[cut:] + trailer], first_no=10)
        assert len(frames) == 2, cut
        frame, ping = frames
        assert (frame.fin, frame.rsv, frame.opcode, frame.masked, frame.length) == (True, 0, opcode, masked, size)
        assert frame.mask == (MASK if masked else None)
        assert frame.header_len == header_len
        assert frame.payload == expected_payload
        assert frame.payload_complete is True
        # The first header byte came in packet 10, the last byte in packet 11.
        assert (frame.first_frame, frame.frame) == (10, 11)
        assert (frame.start_time, frame.time) == (1.0, 1.1)
        assert (ping.opcode, ping.payload, ping.first_frame, ping.frame) == (9, b"hi", 11, 11)
        assert parser.anomalies == []


@pytest.mark.parametrize("opcode,size,masked,header_len", HEADER_CASES)
def test_header_fed_one_byte_at_a_time(opcode, size, masked, header_len):
    payload = pattern(size, seed=3)
    wire = ws_frame(opcode, payload, mask=MASK if masked else None)
    parser = FrameParser(from_client=masked, keep_binary=100)
    chunks = [wire[i:i + 1] for i in range(header_len)] + [wire[header_len:]]
    (frame,) = feed_all(parser, chunks)
    assert frame.header_len == header_len
    assert frame.payload == (payload if opcode == 1 else payload[:100])
    assert (frame.first_frame, frame.frame) == (1, header_len + 1)


def test_zero_length_frame_with_split_header_belongs_to_the_packet_of_its_last_byte():
    wire = ws_frame(2, b"", mask=MASK)
    parser = FrameParser(from_client=True)
    assert parser.feed(wire[:3], 4, 0.4) == []
    (frame,) = parser.feed(wire[3:], 5, 0.5)
    assert (frame.length, frame.payload, frame.first_frame, frame.frame, frame.time) == (0, b"", 4, 5, 0.5)


def test_websockets_library_as_independent_producer():
    produced = [WsFrame(Opcode.TEXT, b"x" * 125), WsFrame(Opcode.BINARY, pattern(126)),
                WsFrame(Opcode.TEXT, b"y" * 65535, fin=False), WsFrame(Opcode.CONT, b"z" * 65536),
                WsFrame(Opcode.PING, b""), WsFrame(Opcode.CLOSE, b"\x03\xe8bye")]
    wire = b"".join(f.serialize(mask=True) for f in produced)
    parser = FrameParser(from_client=True, keep_binary=64)
    frames = parser.feed(wire, 1, 0.0)
    assert [(f.opcode, f.fin, f.length, f.header_len) for f in frames] == [
        (1, True, 125, 6), (2, True, 126, 8), (1, False, 65535, 8), (0, True, 65536, 14),
        (9, True, 0, 6), (8, True, 5, 6)]
    # The continuation of a text message is kept like text.
    assert [f.payload for f in frames] == [b"x" * 125, pattern(64), b"y" * 65535, b"z" * 65536,
                                           b"", b"\x03\xe8bye"]
    assert all(f.masked and len(f.mask) == 4 for f in frames)


def test_64_bit_length():
    payload = pattern(70000)
    wire = ws_frame(2, payload)
    parser = FrameParser(from_client=False, keep_binary=64)
    (frame,) = parser.feed(wire, 1, 0.0)
    assert (frame.length, frame.header_len, frame.payload) == (70000, 10, payload[:64])


def test_many_frames_in_one_chunk_share_its_frame_number():
    wire = b"".join(ws_frame(2, pattern(n, seed=n)) for n in (1, 7, 9, 18, 21))
    parser = FrameParser(from_client=False)
    frames = parser.feed(wire, 42, 4.2)
    assert [f.length for f in frames] == [1, 7, 9, 18, 21]
    assert [(f.first_frame, f.frame, f.start_time, f.time) for f in frames] == [(42, 42, 4.2, 4.2)] * 5
    assert [f.payload for f in frames] == [pattern(n, seed=n) for n in (1, 7, 9, 18, 21)]


def test_frame_spanning_chunks_takes_first_and_last_packet():
    payload = pattern(3000)
    wire = ws_frame(1, payload, mask=MASK)
    parser = FrameParser(from_client=True)
    assert parser.feed(wire[:100], 3, 0.3) == []
    assert parser.feed(wire[100:1500], 4, 0.4) == []
    (frame,) = parser.feed(wire[1500:] + ws_frame(10, b"", mask=MASK)[:1], 5, 0.5)
    assert (frame.first_frame, frame.frame, frame.start_time, frame.time) == (3, 5, 0.3, 0.5)
    assert frame.payload == payload


def test_keep_binary_is_respected_for_binary_and_its_continuations():
    first, rest = pattern(1000), pattern(500, seed=9)
    wire = ws_frame(2, first, fin=False, mask=MASK) + ws_frame(0, rest, mask=MASK) + ws_frame(2, b"abc", mask=MASK)
    parser = FrameParser(from_client=True, keep_binary=10)
    frames = feed_all(parser, [wire[i:i + 97] for i in range(0, len(wire), 97)])
    assert [f.payload for f in frames] == [first[:10], rest[:10], b"abc"]
    assert [f.length for f in frames] == [1000, 500, 3]


def test_keep_text_truncates_but_payload_is_still_complete():
    text = b"a" * 5000
    parser = FrameParser(from_client=False, keep_text=1000)
    (frame,) = feed_all(parser, [ws_frame(1, text)[:2500], ws_frame(1, text)[2500:]])
    assert (frame.length, len(frame.payload), frame.payload_complete) == (5000, 1000, True)


def test_compressed_binary_is_kept_like_text():
    # RSV1 data cannot be inflated from a 64-byte prefix.
    payload = pattern(500)
    wire = ws_frame(2, payload, rsv=4, fin=False) + ws_frame(0, payload)
    frames = FrameParser(from_client=False, keep_binary=64).feed(wire, 1, 0.0)
    assert [(f.rsv, len(f.payload)) for f in frames] == [(4, 500), (0, 500)]


def test_input_buffer_may_be_reused_by_the_caller():
    payload = pattern(300)
    wire = bytearray(ws_frame(1, payload, mask=MASK))
    parser = FrameParser(from_client=True)
    view = memoryview(wire)
    assert parser.feed(view[:150], 1, 0.0) == []
    wire[:150] = b"\0" * 150  # the caller recycles its buffer
    (frame,) = parser.feed(bytes(view[150:]), 2, 0.1)
    assert frame.payload == payload


# -- lengths ----------------------------------------------------------------

def test_non_minimal_length_is_reported_and_parsed():
    wire = ws_frame(1, b"hello", length_bits=16) + ws_frame(1, b"world", length_bits=64)
    parser = FrameParser(from_client=False)
    frames = parser.feed(wire, 7, 0.7)
    assert [f.payload for f in frames] == [b"hello", b"world"]
    assert [f.header_len for f in frames] == [4, 10]
    assert parser.anomalies == [("length-not-minimal", 7, 0.7, {"length": 5, "bits": 16}),
                                ("length-not-minimal", 7, 0.7, {"length": 5, "bits": 64})]


def test_claimed_length_2_63_allocates_nothing_and_is_incomplete_at_finish():
    wire = ws_frame(2, b"", declared=1 << 63, mask=MASK)
    body = pattern(4096)
    parser = FrameParser(from_client=True, keep_binary=64)
    tracemalloc.start()
    try:
        assert parser.feed(wire, 1, 0.0) == []
        for i in range(256):  # 1 MiB of payload
            assert parser.feed(body, 2 + i, 1.0) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    frame = parser.finish(300, 30.0)
    assert (frame.length, frame.payload_complete, frame.frame, frame.first_frame) == (1 << 63, False, 257, 1)
    assert frame.payload == unmask(body[:64], MASK)
    assert [a[0] for a in parser.anomalies] == ["length-msb-set", "frame-truncated"]
    assert parser.anomalies[1] == ("frame-truncated", 300, 30.0,
                                   {"opcode": 2, "length": 1 << 63, "missing": (1 << 63) - (1 << 20),
                                    "first_frame": 1})


def test_finish_inside_a_header_reports_truncation():
    parser = FrameParser(from_client=True)
    assert parser.feed(ws_frame(1, b"abc", mask=MASK)[:4], 5, 0.5) == []
    assert parser.finish(6, 0.6) is None
    assert parser.anomalies == [("frame-truncated", 6, 0.6, {"header_bytes": 4, "first_frame": 5})]


def test_finish_between_frames_is_clean():
    parser = FrameParser(from_client=False)
    assert len(parser.feed(ws_frame(1, b"abc"), 1, 0.0)) == 1
    assert parser.finish(2, 0.1) is None
    assert parser.anomalies == []


# -- holes and resync ---------------------------------------------------------

def test_hole_inside_payload_marks_frame_incomplete_and_parsing_goes_on():
    payload = pattern(1000)
    wire = ws_frame(2, payload, mask=MASK)
    after = ws_frame(1, b"next", mask=MASK)
    parser = FrameParser(from_client=True, keep_binary=200)
    assert parser.feed(wire[:108], 1, 0.1) == []  # header (8) + 100 payload bytes
    parser.hole(500, 2, 0.2)
    frames = parser.feed(wire[608:] + after, 3, 0.3)
    assert [f.opcode for f in frames] == [2, 1]
    broken, text = frames
    # Only the bytes before the gap are a prefix of the payload.
    assert (broken.payload, broken.payload_complete, broken.frame) == (payload[:100], False, 3)
    assert (text.payload, text.payload_complete) == (b"next", True)
    assert parser.anomalies == [("frame-payload-missing", 2, 0.2,
                                 {"opcode": 2, "length": 1000, "missing": 500, "first_frame": 1})]


def test_hole_covering_the_rest_of_a_payload_completes_the_frame():
    wire = ws_frame(1, b"x" * 50)
    parser = FrameParser(from_client=False)
    assert parser.feed(wire[:12], 1, 0.1) == []
    parser.hole(40, 2, 0.2)
    # Handed out by the next feed, still attributed to the last packet that carried its bytes.
    frame, nxt = parser.feed(ws_frame(9, b"p"), 3, 0.3)
    assert (frame.payload, frame.payload_complete, frame.frame) == (b"x" * 10, False, 1)
    assert nxt.payload == b"p"
    assert [a[0] for a in parser.anomalies] == ["frame-payload-missing"]


def test_frame_finished_by_a_hole_at_the_end_comes_from_finish():
    wire = ws_frame(2, pattern(100), mask=MASK)
    parser = FrameParser(from_client=True)
    assert parser.feed(wire[:50], 1, 0.1) == []
    parser.hole(len(wire) - 50 + 7, 2, 0.2)  # the rest of the frame and 7 bytes more
    frame = parser.finish(3, 0.3)
    assert (frame.length, frame.payload, frame.payload_complete) == (100, pattern(44), False)
    assert [a[0] for a in parser.anomalies] == ["frame-payload-missing", "sync-lost", "resync-failed"]
    assert parser.finish(3, 0.3) is None


def three_frames(masked: bool) -> bytes:
    mask = MASK if masked else None
    return (ws_frame(2, pattern(40, 1), mask=mask) + ws_frame(9, b"", mask=mask)
            + ws_frame(1, b"after the hole", mask=mask))


def test_hole_inside_a_header_resyncs_on_three_chained_headers():
    lost = ws_frame(2, pattern(300), mask=MASK)
    parser = FrameParser(from_client=True)
    assert parser.feed(lost[:3], 1, 0.1) == []  # 3 of the 8 header bytes
    parser.hole(100, 2, 0.2)  # ... 5 header bytes and 95 payload bytes missing
    tail = lost[103:]
    good = three_frames(True)
    frames = parser.feed(tail + good[:20], 3, 0.3)
    assert frames == []  # not enough evidence yet
    frames = parser.feed(good[20:], 4, 0.4)
    assert [(f.opcode, f.first_frame, f.frame) for f in frames] == [(2, 3, 4), (9, 4, 4), (1, 4, 4)]
    assert frames[2].payload == b"after the hole"
    assert parser.anomalies == [
        ("sync-lost", 2, 0.2, {"skipped": 103, "offset": 0}),
        ("resync", 4, 0.4, {"skipped": 103 + len(tail), "offset": 103 + len(tail)}),
    ]


def test_resync_recovers_a_final_close_frame():
    parser = FrameParser(from_client=False)
    parser.hole(10, 1, 0.1)
    (close,) = parser.feed(pattern(7, 5)[:3] + ws_frame(8, b"\x03\xe8"), 2, 0.2)
    assert (close.opcode, close.payload) == (8, b"\x03\xe8")
    assert [a[0] for a in parser.anomalies] == ["sync-lost", "resync"]
    assert parser.anomalies[1][3] == {"skipped": 13, "offset": 13}


def test_resync_uses_the_masking_actually_seen_on_the_stream():
    # wstunnel's client does not mask: resync must not insist on masked headers.
    parser = FrameParser(from_client=True)
    assert len(parser.feed(ws_frame(2, b"unmasked"), 1, 0.1)) == 1
    parser.hole(5, 2, 0.2)
    frames = parser.feed(three_frames(False), 3, 0.3)
    assert [f.opcode for f in frames] == [2, 9, 1]


def test_resync_failed_at_finish():
    parser = FrameParser(from_client=True)
    parser.hole(4, 1, 0.1)
    assert parser.feed(b"\xff" * 50, 2, 0.2) == []
    assert parser.finish(3, 0.3) is None
    assert parser.anomalies[-1] == ("resync-failed", 3, 0.3, {"skipped": 54})


def test_hole_while_resyncing_discards_the_buffer():
    parser = FrameParser(from_client=False)
    parser.hole(4, 1, 0.1)
    assert parser.feed(ws_frame(2, pattern(40)), 2, 0.2) == []  # one frame: not evidence enough
    parser.hole(3, 3, 0.3)
    frames = parser.feed(three_frames(False), 4, 0.4)
    assert [f.opcode for f in frames] == [2, 9, 1]
    assert parser.anomalies[-1] == ("resync", 4, 0.4, {"skipped": 4 + 42 + 3, "offset": 49})


def test_anomalies_are_bounded_but_counted():
    wire = ws_frame(1, b"a", length_bits=16) * 1500
    parser = FrameParser(from_client=False)
    assert len(parser.feed(wire, 1, 0.0)) == 1500
    assert len(parser.anomalies) == 1000
    assert parser.anomalies_dropped == 500
    assert parser.anomaly_counts == {"length-not-minimal": 1500}


# -- binary sink --------------------------------------------------------------

def test_binary_sink_gets_every_binary_byte_unmasked_in_order():
    audio = pattern(5000, 2)
    wire = (ws_frame(2, audio[:3001], fin=False, mask=MASK) + ws_frame(9, b"ping", mask=MASK)
            + ws_frame(0, audio[3001:], mask=MASK) + ws_frame(1, b"{}", mask=MASK))
    received = []
    parser = FrameParser(from_client=True, keep_binary=16)
    parser.binary_sink = lambda frame, chunk: received.append((frame.opcode, bytes(chunk)))
    frames = feed_all(parser, [wire[i:i + 1447] for i in range(0, len(wire), 1447)])
    assert [f.opcode for f in frames] == [2, 9, 0, 1]
    assert b"".join(c for _, c in received) == audio
    assert {op for op, _ in received} == {0, 2}
    # One call per TCP chunk a payload touches: 3 for the first frame, 2 for the continuation.
    assert [len(c) for _, c in received] == [1439, 1447, 115, 1314, 685]


def test_binary_sink_is_told_about_missing_bytes():
    audio = pattern(1000)
    wire = ws_frame(2, audio)
    received = []
    parser = FrameParser(from_client=False)
    parser.binary_sink = lambda frame, chunk: received.append(chunk if isinstance(chunk, int) else bytes(chunk))
    parser.feed(wire[:104], 1, 0.1)
    parser.hole(300, 2, 0.2)
    parser.feed(wire[404:], 3, 0.3)
    assert received == [audio[:100], 300, audio[400:]]


def test_without_a_sink_binary_payload_beyond_the_prefix_is_not_copied():
    wire = ws_frame(2, b"", declared=50 << 20, mask=MASK)
    parser = FrameParser(from_client=True, keep_binary=64)
    parser.feed(wire, 1, 0.0)
    body = bytes(1 << 20)
    tracemalloc.start()
    try:
        for i in range(50):
            parser.feed(body, 2 + i, 0.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


# -- find_frame_sync ----------------------------------------------------------

def test_find_frame_sync_on_a_stream_cut_mid_frame():
    frames = [ws_frame(2, pattern(n, n), mask=MASK) for n in (700, 300, 2, 90, 126)]
    stream = b"".join(frames)
    cut = 333  # inside the first payload
    assert find_frame_sync(stream[cut:], from_client=True) == len(frames[0]) - cut
    assert find_frame_sync(stream[cut:], from_client=None) == len(frames[0]) - cut
    assert find_frame_sync(stream, from_client=True) == 0


def test_find_frame_sync_needs_three_headers_and_the_right_masking():
    frames = [ws_frame(1, b"one"), ws_frame(1, b"two"), ws_frame(1, b"three and more")]
    stream = b"".join(frames)
    assert find_frame_sync(stream, from_client=False) == 0
    assert find_frame_sync(stream, from_client=True) is None
    assert find_frame_sync(b"".join(frames[:2]), from_client=False) is None
    # The third frame's payload may run past the end of the data.
    assert find_frame_sync(stream[:-5], from_client=False) == 0
    # ... but its header must be there.
    assert find_frame_sync(stream[:len(frames[0]) + len(frames[1]) + 1], from_client=False) is None


def test_find_frame_sync_rejects_implausible_headers():
    ok = ws_frame(1, b"abc")
    assert find_frame_sync(ws_frame(3, b"x") + ok + ok + ok) == 3  # reserved opcode skipped
    assert find_frame_sync(ws_frame(9, b"x", fin=False) + ok + ok + ok) == 3  # fragmented control
    assert find_frame_sync(ws_frame(1, b"abc", rsv=4) + ok + ok) is None
    assert find_frame_sync(ws_frame(1, b"abc", rsv=4) + ok + ok, deflate=True) == 0
    assert find_frame_sync(ws_frame(1, b"abc", length_bits=16) + ok + ok) is None
    # A continuation cannot follow a final frame inside the run.
    assert find_frame_sync(ok + ws_frame(0, b"x") + ok) is None
    assert find_frame_sync(ws_frame(1, b"a", fin=False) + ws_frame(9, b"") + ws_frame(0, b"b")) == 0


def test_opcode_names():
    assert OPCODE_NAMES == {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


def test_unmask_with_phase():
    data = pattern(23)
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(data))
    assert unmask(masked, MASK) == data
    assert unmask(masked[5:], MASK, 5 % 4) == data[5:]
    assert unmask(b"", MASK) == b""
