"""Finding, sniffing and reading an HTTP/1.x message head (start line + header fields).

Tolerant on purpose: this reads what a peer actually sent, so bare LF line ends, obsolete
line folding and whitespace around ':' are accepted.  Only what leaves the head unreadable
is an error.
"""
from __future__ import annotations

import re
from urllib.parse import unquote_plus

_TCHAR = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN = re.compile(rb"[" + _TCHAR + rb"]*")
# Request targets are visible ASCII; bytes >= 0x80 are let through because a sloppy client
# that sends raw UTF-8 is still worth parsing.
_TARGET = re.compile(rb"[^\x00-\x20\x7f]*")
# The head ends at the first empty line; "\n\n" and "\n\r\n" cover CRLF and bare-LF peers.
HEAD_END = re.compile(rb"\n\r?\n")

# Verdicts on the first bytes of a stream.
NOT_HTTP, TOO_SHORT, PLAUSIBLE, LINE_OK = range(4)
# Sniffing looks at no more than this many bytes: enough for any real method and for most
# request lines, and it keeps per-feed sniffing O(1) when bytes arrive one at a time.
REQUEST_LINE_SNIFF_BYTES = 256

_REQUEST_LINE = re.compile(r"([" + _TCHAR.decode() + r"]+) ([^\x00-\x20\x7f]+) (HTTP/[0-9]\.[0-9])")
_STATUS_LINE = re.compile(r"(HTTP/1\.[0-9]) ([0-9]{3})(?: (.*))?")
_BAD_NAME_CHAR = re.compile(r"[\x00-\x20\x7f]")
_STATUS_PREFIX = b"HTTP/1."


def request_line_state(data: bytes) -> int:
    """How the first bytes of a stream compare with `method SP target SP HTTP/d.d EOL`."""
    method_end = _TOKEN.match(data).end()
    if method_end == len(data):
        return TOO_SHORT
    if method_end == 0 or data[method_end] != 0x20:
        return NOT_HTTP
    target_start = method_end + 1
    target_end = _TARGET.match(data, target_start).end()
    if target_end == len(data):
        return PLAUSIBLE
    if target_end == target_start or data[target_end] != 0x20:
        return NOT_HTTP
    return _version_line_state(data[target_end + 1:])


def _version_line_state(tail: bytes) -> int:
    for i, expected in enumerate(b"HTTP/#.#"):
        if i == len(tail):
            return PLAUSIBLE
        if expected == 0x23:  # '#': a digit
            if not 0x30 <= tail[i] <= 0x39:
                return NOT_HTTP
        elif tail[i] != expected:
            return NOT_HTTP
    line_end = tail[8:10]
    if line_end in (b"", b"\r"):
        return PLAUSIBLE
    if line_end[:1] == b"\n" or line_end == b"\r\n":
        return LINE_OK
    return NOT_HTTP


def status_line_state(data: bytes) -> int:
    """How the first bytes of a stream compare with `HTTP/1.`."""
    seen = min(len(data), len(_STATUS_PREFIX))
    if data[:seen] != _STATUS_PREFIX[:seen]:
        return NOT_HTTP
    return PLAUSIBLE if seen == len(_STATUS_PREFIX) else TOO_SHORT


def looks_like_request(data) -> bool:
    """True when `data` starts like an HTTP request line (at least "GET " seen, nothing contradicting)."""
    return request_line_state(bytes(data[:REQUEST_LINE_SNIFF_BYTES])) >= PLAUSIBLE


def looks_like_response(data) -> bool:
    """True when `data` starts with "HTTP/1."."""
    return status_line_state(bytes(data[:len(_STATUS_PREFIX)])) == PLAUSIBLE


def head_lines(head: bytes) -> list[str]:
    """The lines of a complete head (which ends with its empty line), without line ends."""
    lines = [line_text(line.rstrip(b"\r")) for line in head.split(b"\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def line_text(line: bytes) -> str:
    # Servers put UTF-8 into headers such as dg-error; latin-1 is the fallback that
    # never fails, so odd bytes still show up as evidence instead of an exception.
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("latin-1")


def parse_request_line(line: str) -> tuple[str, str, str] | None:
    """(method, target, version), or None when the line is not a request line."""
    match = _REQUEST_LINE.fullmatch(line)
    return match.groups() if match else None


def parse_status_line(line: str) -> tuple[str, int, str] | None:
    """(version, status, reason), or None.  The reason is kept as sent and may be empty."""
    match = _STATUS_LINE.fullmatch(line)
    if not match:
        return None
    version, status, reason = match.groups()
    return version, int(status), reason or ""


def parse_fields(lines: list[str]) -> tuple[list[list[str]], str | None]:
    """Header (or trailer) field lines -> ([[name, value], ...], error)."""
    fields: list[list[str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            # Obsolete line folding (RFC 9112 §5.2): the line continues the previous value.
            if not fields:
                return fields, f"malformed header line (continuation with no field before it): {clip(line)!r}"
            continuation = line.strip(" \t")
            if continuation:
                previous = fields[-1][1]
                fields[-1][1] = f"{previous} {continuation}" if previous else continuation
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not name or _BAD_NAME_CHAR.search(name):
            return fields, f"malformed header line: {clip(line)!r}"
        fields.append([name, value.strip(" \t")])
    return fields, None


def parse_query(query: str) -> dict[str, str | list[str]]:
    """`a=1&b=2&b=3&c` -> {"a": "1", "b": ["2", "3"], "c": ""}; percent and '+' decoded."""
    params: dict[str, str | list[str]] = {}
    for piece in query.split("&"):
        if not piece:
            continue
        raw_name, _, raw_value = piece.partition("=")
        name, value = unquote_plus(raw_name), unquote_plus(raw_value)
        if name not in params:
            params[name] = value
        elif isinstance(params[name], list):
            params[name].append(value)
        else:
            params[name] = [params[name], value]
    return params


def clip(text, limit: int = 80):
    """A prefix short enough for a one-line error message."""
    return text if len(text) <= limit else text[:limit] + ("..." if isinstance(text, str) else b"...")
