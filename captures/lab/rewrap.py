"""Rewrap the real inner frames of a recording in tunnel encapsulations the lab's kernel cannot
make (no geneve, gretap, erspan, GTP, MPLS routing, ipip or PPPoE devices here), keeping every
packet's timestamp; and build span-port skew from a real recording.

Nothing about the inner frames changes: the bytes are those the real client and server sent
inside the real VXLAN (captured on the vxlan device).  Only the outer headers are made here.
"""
from __future__ import annotations

import logging
from typing import Optional

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III  # noqa: E402
from scapy.contrib.geneve import GENEVE  # noqa: E402
from scapy.contrib.gtp import GTP_U_Header  # noqa: E402
from scapy.contrib.mpls import MPLS  # noqa: E402
from scapy.layers.inet import IP, TCP, UDP  # noqa: E402
from scapy.layers.l2 import GRE, Dot1Q, Ether  # noqa: E402
from scapy.layers.ppp import PPP, PPPoE  # noqa: E402
from scapy.packet import Packet, Raw  # noqa: E402
from scapy.utils import PcapWriter, rdpcap  # noqa: E402

# Outer endpoints: the probe (or tunnel end) near the client and the collector near the server.
OUTER_A, OUTER_B = "10.99.60.1", "10.99.60.2"
MAC_A, MAC_B = "02:00:0a:63:3c:01", "02:00:0a:63:3c:02"

TUNNELS: dict[str, dict] = {
    "geneve": {"layer": "L2", "info": {"udp_port": 6081, "vni": 4242,
                                       "protocol": "0x6558 (Ethernet)"}},
    "gretap": {"layer": "L2", "info": {"gre_protocol": "0x6558", "gre_key": 4242}},
    "erspan_i": {"layer": "L2", "info": {"gre_protocol": "0x88be", "erspan_type": "I",
                                         "note": "GRE without sequence number, no ERSPAN header"}},
    "erspan_ii": {"layer": "L2", "info": {"gre_protocol": "0x88be", "erspan_type": "II",
                                          "erspan_version": 1, "session_id": 123}},
    "erspan_iii": {"layer": "L2", "info": {"gre_protocol": "0x22eb", "erspan_type": "III",
                                           "erspan_version": 2, "session_id": 321}},
    "gtpu_vlan": {"layer": "L3", "info": {"vlan": 100, "udp_port": 2152,
                                          "teid_uplink": "0x0000a001",
                                          "teid_downlink": "0x0000b002"}},
    "mpls": {"layer": "L3", "info": {"labels": [1001, 2002], "note": "two-label stack"}},
    "ipip": {"layer": "L3", "info": {"ip_protocol": 4}},
    "pppoe": {"layer": "L3", "info": {"pppoe_session_id": "0x0011", "ppp_protocol": "0x0021"}},
}


def _outer_ip(uplink: bool, proto: Optional[int] = None, ident: int = 0) -> Packet:
    src, dst = (OUTER_A, OUTER_B) if uplink else (OUTER_B, OUTER_A)
    kw = {"proto": proto} if proto is not None else {}
    return IP(src=src, dst=dst, ttl=62, id=ident & 0xFFFF, flags="DF", **kw)


def _eth(uplink: bool, etype: Optional[int] = None) -> Packet:
    src, dst = (MAC_A, MAC_B) if uplink else (MAC_B, MAC_A)
    return Ether(src=src, dst=dst) if etype is None else Ether(src=src, dst=dst, type=etype)


