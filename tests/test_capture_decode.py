"""One captured packet -> TCP segment (analyzer.capture.PacketDecoder)."""
from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.capture import PacketDecoder, format_address, open_capture
from tests.support import capture_synth as synth
from tests.support.capture_synth import ACK, CLIENT_IP, CLIENT_IP6, FIN, PSH, SERVER_IP, SERVER_IP6, SYN

TSHARK = shutil.which("tshark")

PAYLOAD = b"GET /v1/listen HTTP/1.1\r\n"
SEGMENT_V4 = synth.tcp(50000, 443, 0xFFFFFFF0, 0x80000001, PSH | ACK, PAYLOAD)
IP_V4 = synth.ipv4(SEGMENT_V4)
EXPECTED_V4 = (CLIENT_IP, SERVER_IP, 50000, 443, 0xFFFFFFF0, 0x80000001, PSH | ACK, PAYLOAD, 0)
SEGMENT_V6 = synth.tcp(50001, 443, 7, 9, ACK, PAYLOAD)
IP_V6 = synth.ipv6(SEGMENT_V6)
EXPECTED_V6 = (CLIENT_IP6, SERVER_IP6, 50001, 443, 7, 9, ACK, PAYLOAD, 0)


def decode_one(linktype: int, data: bytes, frame_no: int = 1):
    decoder = PacketDecoder()
    segment = decoder.decode(frame_no, linktype, data)
    return decoder, segment


def as_plain(segment):
    """The segment with its payload memoryview turned into bytes, for comparison."""
    return segment[:7] + (bytes(segment[7]),) + segment[8:]


def assert_only(decoder: PacketDecoder, **expected):
    stats = decoder.stats
    wanted = {"packets": 1, "tcp": 0, "non_ip": 0, "non_tcp": 0, "ipv4_fragments": 0,
              "ipv6_fragments": 0, "snaplen_truncated": 0, "malformed": 0, "unsupported_linktypes": {}}
    wanted.update(expected)
    assert stats == wanted


# --- link types ---------------------------------------------------------------------------------

def test_ethernet_ipv4_tcp_exact_fields():
    decoder, segment = decode_one(1, synth.ethernet(IP_V4))
    assert type(segment[7]) is bytes  # a copy: a view would keep a reader's whole block alive
    assert as_plain(segment) == EXPECTED_V4
    assert_only(decoder, tcp=1)


def test_packet_inside_a_block_decodes_like_the_packet_alone():
    # What Capture.spans() hands over: a block of the file and where the packet lies in it.
    # Every path (the fast one, IPv6, a packet too short for either) decides as on the packet
    # alone, and the packet's neighbours in the block change nothing.
    for packet in (synth.ethernet(IP_V4), synth.ethernet(IP_V6, ethertype=0x86DD),
                   synth.ethernet(IP_V4)[:40]):
        alone_decoder, alone = decode_one(1, packet)
        block = b"\xff" * 37 + packet + b"\xee" * 50
        decoder = PacketDecoder()
        segment = decoder.decode(1, 1, block, 0.0, 37, 37 + len(packet))
        assert (segment is None) == (alone is None)
        if alone is not None:
            assert as_plain(segment) == as_plain(alone)
        assert decoder.stats == alone_decoder.stats


def test_ethernet_ipv6_tcp():
    decoder, segment = decode_one(1, synth.ethernet(IP_V6, ethertype=0x86DD))
    assert as_plain(segment) == EXPECTED_V6
    assert_only(decoder, tcp=1)


def test_ethernet_padding_is_trimmed():
    syn = synth.ethernet(synth.ipv4(synth.tcp(1, 2, 100, 0, SYN)))
    assert len(syn) == 60  # 54 bytes of headers, 6 of padding
    _, segment = decode_one(1, syn)
    assert bytes(segment[7]) == b"" and segment[8] == 0
    small = synth.ethernet(synth.ipv4(synth.tcp(1, 2, 100, 0, ACK, b"\x81\x00")))
    assert len(small) == 60
    _, segment = decode_one(1, small)
    assert bytes(segment[7]) == b"\x81\x00"


def test_ethernet_trailing_fcs_is_trimmed():
    frame = synth.ethernet(IP_V4, pad_to=0) + b"\xde\xad\xbe\xef"
    _, segment = decode_one(1, frame)
    assert bytes(segment[7]) == PAYLOAD


