"""Tunnels (VXLAN, Geneve, GRE, ERSPAN, GTP-U, MPLS, PPPoE, IP-in-IP) and outer fragments.

The real recording captures/dg_success.pcap is rewrapped frame by frame with scapy
(tests/tunnel_wrap.py): inside every encapsulation the session must be the one dgcap finds in
the plain recording, frame numbers included, and say which tunnel carried it.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from analyzer.capture import PacketDecoder
from tests.support import capture_synth as synth
from analyzer.capture.decode import MAX_TUNNEL_DEPTH
from analyzer.pipeline import analyze_capture

from tunnel_wrap import EXPECTED, OUTER_DST, OUTER_SRC, rewrap_capture, wrap

ROOT = Path(__file__).resolve().parents[1]
PLAIN = ROOT / "captures" / "dg_success.pcap"
TSHARK = shutil.which("tshark")


def _frames(path):
    from scapy.all import RawPcapReader
    return [data for data, _meta in RawPcapReader(str(path))]


@pytest.fixture(scope="module")
def plain_frames():
    return _frames(PLAIN)


@pytest.fixture(scope="module")
def plain_session():
    report = analyze_capture(str(PLAIN))
    assert len(report.sessions) == 1
    return report.sessions[0].to_json()


def _plain(segment):
    return segment[:7] + (bytes(segment[7]),) + segment[8:]


# --- one packet per header ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_each_encapsulation_gives_the_inner_segment_and_its_tunnel(kind, plain_frames):
    request = plain_frames[3]  # frame 4: the client's upgrade request
    plain = PacketDecoder()
    expected = _plain(plain.decode(4, 1, request))
    decoder = PacketDecoder()
    segment = decoder.decode(4, 1, wrap(kind, request))
    got = _plain(segment)
    if kind in ("ip6in4", "ip6in6"):  # re-addressed as ::1 by the wrapper
        assert got[0] == got[1] == bytes(15) + b"\x01"
        got, expected = got[2:], expected[2:]
    assert got == expected
    tunnel_type, tunnel_id = EXPECTED[kind]
    assert decoder.tunnel_frame == 4
    assert decoder.tunnel[0][:2] == (tunnel_type, tunnel_id)
    assert decoder.stats["tunnelled"] == {tunnel_type: 1}
    assert decoder.stats["tcp"] == 1 and decoder.stats["packets"] == 1


def test_mpls_path_keeps_the_top_label_and_pppoe_has_no_outer_address(plain_frames):
    decoder = PacketDecoder()
    decoder.decode(1, 1, wrap("mpls", plain_frames[0]))
    assert decoder.tunnel == (("mpls", 10017, None, None),)


def test_outer_addresses_are_the_enclosing_ip_header(plain_frames):
    decoder = PacketDecoder()
    decoder.decode(9, 1, wrap("vxlan", plain_frames[0]))
    (kind, vni, src, dst), = decoder.tunnel
    assert (kind, vni) == ("vxlan", 4242)
    assert (".".join(map(str, src)), ".".join(map(str, dst))) == (OUTER_SRC, OUTER_DST)


def test_an_untunnelled_packet_does_not_touch_the_tunnel_path(plain_frames):
    decoder = PacketDecoder()
    decoder.decode(1, 1, wrap("vxlan", plain_frames[0]))
    decoder.decode(2, 1, plain_frames[1])
    assert decoder.tunnel_frame == 1  # so frame 2 is not tunnelled


def test_gtpu_signalling_is_not_tcp_and_not_undecoded():
    echo = synth.ipv4(struct.pack("!HHHH", 2152, 2152, 16, 0) + bytes([0x32, 1, 0, 4]) +
                      bytes(4) + bytes(4), protocol=17)
    decoder = PacketDecoder()
    assert decoder.decode(1, 228, echo) is None
    assert decoder.stats["non_tcp"] == 1 and "undecoded" not in decoder.stats


def test_tunnels_nested_too_deep_are_counted_not_decoded(plain_frames):
    inner = plain_frames[3][14:]  # the IPv4 packet of frame 4
    for _ in range(MAX_TUNNEL_DEPTH):
        inner = synth.ipv4(inner, protocol=4)
    decoder = PacketDecoder()
    assert decoder.decode(1, 228, inner) is not None  # 8 IP-in-IP layers: fine
    assert len(decoder.tunnel) == MAX_TUNNEL_DEPTH
    assert decoder.decode(2, 228, synth.ipv4(inner, protocol=4)) is None
    assert decoder.stats["undecoded"] == {f"tunnels nested deeper than {MAX_TUNNEL_DEPTH}": 1}


def test_vxlan_inside_gre_inside_vlan_nests(plain_frames):
    from scapy.all import GRE, IP, Dot1Q, Ether, raw
    vxlan = Ether(wrap("vxlan", plain_frames[3]))
    outer = raw(Ether() / Dot1Q(vlan=7) / IP(src="198.51.100.1", dst="198.51.100.2") /
                GRE(key_present=1, key=5, proto=0x6558) / vxlan)
    decoder = PacketDecoder()
    assert decoder.decode(1, 1, outer) is not None
    assert [entry[:2] for entry in decoder.tunnel] == [("gre", 5), ("vxlan", 4242)]


def test_undecoded_encapsulations_and_bad_tunnel_udp_are_named():
    decoder = PacketDecoder()
    esp = synth.ipv4(bytes(40), protocol=50)
    not_vxlan = synth.ipv4(struct.pack("!HHHH", 5000, 4789, 24, 0) + bytes(16), protocol=17)
    pptp = synth.ipv4(struct.pack("!HH", 0x3001, 0x880B) + bytes(12), protocol=47)
    for frame_no in range(1, 4):
        for packet in (esp, not_vxlan, pptp):
            assert decoder.decode(frame_no, 228, packet) is None
    assert decoder.stats["undecoded"] == {"IPsec ESP (encrypted)": 3,
                                          "UDP 4789/8472 without the VXLAN I flag": 3,
                                          "GRE version 1 (PPTP)": 3}
    assert decoder.undecoded["IPsec ESP (encrypted)"] == [3, 1]


# --- whole captures -----------------------------------------------------------------------------

def _without(session: dict, *keys) -> dict:
    return {k: v for k, v in session.items() if k not in keys}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_session_inside_the_tunnel_equals_the_plain_recording(kind, tmp_path, plain_session):
    path = tmp_path / f"{kind}.pcap"
    assert rewrap_capture(PLAIN, kind, path) == 90
    report = analyze_capture(str(path))
    assert report.findings == []
    assert len(report.sessions) == 1
    session = report.sessions[0].to_json()
    tunnel_type, tunnel_id = EXPECTED[kind]
    assert [(t["type"], t["id"]) for t in session["tunnel"]] == [(tunnel_type, tunnel_id)]
    ignore = ["tunnel"]
    if kind in ("ip6in4", "ip6in6"):
        ignore += ["client", "server"]
        assert session["client"].startswith("[::1]:")
    assert _without(session, *ignore) == _without(plain_session, *ignore)
    assert "tunnel" not in plain_session


def test_fragmented_vxlan_underlay_gives_the_full_session(tmp_path, plain_session):
    path = tmp_path / "vxlan-fragmented.pcap"
    assert rewrap_capture(PLAIN, "vxlan-fragmented", path) == 150
    report = analyze_capture(str(path))
    assert [f.id for f in report.findings] == []
    decoder = report.stats["decoder"]
    assert decoder["fragments_reassembled"] == 30 and decoder["fragments_unreassembled"] == 0
    # 60 packets whole, 30 datagrams in 90 fragments: 60 held, 30 completing one.
    assert decoder["ipv4_fragments"] == 60 and decoder["tcp"] == 90
    session = report.sessions[0].to_json()
    for key in ("frames", "close", "gaps", "handshake"):
        if key == "frames":
            # Counts and bytes equal; first/last frame numbers are the outer ones.
            for side in ("client", "server"):
                a, b = dict(session[key][side]), dict(plain_session[key][side])
                for k in ("first_frame", "last_frame"):
                    a.pop(k, None), b.pop(k, None)
                assert a == b
        elif key == "handshake":
            assert session[key]["status"] == plain_session[key]["status"] == 101
    for side in ("client", "server"):
        assert session["close"][side]["code"] == plain_session["close"][side]["code"] == 1000
    assert session["close"]["tcp_end"] == "fin"
    assert session["gaps"] == plain_session["gaps"]
    if TSHARK:
        # A reassembled packet's frame is its last fragment's, as in Wireshark.
        out = subprocess.run([TSHARK, "-r", str(path), "-Y", "websocket.opcode == 8",
                              "-T", "fields", "-e", "frame.number"], capture_output=True,
                             text=True, check=False).stdout.split()
        closes = [session["close"]["client"]["frame"], session["close"]["server"]["frame"]]
        assert sorted(closes) == sorted(int(n) for n in out)
        assert len(out) == 2


def test_many_undecoded_packets_and_no_session_give_a_capture_finding(tmp_path):
    esp = synth.ethernet(synth.ipv4(bytes(60), protocol=50))
    path = tmp_path / "esp.pcap"
    path.write_bytes(synth.pcap([(1700000000, i, esp) for i in range(3)]))
    report = analyze_capture(str(path))
    assert report.sessions == []
    finding, = [f for f in report.findings if f.id == "undecoded-encapsulation"]
    assert finding.details == {"encapsulation": "IPsec ESP (encrypted)", "count": 3}
    assert finding.frames == [1]


def test_tunnel_and_missing_data_validate_against_the_schema(tmp_path):
    import jsonschema

    from analyzer.schema import load_schema
    path = tmp_path / "gtpu.pcap"
    rewrap_capture(PLAIN, "gtpu-vlan", path)
    session = analyze_capture(str(path)).sessions[0].to_json()
    assert session["tunnel"] == [{"type": "gtpu", "id": 0xCAFE01, "id_name": "teid",
                                  "outer_src": OUTER_SRC, "outer_dst": OUTER_DST}]
    session["missing"] = {"client": None, "server": {"holes": 2, "bytes": 10, "first_frame": 7}}
    schema = load_schema()
    validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/session",
                                                 "$defs": schema["$defs"]})
    assert [e.message for e in validator.iter_errors(session)] == []
    session["tunnel"][0]["type"] = "l2tp"
    session["missing"]["client"] = {"holes": 0, "bytes": 0, "first_frame": None}
    assert len(list(validator.iter_errors(session))) == 3


def test_fragment_findings_name_leftovers_and_conflicts(tmp_path):
    segment = synth.tcp(50000, 443, 1, 1, 0x18, bytes(range(40)))
    alone = synth.ethernet(synth.ipv4(segment[:24], flags_fragment=0x2000, ident=5))
    first = synth.ethernet(synth.ipv4(segment[:24], flags_fragment=0x2000, ident=6))
    forged = synth.ethernet(synth.ipv4(b"Z" * 8, flags_fragment=0x2000 | 2, ident=6))
    last = synth.ethernet(synth.ipv4(segment[24:], flags_fragment=3, ident=6))
    path = tmp_path / "fragments.pcap"
    path.write_bytes(synth.pcap([(1, i, p) for i, p in enumerate((alone, first, forged, last))]))
    report = analyze_capture(str(path))
    by_id = {f.id: f for f in report.findings}
    assert by_id["ip-fragments"].frames == [1]
    assert by_id["ip-fragments"].details == {"count": 1, "reassembled_datagrams": 1}
    assert by_id["ip-fragment-conflict"].frames == [3]
    assert by_id["ip-fragment-conflict"].message.startswith(
        "1 IP fragments overlap an earlier fragment of the same datagram with different bytes")
    assert report.stats["decoder"]["fragments_reassembled"] == 1
