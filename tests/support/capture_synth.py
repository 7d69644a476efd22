"""Byte builders for synthetic packets and capture files (tests, bench/capture_reader.py).

Checksums are left zero: nothing here or in tshark's default settings checks them.
"""
from __future__ import annotations

import struct
from typing import Iterable, Optional, Sequence

from analyzer.capture.pcapng_writer import pcapng_block, pcapng_options  # noqa: F401 - part of this module's API

CLIENT_MAC = b"\x02\x00\x00\x00\x00\x01"
SERVER_MAC = b"\x02\x00\x00\x00\x00\x02"
CLIENT_IP = b"\x0a\x00\x00\x01"
SERVER_IP = b"\x0a\x00\x00\x02"
CLIENT_IP6 = bytes.fromhex("20010db8000000000000000000000001")
SERVER_IP6 = bytes.fromhex("20010db8000000000000000000000002")

FIN, SYN, RST, PSH, ACK, URG = 1, 2, 4, 8, 16, 32


def tcp(sport: int, dport: int, seq: int, ack: int = 0, flags: int = ACK, payload: bytes = b"",
        options: bytes = b"", window: int = 65535) -> bytes:
    if len(options) % 4:
        raise ValueError("TCP options must be padded to 4 bytes")
    data_offset = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, data_offset << 4, flags, window,
                       0, 0) + options + payload


def ipv4(payload: bytes, src: bytes = CLIENT_IP, dst: bytes = SERVER_IP, protocol: int = 6,
         options: bytes = b"", flags_fragment: int = 0x4000, total_length: Optional[int] = None,
         ident: int = 1, version_ihl: Optional[int] = None) -> bytes:
    if len(options) % 4:
        raise ValueError("IPv4 options must be padded to 4 bytes")
    header_len = 20 + len(options)
    if total_length is None:
        total_length = header_len + len(payload)
    if version_ihl is None:
        version_ihl = 0x40 | header_len // 4
    return struct.pack("!BBHHHBBH4s4s", version_ihl, 0, total_length, ident, flags_fragment,
                       64, protocol, 0, src, dst) + options + payload


def ipv6(payload: bytes, src: bytes = CLIENT_IP6, dst: bytes = SERVER_IP6, next_header: int = 6,
         extensions: Sequence[tuple] = (), payload_length: Optional[int] = None) -> bytes:
    """extensions: (header_type, body) in order; body excludes the next-header byte."""
    chain = b""
    types = [t for t, _ in extensions] + [next_header]
    for (_, body), following in zip(extensions, types[1:]):
        chain += bytes([following]) + body
    first = types[0]
    if payload_length is None:
        payload_length = len(chain) + len(payload)
    return struct.pack("!IHBB16s16s", 0x60000000, payload_length, first, 64, src, dst) + chain + payload


def ipv6_extension(header_type: int, total_length: int = 8) -> tuple:
    """An extension header of `total_length` bytes, zero-filled (Pad1 options), for ipv6()."""
    if header_type == 51:  # AH counts 4-byte words, minus 2
        if total_length % 4 or total_length < 12:
            raise ValueError("AH length must be a multiple of 4, at least 12")
        length_field = total_length // 4 - 2
    else:
        if total_length % 8 or header_type == 44:
            raise ValueError("length must be a multiple of 8; use ipv6_fragment() for fragments")
        length_field = total_length // 8 - 1
    return header_type, bytes([length_field]) + b"\x00" * (total_length - 2)


def ipv6_fragment(offset_units: int, more: bool, ident: int = 7) -> tuple:
    return 44, struct.pack("!BHI", 0, offset_units << 3 | int(more), ident)


def ethernet(payload: bytes, ethertype: int = 0x0800, vlans: Iterable[tuple] = (),
             src: bytes = CLIENT_MAC, dst: bytes = SERVER_MAC, pad_to: int = 60) -> bytes:
    """vlans: (tpid, vid) outermost first.  Pads to `pad_to` like a real NIC does."""
    tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in vlans)
    frame = dst + src + tags + struct.pack("!H", ethertype) + payload
    return frame + b"\x00" * max(0, pad_to - len(frame))


def linux_sll(payload: bytes, protocol: int = 0x0800) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, CLIENT_MAC + b"\x00\x00", protocol) + payload


def linux_sll2(payload: bytes, protocol: int = 0x0800) -> bytes:
    return struct.pack("!HHIHBB8s", protocol, 0, 2, 1, 0, 6, CLIENT_MAC + b"\x00\x00") + payload


def pcap(records: Iterable[tuple], linktype: int = 1, nano: bool = False, big_endian: bool = False,
         snaplen: int = 262144) -> bytes:
    """records: (seconds, fraction, data) or (seconds, fraction, data, wire_length)."""
    endian = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for record in records:
        seconds, fraction, data = record[:3]
        wire_length = record[3] if len(record) > 3 else len(data)
        out.append(struct.pack(endian + "IIII", seconds, fraction, len(data), wire_length) + data)
    return b"".join(out)


def shb(endian: str = "<") -> bytes:
    return pcapng_block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1), endian)


def idb(linktype: int, snaplen: int = 0, tsresol: Optional[int] = None,
        tsoffset: Optional[int] = None, endian: str = "<") -> bytes:
    options = []
    if tsresol is not None:
        options.append((9, bytes([tsresol])))
    if tsoffset is not None:
        options.append((14, struct.pack(endian + "q", tsoffset)))
    body = struct.pack(endian + "HHI", linktype, 0, snaplen) + pcapng_options(options, endian)
    return pcapng_block(1, body, endian)


def epb(interface_id: int, ticks: int, data: bytes, wire_length: Optional[int] = None,
        endian: str = "<") -> bytes:
    wire_length = len(data) if wire_length is None else wire_length
    body = struct.pack(endian + "IIIII", interface_id, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                       wire_length) + data
    return pcapng_block(6, body, endian)


def spb(data: bytes, wire_length: Optional[int] = None, endian: str = "<") -> bytes:
    wire_length = len(data) if wire_length is None else wire_length
    return pcapng_block(3, struct.pack(endian + "I", wire_length) + data, endian)


def packet_block(interface_id: int, ticks: int, data: bytes, endian: str = "<") -> bytes:
    """The obsolete Packet Block (type 2)."""
    body = struct.pack(endian + "HHIIII", interface_id, 0, ticks >> 32, ticks & 0xFFFFFFFF,
                       len(data), len(data)) + data
    return pcapng_block(2, body, endian)


def dsb(secrets_type: int, secrets: bytes, endian: str = "<") -> bytes:
    return pcapng_block(10, struct.pack(endian + "II", secrets_type, len(secrets)) + secrets, endian)