@pytest.mark.parametrize("vlans", [
    [(0x8100, 100)],
    [(0x88A8, 10), (0x8100, 20)],
    [(0x9100, 10), (0x8100, 20)],
    [(0x88A8, 1), (0x8100, 2), (0x8100, 3)],
], ids=["802.1Q", "QinQ-88a8", "QinQ-9100", "three-tags"])
def test_vlan_tags(vlans):
    decoder, segment = decode_one(1, synth.ethernet(IP_V4, vlans=vlans))
    assert as_plain(segment) == EXPECTED_V4
    assert_only(decoder, tcp=1)


def test_linux_sll():
    decoder, segment = decode_one(113, synth.linux_sll(IP_V6, protocol=0x86DD))
    assert as_plain(segment) == EXPECTED_V6
    _, segment = decode_one(113, synth.linux_sll(IP_V4))
    assert as_plain(segment) == EXPECTED_V4


def test_linux_sll2():
    _, segment = decode_one(276, synth.linux_sll2(IP_V4))
    assert as_plain(segment) == EXPECTED_V4
    _, segment = decode_one(276, synth.linux_sll2(IP_V6, protocol=0x86DD))
    assert as_plain(segment) == EXPECTED_V6


@pytest.mark.parametrize("family, packet, expected", [
    (2, IP_V4, EXPECTED_V4), (24, IP_V6, EXPECTED_V6), (28, IP_V6, EXPECTED_V6),
    (30, IP_V6, EXPECTED_V6)])
@pytest.mark.parametrize("order", ["<", ">"])
def test_bsd_null_loopback_either_byte_order(family, packet, expected, order):
    decoder, segment = decode_one(0, struct.pack(order + "I", family) + packet)
    assert as_plain(segment) == expected
    assert_only(decoder, tcp=1)


@pytest.mark.parametrize("family, packet, expected", [(2, IP_V4, EXPECTED_V4), (24, IP_V6, EXPECTED_V6)])
def test_openbsd_loop(family, packet, expected):
    _, segment = decode_one(108, struct.pack("!I", family) + packet)
    assert as_plain(segment) == expected


def test_null_loopback_other_family_is_non_ip():
    decoder, segment = decode_one(0, struct.pack("<I", 7) + IP_V4)
    assert segment is None
    assert_only(decoder, non_ip=1)


@pytest.mark.parametrize("linktype", [101, 12, 14])
def test_raw_ip_by_version_nibble(linktype):
    decoder = PacketDecoder()
    assert as_plain(decoder.decode(1, linktype, IP_V4)) == EXPECTED_V4
    assert as_plain(decoder.decode(2, linktype, IP_V6)) == EXPECTED_V6
    assert decoder.stats["tcp"] == 2


def test_raw_ipv4_and_ipv6_linktypes():
    _, segment = decode_one(228, IP_V4)
    assert as_plain(segment) == EXPECTED_V4
    _, segment = decode_one(229, IP_V6)
    assert as_plain(segment) == EXPECTED_V6


def test_unsupported_linktype_counted_by_type():
    decoder = PacketDecoder()
    assert decoder.decode(1, 147, IP_V4) is None
    assert decoder.decode(2, 147, IP_V4) is None
    assert decoder.decode(3, 105, IP_V4) is None
    assert decoder.stats["unsupported_linktypes"] == {147: 2, 105: 1}
    assert decoder.stats["packets"] == 3


def test_non_ip_and_non_tcp():
    decoder = PacketDecoder()
    arp = synth.ethernet(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20, ethertype=0x0806)
    udp = synth.ethernet(synth.ipv4(b"\x00\x35\x00\x35\x00\x08\x00\x00", protocol=17))
    no_next = synth.ethernet(synth.ipv6(b"", next_header=59), ethertype=0x86DD)
    assert decoder.decode(1, 1, arp) is None
    assert decoder.decode(2, 1, udp) is None
    assert decoder.decode(3, 1, no_next) is None
    assert decoder.stats["non_ip"] == 1
    assert decoder.stats["non_tcp"] == 2


# --- IP headers ---------------------------------------------------------------------------------

def test_ipv4_options_skipped_by_ihl():
    options = b"\x94\x04\x00\x00" + b"\x01\x01\x01\x00"  # router alert, NOPs, end
    decoder, segment = decode_one(1, synth.ethernet(synth.ipv4(SEGMENT_V4, options=options)))
    assert as_plain(segment) == EXPECTED_V4
    assert_only(decoder, tcp=1)


