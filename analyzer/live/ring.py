"""The raw capture kept for the ticket: pcapng blocks teed to a file, or a ring of files.

Blocks arrive whole from `capture.stream.PcapngStream` (on_block).  Without a size cap
everything goes to PATH, byte for byte what dumpcap wrote, so `dgcap report PATH`
analyses exactly what the live view analysed (same frame numbers).  With a cap, when
the next packet would push the current file past it, the file is closed and a new one
starts with the section's header blocks (SHB, IDBs, DSBs) so that each file is a valid
pcapng on its own; only the newest `files` are kept.  Ring files are named like
dumpcap's: PATH `x.pcapng` -> `x_00001.pcapng`, `x_00002.pcapng`, ... (the first file is
renamed when the second starts), and frame numbers restart at 1 in every file.

PATH is opened at the first block, so a capture that never starts leaves an existing
file untouched.  A PATH that is not a regular file (a FIFO, /dev/null) is written as a
stream: never rotated, renamed or removed.
"""
from __future__ import annotations

import os
import stat
import threading
import time
from typing import Optional

_SHB, _IDB, _DSB = 0x0A0D0D0A, 1, 10
_PACKET_BLOCKS = frozenset({2, 3, 6})


class RingWriter:
    def __init__(self, path: str, max_bytes: Optional[int] = None, files: int = 2,
                 flush_interval: float = 0.2):
        self.path = path
        try:
            existing = os.stat(path).st_mode
        except FileNotFoundError:
            existing = None
        self.regular = existing is None or stat.S_ISREG(existing)
        self.max_bytes = max_bytes if max_bytes and max_bytes > 0 and self.regular else None
        self.max_files = max(1, files)
        self.flush_interval = flush_interval
        self.bytes_written = 0  # over every file, including deleted ones
        self.error: Optional[str] = None
        self.rotations = 0
        self.deleted: list[str] = []
        self._headers: list[bytes] = []  # header blocks of the current section
        self._file = None  # opened at the first block
        self._closed = False
        self._files: list[str] = []
        self._size = 0
        self._packets_in_file = 0
        self._last_flush = 0.0
        self._lock = threading.Lock()  # block() runs in the reader thread, flush() in any

    @property
    def files(self) -> list[str]:
        """The files written, oldest first (none before the first block)."""
        return list(self._files)

    def block(self, block_type: Optional[int], data: bytes) -> None:
        with self._lock:
            self._block(block_type, data)

    def flush(self) -> None:
        """Push what is buffered to the file (called a few times a second while idle)."""
        with self._lock:
            if self.error is None and self._file is not None and not self._file.closed:
                try:
                    self._file.flush()
                except OSError as e:
                    self.error = f"{self._files[-1]}: {e.strerror or e}"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self.error is None and self._file is not None and not self._file.closed:
                try:
                    self._file.close()
                except OSError as e:
                    self.error = f"{self._files[-1]}: {e.strerror or e}"

    def _block(self, block_type: Optional[int], data: bytes) -> None:
        if self.error is not None or self._closed:
            return
        try:
            if self._file is None:
                self._file = open(self.path, "wb")
                self._files = [self.path]
            if block_type == _SHB:
                self._headers = [data]
            elif block_type in (_IDB, _DSB):
                self._headers.append(data)
            elif (block_type in _PACKET_BLOCKS and self.max_bytes is not None
                  and self._packets_in_file and self._size + len(data) > self.max_bytes):
                self._rotate()
            self._file.write(data)
            self._size += len(data)
            self.bytes_written += len(data)
            if block_type in _PACKET_BLOCKS:
                self._packets_in_file += 1
            now = time.monotonic()
            if now - self._last_flush >= self.flush_interval:
                self._file.flush()
                self._last_flush = now
        except OSError as e:
            self.error = f"{self._files[-1] if self._files else self.path}: {e.strerror or e}"
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:
                    pass

    def _ring_name(self, n: int) -> str:
        root, ext = os.path.splitext(self.path)
        return f"{root}_{n:05d}{ext or '.pcapng'}"

    def _rotate(self) -> None:
        self._file.close()
        self.rotations += 1
        if self.rotations == 1:
            first = self._ring_name(1)
            os.replace(self.path, first)
            self._files = [first]
        name = self._ring_name(self.rotations + 1)
        self._file = open(name, "wb")
        self._files.append(name)
        while len(self._files) > self.max_files:
            old = self._files.pop(0)
            try:
                os.unlink(old)
            except FileNotFoundError:
                pass
            self.deleted.append(old)
        self._size = 0
        self._packets_in_file = 0
        for header in self._headers:
            self._file.write(header)
            self._size += len(header)
