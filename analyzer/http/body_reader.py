"""Reading one message body off the byte stream: by Content-Length, chunked, or until close."""
from __future__ import annotations

import re

from .head import clip, line_text, parse_fields

LENGTH, CHUNKED, UNTIL_CLOSE = "length", "chunked", "until-close"

# chunk-size [ chunk-ext ]; whitespace around the size is tolerated (some servers pad it).
_CHUNK_SIZE_LINE = re.compile(rb"[ \t]*([0-9A-Fa-f]+)[ \t]*(?:;.*)?", re.S)

# Where a chunked reader is in the stream.
_SIZE_LINE, _DATA, _DATA_END, _TRAILERS = range(4)


class BodyReader:
    """Consumes a body; keeps at most `max_body_bytes` of it but counts all of it."""

    def __init__(self, framing: str, max_body_bytes: int, max_line_bytes: int, length: int = 0):
        self.framing = framing
        self.body = bytearray()
        self.size = 0
        self.trailers: list[list[str]] = []
        self.complete = framing == LENGTH and length == 0
        self.error: str | None = None
        self._max_body_bytes = max_body_bytes
        self._max_line_bytes = max_line_bytes
        self._length = length
        self._state = _SIZE_LINE
        self._chunk_left = 0
        self._line = bytearray()
        self._trailer_lines: list[str] = []
        self._trailer_bytes = 0

    def feed(self, data: bytes) -> int:
        """Consume from `data`; returns how many bytes belong to this body."""
        if self.complete or self.error is not None:
            return 0
        if self.framing == UNTIL_CLOSE:
            self._keep(data)
            return len(data)
        if self.framing == LENGTH:
            take = min(self._length - self.size, len(data))
            self._keep(data[:take])
            self.complete = self.size == self._length
            return take
        return self._feed_chunked(data)

    def finish(self) -> None:
        """The connection ended: only an until-close body is complete now."""
        if self.complete or self.error is not None:
            return
        if self.framing == UNTIL_CLOSE:
            self.complete = True
        elif self.framing == LENGTH:
            self.error = f"connection closed after {self.size} of {self._length} body bytes"
        elif self._state == _TRAILERS:
            self.error = "connection closed inside the chunked trailer section"
        else:
            self.error = f"connection closed before the last chunk ({self.size} body bytes decoded)"

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        room = self._max_body_bytes - len(self.body)
        if room > 0:
            self.body += data[:room]

    def _feed_chunked(self, data: bytes) -> int:
        pos = 0
        while pos < len(data) and not self.complete and self.error is None:
            if self._state == _DATA:
                take = min(self._chunk_left, len(data) - pos)
                self._keep(data[pos:pos + take])
                pos += take
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._state = _DATA_END
                continue
            line, pos = self._take_line(data, pos)
            if line is not None:
                self._chunked_line(line)
        return pos

    def _take_line(self, data: bytes, pos: int) -> tuple[bytes | None, int]:
        # Lines may be split across feeds anywhere, even between "\r" and "\n".
        newline = data.find(b"\n", pos)
        if newline < 0:
            self._line += data[pos:]
            if len(self._line) > self._max_line_bytes:
                self.error = f"chunked body line longer than {self._max_line_bytes} bytes"
            return None, len(data)
        self._line += data[pos:newline]
        line = bytes(self._line).rstrip(b"\r")
        self._line.clear()
        if len(line) > self._max_line_bytes:
            self.error = f"chunked body line longer than {self._max_line_bytes} bytes"
            return None, newline + 1
        return line, newline + 1

    def _chunked_line(self, line: bytes) -> None:
        if self._state == _SIZE_LINE:
            match = _CHUNK_SIZE_LINE.fullmatch(line)
            if match is None:
                self.error = f"invalid chunk size line: {clip(line, 40)!r}"
                return
            self._chunk_left = int(match.group(1), 16)
            self._state = _DATA if self._chunk_left else _TRAILERS
        elif self._state == _DATA_END:
            if line:
                self.error = f"chunk data not followed by a line end: {clip(line, 40)!r}"
            else:
                self._state = _SIZE_LINE
        else:  # _TRAILERS
            if line:
                self._trailer_bytes += len(line) + 2
                if self._trailer_bytes > self._max_line_bytes:
                    self.error = f"chunked trailer section longer than {self._max_line_bytes} bytes"
                    return
                self._trailer_lines.append(line_text(line))
                return
            self.trailers, self.error = parse_fields(self._trailer_lines)
            self.complete = self.error is None
