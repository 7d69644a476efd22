"""Reading handshake response bodies: Deepgram's JSON errors, and any body as safe text."""
from __future__ import annotations

import codecs
import json
from typing import Optional

BODY_TEXT_LIMIT = 64 * 1024
# Deepgram's JSON is a few levels deep; a peer's 100 000 nested brackets must not become a
# RecursionError in a parser or in any later walk over the value (rules, redaction, output).
MAX_JSON_DEPTH = 64


def loads_json(data):
    """json.loads for what a peer sent.  ValueError for anything that is not plain JSON: NaN
    and Infinity (Python accepts them; a JSON report would then not be JSON) are None, and so
    are numbers too large for a float; nesting deeper than MAX_JSON_DEPTH is refused."""
    try:
        if type(data) is str and not data.startswith("\ufeff"):
            obj = _DECODER.decode(data)  # json.loads without building a decoder per call
        else:  # bytes (encoding detected), and a BOM json.loads refuses with its own message
            obj = json.loads(data, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    # Every level of nesting opens with a "[" or "{" character, so text with at most
    # MAX_JSON_DEPTH of them (counted in C, brackets inside strings included) cannot be too
    # deep: the walk below is skipped for nearly every message (a Deepgram Results has ~20).
    # For UTF-16/32 bytes, each bracket character still holds one 0x5B/0x7B byte.
    if isinstance(data, str):
        brackets = data.count("[") + data.count("{")
    else:
        brackets = data.count(b"[") + data.count(b"{")
    if brackets <= MAX_JSON_DEPTH:
        return obj
    stack = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return obj


def _no_constant(name: str) -> None:
    return None


def _finite_float(text: str) -> Optional[float]:
    value = float(text)
    return value if value - value == 0 else None  # inf - inf is nan


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def parse_error_body(body: Optional[bytes], content_type: Optional[str]) -> Optional[dict]:
    """The JSON object in a body, or None.

    Deepgram sends {"err_code", "err_msg", "request_id"} or {"category", "message", "details",
    "request_id"}; callers interpret.  The body is tried when the content type says JSON or it
    looks like an object, because error bodies are not always labelled.
    """
    if not body:
        return None
    data = bytes(body)
    labelled_json = content_type is not None and "json" in content_type.lower()
    looks_like_object = data.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")[:1] == b"{"
    if not (labelled_json or looks_like_object):
        return None
    try:
        parsed = loads_json(data)  # detects UTF-8/16/32 and a BOM by itself
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def body_text(body: Optional[bytes]) -> str:
    """A body as text: UTF-8 with replacement, at most 64 KiB, then "[... N bytes more]"."""
    if not body:
        return ""
    data = bytes(body)
    if len(data) <= BODY_TEXT_LIMIT:
        return data.decode("utf-8", "replace")
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    # Not final: a character cut by the limit is held back rather than shown as U+FFFD.
    text = decoder.decode(data[:BODY_TEXT_LIMIT])
    held_back = len(decoder.getstate()[0])
    return f"{text}[... {len(data) - BODY_TEXT_LIMIT + held_back} bytes more]"
