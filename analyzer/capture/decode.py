"""Link layer, tunnels, IPv4/IPv6 (with fragment reassembly) and TCP header decoding:
one captured packet -> one TCP segment.

Sans-I/O and on the hot path: no per-packet objects beyond the returned tuple,
its two address slices and one memoryview slice for the payload.  Tunnelled and
fragmented packets take the general path; only they pay for what it builds.

Encapsulations decoded (dpkt-style, one small function per header): 802.1Q/QinQ, MPLS label
stacks (and MPLS in IP), PPPoE sessions, IP-in-IP (4in4, 6in4, 4in6, 6in6), GRE (keys,
sequence numbers, transparent Ethernet bridging 0x6558), ERSPAN types I, II and III, VXLAN
(UDP 4789 and Linux's 8472), VXLAN-GPE (4790), Geneve (6081, options skipped), GTP-U (2152,
extension headers skipped), nested up to MAX_TUNNEL_DEPTH.  Frame numbers stay the outer
packet's; the TCP connection is keyed by the innermost addresses (as Wireshark's tcp.stream).
"""
from __future__ import annotations

import ipaddress
from struct import Struct, unpack_from
from typing import Callable, Optional

# Ethernet tag protocol ids: 802.1Q, 802.1ad (QinQ), and the pre-standard QinQ 0x9100.
_VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100))
_ETHERTYPE_IPV4, _ETHERTYPE_IPV6 = 0x0800, 0x86DD
_ETHERTYPE_MPLS, _ETHERTYPE_MPLS_MULTICAST = 0x8847, 0x8848
_ETHERTYPE_PPPOE_SESSION = 0x8864
_ETHERTYPE_TEB = 0x6558  # transparent Ethernet bridging: a whole Ethernet frame follows
_ETHERNET = -1  # pseudo Ethertype: a whole Ethernet header starts at the offset
# BSD loopback address families: AF_INET, and AF_INET6 as NetBSD/OpenBSD, FreeBSD, Darwin number it.
_LOOPBACK_IPV6_FAMILIES = frozenset((24, 28, 30))
_RAW_IP_LINKTYPES = frozenset((101, 12, 14))
# Hop-by-hop, routing, fragment, AH, destination options.
_IPV6_EXTENSION_HEADERS = frozenset((0, 43, 44, 51, 60))
_MAX_FRAGMENT_FRAMES = 100
# Tunnels inside tunnels: beyond this many layers the packet is counted, not decoded.
MAX_TUNNEL_DEPTH = 8
# IP protocols the fast path must hand to the general one: UDP (tunnel ports), IP-in-IP,
# IPv6-in-IP, GRE, MPLS-in-IP, and the encapsulations we can only name.
_SLOW_IP_PROTOCOLS = frozenset((17, 4, 41, 47, 137, 50, 115))
# Encapsulations recognised but not decoded: counted by name for a capture finding.
_UNDECODED_IP_PROTOCOLS = {50: "IPsec ESP (encrypted)", 115: "L2TPv3 over IP"}

# Precompiled: total length, flags+fragment offset, protocol, src, dst.
_unpack_ipv4 = Struct("!2xH2xHxB2x4s4s").unpack_from
# Payload length, next header, src, dst.
_unpack_ipv6 = Struct("!4xHBx16s16s").unpack_from
_unpack_tcp = Struct("!HHIIBB").unpack_from
_unpack_u16 = Struct("!H").unpack_from
_unpack_u32 = Struct("!I").unpack_from
# The common case in one call: Ethernet type, IPv4 version/IHL, total length, flags+fragment
# offset, protocol, src, dst, then the TCP ports, seq, ack, data offset and flags (54 bytes).
_pack_ports = Struct("!HH").pack

# The payload of every segment that has none (pure ACKs): one shared empty view.
_NO_PAYLOAD = memoryview(b"")

# A segment: (src, dst, sport, dport, seq, ack, flags, payload, missing)
Segment = tuple
# A tunnel path: ((type, id, outer_src, outer_dst), ...) outermost first; id is the VNI,
# TEID, GRE key, ERSPAN/PPPoE session id or MPLS label (None when the header has none);
# outer_src/outer_dst are the enclosing IP header's addresses (None for MPLS and PPPoE).
TunnelPath = tuple
# What each tunnel's id is called (JSON field "id_name").
TUNNEL_ID_NAMES = {"vxlan": "vni", "vxlan-gpe": "vni", "geneve": "vni", "gtpu": "teid",
                   "gre": "key", "erspan1": None, "erspan2": "session_id",
                   "erspan3": "session_id", "mpls": "label", "mpls-in-ip": None,
                   "pppoe": "session_id", "ipip": None, "ip6in4": None, "ip4in6": None,
                   "ip6in6": None}


