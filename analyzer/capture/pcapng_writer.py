"""A small streaming pcapng writer (little-endian): one section, interfaces made on demand,
Enhanced Packet Blocks with comments, Decryption Secrets Blocks.

Used by `dgcap extract`; block layout per the pcapng spec (draft-ietf-opsawg-pcapng):
every block is type, total length, body padded to 4 bytes, total length again.
"""
from __future__ import annotations

import struct
from typing import BinaryIO, Iterable, Optional

SHB_TYPE, IDB_TYPE, EPB_TYPE, DSB_TYPE = 0x0A0D0D0A, 1, 6, 10
OPT_COMMENT = 1
SHB_USERAPPL = 4
IDB_TSRESOL = 9
TLS_KEY_LOG_SECRETS = 0x544C534B  # DSB secrets type "TLSK": an NSS key log


def pcapng_block(block_type: int, body: bytes, endian: str = "<") -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack(endian + "II", block_type, length) + body + struct.pack(endian + "I", length)


def pcapng_options(options: Iterable[tuple], endian: str = "<") -> bytes:
    """(code, bytes) options and the end-of-options marker (nothing for no options)."""
    out = b""
    for code, value in options:
        out += struct.pack(endian + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)
    return out + struct.pack(endian + "HH", 0, 0) if out else b""


def _tsresol_exponent(ticks_per_second: int) -> Optional[int]:
    """if_tsresol for a power of ten (None for 10**6, the default)."""
    exponent, t = 0, ticks_per_second
    while t > 1 and t % 10 == 0:
        t //= 10
        exponent += 1
    if t != 1 or exponent == 6:
        return None
    return exponent


class PcapngWriter:
    """Writes blocks to a binary file as they come: memory does not grow with the packets."""

    def __init__(self, out: BinaryIO, comments: Iterable[str] = (), application: str = ""):
        self.out = out
        self._interfaces: dict[tuple[int, int], int] = {}  # (linktype, ticks/s) -> interface id
        options = [(OPT_COMMENT, c.encode("utf-8")) for c in comments]
        if application:
            options.append((SHB_USERAPPL, application.encode("utf-8")))
        body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + pcapng_options(options)
        out.write(pcapng_block(SHB_TYPE, body))
        self.packets = 0

    def secrets(self, secrets_type: int, data: bytes) -> None:
        self.out.write(pcapng_block(DSB_TYPE, struct.pack("<II", secrets_type, len(data)) + data))

    def _interface(self, linktype: int, ticks_per_second: int) -> int:
        key = (linktype, ticks_per_second)
        found = self._interfaces.get(key)
        if found is not None:
            return found
        exponent = _tsresol_exponent(ticks_per_second)
        options = [] if exponent is None else [(IDB_TSRESOL, bytes([exponent]))]
        self.out.write(pcapng_block(IDB_TYPE, struct.pack("<HHI", linktype, 0, 0) + pcapng_options(options)))
        found = self._interfaces[key] = len(self._interfaces)
        return found

    def packet(self, ts: float, linktype: int, data, ticks_per_second: int = 1_000_000,
               comments: Iterable[str] = (), wire_length: Optional[int] = None) -> None:
        """One Enhanced Packet Block; ticks_per_second must be a power of ten."""
        interface = self._interface(linktype, ticks_per_second)
        seconds = int(ts)  # whole seconds apart: ts * 1e9 as one float would lose ~256 ns
        ticks = seconds * ticks_per_second + round((ts - seconds) * ticks_per_second)
        data = bytes(data)
        wire = len(data) if wire_length is None else wire_length
        options = pcapng_options((OPT_COMMENT, c.encode("utf-8")) for c in comments)
        body = struct.pack("<IIIII", interface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire)
        self.out.write(pcapng_block(EPB_TYPE, body + data + b"\x00" * (-len(data) % 4) + options))
        self.packets += 1
