"""Capture files (pcap / pcapng, optionally gzip-compressed) -> numbered packet records.

Our own reader, not scapy's `RawPcapReader` / `RawPcapNgReader`.  Those classes used to
be the base classes here, for opening, magic and gzip detection and the file headers
(a dozen lines, now `_open_with_magic` and the two `__init__`s), while every per-record
and per-block method was replaced; importing scapy for that cost ~0.1 s of every
start-up.  The per-record methods were replaced because as shipped (scapy 2.8) they:

* end iteration the same way for a clean end of file and for a record cut short
  or a corrupt block, so truncation would go unreported;
* cut pcap records at 65535 bytes (`MTU`) and, for a corrupt 4 GB record
  length, yield the rest of the file as one bogus packet;
* read whatever a corrupt pcapng block length says (a 4 GB allocation);
* keep the interfaces of earlier sections after a new Section Header Block
  (packets of the second section get the wrong link type);
* drop a packet whose interface id is unknown without a word (frame numbers
  after it would no longer match Wireshark's);
* take an interface snaplen of 0 ("no limit") literally for Simple Packet
  Blocks and return empty packets;
* try to install TLS key logs from Decryption Secrets Blocks and log warnings;
* build a namedtuple and parse options for every packet: on 500k Ethernet
  packets, stock RawPcapReader ran at 0.4-0.6 M packets/s and RawPcapNgReader
  at 0.3 M/s (without computing timestamps) against 1.7 M/s and 1.0 M/s here.

Frame numbers are Wireshark's "No.": every record Wireshark shows counts, and
that includes a few non-packet pcapng records (custom blocks, systemd journal
entries, sysdig events), which take a number but are not yielded.
"""
from __future__ import annotations

import gzip
import io
import os
import stat
import struct
import zlib
from typing import Any, Callable, Iterator, Optional

from mypy_extensions import mypyc_attr



@mypyc_attr(allow_interpreted_subclasses=True)  # the tshark engine's TsharkNotFound extends it
class CaptureError(Exception):
    """The file cannot be read as a capture; str() is a one-line message for humans."""