def _push(path, kind: str, tunnel_id, src, dst) -> tuple:
    entry = ((kind, tunnel_id, src, dst),)
    return entry if path is None else path + entry


# --- tunnel headers: (data, offset of the header, end) -> (type, id, ethertype, offset[, end])
# or a str naming what it is when it cannot be decoded.

def _vxlan(decoder, data, p: int, size: int):
    if p + 8 > size:
        return "UDP 4789/8472 too short for VXLAN"
    if not data[p] & 0x08:  # the I flag: a valid VNI
        return "UDP 4789/8472 without the VXLAN I flag"
    return "vxlan", _unpack_u32(data, p + 4)[0] >> 8, _ETHERNET, p + 8, size


_GPE_NEXT = {1: _ETHERTYPE_IPV4, 2: _ETHERTYPE_IPV6, 3: _ETHERNET, 5: _ETHERTYPE_MPLS}


def _vxlan_gpe(decoder, data, p: int, size: int):
    if p + 8 > size:
        return "UDP 4790 too short for VXLAN-GPE"
    following = _GPE_NEXT.get(data[p + 3]) if data[p] & 0x04 else _ETHERNET
    if following is None:
        return f"VXLAN-GPE next protocol {data[p + 3]}"
    return "vxlan-gpe", _unpack_u32(data, p + 4)[0] >> 8, following, p + 8, size


_GENEVE_NEXT = {_ETHERTYPE_TEB: _ETHERNET, _ETHERTYPE_IPV4: _ETHERTYPE_IPV4,
                _ETHERTYPE_IPV6: _ETHERTYPE_IPV6, _ETHERTYPE_MPLS: _ETHERTYPE_MPLS}


def _geneve(decoder, data, p: int, size: int):
    if p + 8 > size or data[p] >> 6:
        return "UDP 6081 not Geneve version 0"
    protocol = _unpack_u16(data, p + 2)[0]
    following = _GENEVE_NEXT.get(protocol)
    if following is None:
        return f"Geneve protocol 0x{protocol:04x}"
    start = p + 8 + ((data[p] & 0x3F) << 2)  # options, in 4-byte words
    if start > size:
        return "UDP 6081 too short for its Geneve options"
    return "geneve", _unpack_u32(data, p + 4)[0] >> 8, following, start, size


def _gtpu(decoder, data, p: int, size: int):
    if p + 8 > size:
        return "UDP 2152 too short for GTP-U"
    flags = data[p]
    if flags >> 5 != 1 or not flags & 0x10:
        return "UDP 2152 not GTPv1-U"
    if data[p + 1] != 0xFF:
        return None  # echo, error indication, end marker: GTP's own signalling
    end = p + 8 + _unpack_u16(data, p + 2)[0]
    q = p + 8
    if flags & 0x07:  # sequence number, N-PDU number or extension headers present
        if q + 4 > size:
            return "GTP-U header cut short"
        following = data[q + 3]
        q += 4
        while following:  # extension headers: length in 4-byte words, next type last
            if q >= size or not data[q]:
                return "GTP-U extension header cut short or empty"
            length = data[q] << 2
            if q + length > size:
                return "GTP-U extension header cut short or empty"
            following = data[q + length - 1]
            q += length
    if q >= size:
        return "GTP-U without a payload"
    version = data[q] >> 4
    if version == 4:
        ethertype = _ETHERTYPE_IPV4
    elif version == 6:
        ethertype = _ETHERTYPE_IPV6
    else:
        return "GTP-U payload not IP"
    return "gtpu", _unpack_u32(data, p + 4)[0], ethertype, q, end


_UDP_TUNNEL_PORTS = {4789: _vxlan, 8472: _vxlan, 4790: _vxlan_gpe, 6081: _geneve, 2152: _gtpu}
_GRE_NEXT = {_ETHERTYPE_TEB: _ETHERNET, _ETHERTYPE_IPV4: _ETHERTYPE_IPV4,
             _ETHERTYPE_IPV6: _ETHERTYPE_IPV6, _ETHERTYPE_MPLS: _ETHERTYPE_MPLS,
             _ETHERTYPE_MPLS_MULTICAST: _ETHERTYPE_MPLS_MULTICAST}


