"""Every WebSocket message of every session, in order: what `dgcap messages` prints and what
the HAR export's `_webSocketMessages` holds.

Collected through the pipeline's message hook while the capture is analysed; text is
unmasked and inflated by the WebSocket layer; binary payloads are reduced to their length
and SHA-256 (their bytes are kept only when asked, for `--har-binary`).  Secrets are
redacted as each session ends (before the report's own redaction masks the structured
places that tell which literal strings are secrets).
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Optional

from .model import DIRECTION_NAMES
from .websocket import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, OPCODE_NAMES
# Binary payload bytes the WebSocket layer keeps per message while collecting (the SHA-256
# needs them all); a longer message gets the hash of what was kept, marked partial.
KEEP_BINARY = 16 << 20


@dataclass
class LoggedMessage:
    direction: int  # CLIENT or SERVER
    opcode: int
    frame: int  # frame number of the last fragment (Wireshark's No.)
    time: float  # epoch seconds of that frame
    size: int  # payload bytes after inflation
    wire_size: int  # payload bytes on the wire
    compressed: bool
    complete: bool  # False when bytes were missing from the capture or inflation stopped
    fragments: int = 1
    first_frame: Optional[int] = None  # frame of the first fragment
    text: Optional[str] = None  # text messages, and the payload of ping/pong when it is text
    sha256: Optional[str] = None  # binary messages (of the kept bytes; see hashed_bytes)
    hashed_bytes: int = 0
    data: Optional[bytes] = None  # binary payload, only when kept for --har-binary
    close_code: Optional[int] = None
    close_reason: Optional[str] = None

    @property
    def direction_name(self) -> str:
        return DIRECTION_NAMES[self.direction]

    @property
    def kind(self) -> str:
        return OPCODE_NAMES.get(self.opcode, f"reserved-{self.opcode}")

    @property
    def whole_hash(self) -> bool:
        return self.sha256 is not None and self.hashed_bytes == self.size

    def to_json(self) -> dict:
        out = {"frame": self.frame, "time": self.time, "direction": self.direction_name,
               "opcode": self.opcode, "type": self.kind, "length": self.size}
        if self.fragments > 1:
            out["fragments"] = self.fragments
            out["first_frame"] = self.first_frame
        if self.compressed:
            out["wire_length"] = self.wire_size
        if not self.complete:
            out["complete"] = False
        if self.text is not None:
            out["text"] = self.text
        if self.sha256 is not None:
            out["sha256"] = self.sha256
            if not self.whole_hash:
                out["sha256_of_first_bytes"] = self.hashed_bytes
        if self.opcode == OP_CLOSE:
            out["close_code"] = self.close_code
            out["close_reason"] = self.close_reason
        return out


class MessageLog:
    """Collects the messages of every session: `attach(options)` installs the hook."""

    def __init__(self, keep_binary_data: bool = False, redact: bool = True):
        self.keep_binary_data = keep_binary_data
        self.redact_secrets = redact
        self._by_session: dict[int, list[LoggedMessage]] = {}  # id(session) -> messages

    def attach(self, options):
        """A copy of the pipeline Options that feeds this log (and any hook already there)."""
        previous = options.message_hook
        previous_end = options.session_hook

        def hook(session, direction, message, previous=previous):
            if previous is not None:
                previous(session, direction, message)
            self.add(session, direction, message)

        def session_end(session, previous_end=previous_end):
            if self.redact_secrets:
                self.redact(session)
            if previous_end is not None:
                previous_end(session)
        return dataclasses.replace(options, message_hook=hook, session_hook=session_end,
                                   keep_binary=max(options.keep_binary, KEEP_BINARY))

    def add(self, session, direction: int, m) -> None:
        data = bytes(m.data)
        logged = LoggedMessage(direction=direction, opcode=m.opcode, frame=m.frame, time=m.time,
                               size=m.size, wire_size=m.wire_size, compressed=m.compressed,
                               complete=m.complete, fragments=m.fragments, first_frame=m.first_frame)
        if m.opcode == OP_TEXT:
            logged.text = data.decode("utf-8", "replace")
        elif m.opcode == OP_CLOSE:
            logged.close_code, logged.close_reason = m.close_code, m.close_reason
        elif m.opcode in (OP_PING, OP_PONG):
            logged.text = data.decode("utf-8", "replace") if data else ""
        else:
            logged.sha256 = hashlib.sha256(data).hexdigest()
            logged.hashed_bytes = len(data)
            if self.keep_binary_data:
                logged.data = data
        self._by_session.setdefault(id(session), []).append(logged)

    def messages(self, session) -> list[LoggedMessage]:
        """The session's messages in capture order (by the frame that completed them)."""
        found = self._by_session.get(id(session), [])
        found.sort(key=lambda m: m.frame)  # stable: same-frame messages keep their order
        return found

    def redact(self, session) -> None:
        """Mask secrets in the session's logged text (before redact_session masks the session)."""
        from .redact import redact_json_text, redact_text, session_secrets
        literals = session_secrets(session)
        for m in self._by_session.get(id(session), []):
            if m.opcode == OP_TEXT:
                m.text = redact_json_text(m.text, literals)
            elif m.text:
                m.text = redact_text(m.text, literals)
            if m.close_reason:
                m.close_reason = redact_text(m.close_reason, literals)


def binary_summary(m: LoggedMessage, with_length: bool = True) -> str:
    """`3200 bytes, sha256 <hex>` (of the first N bytes when the message was longer)."""
    length = f"{m.size} bytes" if with_length else ""
    if m.sha256 is None:
        return length
    scope = "" if m.whole_hash else f" of the first {m.hashed_bytes} bytes"
    return f"{length}{', ' if length else ''}sha256{scope} {m.sha256}"


__all__ = ["MessageLog", "LoggedMessage", "binary_summary"]