_PCAP_MAGICS = {
    b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1",  # microsecond
    b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1",  # nanosecond
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_SHB_TYPE = 0x0A0D0D0A  # a byte palindrome: the same number in either byte order
_BOM_BIG, _BOM_LITTLE = b"\x1a\x2b\x3c\x4d", b"\x4d\x3c\x2b\x1a"

# Wireshark refuses larger records (WTAP_MAX_PACKET_SIZE_*); stopping where it
# stops keeps our frame numbers equal to its.
_MAX_CAPLEN_STANDARD = 262144
_MAX_CAPLEN_BY_LINKTYPE = {231: 128 << 20, 249: 128 << 20, 279: 8 << 20}  # D-Bus, USBPcap, EBHSCR
# Wireshark's MAX_BLOCK_SIZE: an EPB with a maximum-size D-Bus packet and 128 KiB of options.
_MAX_BLOCK_LEN = 32 + (128 << 20) + 131072

_PACKET_BLOCK_NAMES = {6: "Enhanced Packet Block", 2: "Packet Block"}

# Non-packet pcapng records that Wireshark (4.0-4.4) numbers as frames: custom
# blocks (copyable and not), systemd journal export, sysdig event blocks.
_NUMBERED_NON_PACKET_BLOCKS = frozenset({0x00000BAD, 0x40000BAD, 0x00000009,
                                         0x00000204, 0x00000216, 0x00000221})

# What a gzip stream raises when it ends early, fails its CRC or is corrupt.
_STREAM_ERRORS = (EOFError, OSError, zlib.error)

_NOT_CAPTURE_HINTS = (
    (b"RIFF", "a RIFF file (WAV audio?)"),
    (b"OggS", "an Ogg audio file"),
    (b"fLaC", "a FLAC audio file"),
    (b"ID3", "an MP3 audio file"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"%PDF", "a PDF document"),
)


@mypyc_attr(native_class=False)  # mypyc compiles no subclass of EOFError or RawIOBase
class _CorruptBlock(EOFError):
    """A file header or block that cannot be read; str() says why.  An EOFError, so that
    loops stopping on stream errors stop on it too."""


@mypyc_attr(native_class=False)
class _GzipChunks(io.RawIOBase):
    """GzipFile as a raw stream: readinto() returns what is decompressed so far.

    GzipFile.readinto() insists on filling the whole buffer and, when the
    stream is cut, raises and drops everything it decompressed in that call;
    read1() hands over each piece, so a truncated stream loses only the record
    it ends in.
    """

    def __init__(self, gzip_file: gzip.GzipFile):
        super().__init__()
        self._read1 = gzip_file.read1

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._read1(len(buffer))
        buffer[:len(data)] = data
        return len(data)


# Buffer of the reads behind records(): the default 8 KiB costs a system call every few
# packets; 64 KiB reads the records ~20% faster.
_READ_BUFFER = 1 << 16
# pcap records are cut out of blocks of this size (spans()): no read() call and no bytes
# object per record, the decoder reads each packet where it stands in its block.
_BLOCK = 1 << 15
# For gzip, the size of the GzipFile.read1() calls the 64 KiB buffer above made: a cut or
# corrupt stream stops after the same records as it did when records were read one by one.
_GZIP_BLOCK = 1 << 16


def _read_function(reader, partial: bool = False):
    """The read() for records.  For gzip, a C BufferedReader over _GzipChunks:
    GzipFile.read is Python code run twice per packet, this is ~1.3x faster.  For a
    plain file, a BufferedReader with a larger buffer on the same descriptor, from the
    current position (kept as reader._fast_file, which Capture.bytes_read then uses).

    `partial`: (read, block size) for spans(), a read that returns what one read of the
    underlying stream gives (at least one byte before the end; unbuffered for a plain
    file): a gzip stream that is cut or corrupt then raises only once everything
    decompressed before the damage was handed over."""
    f = reader.f
    if isinstance(f, gzip.GzipFile):
        return (f.read1, _GZIP_BLOCK) if partial else io.BufferedReader(_GzipChunks(f), 1 << 16).read
    if reader.file_size is None:  # a pipe (no position): open_capture buffered it already
        return (f.read1, _BLOCK) if partial else f.read
    try:
        position = f.tell()
        fast = open(f.fileno(), "rb", buffering=0 if partial else _READ_BUFFER, closefd=False)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return (f.read1, _BLOCK) if partial else f.read
    try:
        fast.seek(position)
    except OSError:
        fast.close()
        return (f.read1, _BLOCK) if partial else f.read
    reader._fast_file = fast
    return (fast.read, _BLOCK) if partial else fast.read


def _u32(b: bytes, i: int, little: bool) -> int:
    """The unsigned 32-bit integer at b[i:i + 4] (a function, not struct: a native call
    in the compiled build)."""
    if little:
        return b[i] | b[i + 1] << 8 | b[i + 2] << 16 | b[i + 3] << 24
    return b[i] << 24 | b[i + 1] << 16 | b[i + 2] << 8 | b[i + 3]


def _timestamp(seconds: int, fraction: int, ticks_per_second: int) -> float:
    """A record's time, correctly rounded: ts equals float("<sec>.<frac>").

    In microseconds, seconds * 10**6 + fraction is below 2**53, so the double arithmetic
    is exact up to the one division, which IEEE rounds correctly: the same float as the
    exact ratio.  Nanosecond ticks pass 2**53: Python's int / int (correctly rounded)
    does those.  (Not typed int arithmetic: the compiled build would go through a double,
    and its slow path for large products aborts the process when Ctrl-C's exception is
    pending.)"""
    if ticks_per_second == 1_000_000:
        return (float(seconds) * 1e6 + float(fraction)) / 1e6
    return _ticks_ratio(seconds, fraction, ticks_per_second)


def _ticks_ratio(seconds: Any, fraction: Any, ticks_per_second: Any) -> float:
    # Any: Python's own int arithmetic, and int / int correctly rounded.
    return (seconds * ticks_per_second + fraction) / ticks_per_second


def _bridge(read, block_size: int, head: bytes, need: int) -> tuple[bytes, bytes, int]:
    """A run of bytes that crosses the end of a block: `head` (the end of the block) and
    the stream's next bytes, `need` bytes in all (fewer only where the stream ends).
    Returns (those bytes, the block read last, where its unused bytes start): only the
    bridged bytes are copied, never the whole next block."""
    parts = [head]
    have = len(head)
    while have < need:
        block = read(block_size if need - have <= block_size else need - have)
        if not block:
            break
        take = need - have
        if len(block) > take:
            parts.append(block[:take])
            return b"".join(parts), block, take
        parts.append(block)
        have += len(block)
    return b"".join(parts), b"", 0


@mypyc_attr(allow_interpreted_subclasses=True)  # (required of _PcapNgFile's bases)
class _CaptureFile:
    """What both readers share: the file object `f` (a GzipFile over the file when
    compressed) and closing it."""

    f: Any = None
    _fast_file: Any = None  # the buffered reader of a plain file (_read_function)
    # Bytes in the file, to check block lengths against before reading them; None for a pipe
    # and for gzip (their end is found by reading).
    file_size: Optional[int] = None
    compressed = False

    def spans(self) -> Iterator[tuple]:  # pragma: no cover - each reader has its own
        raise NotImplementedError

    def records(self) -> Iterator[tuple]:
        """Yield (frame_no, ts, linktype, data) in file order: spans() with each packet
        cut out of its buffer."""
        for frame_no, ts, linktype, buf, start, end in self.spans():
            yield frame_no, ts, linktype, buf[start:end]

    def close(self) -> None:
        if isinstance(self.f, gzip.GzipFile):
            self.f.fileobj.close()
        self.f.close()


class _PcapFile(_CaptureFile):
    """pcap: the 24-byte file header, then a record loop that reports truncation."""

    def __init__(self, filename, fdesc, magic):  # noqa: D107
        self.filename = filename
        self.f = fdesc
        # Big-endian magics are the ones starting with 0xa1; 0x3c4d is nanoseconds.
        self.endian = ">" if magic[0] == 0xA1 else "<"
        self.nano = magic in (b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1")
        header = fdesc.read(20)
        if len(header) < 20:
            raise _CorruptBlock("incomplete pcap file header (needs 24 bytes)")
        _major, _minor, _zone, _sigfigs, self.snaplen, self.linktype = struct.unpack(
            self.endian + "HHIIII", header)
        self.linktype &= 0xFFFF  # the upper 16 bits carry FCS-length flags, not the link type
        self.ticks_per_second = 1_000_000_000 if self.nano else 1_000_000
        self.interfaces = [(self.linktype, self.snaplen, self.ticks_per_second)]
        self.secrets: list = []
        self.packet_count = 0
        self.truncated: Optional[tuple] = None

    def spans(self) -> Iterator[tuple]:
        """Yield (frame_no, ts, linktype, buf, start, end) per record: the packet is
        buf[start:end], buf a block of the file (see _BLOCK)."""
        read, block_size = _read_function(self, partial=True)
        little = self.endian == "<"
        ticks_per_second: int = self.ticks_per_second
        linktype: int = self.linktype
        max_caplen: int = _MAX_CAPLEN_BY_LINKTYPE.get(linktype, _MAX_CAPLEN_STANDARD)
        offset = 24  # of the record at buf[pos] in the file
        frame_no = 0
        buf = b""
        pos = end = 0
        try:
            while True:
                if end - pos >= 16:
                    header, at = buf, pos
                    pos += 16
                else:  # the header crosses the end of the block
                    header, buf, pos = _bridge(read, block_size, buf[pos:end], 16)
                    at, end = 0, len(buf)
                    if len(header) < 16:
                        if header:
                            self.truncated = (offset, f"file ends inside the header of packet record "
                                                      f"{frame_no + 1} at byte {offset} "
                                                      f"({len(header)} of 16 bytes present)")
                        return
                caplen = _u32(header, at + 8, little)
                if caplen > max_caplen:
                    self.truncated = (offset, f"corrupt packet record {frame_no + 1} at byte "
                                              f"{offset}: captured length {caplen} exceeds the "
                                              f"maximum {max_caplen}")
                    return
                ts = _timestamp(_u32(header, at, little), _u32(header, at + 4, little),
                                ticks_per_second)
                if end - pos >= caplen:
                    data, start = buf, pos
                    pos += caplen
                else:  # the packet crosses the end of the block
                    data, buf, pos = _bridge(read, block_size, buf[pos:end], caplen)
                    start, end = 0, len(buf)
                    if len(data) < caplen:
                        self.truncated = (offset, f"file ends inside packet record {frame_no + 1} at "
                                                  f"byte {offset} ({len(data)} of {caplen} captured "
                                                  f"bytes present)")
                        return
                frame_no += 1
                self.packet_count = frame_no
                yield (frame_no, ts, linktype, data, start, start + caplen)
                offset += 16 + caplen
        except _STREAM_ERRORS as exc:
            self.truncated = (offset, _stream_error_message(offset, frame_no, exc, self.compressed))


# A block Wireshark gives a frame number to that carries no packet.
_NUMBERED_ONLY = object()


@mypyc_attr(allow_interpreted_subclasses=True)  # capture/stream.py's PcapngStream extends it
class _PcapNgFile(_CaptureFile):
    """pcapng: Section Header, Interface Description and Decryption Secrets blocks parsed
    here, packets from every kind of packet block (see module docstring)."""

    # Called with each block's type once the block is read whole (stream.PcapngStream's tee).
    _block_read: Optional[Callable[[int], None]] = None

    def __init__(self, filename, fdesc, magic):  # noqa: D107
        self.filename = filename
        self.f = fdesc
        self.secrets: list = []
        self.packet_count = 0
        self.truncated: Optional[tuple] = None
        # Interfaces of the current section: (linktype, ticks_per_second, offset_ticks, snaplen).
        self._section_interfaces: list = []
        self._unpackers_endian = None  # byte order the cached struct unpackers are for
        self._shb_len = 0
        self._read = fdesc.read  # records() swaps in a buffered read for gzip; SHBs must share it
        # Every IDB of every section, in file order: (linktype, snaplen, tsresol).
        self.interfaces: list = []
        if magic != _PCAPNG_MAGIC:
            raise _CorruptBlock(f"not a pcapng Section Header Block (starts with {magic.hex(' ')})")
        self._read_block_shb()

    def _read_block_shb(self, length_field: Optional[bytes] = None):
        """Read the rest of a Section Header Block (its type is already consumed)."""
        if length_field is None:
            length_field = self._read(4)
        bom = self._read(4)
        if len(length_field) != 4 or len(bom) != 4:
            raise _CorruptBlock("file ends inside a Section Header Block")
        if bom == _BOM_LITTLE:
            endian = "<"
        elif bom == _BOM_BIG:
            endian = ">"
        else:
            raise _CorruptBlock(f"Section Header Block has a bad byte-order magic {bom.hex()}")
        (block_len,) = struct.unpack(endian + "I", length_field)
        if block_len < 28 or block_len % 4 or block_len > _MAX_BLOCK_LEN:
            raise _CorruptBlock(f"Section Header Block has a corrupt length {block_len}")
        rest = self._read(block_len - 12)
        if len(rest) != block_len - 12:
            raise _CorruptBlock("file ends inside a Section Header Block")
        (major,) = struct.unpack_from(endian + "H", rest, 0)
        if major != 1:
            raise _CorruptBlock(f"unsupported pcapng version {major}")
        if struct.unpack_from(endian + "I", rest, block_len - 16)[0] != block_len:
            raise _CorruptBlock("Section Header Block lengths at start and end differ")
        self.endian = endian
        self._section_interfaces = []
        self._shb_len = block_len

    def _read_block_idb(self, block, _size=None):
        """Interface Description Block: link type, snaplen, if_tsresol, if_tsoffset."""
        if len(block) < 8:
            raise _CorruptBlock(f"Interface Description Block too short ({len(block)} bytes)")
        linktype, snaplen = struct.unpack_from(self.endian + "HxxI", block, 0)
        ticks_per_second = 1_000_000
        offset_seconds = 0
        for code, value in self._options(block, 8):
            if code == 9 and len(value) == 1:
                exponent = value[0] & 0x7F
                ticks_per_second = 2 ** exponent if value[0] & 0x80 else 10 ** exponent
            elif code == 14 and len(value) == 8:
                (offset_seconds,) = struct.unpack(self.endian + "q", value)
        self._section_interfaces.append(
            (linktype, ticks_per_second, offset_seconds * ticks_per_second, snaplen))
        self.interfaces.append((linktype, snaplen, ticks_per_second))

    def _read_block_dsb(self, block, _size=None):
        """Decryption Secrets Block: kept as (secrets_type, data); decryption is not ours."""
        if len(block) < 8:
            raise _CorruptBlock(f"Decryption Secrets Block too short ({len(block)} bytes)")
        secrets_type, secrets_len = struct.unpack_from(self.endian + "II", block, 0)
        if secrets_len > len(block) - 8:
            raise _CorruptBlock(f"Decryption Secrets Block claims {secrets_len} bytes of secrets, "
                                f"holds {len(block) - 8}")
        self.secrets.append((secrets_type, bytes(block[8:8 + secrets_len])))

    def _options(self, block, start):
        # Our own walker: scapy's logs warnings and collects every option.
        unpack_option = struct.Struct(self.endian + "HH").unpack_from
        end = len(block)
        position = start
        while position + 4 <= end:
            code, length = unpack_option(block, position)
            position += 4
            if code == 0 or position + length > end:
                return
            yield code, block[position:position + length]
            position += length + (-length & 3)

    def spans(self) -> Iterator[tuple]:
        """Yield (frame_no, ts, linktype, data, 0, len(data)) per packet (the shape of
        _PcapFile.spans())."""
        read = self._read = _read_function(self)
        offset = self._shb_len
        file_size = self.file_size
        block_read = self._block_read
        frame_no = 0
        last_ts = 0.0
        endian = self.endian
        unpack_head = struct.Struct(endian + "II").unpack
        unpack_u32 = struct.Struct(endian + "I").unpack_from
        try:
            while True:
                head = read(8)
                if len(head) != 8:
                    if head:
                        self.truncated = (offset, f"file ends inside the header of the pcapng block "
                                                  f"at byte {offset} ({len(head)} of 8 bytes present)")
                    return
                block_type, block_len = unpack_head(head)
                if block_type == _SHB_TYPE:
                    self._read_block_shb(head[4:])
                    if block_read is not None:
                        block_read(_SHB_TYPE)
                    offset += self._shb_len
                    endian = self.endian
                    unpack_head = struct.Struct(endian + "II").unpack
                    unpack_u32 = struct.Struct(endian + "I").unpack_from
                    continue
                if block_len < 12 or block_len & 3 or block_len > _MAX_BLOCK_LEN:
                    self.truncated = (offset, f"corrupt pcapng block at byte {offset}: "
                                              f"block length {block_len} (type 0x{block_type:08x})")
                    return
                if file_size is not None and offset + block_len > file_size:
                    self.truncated = (offset, f"file ends inside the pcapng block at byte {offset} "
                                              f"(type 0x{block_type:08x}, {block_len} bytes, "
                                              f"{file_size - offset} present)")
                    return
                rest = read(block_len - 8)  # body and trailing length
                if len(rest) != block_len - 8:
                    self.truncated = (offset, f"file ends inside the pcapng block at byte {offset} "
                                              f"(type 0x{block_type:08x}, {block_len} bytes, "
                                              f"{len(rest) + 8} present)")
                    return
                if unpack_u32(rest, block_len - 12)[0] != block_len:
                    self.truncated = (offset, f"corrupt pcapng block at byte {offset}: lengths at "
                                              f"start ({block_len}) and end differ")
                    return
                if block_read is not None:
                    block_read(block_type)

                packet = self._pcapng_block(block_type, block_len, rest, last_ts)
                if packet is not None:
                    frame_no += 1  # Wireshark numbers these blocks
                    if packet is not _NUMBERED_ONLY:
                        self.packet_count += 1
                        last_ts, linktype, data = packet
                        yield frame_no, last_ts, linktype, data, 0, len(data)
                # Any other block (NRB, ISB, unknown) carries nothing we use.
                offset += block_len
        except _STREAM_ERRORS as exc:  # one clause: compiled, `exc` has the type of its first clause
            if isinstance(exc, _CorruptBlock):
                self.truncated = (offset, f"bad pcapng block at byte {offset}: {exc}")
            else:
                self.truncated = (offset, _stream_error_message(offset, frame_no, exc, self.compressed))

    def _pcapng_block(self, block_type: int, block_len: int, rest: bytes, last_ts: float):
        """One pcapng block after its 8-byte head: (ts, linktype, data) for a packet,
        _NUMBERED_ONLY for a block Wireshark numbers without a packet, None otherwise.

        Shared by the file reader and the pipe reader; raises _CorruptBlock.
        """
        if self._unpackers_endian != self.endian:  # a new section may change byte order
            e = self._unpackers_endian = self.endian
            self._unpackers = (struct.Struct(e + "I").unpack_from, struct.Struct(e + "IIII").unpack_from,
                               struct.Struct(e + "HxxIII").unpack_from)
        unpack_u32, unpack_epb, unpack_pb = self._unpackers
        interfaces = self._section_interfaces
        if block_type == 6 or block_type == 2:  # Enhanced Packet Block, obsolete Packet Block
            # The same layout but for the interface id: 32 bits in an EPB, 16 bits and a
            # 16-bit drop count in a PB.
            if block_len < 32:
                raise _CorruptBlock(f"{_PACKET_BLOCK_NAMES[block_type]} too short ({block_len} bytes)")
            interface_id, ts_high, ts_low, caplen = (unpack_epb if block_type == 6 else unpack_pb)(rest, 0)
            if caplen > block_len - 32:
                raise _CorruptBlock(f"{_PACKET_BLOCK_NAMES[block_type]} claims {caplen} captured "
                                    f"bytes, holds {block_len - 32}")
            if interface_id >= len(interfaces):
                raise _CorruptBlock(f"packet on interface {interface_id}, but the section "
                                    f"describes {len(interfaces)}")
            linktype, ticks_per_second, offset_ticks, _snaplen = interfaces[interface_id]
            return ((((ts_high << 32) | ts_low) + offset_ticks) / ticks_per_second, linktype,
                    rest[20:20 + caplen])
        if block_type == 3:  # Simple Packet Block: interface 0, no timestamp
            if not interfaces:
                raise _CorruptBlock("Simple Packet Block in a section without interfaces")
            if block_len < 16:
                raise _CorruptBlock(f"Simple Packet Block too short ({block_len} bytes)")
            linktype, _tps, _offset_ticks, snaplen = interfaces[0]
            (wirelen,) = unpack_u32(rest, 0)
            caplen = min(wirelen, snaplen) if snaplen else wirelen
            if caplen > block_len - 16:
                raise _CorruptBlock(f"Simple Packet Block needs {caplen} captured bytes, "
                                    f"holds {block_len - 16}")
            # No timestamp in an SPB (tshark shows none): reuse the previous packet's so
            # that times stay monotonic for gap measurement.
            return last_ts, linktype, rest[4:4 + caplen]
        if block_type == 1:
            self._read_block_idb(memoryview(rest)[:block_len - 12])
        elif block_type == 10:
            self._read_block_dsb(memoryview(rest)[:block_len - 12])
        elif block_type in _NUMBERED_NON_PACKET_BLOCKS:
            return _NUMBERED_ONLY
        # Any other block (NRB, ISB, unknown) carries nothing we use.
        return None

def _stream_error_message(offset: int, frame_no: int, exc: BaseException, compressed: bool) -> str:
    detail = str(exc) or type(exc).__name__
    of_what = " of the decompressed data" if compressed else ""
    return f"reading stopped after frame {frame_no} at byte {offset}{of_what}: {detail}"


# The capture path that means standard input (`tcpdump -w - | dgcap report -`).  It is also
# the capture's name in reports and error lines, as typed.
STDIN = "-"


class _CountingPipe(io.RawIOBase):
    """A pipe's reads, counted: a pipe has neither a size nor a position to ask."""

    def __init__(self, raw: io.FileIO):
        super().__init__()
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._raw.readinto(buffer)
        if n:
            self.count += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class Capture:
    """An open capture file.  Iterate `packets()` once; `truncated` is final when it ends.

    Frame numbers may skip: a pcapng custom block takes a Wireshark number but is
    not a packet.  A pipe (`-`, a FIFO, /dev/stdin, `<(...)`) is read the same way, in
    the same bounded buffers, by the same record loops; only its size is known at the end
    (`read_to_end()`).
    """

    def __init__(self, path: str, reader, fmt: str, compressed: bool, size: int,
                 pipe: Optional[_CountingPipe] = None):
        self.path = path
        self.format = fmt
        self.compressed = compressed
        self._size = size
        self._pipe = pipe
        self._reader = reader
        self._raw_file = reader.f.fileobj if compressed else reader.f
        self._started = False
        self._closed_bytes_read: Optional[int] = None

    @property
    def streamed(self) -> bool:
        """Read from a pipe: it can be read only once (no second pass, no second engine)."""
        return self._pipe is not None

    @property
    def size(self) -> int:
        """Bytes in the file; for a pipe, the bytes read so far (all of them after read_to_end())."""
        return self._pipe.count if self._pipe is not None else self._size

    def read_to_end(self) -> None:
        """For a pipe whose records ended early (a corrupt record): count the rest of its bytes
        without keeping them, so that `size` is what the same bytes in a file would give, and
        the program writing into the pipe is not cut off."""
        if self._pipe is None or self._pipe.closed:
            return
        chunk = bytearray(_READ_BUFFER)
        try:
            while self._pipe.readinto(chunk):
                pass
        except OSError:
            pass

    def packets(self) -> Iterator[tuple]:
        """Yield (frame_no, ts, linktype, data) in file order; frame_no is Wireshark's No."""
        self._start()
        return self._reader.records()

    def spans(self) -> Iterator[tuple]:
        """packets() without cutting each packet out: (frame_no, ts, linktype, buf, start,
        end), the packet is buf[start:end] (PacketDecoder.decode takes it so)."""
        self._start()
        return self._reader.spans()

    def _start(self) -> None:
        if self._started:
            raise RuntimeError("Capture.packets() can be iterated only once")
        self._started = True

    @property
    def packet_count(self) -> int:
        return self._reader.packet_count

    @property
    def truncated(self) -> Optional[tuple]:
        return self._reader.truncated

    @property
    def secrets(self) -> list:
        return self._reader.secrets

    @property
    def interfaces(self) -> list:
        return self._reader.interfaces

    @property
    def bytes_read(self) -> int:
        if self._closed_bytes_read is not None:
            return self._closed_bytes_read
        if self._pipe is not None:
            return self._pipe.count
        try:
            fast = getattr(self._reader, "_fast_file", None)  # see _read_function()
            if fast is not None:
                return fast.tell()
            return self._raw_file.tell()  # compressed bytes for gzip: comparable to size
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        if self._closed_bytes_read is None:
            self._closed_bytes_read = self.bytes_read
            fast = getattr(self._reader, "_fast_file", None)
            if fast is not None:
                fast.close()  # closefd=False: the descriptor is the reader's to close
            self._reader.close()

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def is_pipe(path: str) -> bool:
    """Is this capture path read as a stream: `-`, or a FIFO, /dev/stdin, `<(...)`, a device?"""
    if path == STDIN:
        return True
    try:
        st = os.stat(path)
    except OSError:
        return False
    return not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode)


def open_capture(path) -> Capture:
    """Open a pcap or pcapng file (gzip-compressed or not, detected by content), or a pipe:
    `-` (standard input), a FIFO, /dev/stdin, a process substitution `<(...)`."""
    path = os.fspath(path)
    pipe = None
    if path == STDIN:
        pipe = _open_pipe(path, None)
        size = 0
    else:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise CaptureError(f"{path}: no such file") from None
        except OSError as exc:
            raise CaptureError(f"{path}: cannot open: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise CaptureError(f"{path}: is a directory, not a capture file")
        if stat.S_ISREG(st.st_mode):
            if st.st_size == 0:
                raise CaptureError(f"{path}: empty file (0 bytes)")
        else:
            pipe = _open_pipe(path, path)
        size = st.st_size

    fdesc, magic = _open_with_magic(path, pipe)

    compressed = isinstance(fdesc, gzip.GzipFile)
    cls: type[_CaptureFile]
    if magic in _PCAP_MAGICS:
        cls, fmt = _PcapFile, "pcap"
    elif magic == _PCAPNG_MAGIC:
        cls, fmt = _PcapNgFile, "pcapng"
    else:
        _close(fdesc, compressed)
        if pipe is not None and not magic and not compressed:
            raise CaptureError(f"{path}: empty input (0 bytes)")
        raise CaptureError(f"{path}: {_not_a_capture(magic, compressed, pipe is not None)}")

    try:
        reader = cls(path, fdesc, magic)
    except _STREAM_ERRORS as exc:
        _close(fdesc, compressed)
        if isinstance(exc, _CorruptBlock):
            detail = str(exc)
        elif compressed:
            detail = f"the compressed data ends or is corrupt inside the file header ({exc})"
        else:
            detail = str(exc) or f"unreadable {fmt} file header"
        raise CaptureError(f"{path}: not a readable {fmt} file: {detail}") from None
    reader.compressed = compressed
    reader.file_size = None if compressed or pipe is not None else size
    return Capture(path, reader, fmt, compressed, size, pipe)


def _open_pipe(path: str, name: Optional[str]) -> _CountingPipe:
    """The raw, counted reads of standard input (name None) or of the pipe at `path`."""
    try:
        raw = io.FileIO(os.dup(0) if name is None else name, "rb")
    except OSError as exc:
        what = "standard input" if name is None else "it"
        raise CaptureError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if raw.isatty():
        raw.close()
        raise CaptureError(f"{path}: is a terminal, not a capture: pipe one in "
                           f"(tcpdump -w - | dgcap report -)")
    return _CountingPipe(raw)


def _open_with_magic(path: str, pipe: Optional[_CountingPipe] = None) -> tuple:
    """Open a file (or buffer a pipe) and read its first 4 bytes; a gzip file is opened
    through GzipFile and the magic is the first 4 decompressed bytes.  Returns (file
    object, magic)."""
    try:
        raw = open(path, "rb") if pipe is None else io.BufferedReader(pipe, _READ_BUFFER)
    except OSError as exc:
        raise CaptureError(f"{path}: cannot open: {exc.strerror or exc}") from None
    try:
        if raw.peek(2)[:2] != b"\x1f\x8b":
            return raw, raw.read(4)
    except OSError as exc:
        raw.close()
        raise CaptureError(f"{path}: cannot read: {exc.strerror or exc}") from None
    fdesc = gzip.GzipFile(fileobj=raw)
    try:
        return fdesc, fdesc.read(4)
    except _STREAM_ERRORS:
        fdesc.close()
        raw.close()
        raise CaptureError(f"{path}: gzip-compressed, but the compressed data cannot be read") from None


def _close(fdesc, compressed: bool) -> None:
    if compressed:
        fdesc.fileobj.close()
    fdesc.close()


def _not_a_capture(magic: bytes, compressed: bool, pipe: bool = False) -> str:
    where = "gzip-compressed data" if compressed else "input" if pipe else "file"
    if magic in (b"\xa1\xb2\xcd\x34", b"\x34\xcd\xb2\xa1"):
        return (f"{where} is a 'modified' (Kuznetsov) pcap, which is not supported; "
                f"convert it with: editcap -F pcap IN OUT")
    if len(magic) < 4:
        return f"{where} too short to be a capture ({len(magic)} bytes)"
    for prefix, what in _NOT_CAPTURE_HINTS:
        if magic.startswith(prefix):
            return f"{where} is {what}, not a pcap or pcapng capture"
    return f"{where} is not a pcap or pcapng capture (starts with {magic.hex(' ')})"


def looks_like_capture(path: str) -> bool:
    """Is this file a pcap or pcapng (maybe gzip-compressed), by its magic number?  Only
    regular files: opening a FIFO found in a folder would wait for a writer forever, and
    reading its first bytes would take them from whoever reads it next."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    if head in _PCAP_MAGICS or head == _PCAPNG_MAGIC:
        return True
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as g:
                head = g.read(4)
        except (OSError, EOFError):
            return False
        return head in _PCAP_MAGICS or head == _PCAPNG_MAGIC
    return False


def capture_files(paths: list[str]) -> list[str]:
    """Expand folders (recursively) into the capture files inside, found by magic number."""
    out: list[str] = []
    for p in paths:
        if p != STDIN and os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    full = os.path.join(root, name)
                    if looks_like_capture(full):
                        out.append(full)
        else:
            out.append(p)
    return out