def test_tcp_options_skipped_by_data_offset():
    segment_bytes = synth.tcp(1, 2, 3, 4, SYN | ACK, b"hi", options=b"\x02\x04\x05\xb4\x01\x01\x04\x02")
    _, segment = decode_one(228, synth.ipv4(segment_bytes))
    assert bytes(segment[7]) == b"hi"
    assert segment[6] == SYN | ACK == 0x12


def test_ipv6_extension_headers_skipped():
    chain = [synth.ipv6_extension(0, 8), synth.ipv6_extension(43, 24), synth.ipv6_extension(51, 24),
             synth.ipv6_extension(60, 16)]
    decoder, segment = decode_one(229, synth.ipv6(SEGMENT_V6, extensions=chain))
    assert as_plain(segment) == EXPECTED_V6
    assert_only(decoder, tcp=1)


def test_ipv6_atomic_fragment_is_a_whole_packet():
    packet = synth.ipv6(SEGMENT_V6, extensions=[synth.ipv6_fragment(0, more=False)])
    decoder, segment = decode_one(229, packet)
    assert as_plain(segment) == EXPECTED_V6
    assert_only(decoder, tcp=1)


def test_ipv4_fragments_reassembled_at_the_last_fragment():
    decoder = PacketDecoder()
    first = synth.ipv4(SEGMENT_V4[:16], flags_fragment=0x2000, total_length=36)  # MF
    second = synth.ipv4(SEGMENT_V4[16:], flags_fragment=2)  # offset 16 bytes
    assert decoder.decode(7, 228, first) is None
    assert as_plain(decoder.decode(8, 228, second)) == EXPECTED_V4
    assert decoder.decode(9, 228, IP_V4) is not None  # DF alone is not a fragment
    decoder.finish()
    stats = decoder.stats
    assert (stats["ipv4_fragments"], stats["tcp"], stats["fragments_reassembled"],
            stats["fragments_unreassembled"]) == (1, 2, 1, 0)
    assert decoder.fragment_frames == []


def test_ipv4_fragments_out_of_order_and_duplicated():
    decoder = PacketDecoder()
    first = synth.ipv4(SEGMENT_V4[:16], flags_fragment=0x2000, total_length=36)
    second = synth.ipv4(SEGMENT_V4[16:], flags_fragment=2)
    assert decoder.decode(1, 228, second) is None
    assert decoder.decode(2, 228, second) is None  # a copy: no conflict
    assert as_plain(decoder.decode(3, 228, first)) == EXPECTED_V4
    assert "fragment_conflicts" not in decoder.stats


def test_ipv4_overlapping_fragments_with_different_bytes_are_a_conflict():
    decoder = PacketDecoder()
    first = synth.ipv4(SEGMENT_V4[:24], flags_fragment=0x2000)  # MF, bytes [0, 24)
    bad = synth.ipv4(b"X" * 8, flags_fragment=0x2000 | 2)  # [16, 24) again, other bytes
    second = synth.ipv4(SEGMENT_V4[16:], flags_fragment=2)  # [16, end), the true bytes
    assert decoder.decode(1, 228, first) is None
    assert decoder.decode(2, 228, bad) is None
    assert as_plain(decoder.decode(3, 228, second)) == EXPECTED_V4  # the first copy wins
    # Frame 2 disagrees with frame 1, frame 3 with frame 2.
    assert decoder.stats["fragment_conflicts"] == 2
    assert decoder.fragments.conflict_frames == [2, 3]


def test_ipv6_fragments_reassembled_with_the_first_fragments_next_header():
    decoder = PacketDecoder()
    first = synth.ipv6(SEGMENT_V6[:24], extensions=[synth.ipv6_fragment(0, more=True)])
    last = synth.ipv6(SEGMENT_V6[24:], extensions=[synth.ipv6_extension(0, 8),
                                                   synth.ipv6_fragment(3, more=False)])
    assert decoder.decode(4, 229, first) is None
    assert as_plain(decoder.decode(5, 229, last)) == EXPECTED_V6
    assert (decoder.stats["ipv6_fragments"], decoder.stats["tcp"]) == (1, 1)


def test_incomplete_datagram_expires_after_the_timeout_in_capture_time():
    decoder = PacketDecoder()
    first = synth.ipv4(SEGMENT_V4[:16], flags_fragment=0x2000, total_length=36)
    second = synth.ipv4(SEGMENT_V4[16:], flags_fragment=2)
    other = synth.ipv4(SEGMENT_V4[:16], flags_fragment=0x2000, ident=9)
    assert decoder.decode(1, 228, first, 100.0) is None
    assert decoder.decode(2, 228, other, 131.0) is None  # 31 s later: frame 1 is given up
    assert decoder.decode(3, 228, second, 131.5) is None  # starts a new datagram, incomplete
    decoder.finish()
    assert decoder.stats["fragments_unreassembled"] == 3
    assert decoder.fragment_frames == [1, 2, 3]


