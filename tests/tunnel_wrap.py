"""Rewrap a real capture's frames in the encapsulations network teams capture (tests only).

Used by tests/test_capture_tunnels.py on captures/dg_success.pcap (a real recording): every
Ethernet frame is put, unchanged, inside VXLAN, Geneve, GRE, ERSPAN I/II/III, GTP-U (with a
PDU session extension header, inside 802.1Q), MPLS, PPPoE, IP-in-IP or 6in4, built with
scapy (an implementation independent of ours; tshark checks the result too).  The recorded
frames keep their timestamps; only the headers around them are synthetic.
"""
from __future__ import annotations

from scapy.all import GRE, IP, UDP, Dot1Q, Ether, IPv6, fragment, raw
from scapy.contrib.erspan import ERSPAN_I, ERSPAN_II, ERSPAN_III
from scapy.contrib.geneve import GENEVE
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.contrib.mpls import MPLS
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN

OUTER_SRC, OUTER_DST = "192.0.2.10", "192.0.2.20"
OUTER6_SRC, OUTER6_DST = "2001:db8:ff::10", "2001:db8:ff::20"
UNDERLAY_MAC = dict(src="02:00:00:00:ff:10", dst="02:00:00:00:ff:20")

VNI, GENEVE_VNI, GRE_KEY, TEID, ERSPAN_SESSION, MPLS_LABEL, PPPOE_SESSION = (
    4242, 777, 0x1234, 0xCAFE01, 321, 10017, 0x2A)

# kind -> (tunnel path type sequence, id of the outermost tunnel) as dgcap reports it.
EXPECTED = {
    "vxlan": ("vxlan", VNI), "vxlan-8472": ("vxlan", VNI), "geneve": ("geneve", GENEVE_VNI),
    "gre-teb": ("gre", GRE_KEY), "gre-ip": ("gre", None), "erspan1": ("erspan1", None),
    "erspan2": ("erspan2", ERSPAN_SESSION), "erspan3": ("erspan3", ERSPAN_SESSION),
    "gtpu-vlan": ("gtpu", TEID), "mpls": ("mpls", MPLS_LABEL), "pppoe": ("pppoe", PPPOE_SESSION),
    "ipip": ("ipip", None), "ip6in4": ("ip6in4", None), "ip6in6": ("ip6in6", None),
}


def _underlay(inner, ipv6: bool = False):
    return Ether(**UNDERLAY_MAC) / (IPv6(src=OUTER6_SRC, dst=OUTER6_DST) if ipv6 else
                                    IP(src=OUTER_SRC, dst=OUTER_DST)) / inner


def _as_ipv6(ip_packet: bytes) -> bytes:
    """The inner IPv4 loopback packet re-addressed as IPv6 loopback (same TCP segment)."""
    return raw(IPv6(src="::1", dst="::1") / IP(ip_packet).payload)


