import itertools

import pytest
from hypothesis import given, settings, strategies as st

from analyzer.tcp import StreamReassembler
from analyzer.tcp.reassembly import MAX_RECORDS

WRAP = 1 << 32


def as_bytes(chunks):
    """Chunks with data made comparable (memoryview -> bytes)."""
    return [(None if data is None else bytes(data), frame, ts, hole) for data, frame, ts, hole in chunks]


def fresh(isn=1000, **kw):
    r = StreamReassembler(**kw)
    r.syn(isn)
    return r


def test_in_order_segments_are_delivered_at_once_with_their_own_frame():
    r = fresh(1000)
    assert as_bytes(r.segment(1001, memoryview(b"abc"), 1, 0.5)) == [(b"abc", 1, 0.5, 0)]
    assert as_bytes(r.segment(1004, memoryview(b"de"), 2, 0.75)) == [(b"de", 2, 0.75, 0)]
    assert r.next_offset == 5
    assert r.pending_bytes == 0
    assert r.retransmissions == 0


def test_in_order_delivery_is_the_same_memory_not_a_copy():
    r = fresh(1000)
    buf = bytearray(b"xyz")
    payload = memoryview(buf)
    (data, _, _, _), = r.segment(1001, payload, 1, 0.0)
    assert data is payload


def test_empty_segment_delivers_nothing():
    r = fresh(1000)
    assert r.segment(1001, memoryview(b""), 1, 0.0) == ()
    assert r.next_offset == 0


SEGMENTS = [(0, b"abc"), (3, b"def"), (6, b"ghij")]
# For each arrival order (indexes into SEGMENTS, arriving as frames 1, 2, 3): the chunks.
PERMUTATION_CHUNKS = {
    (0, 1, 2): [(b"abc", 1), (b"def", 2), (b"ghij", 3)],
    (0, 2, 1): [(b"abc", 1), (b"def", 3), (b"ghij", 3)],
    (1, 0, 2): [(b"abc", 2), (b"def", 2), (b"ghij", 3)],
    (1, 2, 0): [(b"abc", 3), (b"def", 3), (b"ghij", 3)],
    (2, 0, 1): [(b"abc", 2), (b"def", 3), (b"ghij", 3)],
    (2, 1, 0): [(b"abc", 3), (b"def", 3), (b"ghij", 3)],
}


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_out_of_order_is_released_by_the_filling_packet(order):
    r = fresh(500)
    got = []
    for frame, index in enumerate(order, start=1):
        offset, data = SEGMENTS[index]
        got += as_bytes(r.segment(501 + offset, memoryview(data), frame, frame / 10))
    assert got == [(data, frame, frame / 10, 0) for data, frame in PERMUTATION_CHUNKS[order]]
    assert r.next_offset == 10
    assert r.pending_bytes == 0


def test_pending_bytes_counts_buffered_data():
    r = fresh(0)
    assert r.segment(11, memoryview(b"12345"), 1, 0.0) == ()
    assert r.segment(21, memoryview(b"678"), 2, 0.0) == ()
    assert r.pending_bytes == 8
    assert r.next_offset == 0


def test_exact_retransmission_is_counted_and_dropped():
    r = fresh(0)
    r.segment(1, memoryview(b"hello"), 1, 0.0)
    assert r.segment(1, memoryview(b"hello"), 2, 0.0) == ()
    assert r.retransmissions == 1
    assert r.conflicts == ()
    assert r.next_offset == 5


def test_retransmission_of_buffered_segment_is_counted():
    r = fresh(0)
    r.segment(11, memoryview(b"later"), 1, 0.0)
    assert r.segment(11, memoryview(b"later"), 2, 0.0) == ()
    assert r.retransmissions == 1
    assert r.pending_bytes == 5


def test_partial_overlap_delivers_only_the_new_part():
    r = fresh(0)
    r.segment(1, memoryview(b"hello"), 1, 0.0)
    assert as_bytes(r.segment(4, memoryview(b"lo wo"), 2, 0.2)) == [(b" wo", 2, 0.2, 0)]
    assert r.next_offset == 8
    assert r.retransmissions == 0
    assert r.conflicts == ()