def test_fragment_table_is_bounded_in_datagrams():
    decoder = PacketDecoder()
    decoder.fragments.max_datagrams = 4
    for ident in range(10):
        decoder.decode(ident + 1, 228, synth.ipv4(SEGMENT_V4[:16], flags_fragment=0x2000,
                                                  ident=ident))
    assert len(decoder.fragments.pending) == 4
    assert decoder.stats["fragments_unreassembled"] == 6
    assert decoder.fragment_frames == [1, 2, 3, 4, 5, 6]


def test_fragment_frames_keeps_the_first_100():
    decoder = PacketDecoder()
    fragment = synth.ipv4(SEGMENT_V4[:16], flags_fragment=0x2000, total_length=36)
    for frame_no in range(1, 151):
        decoder.decode(frame_no, 228, fragment)
    decoder.finish()
    assert decoder.stats["ipv4_fragments"] == 150
    assert decoder.stats["fragments_unreassembled"] == 150
    assert decoder.fragment_frames == list(range(1, 101))


def test_ipv4_total_length_zero_is_tso():
    big = synth.tcp(1, 2, 3, 4, ACK, b"s" * 3000)
    decoder, segment = decode_one(228, synth.ipv4(big, total_length=0))
    assert bytes(segment[7]) == b"s" * 3000 and segment[8] == 0
    assert_only(decoder, tcp=1)


# --- captured less than sent --------------------------------------------------------------------

def test_snaplen_cut_payload_reports_missing():
    frame = synth.ethernet(synth.ipv4(synth.tcp(1, 2, 3, 4, ACK, bytes(range(256)) * 4)))
    decoder, segment = decode_one(1, frame[:100])
    assert bytes(segment[7]) == bytes(range(46))
    assert segment[8] == 1024 - 46 == 978
    assert_only(decoder, tcp=1, snaplen_truncated=1)


def test_snaplen_cut_inside_tcp_options_gives_empty_payload():
    frame = synth.ipv4(synth.tcp(1, 2, 3, 4, ACK, b"p" * 10, options=b"\x01" * 12))
    decoder, segment = decode_one(228, frame[:44])  # 20 IP + 24 of 32 TCP header bytes
    assert bytes(segment[7]) == b"" and segment[8] == 10
    assert_only(decoder, tcp=1, snaplen_truncated=1)


@pytest.mark.parametrize("cut", [30, 20, 10], ids=["in-tcp-header", "after-ip-header", "in-ip-header"])
def test_snaplen_cut_inside_headers(cut):
    decoder, segment = decode_one(228, IP_V4[:cut])
    assert segment is None
    assert_only(decoder, snaplen_truncated=1)


def test_snaplen_cut_inside_ipv6_header():
    decoder, segment = decode_one(229, IP_V6[:30])
    assert segment is None
    assert_only(decoder, snaplen_truncated=1)


# --- malformed ----------------------------------------------------------------------------------