def wrap(kind: str, frame: bytes) -> bytes:
    """One recorded Ethernet frame inside `kind`'s encapsulation, as a whole outer frame."""
    eth = Ether(frame)
    ip_packet = raw(eth.payload)
    if kind == "vxlan":
        outer = _underlay(UDP(sport=51000, dport=4789) / VXLAN(vni=VNI) / eth)
    elif kind == "vxlan-8472":
        outer = _underlay(UDP(sport=51000, dport=8472) / VXLAN(vni=VNI) / eth)
    elif kind == "geneve":
        outer = _underlay(UDP(sport=51000, dport=6081) /
                          GENEVE(vni=GENEVE_VNI, proto=0x6558, optionlen=2,
                                 options=b"\x01\x02\x03\x01" + b"\xaa" * 4) / eth)
    elif kind == "gre-teb":
        outer = _underlay(GRE(key_present=1, key=GRE_KEY, proto=0x6558) / eth)
    elif kind == "gre-ip":
        outer = _underlay(GRE(proto=0x0800) / IP(ip_packet))
    elif kind == "erspan1":
        outer = _underlay(GRE(proto=0x88BE) / ERSPAN_I() / eth)
    elif kind == "erspan2":
        outer = _underlay(GRE(seqnum_present=1, sequence_number=5, proto=0x88BE) /
                          ERSPAN_II(session_id=ERSPAN_SESSION, index=3) / eth)
    elif kind == "erspan3":
        outer = _underlay(GRE(seqnum_present=1, sequence_number=5, proto=0x22EB) /
                          ERSPAN_III(session_id=ERSPAN_SESSION, timestamp=99) / eth)
    elif kind == "gtpu-vlan":
        outer = (Ether(**UNDERLAY_MAC) / Dot1Q(vlan=301) / IP(src=OUTER_SRC, dst=OUTER_DST) /
                 UDP(sport=2152, dport=2152) /
                 GTP_U_Header(teid=TEID, E=1, next_ex=0x85) /
                 GTPPDUSessionContainer(type=1, QFI=9) / IP(ip_packet))
    elif kind == "mpls":
        outer = (Ether(**UNDERLAY_MAC, type=0x8847) / MPLS(label=MPLS_LABEL, s=0, ttl=64) /
                 MPLS(label=16, s=1, ttl=64) / IP(ip_packet))
    elif kind == "pppoe":
        outer = (Ether(**UNDERLAY_MAC, type=0x8864) / PPPoE(sessionid=PPPOE_SESSION) /
                 PPP(proto=0x0021) / IP(ip_packet))
    elif kind == "ipip":
        outer = _underlay(IP(ip_packet))
    elif kind == "ip6in4":
        outer = _underlay(IPv6(_as_ipv6(ip_packet)))
    elif kind == "ip6in6":
        outer = _underlay(IPv6(_as_ipv6(ip_packet)), ipv6=True)
    else:
        raise ValueError(kind)
    return raw(outer)


def wrap_fragmented(frame: bytes, mtu: int = 1500) -> list[bytes]:
    """The frame inside VXLAN, the outer IPv4 packet fragmented to `mtu` (as an underlay
    whose MTU is smaller than the overlay's packets does)."""
    outer = Ether(wrap("vxlan", frame))
    return [raw(Ether(**UNDERLAY_MAC) / piece)
            for piece in fragment(outer[IP], fragsize=mtu - 20)]


def rewrap_capture(source: str, kind: str, dest) -> int:
    """Write `source` (an Ethernet pcap) with every frame wrapped as `kind` ("vxlan-fragmented":
    VXLAN with the outer packets fragmented at 1500 bytes) to `dest`; the frame count."""
    from scapy.all import RawPcapReader

    from tests.support import capture_synth as synth

    records = []
    for data, meta in RawPcapReader(str(source)):
        frames = wrap_fragmented(data) if kind == "vxlan-fragmented" else [wrap(kind, data)]
        records.extend((meta.sec, meta.usec, frame) for frame in frames)
    with open(dest, "wb") as f:
        f.write(synth.pcap(records))
    return len(records)


def skew_capture(source: str, dest, server_port: int, delay: float, drop_frames=()) -> list[int]:
    """`source` as a span port that delays the server's direction by `delay` seconds: every
    packet from `server_port` is timestamped `delay` later and the file is re-sorted by time
    (as mergecap merges two taps).  Frames (1-based, of `source`) in `drop_frames` are left
    out.  Returns the new order as source frame numbers."""
    import struct as _struct

    from scapy.all import RawPcapReader

    from tests.support import capture_synth as synth

    packets = []
    for frame_no, (data, meta) in enumerate(RawPcapReader(str(source)), 1):
        if frame_no in drop_frames:
            continue
        ts = meta.sec + meta.usec / 1e6
        sport = _struct.unpack_from("!H", data, 14 + ((data[14] & 0x0F) << 2))[0]
        if sport == server_port:
            ts += delay
        packets.append((round(ts * 1e6), frame_no, data))
    packets.sort(key=lambda p: (p[0], p[1]))
    with open(dest, "wb") as f:
        f.write(synth.pcap([(us // 1_000_000, us % 1_000_000, data) for us, _, data in packets]))
    return [frame_no for _, frame_no, _ in packets]
