"""pcapng from a pipe (`dumpcap -w -`): packets as their blocks arrive.

`open_capture()` reads files: its pcapng loop checks every block length against the
file size, which a pipe does not have.  `PcapngStream` is the same reader for a
stream: the Section Header, Interface Description and Decryption Secrets blocks are
parsed by `reader._PcapNgFile`'s own methods; the packet blocks are decoded with the
same rules (frame numbers are Wireshark's, corrupt blocks end the stream with the same
`truncated` messages a file reader gives for a file holding the same bytes).

Every byte read is handed to `on_block(block_type, raw_bytes)` once its block is
complete (`block_type` None for the partial block a cut stream ends in), so a copy
written by the caller is the exact file a file reader would analyse identically.

    stream = open_stream(proc.stdout, on_block=writer.block)  # reads the first SHB
    for frame_no, ts, linktype, data in stream.packets():
        ...
"""
from __future__ import annotations

import struct
from typing import Callable, Iterator, Optional

from .reader import (_MAX_BLOCK_LEN, _NUMBERED_ONLY, _PCAPNG_MAGIC, _SHB_TYPE,
                     CaptureError, _CorruptBlock, _PcapNgFile)

BlockSink = Callable[[Optional[int], bytes], None]


class _TeeReader:
    """The file object handed to the reader: read() keeps what it returns for the tee."""

    def __init__(self, stream, owner: "PcapngStream"):
        self._stream_read = stream.read
        self._stream = stream
        self._owner = owner

    def read(self, n: int = -1) -> bytes:
        data = self._stream_read(n)
        if data:
            self._owner._pending += data
            self._owner.bytes_read += len(data)
        return data

    def close(self) -> None:
        self._stream.close()


class PcapngStream(_PcapNgFile):
    """A pcapng stream (blocking reads until each block is complete).

    Same interface as `reader.Capture` where the pipeline and `capture_findings` need
    it: `packets()`, `packet_count`, `truncated`, `secrets`, `interfaces`, `format`,
    `compressed`, `bytes_read`.  Raises CaptureError when the stream does not start
    with a readable pcapng Section Header Block.
    """

    format = "pcapng"
    compressed = False

    # Built by open_stream(), which calls _start() on a bare instance: _PcapNgFile's
    # __init__ reads the first SHB, which here needs the tee set up first.
    def _start(self, stream, on_block: Optional[BlockSink], name: str) -> None:
        self.path = name
        self.bytes_read = 0
        self._pending = bytearray()
        self._on_block = on_block
        self._started = False
        tee = _TeeReader(stream, self)
        magic = tee.read(4)
        if len(magic) != 4:
            self._emit(None)
            raise CaptureError(f"{name}: the capture stream ended before its first block "
                               f"({len(magic)} bytes)")
        if magic != _PCAPNG_MAGIC:
            self._emit(None)
            raise CaptureError(f"{name}: not a pcapng stream (starts with {magic.hex(' ')})")
        try:
            _PcapNgFile.__init__(self, name, tee, magic)
        except Exception as exc:  # _CorruptBlock (an EOFError), or the stream failing
            self._emit(None)
            raise CaptureError(f"{name}: not a readable pcapng stream: "
                               f"{exc or 'unreadable Section Header Block'}") from None
        self._emit(_SHB_TYPE)

    @property
    def size(self) -> int:
        return self.bytes_read

    def _emit(self, block_type: Optional[int]) -> None:
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            if self._on_block is not None:
                self._on_block(block_type, data)

    def packets(self) -> Iterator[tuple]:
        """Yield (frame_no, ts, linktype, data) as blocks arrive; ends with the stream."""
        if self._started:
            raise RuntimeError("PcapngStream.packets() can be iterated only once")
        self._started = True
        try:
            yield from self._records()
        finally:
            self._emit(None)  # the bytes of a block cut short, if the stream ended in one

    def _records(self) -> Iterator[tuple]:
        read = self._read
        offset = self._shb_len
        frame_no = 0
        last_ts = 0.0
        endian = self.endian
        unpack_head = struct.Struct(endian + "II").unpack
        unpack_u32 = struct.Struct(endian + "I").unpack_from
        emit = self._emit
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
                    emit(_SHB_TYPE)
                    offset += self._shb_len
                    endian = self.endian
                    unpack_head = struct.Struct(endian + "II").unpack
                    unpack_u32 = struct.Struct(endian + "I").unpack_from
                    continue
                if block_len < 12 or block_len & 3 or block_len > _MAX_BLOCK_LEN:
                    self.truncated = (offset, f"corrupt pcapng block at byte {offset}: "
                                              f"block length {block_len} (type 0x{block_type:08x})")
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
                emit(block_type)

                packet = self._pcapng_block(block_type, block_len, rest, last_ts)
                if packet is not None:
                    frame_no += 1  # Wireshark numbers these blocks
                    if packet is not _NUMBERED_ONLY:
                        self.packet_count += 1
                        last_ts, linktype, data = packet
                        yield frame_no, last_ts, linktype, data
                offset += block_len
        except _CorruptBlock as exc:
            self.truncated = (offset, f"bad pcapng block at byte {offset}: {exc}")
        except (EOFError, OSError) as exc:
            self.truncated = (offset, f"reading stopped after frame {frame_no} at byte {offset}: "
                                      f"{exc or type(exc).__name__}")


def open_stream(stream, on_block: Optional[BlockSink] = None, name: str = "-") -> PcapngStream:
    """Read a pcapng stream's first Section Header Block; CaptureError if it has none."""
    reader = PcapngStream.__new__(PcapngStream)  # (object.__new__ refuses a compiled base)
    reader._start(stream, on_block, name)
    return reader