def test_overlap_differing_from_delivered_bytes_is_a_conflict_first_copy_wins():
    r = fresh(0)
    r.segment(1, memoryview(b"hello"), 1, 0.0)
    assert as_bytes(r.segment(3, memoryview(b"XYZ!!"), 7, 0.7)) == [(b"!!", 7, 0.7, 0)]
    assert r.conflicts == [(7, 2, 3)]
    assert r.conflict_count == 1


def test_conflict_spanning_two_delivered_segments_is_one_record():
    r = fresh(0)
    r.segment(1, memoryview(b"abc"), 1, 0.0)
    r.segment(4, memoryview(b"def"), 2, 0.0)
    r.segment(2, memoryview(b"BCDE"), 3, 0.0)
    assert r.conflicts == [(3, 1, 4)]
    assert r.retransmissions == 1


def test_overlap_differing_from_buffered_bytes_is_a_conflict_buffered_copy_wins():
    r = fresh(0)
    r.segment(6, memoryview(b"FGHIJ"), 1, 0.0)         # offsets 5..9, buffered
    r.segment(5, memoryview(b"eXYZ"), 2, 0.0)          # offsets 4..7: 4 new, 5..7 differ
    assert r.conflicts == [(2, 5, 3)]
    got = as_bytes(r.segment(1, memoryview(b"abcd"), 3, 0.3))
    assert got == [(b"abcd", 3, 0.3, 0), (b"e", 3, 0.3, 0), (b"FGHIJ", 3, 0.3, 0)]
    assert r.pending_bytes == 0


def test_identical_overlap_with_buffered_bytes_is_no_conflict():
    r = fresh(0)
    r.segment(6, memoryview(b"fghij"), 1, 0.0)
    r.segment(4, memoryview(b"defgh"), 2, 0.0)
    assert r.conflicts == ()
    assert as_bytes(r.segment(1, memoryview(b"abc"), 3, 0.0)) == [
        (b"abc", 3, 0.0, 0), (b"de", 3, 0.0, 0), (b"fghij", 3, 0.0, 0)]


def test_segment_bridging_two_buffered_ranges_fills_only_the_gaps():
    r = fresh(0)
    r.segment(3, memoryview(b"cd"), 1, 0.0)    # 2..3
    r.segment(7, memoryview(b"gh"), 2, 0.0)    # 6..7
    got = as_bytes(r.segment(1, memoryview(b"abcdefghijk"), 3, 0.0))
    assert got == [(b"ab", 3, 0.0, 0), (b"cd", 3, 0.0, 0), (b"ef", 3, 0.0, 0),
                   (b"gh", 3, 0.0, 0), (b"ijk", 3, 0.0, 0)]
    assert r.retransmissions == 0
    assert r.next_offset == 11


def test_conflict_outside_the_verify_window_is_not_detected():
    r = fresh(0, verify_window=4)
    r.segment(1, memoryview(b"abcd"), 1, 0.0)
    r.segment(5, memoryview(b"efgh"), 2, 0.0)
    r.segment(1, memoryview(b"XXXX"), 3, 0.0)
    r.segment(5, memoryview(b"eYgh"), 4, 0.0)
    assert r.conflicts == [(4, 4, 4)]
    assert r.retransmissions == 2


def test_verify_window_zero_disables_conflict_checks_on_delivered_bytes():
    r = fresh(0, verify_window=0)
    r.segment(1, memoryview(b"abcd"), 1, 0.0)
    r.segment(1, memoryview(b"XXXX"), 2, 0.0)
    assert r.conflicts == ()
    assert r.retransmissions == 1


def test_keep_alive_probe_is_neither_retransmission_nor_conflict():
    r = fresh(0)
    r.segment(1, memoryview(b"abcd"), 1, 0.0)
    assert r.segment(4, memoryview(b"\x00"), 2, 0.0) == ()
    assert r.retransmissions == 0
    assert r.conflicts == ()


def test_sequence_wraps_around_2_32():
    isn = WRAP - 3                      # first data byte at 2**32 - 2
    r = fresh(isn)
    got = as_bytes(r.segment(WRAP - 2, memoryview(b"0123456789"), 1, 0.0))
    assert got == [(b"0123456789", 1, 0.0, 0)]
    assert as_bytes(r.segment(8, memoryview(b"ab"), 2, 0.0)) == [(b"ab", 2, 0.0, 0)]
    assert r.next_offset == 12