def wrap(kind: str, frame: Packet, uplink: bool, n: int) -> Optional[Packet]:
    """One inner Ethernet frame -> one outer frame (None: not carried, e.g. ARP over L3)."""
    inner_l2 = bytes(frame)
    ip_pkt = frame[IP] if IP in frame else None
    sport = 49152 + (hash((kind, uplink)) & 0x3FFF)
    if kind == "geneve":
        return (_eth(uplink) / _outer_ip(uplink, ident=n) / UDP(sport=sport, dport=6081) /
                GENEVE(vni=4242, proto=0x6558) / Raw(inner_l2))
    if kind == "gretap":
        return (_eth(uplink) / _outer_ip(uplink, 47, n) / GRE(key_present=1, key=4242,
                                                              proto=0x6558) / Raw(inner_l2))
    if kind == "erspan_i":
        return _eth(uplink) / _outer_ip(uplink, 47, n) / GRE(proto=0x88BE) / Raw(inner_l2)
    if kind == "erspan_ii":
        return (_eth(uplink) / _outer_ip(uplink, 47, n) /
                GRE(seqnum_present=1, sequence_number=n, proto=0x88BE) /
                ERSPAN_II(ver=1, vlan=0, cos=0, en=3, t=0, session_id=123, index=7) /
                Raw(inner_l2))
    if kind == "erspan_iii":
        return (_eth(uplink) / _outer_ip(uplink, 47, n) /
                GRE(seqnum_present=1, sequence_number=n, proto=0x22EB) /
                ERSPAN_III(ver=2, vlan=0, cos=0, bso=0, t=0, session_id=321,
                           timestamp=(n * 1000) & 0xFFFFFFFF, sgt_other=0, p=0, ft=0, hw=5,
                           d=0 if uplink else 1, gra=0, o=0) / Raw(inner_l2))
    if ip_pkt is None:
        return None  # the L3 encapsulations below carry IP only
    inner_ip = bytes(ip_pkt)
    if kind == "gtpu_vlan":
        teid = 0xA001 if uplink else 0xB002
        return (_eth(uplink, 0x8100) / Dot1Q(vlan=100, type=0x0800) /
                _outer_ip(uplink, ident=n) / UDP(sport=2152, dport=2152) /
                GTP_U_Header(teid=teid, gtp_type=255) / Raw(inner_ip))
    if kind == "mpls":
        return (_eth(uplink, 0x8847) / MPLS(label=1001, s=0, ttl=64) /
                MPLS(label=2002, s=1, ttl=64) / Raw(inner_ip))
    if kind == "ipip":
        return _eth(uplink) / _outer_ip(uplink, 4, n) / Raw(inner_ip)
    if kind == "pppoe":
        return (_eth(uplink, 0x8864) / PPPoE(version=1, type=1, code=0, sessionid=0x11) /
                PPP(proto=0x0021) / Raw(inner_ip))
    raise ValueError(kind)


def rewrap(src: str, dst: str, kind: str, client_ip: str) -> dict:
    """Wrap every frame of `src` (a pcap of Ethernet frames) into `kind`; keep timestamps.
    Returns counts: frames read, written, dropped (non-IP over an L3 encapsulation)."""
    frames = rdpcap(src)
    out = PcapWriter(dst, linktype=1, sync=True)
    written = dropped = 0
    try:
        for n, f in enumerate(frames):
            uplink = IP in f and f[IP].src == client_ip or (IP not in f and f.src == frames[0].src)
            w = wrap(kind, f, uplink, n + 1)
            if w is None:
                dropped += 1
                continue
            w.time = f.time
            out.write(w)
            written += 1
    finally:
        out.close()
    return {"inner_frames_read": len(frames), "outer_frames_written": written,
            "inner_frames_not_carried": dropped}


def skew(src: str, dst: str, server_ip: str, shift: float) -> dict:
    """Shift every packet sent by `server_ip` by `shift` seconds later and reorder the file by
    the new timestamps (stable), as a span port whose two directions are timestamped apart.
    Counts the server data segments that now appear after the client's ACK covering them."""
    pkts = rdpcap(src)
    for p in pkts:
        if IP in p and p[IP].src == server_ip:
            p.time = p.time + shift
    order = sorted(range(len(pkts)), key=lambda i: pkts[i].time)
    new = [pkts[i] for i in order]
    out = PcapWriter(dst, linktype=pkts[0].linktype if hasattr(pkts[0], "linktype") else 1,
                     sync=True)
    try:
        for p in new:
            out.write(p)
    finally:
        out.close()
    data_segments = late = 0
    for i, p in enumerate(new):
        if not (IP in p and TCP in p and p[IP].src == server_ip):
            continue
        plen = len(p[TCP].payload)
        if plen == 0:
            continue
        data_segments += 1
        end = (p[TCP].seq + plen) & 0xFFFFFFFF
        for q in new[:i]:
            if (IP in q and TCP in q and q[IP].dst == server_ip and q[TCP].flags.A and
                    ((q[TCP].ack - end) & 0xFFFFFFFF) < 0x80000000):
                late += 1
                break
    return {"server_data_segments": data_segments,
            "server_data_segments_acked_before_they_appear": late,
            "packets": len(new), "packets_moved": sum(1 for a, b in enumerate(order) if a != b)}
