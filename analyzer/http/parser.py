"""Sans-I/O parsers for one HTTP/1.x request or response (the WebSocket Upgrade handshake).

Feed them one direction's reassembled TCP bytes in chunks of any size.  They buffer only until
the head ends (plus a body when framing says there is one), hand back the parsed message once,
and keep every byte after it in `leftover`: after a 101 those are WebSocket frames that can
share a segment with the response, and losing them would lose the first frames.

Bad input never raises: `error` gets a one-line reason.  An error together with a returned
message means the head was readable but the body was not (or was cut short); the bytes
after such a fault are dropped, since nothing after it can be framed.
"""
from __future__ import annotations

import re
from typing import Optional

from .body_reader import CHUNKED, LENGTH, UNTIL_CLOSE, BodyReader
from .head import (HEAD_END, NOT_HTTP, PLAUSIBLE, REQUEST_LINE_SNIFF_BYTES, TOO_SHORT, clip,
                   head_lines, parse_fields, parse_query, parse_request_line, parse_status_line,
                   request_line_state, status_line_state)
from .message import Request, Response

_DIGITS = re.compile(r"[0-9]+")


class _MessageParser:
    _kind = "message"

    def __init__(self, max_header_bytes: int, max_body_bytes: int):
        self.error: Optional[str] = None
        self._max_header_bytes = max_header_bytes
        self._max_body_bytes = max_body_bytes
        self._head = bytearray()
        self._scan_from = 0
        self._sniffing = True
        self._message = None
        self._body: Optional[BodyReader] = None
        self._done = False
        self._leftover = bytearray()

    @property
    def leftover(self) -> bytes:
        """The bytes after the complete message (empty until then, and when there are none)."""
        return bytes(self._leftover)

    def feed(self, data):
        """Consume a chunk; returns the message the one time it becomes complete, else None."""
        if self._done:
            if self.error is None:
                self._leftover += data
            return None
        if self.error is not None:
            return None
        if self._message is None:
            rest = self._feed_head(data)
            if rest is None:
                return None
            if self.error is not None:  # head readable, body framing not
                return self._complete(b"")
        else:
            rest = bytes(data)
        if self._body is not None:
            used = self._body.feed(rest)
            if self._body.error is None and not self._body.complete:
                return None
            rest = rest[used:] if self._body.error is None else b""
        return self._complete(rest)

    @property
    def head(self):
        """The message as soon as its head is parsed (its body may still be coming), else None."""
        return self._message

    def finish(self):
        """The connection ended.  Returns the message if its head was complete, else None."""
        if self._message is None:
            if self.error is None:
                self.error = (f"connection closed before the {self._kind} head was complete "
                              f"({len(self._head)} bytes)" if self._head
                              else f"connection closed before any {self._kind} bytes")
            self._head = bytearray()
            return None
        if not self._done:
            self._body.finish()
            self._complete(b"")
        return self._message

    def _feed_head(self, data) -> Optional[bytes]:
        self._head += data
        if self._sniffing:
            # Reject non-HTTP bytes (TLS, binary) at once instead of buffering up to the limit.
            sample = bytes(self._head[:REQUEST_LINE_SNIFF_BYTES])
            state = self._sniff(sample)
            if state == NOT_HTTP or (state == TOO_SHORT and len(sample) == REQUEST_LINE_SNIFF_BYTES):
                return self._fail_head(f"not an HTTP {self._kind}: starts with {clip(sample, 24)!r}")
            self._sniffing = state == TOO_SHORT or (state == PLAUSIBLE and len(sample) < REQUEST_LINE_SNIFF_BYTES)
        match = HEAD_END.search(self._head, self._scan_from)
        if match is None:
            if len(self._head) >= self._max_header_bytes:
                return self._fail_head(f"{self._kind} header section longer than {self._max_header_bytes} bytes")
            # A blank line may be split across feeds: rescan its possible start next time.
            self._scan_from = max(0, len(self._head) - 2)
            return None
        head_size = match.end()
        if head_size > self._max_header_bytes:
            return self._fail_head(f"{self._kind} header section longer than {self._max_header_bytes} bytes")
        head, rest = bytes(self._head[:head_size]), bytes(self._head[head_size:])
        self._head = bytearray()
        message, error = self._parse_head(head_lines(head))
        if error is not None:
            return self._fail_head(error)
        message.head_size = head_size
        self._message = message
        framing, length, self.error = self._body_framing(message)
        if framing is not None:
            self._body = BodyReader(framing, self._max_body_bytes, self._max_header_bytes, length)
        return rest

    def _fail_head(self, error: str) -> None:
        self.error = error
        self._head = bytearray()
        return None

    def _complete(self, rest: bytes):
        message = self._message
        body = self._body
        if body is not None:
            message.body = bytes(body.body)
            message.body_size = body.size
            message.body_complete = body.complete
            message.chunked = body.framing == CHUNKED
            message.trailers = body.trailers
            if body.error is not None:
                self.error = body.error
        if self.error is not None:
            message.body_complete = False
        self._leftover += rest
        self._done = True
        return message

    # Subclasses: how the stream starts, the start line, and where the body ends.
    def _sniff(self, sample: bytes) -> int:
        raise NotImplementedError

    def _parse_head(self, lines: list[str]):
        raise NotImplementedError

    def _body_framing(self, message) -> tuple[Optional[str], int, Optional[str]]:
        raise NotImplementedError