def test_out_of_order_across_the_wrap():
    r = fresh(WRAP - 5)                 # first data byte at 2**32 - 4
    assert r.segment(2, memoryview(b"ghij"), 1, 0.0) == ()          # offsets 6..9
    assert r.segment(WRAP - 2, memoryview(b"cdef"), 2, 0.0) == ()   # offsets 2..5
    got = as_bytes(r.segment(WRAP - 4, memoryview(b"ab"), 3, 0.3))
    assert got == [(b"ab", 3, 0.3, 0), (b"cdef", 3, 0.3, 0), (b"ghij", 3, 0.3, 0)]
    assert r.next_offset == 10


def test_stream_longer_than_4_gib_keeps_growing_offsets():
    r = fresh(7)
    r.next_offset = 5 * WRAP            # as if 20 GiB had passed; raw seq stays consistent
    assert as_bytes(r.segment(8, memoryview(b"x"), 1, 0.0)) == [(b"x", 1, 0.0, 0)]
    assert r.next_offset == 5 * WRAP + 1


def test_hole_detected_by_ack_releases_buffered_data():
    r = fresh(0, max_ack_wait=0)  # ACKed bytes not seen are missing at once
    r.segment(1, memoryview(b"abc"), 1, 0.1)        # 0..2
    r.segment(10, memoryview(b"xyz"), 2, 0.2)       # 9..11; 3..8 never captured
    assert r.acked(1 + 3, 3, 0.3) == ()             # the peer acks what we saw: nothing
    got = as_bytes(r.acked(1 + 12, 4, 0.4))
    assert got == [(None, 4, 0.4, 6), (b"xyz", 2, 0.2, 0)]  # data keeps its own packet
    assert r.holes == [(3, 6, 4, 0.4)]
    assert (r.hole_count, r.hole_bytes) == (1, 6)
    assert r.next_offset == 12


def test_ack_beyond_everything_seen_is_a_hole_up_to_the_ack():
    r = fresh(0, max_ack_wait=0)  # ACKed bytes not seen are missing at once
    r.segment(1, memoryview(b"abc"), 1, 0.1)
    assert as_bytes(r.acked(21, 2, 0.2)) == [(None, 2, 0.2, 17)]
    assert r.holes == [(3, 17, 2, 0.2)]
    assert r.next_offset == 20


def test_old_and_duplicate_acks_do_nothing():
    r = fresh(0)
    r.segment(1, memoryview(b"abcdef"), 1, 0.1)
    assert r.acked(4, 2, 0.0) == ()
    assert r.acked(7, 3, 0.0) == ()
    assert r.acked((1 - 100) % WRAP, 4, 0.0) == ()
    assert r.holes == ()


def test_ack_landing_inside_a_buffered_segment_releases_all_of_it():
    r = fresh(0, max_ack_wait=0)  # ACKed bytes not seen are missing at once
    r.segment(6, memoryview(b"fghij"), 1, 0.0)      # 5..9
    assert as_bytes(r.acked(1 + 7, 2, 0.2)) == [(None, 2, 0.2, 5), (b"fghij", 1, 0.0, 0)]
    assert r.next_offset == 10


def test_ack_declares_several_holes_between_buffered_segments():
    r = fresh(0, max_ack_wait=0)  # ACKed bytes not seen are missing at once
    r.segment(3, memoryview(b"cd"), 1, 0.0)         # 2..3
    r.segment(9, memoryview(b"ij"), 2, 0.0)         # 8..9
    got = as_bytes(r.acked(1 + 12, 3, 0.3))
    assert got == [(None, 3, 0.3, 2), (b"cd", 1, 0.0, 0), (None, 3, 0.3, 4),
                   (b"ij", 2, 0.0, 0), (None, 3, 0.3, 2)]
    assert r.holes == [(0, 2, 3, 0.3), (4, 4, 3, 0.3), (10, 2, 3, 0.3)]