def _gre(data, p: int, size: int):
    """GRE (RFC 2784/2890) and the ERSPAN headers it carries -> (type, id, ethertype, offset)."""
    if p + 4 > size:
        return "GRE header cut short"
    flags, protocol = _unpack_u16(data, p)[0], _unpack_u16(data, p + 2)[0]
    if flags & 0x07:
        return f"GRE version {flags & 0x07} (PPTP)" if flags & 0x07 == 1 else \
            f"GRE version {flags & 0x07}"
    q = p + 4
    if flags & 0xC000:  # checksum and/or routing present: both take the same 4 bytes
        q += 4
    key = None
    if flags & 0x2000:
        if q + 4 > size:
            return "GRE header cut short"
        key = _unpack_u32(data, q)[0]
        q += 4
    sequenced = flags & 0x1000
    if sequenced:
        q += 4
    following = _GRE_NEXT.get(protocol)
    if following is not None:
        return "gre", key, following, q
    if protocol == 0x88BE:
        if not sequenced:  # type I: no ERSPAN header, the mirrored frame at once
            return "erspan1", None, _ETHERNET, q
        if q + 8 > size:
            return "ERSPAN II header cut short"
        return "erspan2", _unpack_u16(data, q + 2)[0] & 0x3FF, _ETHERNET, q + 8
    if protocol == 0x22EB:
        if q + 12 > size:
            return "ERSPAN III header cut short"
        tail = _unpack_u16(data, q + 10)[0]
        if (tail >> 10) & 0x1F:  # frame type 0 is Ethernet; 2 (IP) is not seen in practice
            return f"ERSPAN III frame type {(tail >> 10) & 0x1F}"
        start = q + 12 + (8 if tail & 1 else 0)  # O flag: an 8-byte platform sub-header
        return "erspan3", _unpack_u16(data, q + 2)[0] & 0x3FF, _ETHERNET, start
    return f"GRE protocol 0x{protocol:04x}"


class FragmentTable:
    """IP fragments waiting for the rest of their datagram (IPv4 and IPv6, outer and inner).

    Bounded in memory (max_datagrams, max_bytes: the oldest datagram gives way) and in
    capture time (a datagram not complete `timeout` seconds after its first fragment is
    given up, like Linux's ipfrag_time).  Fragments never reassembled are counted in
    `unreassembled` (their first frames in `unreassembled_frames`); overlapping fragments
    whose bytes differ are counted in `conflicts` (frames in `conflict_frames`) and the
    first copy wins, as most stacks keep it.
    """

    __slots__ = ("max_datagrams", "max_bytes", "timeout", "pending", "bytes", "reassembled",
                 "unreassembled", "unreassembled_frames", "conflicts", "conflict_frames")

    def __init__(self, max_datagrams: int = 1024, max_bytes: int = 8 << 20,
                 timeout: float = 30.0) -> None:
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.timeout = timeout
        # key -> [first_ts, protocol, total or None, held bytes, [(start, bytes)], [frames]]
        self.pending: dict = {}
        self.bytes = 0
        self.reassembled = 0
        self.unreassembled = 0
        self.unreassembled_frames: list[int] = []
        self.conflicts = 0
        self.conflict_frames: list[int] = []

    def add(self, key, start: int, more, protocol: int, payload, frame_no: int, ts: float):
        """Hold one fragment; (payload bytes, 0, protocol) when it completes its datagram."""
        pending = self.pending
        if pending:
            self._expire(ts)
        entry = pending.get(key)
        if entry is None:
            entry = pending[key] = [ts, None, None, 0, [], []]
        piece = bytes(payload)
        end = start + len(piece)
        entry[5].append(frame_no)
        if start == 0:
            entry[1] = protocol  # IPv6: the first fragment's next header is the payload's
        if not more:
            entry[2] = end
        new = True
        for other_start, other in entry[4]:
            a = max(start, other_start)
            b = min(end, other_start + len(other))
            if a < b:
                if piece[a - start:b - start] != other[a - other_start:b - other_start]:
                    self.conflicts += 1
                    if len(self.conflict_frames) < _MAX_FRAGMENT_FRAMES:
                        self.conflict_frames.append(frame_no)
                elif a == start and b == end:
                    new = False  # a copy of bytes already held
        if new and piece:
            entry[4].append((start, piece))
            entry[3] += len(piece)
            self.bytes += len(piece)
        total = entry[2]
        if total is not None and entry[1] is not None:
            whole = self._assemble(entry[4], total)
            if whole is not None:
                del pending[key]
                self.bytes -= entry[3]
                self.reassembled += 1
                return whole, 0, entry[1]
        while self.bytes > self.max_bytes or len(pending) > self.max_datagrams:
            self._give_up(next(iter(pending)))
        return None

    @staticmethod
    def _assemble(pieces, total: int):
        covered = 0
        for start, piece in sorted(pieces, key=_first):
            if start > covered:
                return None
            covered = max(covered, start + len(piece))
        if covered < total:
            return None
        buf = bytearray(total)
        for start, piece in reversed(pieces):  # the first copy of a byte wins
            buf[start:start + len(piece)] = piece[:max(0, total - start)]
        return bytes(buf)

    def _expire(self, now: float) -> None:
        pending = self.pending
        limit = now - self.timeout
        while pending:
            key = next(iter(pending))
            if pending[key][0] >= limit:
                return
            self._give_up(key)

    def _give_up(self, key) -> None:
        entry = self.pending.pop(key)
        self.bytes -= entry[3]
        frames = entry[5]
        self.unreassembled += len(frames)
        room = _MAX_FRAGMENT_FRAMES - len(self.unreassembled_frames)
        if room > 0:
            self.unreassembled_frames.extend(frames[:room])

    def expire_all(self) -> None:
        for key in list(self.pending):
            self._give_up(key)


