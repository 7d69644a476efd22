"""pcapng from dumpcap's pipe (`dumpcap -w -`) for `dgcap watch`, with a copy of every block.

`PcapngStream` is `reader._PcapNgFile` (the reader of files and of pipes opened by
`open_capture`, same block loop, same messages for a cut or corrupt stream) reading
through a tee.

Every byte read is handed to `on_block(block_type, raw_bytes)` once its block is
complete (`block_type` None for the partial block a cut stream ends in), so a copy
written by the caller is the exact file a file reader would analyse identically.

    stream = open_stream(proc.stdout, on_block=writer.block)  # reads the first SHB
    for frame_no, ts, linktype, data in stream.packets():
        ...
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional

from .reader import _PCAPNG_MAGIC, _SHB_TYPE, CaptureError, _PcapNgFile

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
        self._block_read = self._emit  # records() calls it as each block is read whole
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
            yield from self.records()
        finally:
            self._emit(None)  # the bytes of a block cut short, if the stream ended in one


def open_stream(stream, on_block: Optional[BlockSink] = None, name: str = "-") -> PcapngStream:
    """Read a pcapng stream's first Section Header Block; CaptureError if it has none."""
    reader = PcapngStream.__new__(PcapngStream)  # (object.__new__ refuses a compiled base)
    reader._start(stream, on_block, name)
    return reader