MALFORMED = {
    "short-ethernet": (1, synth.ethernet(IP_V4)[:10]),
    "short-sll": (113, b"\x00" * 12),
    "short-sll2": (276, b"\x00" * 12),
    "short-null": (0, b"\x02\x00"),
    "empty-raw": (101, b""),
    "cut-vlan-tag": (1, synth.ethernet(b"", ethertype=0x8100, pad_to=0) + b"\x00"),
    "ihl-below-5": (228, synth.ipv4(SEGMENT_V4, version_ihl=0x44)),
    "total-length-below-ihl": (228, synth.ipv4(SEGMENT_V4, total_length=12)),
    "ipv4-ethertype-v6-packet": (1, synth.ethernet(IP_V6)),
    "raw-version-5": (101, b"\x50" + IP_V4[1:]),
    "tcp-doff-below-5": (228, synth.ipv4(SEGMENT_V4[:12] + b"\x40" + SEGMENT_V4[13:])),
    "tcp-header-beyond-ip-length": (228, synth.ipv4(SEGMENT_V4, total_length=30)),
    "tcp-doff-beyond-ip-length": (228, synth.ipv4(SEGMENT_V4[:12] + b"\xf0" + SEGMENT_V4[13:20])),
    "ipv6-ext-beyond-payload": (229, synth.ipv6(b"", extensions=[synth.ipv6_extension(0, 8)],
                                                payload_length=4)),
    "short-ip-header-length-fits": (228, IP_V4[:2] + struct.pack("!H", 4)),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_returns_none_and_counts(name):
    linktype, data = MALFORMED[name]
    decoder, segment = decode_one(linktype, data)
    assert segment is None
    assert_only(decoder, malformed=1)


def _outcomes(decoder: PacketDecoder, returned_with_missing: int) -> int:
    s = decoder.stats
    return (s["tcp"] + s["non_ip"] + s["non_tcp"] + s["ipv4_fragments"] + s["ipv6_fragments"]
            + s["malformed"] + sum(s["unsupported_linktypes"].values())
            + s["snaplen_truncated"] + sum(s.get("undecoded", {}).values())
            - returned_with_missing)


@settings(max_examples=400, deadline=None)
@given(linktype=st.sampled_from([0, 1, 12, 14, 101, 108, 113, 228, 229, 276]),
       prefix=st.sampled_from([b"", synth.ethernet(b"", pad_to=0)[:12], b"\x02\x00\x00\x00",
                               b"\x00" * 16]),
       body=st.binary(max_size=120))
def test_any_bytes_never_raise_and_land_in_exactly_one_bucket(linktype, prefix, body):
    decoder = PacketDecoder()
    with_missing = 0
    for packet in (prefix + body, prefix + b"\x45" + body, prefix + b"\x08\x00\x45" + body,
                   prefix + b"\x60" + body):
        segment = decoder.decode(1, linktype, packet)
        if segment is not None:
            assert len(segment) == 9 and segment[8] >= 0
            with_missing += segment[8] > 0
    assert decoder.stats["packets"] == 4
    assert _outcomes(decoder, with_missing) == 4


# --- addresses ----------------------------------------------------------------------------------

def test_format_address():
    assert format_address(b"\x01\x02\x03\x04", 80) == "1.2.3.4:80"
    assert format_address(CLIENT_IP6, 443) == "[2001:db8::1]:443"
    assert format_address(b"\x00" * 15 + b"\x01", 8080) == "[::1]:8080"
    assert format_address(b"\x00" * 10 + b"\xff\xff" + b"\x0a\x00\x00\x01", 1) == "[::ffff:10.0.0.1]:1"
    assert format_address(bytes.fromhex("fe800000000000000000000000000abc"), 5) == "[fe80::abc]:5"


# --- against tshark -----------------------------------------------------------------------------

@pytest.mark.skipif(TSHARK is None, reason="tshark not installed: cross-check skipped")
def test_decoded_fields_match_tshark(tmp_path):
    packets = [
        synth.ethernet(IP_V4),
        synth.ethernet(IP_V4, vlans=[(0x88A8, 5), (0x8100, 6)]),
        synth.ethernet(synth.ipv4(synth.tcp(9, 10, 11, 12, SYN))),  # padded
        synth.ethernet(synth.ipv6(SEGMENT_V6, extensions=[synth.ipv6_extension(0, 8),
                                                          synth.ipv6_extension(60, 16)]),
                       ethertype=0x86DD),
        synth.ethernet(synth.ipv4(SEGMENT_V4, options=b"\x01\x01\x01\x00")),
        synth.ethernet(synth.ipv4(synth.tcp(1, 2, 3, 4, FIN | ACK, bytes(300)))),  # cut below
    ]
    records = [(1700000000, i, p) for i, p in enumerate(packets)]
    records[-1] = (1700000000, 5, packets[-1][:120], len(packets[-1]))  # snaplen 120
    path = tmp_path / "mixed.pcap"
    path.write_bytes(synth.pcap(records))
    decoder = PacketDecoder()
    ours = []
    with open_capture(path) as cap:
        for frame_no, _ts, linktype, data in cap.packets():
            seg = decoder.decode(frame_no, linktype, data)
            ours.append((frame_no, seg[2], seg[3], seg[4], seg[5], seg[6], len(seg[7]) + seg[8]))
    out = subprocess.run([TSHARK, "-r", str(path), "-T", "fields", "-e", "frame.number",
                          "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.seq_raw",
                          "-e", "tcp.ack_raw", "-e", "tcp.flags", "-e", "tcp.len"],
                         capture_output=True, text=True, check=False).stdout
    theirs = [tuple(int(v, 0) for v in line.split("\t")) for line in out.splitlines()]
    assert len(theirs) == 6
    assert ours == theirs
