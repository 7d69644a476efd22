"""Link layer + IPv4/IPv6 + TCP header decoding: one captured packet -> one TCP segment.

Sans-I/O and on the hot path: no per-packet objects beyond the returned tuple,
its two address slices and one memoryview slice for the payload.
"""
from __future__ import annotations

import ipaddress
from struct import Struct, unpack_from

# Ethernet tag protocol ids: 802.1Q, 802.1ad (QinQ), and the pre-standard QinQ 0x9100.
_VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100))
_ETHERTYPE_IPV4, _ETHERTYPE_IPV6 = 0x0800, 0x86DD
# BSD loopback address families: AF_INET, and AF_INET6 as NetBSD/OpenBSD, FreeBSD, Darwin number it.
_LOOPBACK_IPV6_FAMILIES = frozenset((24, 28, 30))
_RAW_IP_LINKTYPES = frozenset((101, 12, 14))
# Hop-by-hop, routing, fragment, AH, destination options.
_IPV6_EXTENSION_HEADERS = frozenset((0, 43, 44, 51, 60))
_MAX_FRAGMENT_FRAMES = 100

# Precompiled: total length, flags+fragment offset, protocol, src, dst.
_unpack_ipv4 = Struct("!2xH2xHxB2x4s4s").unpack_from
# Payload length, next header, src, dst.
_unpack_ipv6 = Struct("!4xHBx16s16s").unpack_from
_unpack_tcp = Struct("!HHIIBB").unpack_from
# The common case in one call: Ethernet type, IPv4 version/IHL, total length, flags+fragment
# offset, protocol, src, dst, then the TCP ports, seq, ack, data offset and flags (54 bytes).
_unpack_eth_ipv4_tcp = Struct("!12xHBxHxxHxB2x4s4sHHIIBB").unpack_from
_pack_ports = Struct("!HH").pack

# The payload of every segment that has none (pure ACKs): one shared empty view.
_NO_PAYLOAD = memoryview(b"")

# A segment: (src, dst, sport, dport, seq, ack, flags, payload, missing)
Segment = tuple


