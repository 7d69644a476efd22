"""The WebSocket parts of the Upgrade handshake: the accept key and extension negotiation."""
from __future__ import annotations

import base64
import hashlib
from typing import Optional

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_SPACE = " \t"
_TOKEN_END = ' \t,;="'
# RFC 7692 §7.1.2: decimal 8..15, no leading zeros.
_WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}
_DEFLATE = "permessage-deflate"


def is_websocket_upgrade(request) -> bool:
    """Does this HTTP request ask for a WebSocket (Upgrade: websocket, or a Sec-WebSocket-Key)?"""
    upgrade = (request.header("upgrade") or "").lower()
    return "websocket" in upgrade or request.header("sec-websocket-key") is not None


def websocket_accept(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1((key + WEBSOCKET_GUID).encode("utf-8", "surrogateescape")).digest()
    return base64.b64encode(digest).decode("ascii")


def parse_extensions(value: Optional[str]) -> list[tuple[str, dict[str, Optional[str]]]]:
    """Sec-WebSocket-Extensions (several headers joined with ",") -> [(name, {param: value})].

    A parameter without "=" has the value None; quoted values are unquoted.  When a parameter
    repeats, the first value is kept (deflate_agreement reports the repeat).
    """
    extensions = []
    for name, params in _extension_list(value or ""):
        first_values: dict[str, Optional[str]] = {}
        for param, param_value in params:
            first_values.setdefault(param, param_value)
        extensions.append((name, first_values))
    return extensions


def deflate_agreement(response_extensions: Optional[str]) -> Optional[dict]:
    """The permessage-deflate parameters the server agreed to (RFC 7692), or None.

    Judges a *response* header, where window bits need a value.  Problems go into "error"
    (several joined with "; "); the other keys then hold the usable values and defaults.
    """
    offers = [params for name, params in _extension_list(response_extensions or "")
              if name.lower() == _DEFLATE]
    if not offers:
        return None
    agreement: dict = {"server_no_context_takeover": False, "client_no_context_takeover": False,
                       "server_max_window_bits": 15, "client_max_window_bits": 15}
    problems = []
    if len(offers) > 1:
        # The server accepts at most one offer (RFC 7692 §5); the first is what gets used.
        problems.append(f"{_DEFLATE} appears {len(offers)} times")
    seen = set()
    for name, value in offers[0]:
        key = name.lower()
        if key in seen:
            problems.append(f"duplicate parameter {name}")
            continue
        seen.add(key)
        if key in ("server_no_context_takeover", "client_no_context_takeover"):
            agreement[key] = True
            if value is not None:
                problems.append(f"{name} must not have a value (got {value!r})")
        elif key in ("server_max_window_bits", "client_max_window_bits"):
            if value in _WINDOW_BITS:
                agreement[key] = _WINDOW_BITS[value]
            elif value is None:
                problems.append(f"{name} without a value")
            else:
                problems.append(f"{name}={value!r} is not 8..15")
        else:
            problems.append(f"unknown parameter {name}")
    if problems:
        agreement["error"] = "; ".join(problems)
    return agreement


def _extension_list(value: str) -> list[tuple[str, list[tuple[str, Optional[str]]]]]:
    # RFC 6455 §9.1: extension *( ";" param [ "=" (token | quoted-string) ] ), comma-separated.
    # Text outside the grammar is skipped up to the next "," so one bad element does not
    # hide the others.
    extensions = []
    pos, end = 0, len(value)
    while pos < end:
        name, pos = _token(value, pos)
        params = []
        pos = _skip_space(value, pos)
        while pos < end and value[pos] == ";":
            param, pos = _token(value, pos + 1)
            pos = _skip_space(value, pos)
            param_value = None
            if pos < end and value[pos] == "=":
                pos = _skip_space(value, pos + 1)
                if pos < end and value[pos] == '"':
                    param_value, pos = _quoted(value, pos + 1)
                else:
                    param_value, pos = _token(value, pos)
                pos = _skip_space(value, pos)
            if param:
                params.append((param, param_value))
        comma = value.find(",", pos)
        pos = end if comma < 0 else comma + 1
        if name:
            extensions.append((name, params))
    return extensions


def _skip_space(value: str, pos: int) -> int:
    while pos < len(value) and value[pos] in _SPACE:
        pos += 1
    return pos


def _token(value: str, pos: int) -> tuple[str, int]:
    start = pos = _skip_space(value, pos)
    while pos < len(value) and value[pos] not in _TOKEN_END:
        pos += 1
    return value[start:pos], pos


def _quoted(value: str, pos: int) -> tuple[str, int]:
    # `pos` is just after the opening quote; an unterminated string runs to the end.
    chars = []
    while pos < len(value):
        char = value[pos]
        if char == '"':
            return "".join(chars), pos + 1
        if char == "\\" and pos + 1 < len(value):
            pos += 1
            char = value[pos]
        chars.append(char)
        pos += 1
    return "".join(chars), pos