def _first(item):
    return item[0]


class PacketDecoder:
    """Decodes captured packets to TCP segments; counts every packet it does not return.

    Each packet lands in exactly one of: tcp (returned, or dropped as muted), non_ip, non_tcp,
    ipv4_fragments, ipv6_fragments, malformed, unsupported_linktypes, undecoded (an
    encapsulation recognised but not decoded, by name), or -- when the capture cut a header
    short -- snaplen_truncated alone.
    snaplen_truncated also counts returned segments whose `missing` > 0.
    IP fragments are held until their datagram is complete (FragmentTable): the fragment
    that completes it lands where the whole datagram does (tcp...), the others in
    ipv4_fragments / ipv6_fragments, whatever protocol they carry.
    Tunnelled TCP packets also count in `tunnelled` by outermost tunnel type; `tunnel` is the
    path of the last one (set only when `tunnel_frame` is that packet's frame number, so
    untunnelled packets pay nothing for it).

    mute(key) drops the later segments of an IPv4 TCP flow that nobody analyses any
    more (the TCP tracker says when: TcpTracker.on_quiet) before they cost anything:
    counted as tcp, not returned, until a SYN of that flow comes (returned, and unmuting).
    """

    __slots__ = ("packets", "tcp", "non_ip", "non_tcp", "ipv4_fragments", "ipv6_fragments",
                 "snaplen_truncated", "malformed", "unsupported_linktypes",
                 "muted", "_muted_ports", "undecoded", "tunnelled", "tunnel", "tunnel_frame",
                 "_fragments", "dns_sink")

    def __init__(self) -> None:
        self.packets = 0
        self.tcp = 0
        self.non_ip = 0
        self.non_tcp = 0
        self.ipv4_fragments = 0
        self.ipv6_fragments = 0
        self.snaplen_truncated = 0
        self.malformed = 0
        self.unsupported_linktypes: dict[int, int] = {}
        self.undecoded: dict[str, list] = {}  # name -> [packets, first frame]
        self.tunnelled: dict[str, int] = {}
        self.tunnel: Optional[TunnelPath] = None
        self.tunnel_frame = 0
        self._fragments = FragmentTable()
        # Muted IPv4 flows: src, dst, sport, dport as they stand in the packet (12 bytes),
        # both directions.
        self.muted: set = set()
        self._muted_ports: set = set()  # sport << 16 | dport of the muted keys: a cheap first test
        # dns_sink(payload, frame_no) gets the payload of every UDP datagram from port 53
        # (DNS answers name the servers); None leaves UDP undecoded.
        self.dns_sink: Optional[Callable[[memoryview, int], None]] = None

    def mute(self, key) -> None:
        """Drop the packets of this (src, dst, sport, dport) flow, both ways, SYNs excepted."""
        src, dst, sport, dport = key
        if len(src) == 4:
            self.muted.add(src + dst + _pack_ports(sport, dport))
            self.muted.add(dst + src + _pack_ports(dport, sport))
            self._muted_ports.add(sport << 16 | dport)
            self._muted_ports.add(dport << 16 | sport)

    def _unmute(self, raw: bytes) -> None:
        self.muted.discard(raw)
        self.muted.discard(raw[4:8] + raw[:4] + raw[10:12] + raw[8:10])

    @property
    def fragments(self) -> FragmentTable:
        return self._fragments

    @property
    def fragment_frames(self) -> list[int]:
        """First frames of fragments never reassembled (after finish(): all leftovers)."""
        return sorted(self._fragments.unreassembled_frames)

    @property
    def stats(self) -> dict:
        out = {
            "packets": self.packets, "tcp": self.tcp, "non_ip": self.non_ip,
            "non_tcp": self.non_tcp, "ipv4_fragments": self.ipv4_fragments,
            "ipv6_fragments": self.ipv6_fragments, "snaplen_truncated": self.snaplen_truncated,
            "malformed": self.malformed, "unsupported_linktypes": dict(self.unsupported_linktypes),
        }
        # Only when there is something to say: captures without tunnels or fragments keep
        # the same counters as before.
        if self.undecoded:
            out["undecoded"] = {name: v[0] for name, v in self.undecoded.items()}
        if self.tunnelled:
            out["tunnelled"] = dict(self.tunnelled)
        fragments = self._fragments
        if fragments.reassembled or fragments.unreassembled or fragments.pending:
            out["fragments_reassembled"] = fragments.reassembled
            out["fragments_unreassembled"] = fragments.unreassembled
        if fragments.conflicts:
            out["fragment_conflicts"] = fragments.conflicts
        return out

    def decode(self, frame_no: int, linktype: int, data, ts: float = 0.0, start: int = 0,
               end: int = -1) -> Segment | None:
        """The packet data[start:end] (end -1: to the end of data) -> a Segment, or None.

        A reader may hand in a whole block of the file and where the packet lies in it
        (Capture.spans()): the common packet is decoded where it stands, and its payload
        is a copy of its bytes, never a view that would keep the block alive.
        """
        self.packets += 1
        size = (len(data) if end < 0 else end) - start

        # Fast path: untagged Ethernet, IPv4 without options, not a fragment.  Anything
        # unusual falls through to the general code below, which decides the same way.
        # (Offsets are the packet's own, plus `start` only where bytes are taken.)
        if linktype == 1 and size >= 54:
            # Read byte by byte from a bytes object, not with struct: in the compiled build
            # these are native operations, no Python call and no 13-tuple per packet.
            if isinstance(data, bytes):
                d: bytes = data
                at = start
            else:  # a bytearray or memoryview (live input): its bytes, once
                d = bytes(data[start:start + size])
                at = 0
            if (d[at + 12] == 0x08 and d[at + 13] == 0x00 and d[at + 14] == 0x45
                    and not (d[at + 20] & 0x3F or d[at + 21])):  # IPv4, no options, no fragment
                total_len = d[at + 16] << 8 | d[at + 17]
                protocol = d[at + 23]
                if protocol == 6:
                    ip_end = 14 + total_len
                    payload_start = 34 + ((d[at + 46] >> 4) << 2)
                    if 54 <= payload_start <= ip_end <= size:
                        self.tcp += 1
                        sport = d[at + 34] << 8 | d[at + 35]
                        dport = d[at + 36] << 8 | d[at + 37]
                        flags = d[at + 47]
                        if self._muted_ports and (sport << 16 | dport) in self._muted_ports:
                            raw = d[at + 26:at + 38]
                            if raw in self.muted:
                                if not flags & 0x02:
                                    return None
                                self._unmute(raw)  # a SYN: the flow may start again
                        return (d[at + 26:at + 30], d[at + 30:at + 34], sport, dport,
                                d[at + 38] << 24 | d[at + 39] << 16 | d[at + 40] << 8 | d[at + 41],
                                d[at + 42] << 24 | d[at + 43] << 16 | d[at + 44] << 8 | d[at + 45],
                                flags,
                                d[at + payload_start:at + ip_end]
                                if payload_start != ip_end else _NO_PAYLOAD, 0)
                elif total_len >= 20 and protocol not in _SLOW_IP_PROTOCOLS:
                    self.non_tcp += 1  # UDP takes the general path (tunnels, DNS answers)
                    return None

        if start or size != len(data):
            data = data[start:start + size]

        # Link layer -> an Ethertype and the offset of what it announces, or an IP version.
        if linktype == 1:  # Ethernet
            if size < 14:
                self.malformed += 1
                return None
            return self._layers(frame_no, ts, data, size, data[12] << 8 | data[13], 14)
        if linktype == 113:  # Linux cooked v1: protocol at 14
            if size < 16:
                self.malformed += 1
                return None
            return self._layers(frame_no, ts, data, size, data[14] << 8 | data[15], 16)
        if linktype == 276:  # Linux cooked v2: protocol first
            if size < 20:
                self.malformed += 1
                return None
            return self._layers(frame_no, ts, data, size, data[0] << 8 | data[1], 20)
        offset = 0
        if linktype in _RAW_IP_LINKTYPES:
            if not size:
                self.malformed += 1
                return None
            version = data[0] >> 4
        elif linktype == 228:
            version = 4
        elif linktype == 229:
            version = 6
        elif linktype == 0 or linktype == 108:
            if size < 4:
                self.malformed += 1
                return None
            offset = 4
            if linktype == 108:  # OpenBSD LOOP: network order
                (family,) = unpack_from("!I", data, 0)
            else:  # BSD NULL: the writer's host order, which the file does not record
                (family,) = unpack_from("<I", data, 0)
                if family > 0xFFFF:
                    (family,) = unpack_from(">I", data, 0)
            if family == 2:
                version = 4
            elif family in _LOOPBACK_IPV6_FAMILIES:
                version = 6
            else:
                self.non_ip += 1
                return None
        else:
            counts = self.unsupported_linktypes
            counts[linktype] = counts.get(linktype, 0) + 1
            return None
        if version == 4:
            return self._layers(frame_no, ts, data, size, _ETHERTYPE_IPV4, offset)
        if version == 6:
            return self._layers(frame_no, ts, data, size, _ETHERTYPE_IPV6, offset)
        self.malformed += 1
        return None

    def _layers(self, frame_no: int, ts: float, data, size: int, ethertype: int, offset: int):
        """Everything past the link layer, tunnels included: one loop, one layer per turn.

        `ethertype` says what starts at `offset` (_ETHERNET for a whole Ethernet header, as
        tunnels carry); `size` is where the current packet ends (an outer IP packet's end
        bounds what its tunnel carries).  `path` grows by one (type, id, outer src, outer
        dst) per tunnel; it is built only for tunnelled packets.
        """
        path = None
        src = dst = None
        while True:
            if ethertype == _ETHERNET:
                if size < offset + 14:
                    self.malformed += 1
                    return None
                ethertype = data[offset + 12] << 8 | data[offset + 13]
                offset += 14
            while ethertype in _VLAN_TPIDS:
                if size < offset + 4:
                    self.malformed += 1
                    return None
                ethertype = data[offset + 2] << 8 | data[offset + 3]
                offset += 4

            if ethertype == _ETHERTYPE_IPV4:
                if size < offset + 20:
                    return self._short_ip_header(data, offset, size, 4, 2, 0)
                first = data[offset]
                header_len = (first & 0x0F) << 2
                if first >> 4 != 4 or header_len < 20:
                    self.malformed += 1
                    return None
                total_len, fragment, protocol, src, dst = _unpack_ipv4(data, offset)
                if total_len:
                    if total_len < header_len:
                        self.malformed += 1
                        return None
                    ip_end = offset + total_len
                else:
                    ip_end = size  # 0 is what TSO/GSO packets captured on the sender carry
                l4 = offset + header_len
                if fragment & 0x3FFF:  # MF flag or a fragment offset
                    if ip_end > size:  # a fragment cut by the snaplen cannot complete a datagram
                        self.snaplen_truncated += 1
                        return None
                    if l4 > ip_end:
                        self.malformed += 1
                        return None
                    whole = self._fragments.add(
                        (src, dst, data[offset + 4] << 8 | data[offset + 5], protocol, 4),
                        (fragment & 0x1FFF) << 3, fragment & 0x2000, protocol,
                        data[l4:ip_end], frame_no, ts)
                    if whole is None:
                        self.ipv4_fragments += 1
                        return None
                    data, l4, protocol = whole
                    size = ip_end = len(data)
            elif ethertype == _ETHERTYPE_IPV6:
                if size < offset + 40:
                    return self._short_ip_header(data, offset, size, 6, 4, 40)
                if data[offset] >> 4 != 6:
                    self.malformed += 1
                    return None
                payload_len, protocol, src, dst = _unpack_ipv6(data, offset)
                # 0 means a jumbogram or a TSO/GSO packet: the capture is all we have.
                ip_end = offset + 40 + payload_len if payload_len else size
                l4 = offset + 40
                while protocol in _IPV6_EXTENSION_HEADERS:
                    if l4 + 8 > ip_end:
                        self.malformed += 1
                        return None
                    if l4 + 8 > size:
                        self.snaplen_truncated += 1
                        return None
                    if protocol == 44:
                        offset_flags = data[l4 + 2] << 8 | data[l4 + 3]
                        if offset_flags & 0xFFF9:  # offset or M flag
                            if ip_end > size:
                                self.snaplen_truncated += 1
                                return None
                            whole = self._fragments.add(
                                (src, dst, unpack_from("!I", data, l4 + 4)[0], 0, 6),
                                offset_flags & 0xFFF8, offset_flags & 1, data[l4],
                                data[l4 + 8:ip_end], frame_no, ts)
                            if whole is None:
                                self.ipv6_fragments += 1
                                return None
                            data, l4, protocol = whole
                            size = ip_end = len(data)
                            continue
                        # An atomic fragment (RFC 6946) holds the whole packet.
                        extension_len = 8
                    elif protocol == 51:  # AH counts its length in 4-byte words
                        extension_len = (data[l4 + 1] + 2) << 2
                    else:
                        extension_len = (data[l4 + 1] + 1) << 3
                    protocol = data[l4]
                    l4 += extension_len
            elif ethertype == _ETHERTYPE_MPLS or ethertype == _ETHERTYPE_MPLS_MULTICAST:
                # A label stack; what follows the bottom label is told by its first nibble
                # (IPv4, IPv6, or 0: a pseudowire control word before an Ethernet frame).
                label = None
                while True:
                    if size < offset + 4:
                        self.malformed += 1
                        return None
                    entry = unpack_from("!I", data, offset)[0]
                    offset += 4
                    if label is None:
                        label = entry >> 12
                    if entry & 0x100:
                        break
                if size <= offset:
                    self.malformed += 1
                    return None
                nibble = data[offset] >> 4
                path = _push(path, "mpls", label, None, None)
                if nibble == 4:
                    ethertype = _ETHERTYPE_IPV4
                elif nibble == 6:
                    ethertype = _ETHERTYPE_IPV6
                elif nibble == 0:
                    ethertype = _ETHERNET
                    offset += 4
                else:
                    self._undecoded("MPLS payload (not IP or Ethernet)", frame_no)
                    return None
                if len(path) > MAX_TUNNEL_DEPTH:
                    return self._too_deep(frame_no)
                continue
            elif ethertype == _ETHERTYPE_PPPOE_SESSION:
                if size < offset + 8:
                    self.malformed += 1
                    return None
                session_id, length, ppp_protocol = unpack_from("!HHH", data, offset + 2)
                end = offset + 6 + length
                if end < size:
                    size = end
                offset += 8
                if ppp_protocol == 0x0021:
                    ethertype = _ETHERTYPE_IPV4
                elif ppp_protocol == 0x0057:
                    ethertype = _ETHERTYPE_IPV6
                else:
                    self.non_ip += 1  # PPP control (LCP, IPCP...)
                    return None
                path = _push(path, "pppoe", session_id, None, None)
                if len(path) > MAX_TUNNEL_DEPTH:
                    return self._too_deep(frame_no)
                continue
            else:
                self.non_ip += 1
                return None

            # Transport: TCP (done), or a tunnel (one more turn of the loop).
            if protocol == 6:
                break
            if ip_end < size:
                size = ip_end
            if protocol == 17:
                if l4 + 8 > size:
                    self.non_tcp += 1
                    return None
                tunnel = _UDP_TUNNEL_PORTS.get(data[l4 + 2] << 8 | data[l4 + 3])
                if tunnel is None:
                    self.non_tcp += 1
                    if self.dns_sink is not None:  # a DNS answer names the servers
                        self._udp(frame_no, data, l4, ip_end)
                    return None
                found = tunnel(self, data, l4 + 8, size)
                if type(found) is str:
                    self._undecoded(found, frame_no)
                    return None
                if found is None:
                    self.non_tcp += 1  # a tunnel's own signalling (GTP echo...)
                    return None
                kind, tunnel_id, ethertype, offset, end = found
                if end < size:
                    size = end
            elif protocol == 47:
                found = _gre(data, l4, size)
                if type(found) is str:
                    self._undecoded(found, frame_no)
                    return None
                kind, tunnel_id, ethertype, offset = found
            elif protocol == 4 or protocol == 41:
                kind = "ipip" if protocol == 4 else "ip6in4" if ethertype == _ETHERTYPE_IPV4 \
                    else "ip6in6"
                if protocol == 4 and ethertype == _ETHERTYPE_IPV6:
                    kind = "ip4in6"
                tunnel_id = None
                ethertype = _ETHERTYPE_IPV4 if protocol == 4 else _ETHERTYPE_IPV6
                offset = l4
            elif protocol == 137:  # MPLS in IP (RFC 4023)
                kind, tunnel_id, ethertype, offset = "mpls-in-ip", None, _ETHERTYPE_MPLS, l4
            else:
                name = _UNDECODED_IP_PROTOCOLS.get(protocol)
                if name is not None:
                    self._undecoded(name, frame_no)
                else:
                    self.non_tcp += 1
                return None
            path = _push(path, kind, tunnel_id, src, dst)
            if len(path) > MAX_TUNNEL_DEPTH:
                return self._too_deep(frame_no)

        # TCP
        tcp_start = l4
        if path is not None:
            self.tunnel = path
            self.tunnel_frame = frame_no
            counts = self.tunnelled
            kind = path[0][0]
            counts[kind] = counts.get(kind, 0) + 1
        if tcp_start + 20 > ip_end:
            self.malformed += 1
            return None
        if tcp_start + 20 > size:
            self.snaplen_truncated += 1
            return None
        sport, dport, seq, ack, data_offset, flags = _unpack_tcp(data, tcp_start)
        payload_start = tcp_start + ((data_offset >> 4) << 2)
        if payload_start < tcp_start + 20 or payload_start > ip_end:
            self.malformed += 1
            return None
        self.tcp += 1
        if ip_end <= size:
            return (src, dst, sport, dport, seq, ack, flags,
                    memoryview(data)[payload_start:ip_end], 0)
        self.snaplen_truncated += 1
        return (src, dst, sport, dport, seq, ack, flags, memoryview(data)[payload_start:size],
                ip_end - (payload_start if payload_start > size else size))

    def finish(self, ts: Optional[float] = None) -> None:
        """End of capture: fragments still waiting for the rest of their datagram are lost."""
        self._fragments.expire_all()

    def _undecoded(self, name: str, frame_no: int) -> None:
        counts = self.undecoded
        found = counts.get(name)
        if found is None:
            counts[name] = [1, frame_no]
        else:
            found[0] += 1

    def _too_deep(self, frame_no: int) -> None:
        self._undecoded(f"tunnels nested deeper than {MAX_TUNNEL_DEPTH}", frame_no)
        return None

    def _udp(self, frame_no: int, data, start: int, ip_end: int) -> None:
        """A UDP datagram: hand a DNS answer's payload (source port 53) to dns_sink."""
        if start + 8 > len(data) or data[start] != 0 or data[start + 1] != 53:
            return
        end = min(ip_end, len(data))  # a snap length may have cut it; the parser copes
        if end > start + 8:
            self.dns_sink(memoryview(data)[start + 8:end], frame_no)  # type: ignore[misc]  # checked by the caller

    def _short_ip_header(self, data, offset: int, size: int, version: int, length_at: int,
                         length_base: int):
        # The capture ends inside the IP header: a snaplen cut if the header's own
        # length field (when captured) says the packet went on, else malformed.
        if size >= offset + length_at + 2 and data[offset] >> 4 == version:
            (length,) = unpack_from("!H", data, offset + length_at)
            if length + length_base > size - offset:
                self.snaplen_truncated += 1
                return None
        self.malformed += 1
        return None


def format_address(addr: bytes, port: int) -> str:
    """"1.2.3.4:80" or "[2001:db8::1]:80" (RFC 5952 form; IPv4-mapped as ::ffff:1.2.3.4)."""
    if len(addr) == 4:
        return f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}:{port}"
    address = ipaddress.IPv6Address(bytes(addr))
    mapped = address.ipv4_mapped
    text = f"::ffff:{mapped}" if mapped is not None else address.compressed
    return f"[{text}]:{port}"


def _format_ip(addr) -> str:
    return format_address(addr, 0).rsplit(":", 1)[0].strip("[]")


def tunnel_layers(path: TunnelPath) -> list:
    """A tunnel path as the session model's TunnelLayer list, outermost first."""
    from ..model import TunnelLayer
    return [TunnelLayer(kind, tunnel_id, TUNNEL_ID_NAMES.get(kind),
                        None if src is None else _format_ip(src),
                        None if dst is None else _format_ip(dst))
            for kind, tunnel_id, src, dst in path]