class PacketDecoder:
    """Decodes captured packets to TCP segments; counts every packet it does not return.

    Each packet lands in exactly one of: tcp (returned, or dropped as muted), non_ip, non_tcp,
    ipv4_fragments, ipv6_fragments, malformed, unsupported_linktypes, or --
    when the capture cut a header short -- snaplen_truncated alone.
    snaplen_truncated also counts returned segments whose `missing` > 0.
    Fragments are counted whatever protocol they carry (the IP header says so
    only in the first fragment for IPv6).

    mute(key) drops the later segments of an IPv4 TCP flow that nobody analyses any
    more (the TCP tracker says when: TcpTracker.on_quiet) before they cost anything:
    counted as tcp, not returned, until a SYN of that flow comes (returned, and unmuting).
    """

    __slots__ = ("packets", "tcp", "non_ip", "non_tcp", "ipv4_fragments", "ipv6_fragments",
                 "snaplen_truncated", "malformed", "unsupported_linktypes", "fragment_frames",
                 "muted", "_muted_ports", "dns_sink")

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
        self.fragment_frames: list[int] = []
        # Muted IPv4 flows: src, dst, sport, dport as they stand in the packet (12 bytes),
        # both directions.
        self.muted: set = set()
        self._muted_ports: set = set()  # sport << 16 | dport of the muted keys: a cheap first test
        # dns_sink(payload, frame_no) gets the payload of every UDP datagram from port 53
        # (DNS answers name the servers); None leaves UDP undecoded.
        self.dns_sink = None

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
    def stats(self) -> dict:
        return {
            "packets": self.packets, "tcp": self.tcp, "non_ip": self.non_ip,
            "non_tcp": self.non_tcp, "ipv4_fragments": self.ipv4_fragments,
            "ipv6_fragments": self.ipv6_fragments, "snaplen_truncated": self.snaplen_truncated,
            "malformed": self.malformed, "unsupported_linktypes": dict(self.unsupported_linktypes),
        }

    def decode(self, frame_no: int, linktype: int, data) -> Segment | None:
        self.packets += 1
        size = len(data)

        # Fast path: untagged Ethernet, IPv4 without options, not a fragment.  Anything
        # unusual falls through to the general code below, which decides the same way.
        if linktype == 1 and size >= 54:
            (ethertype, version_ihl, total_len, fragment, protocol, src, dst,
             sport, dport, seq, ack, data_offset, flags) = _unpack_eth_ipv4_tcp(data, 0)
            if ethertype == _ETHERTYPE_IPV4 and version_ihl == 0x45 and not fragment & 0x3FFF:
                if protocol == 6:
                    ip_end = 14 + total_len
                    payload_start = 34 + ((data_offset >> 4) << 2)
                    if 54 <= payload_start <= ip_end <= size:
                        self.tcp += 1
                        if self._muted_ports and (sport << 16 | dport) in self._muted_ports:
                            raw = data[26:38]
                            if type(raw) is not bytes:
                                raw = bytes(raw)
                            if raw in self.muted:
                                if not flags & 0x02:
                                    return None
                                self._unmute(raw)  # a SYN: the flow may start again
                        return (src, dst, sport, dport, seq, ack, flags,
                                memoryview(data)[payload_start:ip_end] if payload_start != ip_end
                                else _NO_PAYLOAD, 0)
                elif total_len >= 20:
                    self.non_tcp += 1
                    if protocol == 17 and self.dns_sink is not None:
                        self._udp(frame_no, data, 34, 14 + total_len)
                    return None

        # Link layer -> (offset of the IP header, IP version).
        if linktype == 1:  # Ethernet
            if size < 14:
                self.malformed += 1
                return None
            ethertype = data[12] << 8 | data[13]
            offset = 14
        elif linktype == 113:  # Linux cooked v1: protocol at 14
            if size < 16:
                self.malformed += 1
                return None
            ethertype = data[14] << 8 | data[15]
            offset = 16
        elif linktype == 276:  # Linux cooked v2: protocol first
            if size < 20:
                self.malformed += 1
                return None
            ethertype = data[0] << 8 | data[1]
            offset = 20
        else:
            ethertype = None
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
        if ethertype is not None:
            while ethertype in _VLAN_TPIDS:
                if size < offset + 4:
                    self.malformed += 1
                    return None
                ethertype = data[offset + 2] << 8 | data[offset + 3]
                offset += 4
            if ethertype == _ETHERTYPE_IPV4:
                version = 4
            elif ethertype == _ETHERTYPE_IPV6:
                version = 6
            else:
                self.non_ip += 1
                return None

        if version == 4:
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
            if fragment & 0x3FFF:  # MF flag or a fragment offset
                self.ipv4_fragments += 1
                if len(self.fragment_frames) < _MAX_FRAGMENT_FRAMES:
                    self.fragment_frames.append(frame_no)
                return None
            tcp_start = offset + header_len
            if protocol != 6:
                self.non_tcp += 1
                if protocol == 17 and self.dns_sink is not None:
                    self._udp(frame_no, data, tcp_start, ip_end)
                return None
        elif version == 6:
            if size < offset + 40:
                return self._short_ip_header(data, offset, size, 6, 4, 40)
            if data[offset] >> 4 != 6:
                self.malformed += 1
                return None
            payload_len, next_header, src, dst = _unpack_ipv6(data, offset)
            # 0 means a jumbogram or a TSO/GSO packet: the capture is all we have.
            ip_end = offset + 40 + payload_len if payload_len else size
            tcp_start = offset + 40
            while next_header in _IPV6_EXTENSION_HEADERS:
                if tcp_start + 8 > ip_end:
                    self.malformed += 1
                    return None
                if tcp_start + 8 > size:
                    self.snaplen_truncated += 1
                    return None
                if next_header == 44:
                    if unpack_from("!H", data, tcp_start + 2)[0] & 0xFFF9:  # offset or M flag
                        self.ipv6_fragments += 1
                        if len(self.fragment_frames) < _MAX_FRAGMENT_FRAMES:
                            self.fragment_frames.append(frame_no)
                        return None
                    # An atomic fragment (RFC 6946) holds the whole packet.
                    extension_len = 8
                elif next_header == 51:  # AH counts its length in 4-byte words
                    extension_len = (data[tcp_start + 1] + 2) << 2
                else:
                    extension_len = (data[tcp_start + 1] + 1) << 3
                next_header = data[tcp_start]
                tcp_start += extension_len
            if next_header != 6:
                self.non_tcp += 1
                if next_header == 17 and self.dns_sink is not None:
                    self._udp(frame_no, data, tcp_start, ip_end)
                return None
        else:
            self.malformed += 1
            return None

        # TCP
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

    def _udp(self, frame_no: int, data, start: int, ip_end: int) -> None:
        """A UDP datagram: hand a DNS answer's payload (source port 53) to dns_sink."""
        if start + 8 > len(data) or data[start] != 0 or data[start + 1] != 53:
            return
        end = min(ip_end, len(data))  # a snap length may have cut it; the parser copes
        if end > start + 8:
            self.dns_sink(memoryview(data)[start + 8:end], frame_no)

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