def test_flush_declares_holes_and_releases_everything():
    r = fresh(0)
    r.segment(1, memoryview(b"abc"), 1, 0.1)
    r.segment(10, memoryview(b"xyz"), 2, 0.2)
    r.segment(20, memoryview(b"!"), 3, 0.3)
    got = as_bytes(r.flush(9, 0.9))
    assert got == [(None, 9, 0.9, 6), (b"xyz", 2, 0.2, 0), (None, 9, 0.9, 7), (b"!", 3, 0.3, 0)]
    assert r.holes == [(3, 6, 9, 0.9), (12, 7, 9, 0.9)]
    assert r.next_offset == 20
    assert r.flush(10, 1.0) == ()


def test_flush_with_nothing_pending_returns_nothing():
    r = fresh(0)
    r.segment(1, memoryview(b"abc"), 1, 0.1)
    assert r.flush(2, 0.2) == ()


def test_data_arriving_after_its_hole_was_declared_is_dropped():
    r = fresh(0, max_ack_wait=0)  # ACKed bytes not seen are missing at once
    r.acked(11, 1, 0.1)
    assert as_bytes(r.segment(1, memoryview(b"0123456789"), 2, 0.2)) == []
    assert r.next_offset == 10
    assert r.retransmissions == 1
    assert r.conflicts == ()


def test_snaplen_cut_segment_delivers_captured_bytes_then_a_hole():
    r = fresh(0)
    got = as_bytes(r.segment(1, memoryview(b"ab"), 1, 0.1, missing=5))
    assert got == [(b"ab", 1, 0.1, 0), (None, 1, 0.1, 5)]
    assert r.holes == [(2, 5, 1, 0.1)]
    assert r.next_offset == 7
    assert as_bytes(r.segment(8, memoryview(b"next"), 2, 0.2)) == [(b"next", 2, 0.2, 0)]


def test_snaplen_cut_segment_out_of_order():
    r = fresh(0)
    assert r.segment(4, memoryview(b"d"), 1, 0.1, missing=2) == ()    # 3, then 4..5 cut
    assert r.pending_bytes == 1
    got = as_bytes(r.segment(1, memoryview(b"abc"), 2, 0.2))
    assert got == [(b"abc", 2, 0.2, 0), (b"d", 2, 0.2, 0), (None, 2, 0.2, 2)]
    assert r.holes == [(4, 2, 2, 0.2)]
    assert r.next_offset == 6


def test_snaplen_cut_to_nothing_is_all_hole():
    r = fresh(0)
    assert as_bytes(r.segment(1, memoryview(b""), 1, 0.1, missing=100)) == [(None, 1, 0.1, 100)]
    assert r.next_offset == 100


def test_max_pending_overflow_declares_the_hole_and_releases():
    r = fresh(0, max_pending=6)
    assert r.segment(11, memoryview(b"KLMN"), 1, 0.1) == ()        # 10..13
    assert r.pending_bytes == 4
    got = as_bytes(r.segment(21, memoryview(b"UVW"), 2, 0.2))     # 20..22 -> 7 > 6
    assert got == [(None, 2, 0.2, 10), (b"KLMN", 1, 0.1, 0)]
    assert r.holes == [(0, 10, 2, 0.2)]
    assert r.pending_bytes == 3
    assert r.next_offset == 14
    assert as_bytes(r.flush(3, 0.3)) == [(None, 3, 0.3, 6), (b"UVW", 2, 0.2, 0)]


def test_no_syn_first_segment_sets_the_base():
    r = StreamReassembler()
    assert as_bytes(r.segment(123456, memoryview(b"mid"), 1, 0.1)) == [(b"mid", 1, 0.1, 0)]
    assert as_bytes(r.segment(123459, memoryview(b"dle"), 2, 0.2)) == [(b"dle", 2, 0.2, 0)]
    # bytes from before the pickup point are old: dropped
    assert r.segment(123450, memoryview(b"early"), 3, 0.3) == ()
    assert r.retransmissions == 1
    assert r.next_offset == 6


def test_no_syn_peer_ack_sets_the_base():
    r = StreamReassembler()
    assert r.acked(5000, 1, 0.1) == ()
    assert r.segment(5003, memoryview(b"def"), 2, 0.2) == ()
    got = as_bytes(r.segment(5000, memoryview(b"abc"), 3, 0.3))
    assert got == [(b"abc", 3, 0.3, 0), (b"def", 3, 0.3, 0)]


