"""RFC 6455 message assembly (fragmentation, control frames, close) for one direction.

`MessageAssembler.frame(frame)` takes every Frame of one direction in order and
returns `(messages, anomalies)`: the `Message`s that frame completed (a control
frame is its own message, delivered even between the fragments of a data
message) and anomaly tuples `(kind, frame_no, ts, detail)`.  Protocol
violations are reported and the assembler carries on as a tolerant receiver
would; it never raises on what the capture contains.
"""
from __future__ import annotations

import codecs
from typing import Callable, Optional, Sequence

from mypy_extensions import mypyc_attr

from ..limits import PARSER_ANOMALY_RECORDS
from .deflate import Inflater, direction_parameters
from .frames import (OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_TEXT, RSV1, Frame)

__all__ = ["Message", "MessageAssembler", "close_code_name", "close_code_valid",
           "CLOSE_CODE_NAMES"]

# IANA "WebSocket Close Code Number Registry".
CLOSE_CODE_NAMES = {
    1000: "Normal Closure",
    1001: "Going Away",
    1002: "Protocol Error",
    1003: "Unsupported Data",
    1004: "Reserved",
    1005: "No Status Received",
    1006: "Abnormal Closure",
    1007: "Invalid Frame Payload Data",
    1008: "Policy Violation",
    1009: "Message Too Big",
    1010: "Mandatory Extension",
    1011: "Internal Error",
    1012: "Service Restart",
    1013: "Try Again Later",
    1014: "Bad Gateway",
    1015: "TLS Handshake",
    3000: "Unauthorized",
    3003: "Forbidden",
    3008: "Timeout",
}

# Used on its own, an assembler stops returning anomalies after this many; anomaly_counts
# keeps counting.
MAX_ANOMALIES = PARSER_ANOMALY_RECORDS

_NO_ANOMALIES: tuple = ()


def close_code_name(code: Optional[int]) -> str:
    if code is None:
        return CLOSE_CODE_NAMES[1005]
    name = CLOSE_CODE_NAMES.get(code)
    if name is not None:
        return name
    if 3000 <= code <= 3999:
        return "Registered (unassigned)"
    if 4000 <= code <= 4999:
        return "Private Use"
    if 1000 <= code <= 2999:
        return "Unassigned"
    return "Invalid"


def close_code_valid(code: int) -> bool:
    """May this code appear in a close frame (RFC 6455 §7.4, IANA registry)?"""
    if 3000 <= code <= 4999:
        return True
    return 1000 <= code <= 1014 and code not in (1004, 1005, 1006)


class Message:
    """A complete (or abandoned) message, or a control frame, of one direction.

    `data`: text whole up to max_message (inflated if compressed); binary only
    the first keep_binary bytes; a control frame's payload.  `size` is the full
    payload size after inflation, `wire_size` the payload bytes on the wire (no
    headers).  `complete` is False when payload bytes were missing from the
    capture, the final fragment never came, or inflation stopped early.
    """

    __slots__ = ("opcode", "data", "size", "wire_size", "compressed", "fragments",
                 "first_frame", "frame", "start_time", "time", "utf8_valid",
                 "close_code", "close_reason", "complete")

    def __init__(self, opcode: int, data: bytes, size: int, wire_size: int, compressed: bool,
                 first_frame: int, start_time: float, frame: int, time: float) -> None:
        self.opcode = opcode
        self.data = data
        self.size = size
        self.wire_size = wire_size
        self.compressed = compressed
        self.fragments = 1
        self.first_frame = first_frame
        self.frame = frame
        self.start_time = start_time
        self.time = time
        self.utf8_valid: Optional[bool] = None
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self.complete = True

    @property
    def text(self) -> Optional[str]:
        """The text of a text message (invalid UTF-8 replaced), else None."""
        if self.opcode != OP_TEXT:
            return None
        return self.data.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return (f"Message(opcode={self.opcode} size={self.size} wire_size={self.wire_size} "
                f"fragments={self.fragments} compressed={self.compressed} "
                f"frames={self.first_frame}..{self.frame} complete={self.complete})")


