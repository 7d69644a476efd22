"""Reading handshake response bodies: Deepgram's JSON errors, and any body as safe text."""
from __future__ import annotations

import codecs
import json
from typing import Optional

BODY_TEXT_LIMIT = 64 * 1024


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
        parsed = json.loads(data)  # detects UTF-8/16/32 and a BOM by itself
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