def test_repeated_syn_does_not_move_the_base():
    r = fresh(100)
    r.segment(101, memoryview(b"ab"), 1, 0.0)
    r.syn(100)
    r.syn(5000)
    assert as_bytes(r.segment(103, memoryview(b"c"), 2, 0.0)) == [(b"c", 2, 0.0, 0)]


def test_fin_ack_is_not_a_hole_and_marks_the_fin_acked():
    r = fresh(0)
    r.segment(1, memoryview(b"abc"), 1, 0.1)
    r.fin(4)
    assert r.fin_offset == 3
    assert r.fin_reached
    assert r.acked(5, 2, 0.2) == ()
    assert r.fin_acked
    assert r.holes == ()


def test_fin_after_missing_data_bounds_the_hole():
    r = fresh(0, max_ack_wait=0)  # ACKed bytes not seen are missing at once
    r.segment(1, memoryview(b"abc"), 1, 0.1)
    r.fin(11)                          # FIN after 10 data bytes: 3..9 missing
    assert not r.fin_reached
    assert as_bytes(r.acked(12, 2, 0.2)) == [(None, 2, 0.2, 7)]
    assert r.fin_reached and r.fin_acked
    assert r.next_offset == 10


def test_flush_declares_the_hole_before_a_fin():
    r = fresh(0)
    r.fin(6)
    assert as_bytes(r.flush(3, 0.3)) == [(None, 3, 0.3, 5)]
    assert r.fin_reached


def test_evidence_lists_are_bounded_but_totals_keep_counting():
    r = fresh(0)
    seq = 1
    for i in range(MAX_RECORDS + 20):
        r.segment(seq, memoryview(b"a"), i, 0.0, missing=1)
        seq += 2
    assert len(r.holes) == MAX_RECORDS
    assert r.hole_count == MAX_RECORDS + 20
    assert r.hole_bytes == MAX_RECORDS + 20
    assert r.holes[-1] == (2 * MAX_RECORDS - 1, 1, MAX_RECORDS - 1, 0.0)


# -- properties --------------------------------------------------------------

def _cuts(draw, size):
    points = draw(st.lists(st.integers(1, max(1, size - 1)), max_size=12))
    return sorted({0, size, *[p for p in points if 0 < p < size]})


@st.composite
def shuffled_segments(draw, drop=False):
    data = draw(st.binary(min_size=1, max_size=600))
    isn = draw(st.one_of(st.integers(0, WRAP - 1), st.integers(WRAP - 700, WRAP - 1)))
    segments = []
    for _ in range(draw(st.integers(1, 3))):       # several segmentations = retransmissions
        cuts = _cuts(draw, len(data))
        segments += [(a, data[a:b]) for a, b in zip(cuts, cuts[1:])]
    segments += draw(st.lists(st.sampled_from(segments), max_size=5))   # plain duplicates
    if drop:
        keep = draw(st.lists(st.booleans(), min_size=len(segments), max_size=len(segments)))
        segments = [s for s, k in zip(segments, keep) if k]
    order = draw(st.permutations(range(len(segments))))
    return data, isn, [segments[i] for i in order]


@settings(max_examples=300, deadline=None)
@given(shuffled_segments())
def test_any_segmentation_reordering_duplication_reassembles_exactly(case):
    data, isn, segments = case
    r = StreamReassembler()
    r.syn(isn)
    out = []
    for frame, (offset, piece) in enumerate(segments, start=1):
        out += r.segment((isn + 1 + offset) % WRAP, memoryview(piece), frame, 0.0)
    out += r.flush(len(segments) + 1, 0.0)
    assert all(hole == 0 for _, _, _, hole in out)
    assert b"".join(bytes(d) for d, _, _, _ in out) == data
    assert r.conflicts == ()
    assert r.holes == ()
    assert r.pending_bytes == 0
    assert r.next_offset == len(data)