def _utf8_error(data: bytes, whole: bool) -> Optional[int]:
    """Offset of the first invalid UTF-8 byte, or None.

    A prefix (`whole` False) may end inside a character without being invalid.
    """
    if data.isascii():
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, whole)
    except UnicodeDecodeError as exc:
        return exc.start
    return None


@mypyc_attr(allow_interpreted_subclasses=True)  # the tshark engine's assembler extends it
class MessageAssembler:
    """Joins one direction's frames into messages and checks RFC 6455/7692 rules.

    frame(frame) -> (messages, anomalies) that frame produced, each list in order found
        (anomalies is an empty tuple when there are none).
    finish() -> (messages, anomalies): a data message left unfinished at the end
        of the stream is delivered with complete False.

    `deflate` is the negotiated permessage-deflate parameters (None if not
    agreed); `extensions_negotiated` whether any extension was agreed (RSV bits
    are only legal then).  Anomaly records are capped at MAX_ANOMALIES in total;
    `anomaly_counts` counts all of them by kind.
    """

    def __init__(self, from_client: bool, deflate: Optional[dict], extensions_negotiated: bool,
                 max_message: int = 16 << 20, max_inflate: int = 64 << 20,
                 keep_binary: int = 64, inflater=None) -> None:
        # `inflater`: used instead of an Inflater when deflate is agreed (same interface;
        # the tshark engine's takes payloads tshark has already decompressed).
        self.from_client = bool(from_client)
        self.deflate = deflate
        self.extensions_negotiated = extensions_negotiated or deflate is not None
        self.max_message = max_message
        self.max_inflate = max_inflate
        self.keep_binary = keep_binary
        self.anomaly_counts: dict[str, int] = {}
        self.anomalies_dropped = 0
        self._anomalies_recorded = 0
        # When set, anomalies go to on_anomaly(kind, frame_no, ts, detail) as they are found
        # (a session builder) instead of being returned by frame() and finish().
        self.on_anomaly: Optional[Callable[[str, int, float, dict], None]] = None
        self._mask_violation = "masked-server-frame" if not from_client else "unmasked-client-frame"
        if deflate is not None:
            if not isinstance(deflate, dict):
                deflate = {}  # agreed, parameters unknown: RFC 7692 defaults
                self.deflate = deflate
            bits, no_takeover = direction_parameters(deflate, from_client)
            self._inflater: Optional[Inflater] = inflater if inflater is not None else \
                Inflater(bits, no_takeover, max_inflate)
        else:
            self._inflater = None
        self._closed_at: Optional[int] = None  # frame number of this direction's close

        self._message: Optional[Message] = None  # data message being assembled
        self._limit = 0  # bytes of its data to keep
        self._parts: list[bytes] = []
        self._kept = 0
        self._contiguous = True  # parts so far are an unbroken prefix of the message
        self._found: Optional[list] = None  # anomalies of the current call

    # -- public API -------------------------------------------------------

    def frame(self, frame: Frame) -> tuple[list, Sequence]:
        messages: list = []
        opcode = frame.opcode
        if ((opcode == OP_BINARY or opcode == OP_TEXT) and frame.fin and not frame.rsv
                and self._message is None and self._closed_at is None
                and frame.masked == self.from_client):
            # The common case, a whole data message in one frame: what _frame() does
            # once none of its checks can report anything.
            self._single(Message(opcode, b"", 0, 0, False, frame.first_frame, frame.start_time,
                                 frame.frame, frame.time), frame, messages)
            if self._found is None:
                return messages, _NO_ANOMALIES
        else:
            self._frame(frame, messages)
        return messages, self._take_found()

    def whole_binary(self, frame: Frame) -> bool:
        """Is `frame` a binary message on its own that frame() would return as it is, with
        no anomaly and no change to this assembler (final, no RSV bit, masked as its
        direction must be, no message in progress, not after a close, within max_message,
        its payload within keep_binary)?  Then the caller may take the message as
        (frame.payload, frame.length, frame.frame, frame.time) instead of calling frame():
        the audio chunk's path, without a Message object."""
        return (frame.opcode == OP_BINARY and frame.fin and not frame.rsv
                and self._message is None and self._closed_at is None
                and frame.masked == self.from_client and frame.length <= self.max_message
                and len(frame.payload) <= self.keep_binary)

    def finish(self) -> tuple[list, Sequence]:
        messages: list = []
        if self._message is not None:
            self._abandon(messages)
        return messages, self._take_found()

    # -- internals ----------------------------------------------------------

    def _frame(self, frame: Frame, messages: list) -> None:
        opcode = frame.opcode
        if frame.masked != self.from_client:
            self._report(self._mask_violation, frame, {"opcode": opcode})
        if self._closed_at is not None:
            self._report("frame-after-close", frame,
                         {"opcode": opcode, "close_frame": self._closed_at})

        if opcode >= 8:
            if opcode > 10:
                self._report("reserved-opcode", frame, {"opcode": opcode})
                return
            self._control(frame, messages)
            return

        if opcode > OP_BINARY:
            self._report("reserved-opcode", frame, {"opcode": opcode})
            return

        rsv = frame.rsv
        if rsv:
            if not self.extensions_negotiated:
                self._report("rsv-without-extension", frame, {"rsv": rsv, "opcode": opcode})
            elif rsv & RSV1 and self._inflater is not None and opcode == OP_CONTINUATION:
                self._report("rsv-without-extension", frame,
                             {"rsv": rsv, "opcode": opcode, "reason": "RSV1 on a continuation frame"})

        message = self._message
        if opcode == OP_CONTINUATION:
            if message is None:
                self._report("unexpected-continuation", frame, {"length": frame.length})
                return
            message.fragments += 1
            message.frame = frame.frame
            message.time = frame.time
            self._append(message, frame)
        else:
            if message is not None:
                self._report("expected-continuation", frame,
                             {"opcode": opcode, "pending_first_frame": message.first_frame})
                self._abandon(messages)
            compressed = bool(rsv & RSV1) and self._inflater is not None
            message = Message(opcode, b"", 0, 0, compressed, frame.first_frame,
                              frame.start_time, frame.frame, frame.time)
            if frame.fin and not compressed:
                # Single-frame message: no joining needed.
                self._single(message, frame, messages)
                return
            self._message = message
            self._limit = self.max_message if opcode == OP_TEXT else self.keep_binary
            self._parts = []
            self._kept = 0
            self._contiguous = True
            if compressed:
                self._inflater.begin(self._limit)
            self._append(message, frame)
        if frame.fin:
            self._complete(message, messages, True)

    def _single(self, message: Message, frame: Frame, messages: list) -> None:
        length = frame.length
        payload = frame.payload
        limit = self.max_message if message.opcode == OP_TEXT else self.keep_binary
        message.data = payload if len(payload) <= limit else payload[:limit]
        message.size = message.wire_size = length
        if not frame.payload_complete:
            message.complete = False
        if length > self.max_message:
            self._report("message-too-big", frame, {"size": length, "max": self.max_message})
        if message.opcode == OP_TEXT:
            self._check_text(message, frame, len(message.data) == length)
        messages.append(message)

    def _append(self, message: Message, frame: Frame) -> None:
        length = frame.length
        payload = frame.payload
        message.wire_size += length
        whole_payload = len(payload) == length and frame.payload_complete
        if not frame.payload_complete:
            message.complete = False
        if message.compressed:
            inflater = self._inflater
            inflater.feed(payload)
            if not whole_payload:
                # Nothing after the gap can be decoded.
                inflater.stop()
            return
        message.size += length
        if self._contiguous:
            room = self._limit - self._kept
            if room > 0 and payload:
                piece = payload if len(payload) <= room else payload[:room]
                self._parts.append(piece)
                self._kept += len(piece)
            if not whole_payload:
                self._contiguous = False

    def _complete(self, message: Message, messages: list, finished: bool) -> None:
        self._message = None
        frame_no, ts = message.frame, message.time
        if message.compressed:
            inflater = self._inflater
            inflater.end(finished)
            parts = inflater.output
            message.size = inflater.size
            if inflater.window_exceeded:
                self._report_at("deflate-window-exceeded", frame_no, ts,
                                {"agreed_window_bits": direction_parameters(
                                    self.deflate, self.from_client)[0]})  # type: ignore[arg-type]  # set when compressed
            if inflater.limit_hit:
                message.complete = False
                self._report_at("inflate-limit", frame_no, ts,
                                {"max_inflate": self.max_inflate, "wire_size": message.wire_size})
            if inflater.error is not None:
                message.complete = False
                self._report_at("inflate-failed", frame_no, ts,
                                {"error": inflater.error, "context_lost": inflater.context_lost})
            whole = message.complete and inflater.size == inflater.kept
        else:
            parts = self._parts
            whole = self._contiguous and self._kept == message.size
        self._parts = []
        message.data = parts[0] if len(parts) == 1 else b"".join(parts)
        if not finished:
            message.complete = False
        if message.size > self.max_message:
            self._report_at("message-too-big", frame_no, ts,
                            {"size": message.size, "max": self.max_message})
        if message.opcode == OP_TEXT:
            self._check_text_at(message, frame_no, ts, whole)
        messages.append(message)

    def _abandon(self, messages: list) -> None:
        self._complete(self._message, messages, False)  # type: ignore[arg-type]  # callers check it is set

    def _control(self, frame: Frame, messages: list) -> None:
        opcode = frame.opcode
        length = frame.length
        if length > 125:
            self._report("control-frame-too-long", frame, {"opcode": opcode, "length": length})
        if not frame.fin:
            self._report("fragmented-control-frame", frame, {"opcode": opcode})
        if frame.rsv and (not self.extensions_negotiated or (frame.rsv & RSV1 and self._inflater is not None)):
            self._report("rsv-without-extension", frame, {"rsv": frame.rsv, "opcode": opcode})
        payload = frame.payload
        message = Message(opcode, payload, length, length, False, frame.first_frame,
                          frame.start_time, frame.frame, frame.time)
        if not frame.payload_complete:
            message.complete = False
        if opcode == OP_CLOSE:
            if self._closed_at is None:
                self._closed_at = frame.frame
            if len(payload) == 1:
                self._report("close-payload-one-byte", frame, {"byte": payload[0]})
            elif len(payload) >= 2:
                code = (payload[0] << 8) | payload[1]
                message.close_code = code
                if not close_code_valid(code):
                    self._report("invalid-close-code", frame, {"code": code})
                reason = payload[2:]
                whole = len(payload) == length
                error_at = _utf8_error(reason, whole)
                if error_at is None:
                    message.utf8_valid = True
                    message.close_reason = (reason.decode("utf-8") if whole
                                            else reason.decode("utf-8", "ignore"))
                else:
                    message.utf8_valid = False
                    message.close_reason = reason.decode("utf-8", "replace")
                    self._report("invalid-utf8", frame, {"opcode": opcode, "position": error_at})
        messages.append(message)

    def _check_text(self, message: Message, frame: Frame, whole: bool) -> None:
        self._check_text_at(message, frame.frame, frame.time, whole)

    def _check_text_at(self, message: Message, frame_no: int, ts: float, whole: bool) -> None:
        error_at = _utf8_error(message.data, whole)
        message.utf8_valid = error_at is None
        if error_at is not None:
            self._report_at("invalid-utf8", frame_no, ts,
                            {"opcode": message.opcode, "position": error_at})

    def _report(self, kind: str, frame: Frame, detail: dict) -> None:
        self._report_at(kind, frame.frame, frame.time, detail)

    def _report_at(self, kind: str, frame_no: int, ts: float, detail: dict) -> None:
        if self.on_anomaly is not None:
            self.on_anomaly(kind, frame_no, ts, detail)
            return
        counts = self.anomaly_counts
        counts[kind] = counts.get(kind, 0) + 1
        if self._anomalies_recorded < MAX_ANOMALIES:
            self._anomalies_recorded += 1
            if self._found is None:
                self._found = []
            self._found.append((kind, frame_no, ts, detail))
        else:
            self.anomalies_dropped += 1

    def _take_found(self):
        found = self._found
        if found is None:
            return _NO_ANOMALIES
        self._found = None
        return found