class RequestParser(_MessageParser):
    """Parses one HTTP/1.x request (normally the client's Upgrade GET)."""
    _kind = "request"

    def __init__(self, max_header_bytes: int = 65536, max_body_bytes: int = 1 << 20):
        super().__init__(max_header_bytes, max_body_bytes)

    def feed(self, data) -> Optional[Request]:
        return super().feed(data)

    def finish(self) -> Optional[Request]:
        return super().finish()

    def _sniff(self, sample: bytes) -> int:
        return request_line_state(sample)

    def _parse_head(self, lines: list[str]):
        request_line = parse_request_line(lines[0]) if lines else None
        if request_line is None:
            return None, f"malformed request line: {clip(lines[0] if lines else '')!r}"
        headers, error = parse_fields(lines[1:])
        if error is not None:
            return None, error
        method, target, version = request_line
        path, _, query = target.partition("?")
        return Request(method, target, path, parse_query(query), version, headers), None

    def _body_framing(self, request: Request):
        codings = _transfer_codings(request)
        if codings:
            if codings[-1] != "chunked":
                # A request cannot be read until close, so its end is unknowable (RFC 9112 §6.3).
                return None, 0, f"request Transfer-Encoding does not end with chunked: {', '.join(codings)!r}"
            return CHUNKED, 0, None
        length, error = _content_length(request)
        if error is not None or length is None:
            return None, 0, error  # no length, no body: requests are never read until close
        return LENGTH, length, None


class ResponseParser(_MessageParser):
    """Parses one HTTP/1.x response; `request_method` decides HEAD/CONNECT body rules."""
    _kind = "response"

    def __init__(self, request_method: str = "GET", max_header_bytes: int = 65536,
                 max_body_bytes: int = 1 << 20):
        super().__init__(max_header_bytes, max_body_bytes)
        self._request_method = request_method

    def feed(self, data) -> Optional[Response]:
        return super().feed(data)

    def finish(self) -> Optional[Response]:
        return super().finish()

    def _sniff(self, sample: bytes) -> int:
        return status_line_state(sample)

    def _parse_head(self, lines: list[str]):
        status_line = parse_status_line(lines[0]) if lines else None
        if status_line is None:
            return None, f"malformed status line: {clip(lines[0] if lines else '')!r}"
        headers, error = parse_fields(lines[1:])
        if error is not None:
            return None, error
        version, status, reason = status_line
        return Response(version, status, reason, headers), None

    def _body_framing(self, response: Response):
        # RFC 9112 §6.3, in its order.  101 lands here: what follows it is another protocol.
        status = response.status
        if (status < 200 or status in (204, 304) or self._request_method == "HEAD"
                or (self._request_method == "CONNECT" and 200 <= status < 300)):
            return None, 0, None
        codings = _transfer_codings(response)
        if codings:
            return (CHUNKED if codings[-1] == "chunked" else UNTIL_CLOSE), 0, None
        length, error = _content_length(response)
        if error is not None:
            return None, 0, error
        if length is None:
            return UNTIL_CLOSE, 0, None
        return LENGTH, length, None


def _transfer_codings(message) -> list[str]:
    return [coding.strip(" \t").lower() for value in message.header_all("transfer-encoding")
            for coding in value.split(",") if coding.strip(" \t")]


def _content_length(message) -> tuple[Optional[int], Optional[str]]:
    values = message.header_all("content-length")
    if not values:
        return None, None
    # "5, 5" or repeated equal headers are one length (RFC 9110 §8.6); anything else is not.
    numbers = {piece.strip(" \t") for value in values for piece in value.split(",")}
    if len(numbers) != 1 or not _DIGITS.fullmatch(next(iter(numbers))):
        return None, f"invalid Content-Length: {clip(', '.join(values))!r}"
    return int(next(iter(numbers))), None