@settings(max_examples=300, deadline=None)
@given(shuffled_segments(drop=True), st.integers(1, 700))
def test_dropped_segments_become_exact_holes(case, max_pending):
    data, isn, segments = case
    covered = bytearray(len(data))
    for offset, piece in segments:
        covered[offset:offset + len(piece)] = b"\x01" * len(piece)
    seen_end = max((offset + len(piece) for offset, piece in segments), default=0)
    r = StreamReassembler(max_pending=max_pending)
    r.syn(isn)
    out = []
    for frame, (offset, piece) in enumerate(segments, start=1):
        out += r.segment((isn + 1 + offset) % WRAP, memoryview(piece), frame, 0.0)
    out += r.flush(len(segments) + 1, 0.0)
    offset = 0
    for chunk, _, _, hole in out:
        if chunk is None:
            # a hole never hides a byte that was delivered to it in order...
            assert hole > 0
            offset += hole
        else:
            assert bytes(chunk) == data[offset:offset + len(chunk)]
            assert all(covered[offset:offset + len(chunk)])
            offset += len(chunk)
    assert offset == seen_end == r.next_offset
    assert r.hole_bytes == seen_end - sum(len(bytes(d)) for d, _, _, _ in out if d is not None)
    if max_pending >= len(data):
        # ...and with room to buffer, every captured byte is delivered.
        assert r.hole_bytes == seen_end - sum(covered[:seen_end])


# --- late data: an ACK is not proof that the bytes are missing ---------------------------------

def test_acked_data_arriving_later_fills_the_range_without_a_hole():
    r = fresh(0)
    r.segment(1, memoryview(b"abc"), 1, 0.1)
    assert r.acked(1 + 9, 2, 0.2) == ()             # the peer acks 6 bytes we have not seen
    assert as_bytes(r.segment(4, memoryview(b"defghi"), 3, 0.3)) == [(b"defghi", 3, 0.3, 0)]
    assert r.holes == () and r.hole_count == 0
    assert as_bytes(r.flush(4, 0.4)) == []


def test_acked_data_never_seen_is_a_hole_after_the_wait_at_the_acks_frame():
    r = fresh(0, max_ack_wait=3.0)
    r.segment(1, memoryview(b"abc"), 1, 0.1)
    assert r.acked(1 + 9, 2, 0.2) == ()
    assert r.segment(20, memoryview(b"late"), 3, 3.1) == ()  # 2.9 s after the ACK: waits
    got = as_bytes(r.segment(24, memoryview(b"!"), 4, 3.2))  # 3.0 s: the range is lost
    assert got == [(None, 2, 0.2, 6)]
    assert r.holes == [(3, 6, 2, 0.2)]
    # The data after the ACKed range is still waiting for bytes 9..18 (nobody ACKed them).
    assert r.pending_bytes == 5


def test_acked_range_waits_only_until_buffered_bytes_pass_max_pending():
    r = fresh(0, max_pending=8)
    r.segment(1, memoryview(b"abc"), 1, 0.1)
    assert r.acked(1 + 5, 2, 0.2) == ()             # 2 bytes acked, not seen
    got = as_bytes(r.segment(6, memoryview(b"0123456789"), 3, 0.3))  # 10 bytes behind them
    assert got == [(None, 2, 0.2, 2), (b"0123456789", 3, 0.3, 0)]


def test_flush_declares_acked_bytes_never_seen_at_the_acks_frame():
    r = fresh(0)
    r.segment(1, memoryview(b"abc"), 1, 0.1)
    r.acked(1 + 7, 2, 0.2)
    r.acked(1 + 10, 3, 0.3)
    assert as_bytes(r.flush(9, 0.9)) == [(None, 2, 0.2, 4), (None, 3, 0.3, 3)]


def test_a_direction_always_late_never_makes_a_hole():
    # A span port whose server direction is 100 ms behind: every ACK comes first.
    r = fresh(0)
    delivered = 0
    for i in range(200):  # 20 s of 100-byte messages, each ACKed 100 ms before it shows
        t = i * 0.1
        assert r.acked(1 + 100 * (i + 1), 2 * i, t) == ()
        chunks = r.segment(1 + 100 * i, memoryview(bytes(100)), 2 * i + 1, t + 0.1)
        delivered += sum(len(c[0]) for c in chunks)
    assert delivered == 20000 and r.hole_count == 0
