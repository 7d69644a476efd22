"""RFC 6455 frame parsing for one direction of a captured WebSocket connection.

`FrameParser` is a sans-I/O state machine: it is fed one direction's reassembled
TCP byte stream (after the HTTP 101) in whatever chunks the capture delivered,
and returns complete `Frame`s.  It never raises on bad input and never allocates
according to a length the peer claims: at most `keep_text` / `keep_binary`
payload bytes are copied per frame, the rest is counted and skipped.

Stream-level problems (holes in the capture, lost sync, truncation, non-minimal
length encodings) are recorded in `FrameParser.anomalies`; frame-level protocol
rules (masking, control frames, RSV bits, fragmentation) are the business of
`MessageAssembler`, which sees every frame.
"""
from __future__ import annotations

import itertools
from bisect import bisect_right

import struct
from typing import Callable, Iterable, Optional, Sequence, Union

from mypy_extensions import mypyc_attr

from ..limits import PARSER_ANOMALY_RECORDS

__all__ = [
    "OP_CONTINUATION", "OP_TEXT", "OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG",
    "OPCODE_NAMES", "Frame", "FrameParser", "find_frame_sync", "find_stream_start",
    "frame_run_evidence", "midstream_evidence_enough", "unmask",
]

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

OPCODE_NAMES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}

RSV1 = 4  # Frame.rsv bit for RSV1 (permessage-deflate's "compressed" flag)

# A parser used on its own keeps at most this many anomaly records; the rest are only counted.
MAX_ANOMALIES = PARSER_ANOMALY_RECORDS

# While resynchronising, a candidate run of headers may need at most this many
# buffered bytes to be confirmed; longer candidates are rejected so that the
# resync buffer stays bounded whatever lengths the garbage claims.
RESYNC_WINDOW = 1 << 20

_unpack_u16 = struct.Struct("!H").unpack_from
_unpack_u64 = struct.Struct("!Q").unpack_from

_VALID_OPCODES = frozenset((0, 1, 2, 8, 9, 10))


@mypyc_attr(allow_interpreted_subclasses=True)  # the tshark engine's frames extend it
class Frame:
    """One WebSocket frame as it was on the wire.

    `payload` is unmasked and possibly only a prefix (see FrameParser);
    `length` is the declared payload length.  `first_frame`/`start_time` are the
    capture packet carrying the first header byte, `frame`/`time` the packet
    carrying the last byte seen (where Wireshark shows the frame).
    """

    __slots__ = ("fin", "rsv", "opcode", "masked", "mask", "length", "payload",
                 "payload_complete", "header_len", "first_frame", "frame",
                 "start_time", "time")

    def __init__(self, fin: bool, rsv: int, opcode: int, masked: bool,
                 mask: Optional[bytes], length: int, header_len: int,
                 first_frame: int, start_time: float, frame: int, time: float) -> None:
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.masked = masked
        self.mask = mask
        self.length = length
        self.payload = b""
        self.payload_complete = True
        self.header_len = header_len
        self.first_frame = first_frame
        self.frame = frame
        self.start_time = start_time
        self.time = time

    def __repr__(self) -> str:
        name = OPCODE_NAMES.get(self.opcode, f"reserved-{self.opcode}")
        return (f"Frame({name} fin={self.fin} rsv={self.rsv} masked={self.masked} "
                f"length={self.length} kept={len(self.payload)} "
                f"complete={self.payload_complete} frames={self.first_frame}..{self.frame})")


def unmask(data, mask: bytes, phase: int = 0) -> bytes:
    """XOR `data` with the 4-byte `mask`, starting at mask byte `phase`.

    Done as one big-integer XOR so the work happens in C, not per byte.
    """
    n = len(data)
    if not n:
        return b""
    if phase:
        mask = mask[phase:] + mask[:phase]
    key = mask * ((n >> 2) + 1)
    if len(key) != n:
        key = key[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


# Results of checking one candidate run of headers.
_RUN_FOUND, _RUN_UNDETERMINED, _RUN_INVALID = 0, 1, 2


def _check_run(data, start: int, end: int, want_masked: Optional[int], allow_rsv1: bool,
               span_limit: int, close_may_end: bool, through_end: bool = False) -> int:
    """Is a run of 3 chained plausible headers starting at `start` in data[:end]?

    UNDETERMINED means more data could still make it FOUND.  With
    `close_may_end`, a shorter run whose last frame is a close ending exactly at
    `end` also counts: after a hole near the end of a connection the close frame
    is often all there is left to find.
    """
    pos = start
    in_message: Optional[bool] = None  # unknown before the first frame
    for index in (itertools.count() if through_end else range(3)):
        if end - pos < 2:
            return _RUN_FOUND if through_end and index else _RUN_UNDETERMINED
        b0 = data[pos]
        b1 = data[pos + 1]
        opcode = b0 & 0x0F
        if opcode not in _VALID_OPCODES:
            return _RUN_INVALID
        rsv = b0 & 0x70
        if rsv and not (allow_rsv1 and rsv == 0x40 and (opcode == 1 or opcode == 2)):
            return _RUN_INVALID
        masked = b1 >> 7
        if want_masked is not None and masked != want_masked:
            return _RUN_INVALID
        fin = b0 >> 7
        length = b1 & 0x7F
        if opcode >= 8:
            if not fin or length > 125:
                return _RUN_INVALID
        else:
            # Fragmentation must be consistent inside the run: it is cheap and
            # removes most chance alignments in random payload bytes.
            if opcode == 0:
                if index and not in_message:
                    return _RUN_INVALID
            elif in_message:
                return _RUN_INVALID
            in_message = not fin
        header_len = 2
        if length == 126:
            header_len = 4
        elif length == 127:
            header_len = 10
        if masked:
            header_len += 4
        if end - pos < header_len:
            return _RUN_FOUND if through_end and index else _RUN_UNDETERMINED
        if length == 126:
            length = _unpack_u16(data, pos + 2)[0]
            if length < 126:
                return _RUN_INVALID
        elif length == 127:
            length = _unpack_u64(data, pos + 2)[0]
            if length < 65536 or length >> 63:
                return _RUN_INVALID
        if index == 2 and not through_end:
            return _RUN_FOUND
        frame_end = pos + header_len + length
        if through_end and frame_end >= end:
            return _RUN_FOUND
        if frame_end - start > span_limit:
            return _RUN_INVALID
        if frame_end > end:
            return _RUN_UNDETERMINED
        if close_may_end and opcode == OP_CLOSE and frame_end == end:
            return _RUN_FOUND
        pos = frame_end
    return _RUN_INVALID  # not reached: index 2 always returns


def find_frame_sync(data, from_client: Optional[bool] = None, deflate: bool = False,
                    prefer: Iterable[int] = ()) -> Optional[int]:
    """Smallest offset in `data` where 3 consecutive plausible frame headers start.

    Plausible: valid opcode, RSV bits clear (RSV1 allowed on text/binary when
    `deflate`), control frames final and <= 125 bytes, masked iff `from_client`
    (when not None), minimal length encoding, consistent fragmentation, and each
    length landing exactly on the next header.  The third frame's payload may
    run past the end of `data`.  Offsets in `prefer` are tried first, and win when
    headers chain from there through the end of `data`.  None if there is no such offset.
    """
    n = len(data)
    want_masked = None if from_client is None else int(bool(from_client))
    # Where the data is known to break (packet starts, for a connection picked up
    # mid-stream), a chain of headers that runs consistently to the end of the data
    # is far stronger evidence than three headers somewhere inside an audio payload.
    for offset in prefer:
        if offset < n and _check_run(data, offset, n, want_masked, deflate, n, False,
                                     through_end=True) == _RUN_FOUND:
            return offset
    for offset in range(max(0, n - 1)):
        if _check_run(data, offset, n, want_masked, deflate, n, False) == _RUN_FOUND:
            return offset
    return None


# A connection picked up mid-stream is taken for WebSocket only on this much evidence: frames
# that make sense in sequence, starting in more than one packet, all masked or all unmasked.
MIDSTREAM_MIN_FRAMES = 3
MIDSTREAM_MIN_PACKETS = 2


def frame_run_evidence(data, start: int, packet_starts: Sequence[int] = (),
                       allow_rsv1: bool = True) -> tuple[int, int, Optional[int]]:
    """Walk the chain of frame headers from `start` to the end of `data` (or to the first
    header that cannot follow): (evidence frames, packets, mask bit).

    Evidence frames are the ones whose place in the sequence makes sense: data frames,
    control frames, and continuations of a message the run itself started (a continuation
    with no message in progress could be any bytes).  `packets` is how many of the packets
    (their offsets in `packet_starts`) hold the start of a frame of the run.  The mask bit is
    1 or 0 when every frame agrees, -1 when they disagree (not one peer's frame stream), None
    when there is no frame.
    """
    n = len(data)
    pos = start
    evidence = 0
    in_message: Optional[bool] = None  # unknown before the run's first data frame
    masked: Optional[int] = None
    packets = set()
    while n - pos >= 2:
        b0, b1 = data[pos], data[pos + 1]
        opcode = b0 & 0x0F
        if opcode not in _VALID_OPCODES:
            break
        rsv = b0 & 0x70
        if rsv and not (allow_rsv1 and rsv == 0x40 and (opcode == 1 or opcode == 2)):
            break
        fin = b0 >> 7
        length = b1 & 0x7F
        bit = b1 >> 7
        if opcode >= 8:
            if not fin or length > 125:
                break
            counts = True
        elif opcode == 0:
            if in_message is False:
                break  # a continuation after a final frame: not a frame stream
            counts = in_message is True
            if counts:
                in_message = not fin
            elif fin:
                in_message = False  # the unknown message in progress ends here
        else:
            if in_message:
                break  # a new message inside one not finished
            counts = True
            in_message = not fin
        header_len = 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if bit else 0)
        if n - pos < header_len:
            break
        if length == 126:
            length = _unpack_u16(data, pos + 2)[0]
            if length < 126:
                break
        elif length == 127:
            length = _unpack_u64(data, pos + 2)[0]
            if length < 65536 or length >> 63:
                break
        if masked is None:
            masked = bit
        elif masked != bit:
            masked = -1
        if counts:
            evidence += 1
            packets.add(bisect_right(packet_starts, pos))
        pos += header_len + length
    return evidence, len(packets), masked


def midstream_evidence_enough(runs) -> bool:
    """Is what frame_run_evidence found, per direction, enough to call a connection whose
    start is missing a WebSocket?  Several frames in sequence, in more than one packet, each
    direction's frames all masked or all unmasked, and not both directions masked alike
    (a client masks, a server does not)."""
    runs = [r for r in runs if r is not None]
    if any(masked == -1 for _, _, masked in runs):
        return False
    if len(runs) == 2 and runs[0][0] and runs[1][0] and runs[0][2] == runs[1][2]:
        return False
    return (sum(r[0] for r in runs) >= MIDSTREAM_MIN_FRAMES
            and sum(r[1] for r in runs) >= MIDSTREAM_MIN_PACKETS)

def find_stream_start(pieces: list) -> Optional[tuple[int, bool, tuple]]:
    """Where a WebSocket frame stream starts in one direction's first bytes of a connection
    picked up mid-stream: (offset into the joined pieces, is the frame masked, the run's
    evidence from frame_run_evidence), or None.

    `pieces` are the payloads of consecutive packets: their starts are the preferred
    offsets (see find_frame_sync).
    """
    buf = b"".join(pieces)
    if not buf:
        return None
    starts, pos = [], 0
    for piece in pieces:
        starts.append(pos)
        pos += len(piece)
    offset = find_frame_sync(buf, None, prefer=starts)
    if offset is None:
        return None
    masked = bool(buf[offset + 1] & 0x80) if offset + 1 < len(buf) else False
    return offset, masked, frame_run_evidence(buf, offset, starts)


BinarySink = Callable[[Frame, Union[bytes, memoryview, int]], None]


class FrameParser:
    """Incremental RFC 6455 frame parser for one direction of a connection.

    feed(data, frame_no, ts) -> list of complete Frames.
    hole(size, frame_no, ts): `size` stream bytes are missing.  Inside a payload
        the frame is marked payload_complete False and parsing goes on after it;
        a frame the hole finishes is delivered by the next feed() or finish().
        At or inside a header sync is lost, and regained on a run of plausible
        headers (see find_frame_sync; a close frame ending the data also counts).
    finish(frame_no, ts) -> the frame in progress (payload_complete False) or None.

    `binary_sink`, when set, is called as sink(frame, chunk) with every payload
    byte of binary frames (and continuations of binary messages), unmasked, in
    order: `frame` is the Frame being parsed (header fields final, `frame`/`time`
    the packet delivering the chunk), `chunk` a bytes-like object valid only
    during the call, or an int: that many payload bytes are missing from the
    capture.  Payloads of compressed (RSV1) messages are passed as sent.
    """

    def __init__(self, from_client: bool, keep_binary: int = 64, keep_text: int = 1 << 20,
                 deflate: bool = False) -> None:
        self.from_client = bool(from_client)
        self.keep_binary = keep_binary
        self.keep_text = keep_text
        # Only used to judge resync candidates: RSV1 is plausible when deflate is on.
        self.deflate = deflate
        self.binary_sink: Optional[BinarySink] = None
        # When set, every anomaly goes to on_anomaly(kind, frame_no, ts, detail) as it is
        # found (a session builder) instead of the capped list below.
        self.on_anomaly: Optional[Callable[[str, int, float, dict], None]] = None
        self.anomalies: list[tuple[str, int, float, dict]] = []
        self.anomalies_dropped = 0
        self.anomaly_counts: dict[str, int] = {}
        self.frames_parsed = 0
        self.offset = 0  # stream bytes accounted for so far (fed + holes)

        # Control frames and text are kept whole (up to keep_text), binary and
        # reserved opcodes only as a prefix.
        keep = [keep_binary] * 16
        keep[OP_TEXT] = keep[OP_CLOSE] = keep[OP_PING] = keep[OP_PONG] = keep_text
        self._keep_by_opcode = keep
        # What a continuation frame continues (set by the non-final first frame).
        self._continuation_keep = keep_binary
        self._continuation_binary = True

        self._header = bytearray()  # a header split across chunks, so far
        self._header_frame_no = 0
        self._header_ts = 0.0

        self._frame: Optional[Frame] = None  # frame whose payload is being read
        self._remaining = 0  # payload bytes of _frame still to come
        self._keep = 0  # of those, how many to copy
        self._kept: list[bytes] = []  # copied (still masked) payload pieces
        self._payload_offset = 0  # payload bytes of _frame consumed so far
        self._to_sink = False

        # A frame that a hole finished; handed out by the next feed() or finish().
        self._pending: Optional[Frame] = None

        self._synced = True
        self._masked_seen: Optional[int] = None  # mask bit of the last frame parsed
        self._resync_buf = bytearray()
        self._resync_chunks: list[tuple[int, int, float]] = []  # (end offset in buf, frame_no, ts)
        self._resync_skipped = 0
        self._resync_start_offset = 0

    # -- public API -------------------------------------------------------

    def feed(self, data, frame_no: int, ts: float) -> list[Frame]:
        frame = self._frame
        if frame is not None and self._pending is None and self._synced:
            # Fast path: a chunk inside a payload that keeps nothing more and feeds no sink
            # (the middle or the end of an audio frame): _parse -> _continue_payload, reduced
            # to counting, as long as the chunk does not go past the payload.
            n = len(data)
            remaining = self._remaining
            if 0 < n <= remaining and not self._keep and not self._to_sink:
                frame.frame = frame_no
                frame.time = ts
                self._payload_offset += n
                self.offset += n
                if n < remaining:
                    self._remaining = remaining - n
                    return []
                self._end_frame(frame)
                return [frame]
        frames: list[Frame] = []
        if self._pending is not None:
            frames.append(self._pending)
            self._pending = None
        if data:
            if self._synced:
                self._parse(data, frame_no, ts, frames)
            else:
                self._feed_unsynced(data, frame_no, ts, frames)
            self.offset += len(data)
        return frames

    def hole(self, size: int, frame_no: int, ts: float) -> None:
        if size <= 0:
            return
        if not self._synced:
            self.offset += size
            # Nothing buffered can chain across the gap: drop it all and start over.
            self._resync_skipped += len(self._resync_buf) + size
            self._resync_buf.clear()
            self._resync_chunks.clear()
            return
        frame = self._frame
        if frame is not None:
            remaining = self._remaining
            missing = size if size < remaining else remaining
            frame.payload_complete = False
            self._keep = 0  # bytes after the gap would not be a prefix any more
            if self._to_sink:
                self.binary_sink(frame, missing)  # type: ignore[misc]  # set when _to_sink
            self._payload_offset += missing
            self._report("frame-payload-missing", frame_no, ts,
                         {"opcode": frame.opcode, "length": frame.length, "missing": missing,
                          "first_frame": frame.first_frame})
            if size < remaining:
                self._remaining = remaining - size
                self.offset += size
                return
            self._end_frame(frame)
            self._pending = frame
            self.offset += remaining
            size -= remaining
            if not size:
                return
        self._lose_sync(len(self._header) + size, self.offset - len(self._header), frame_no, ts)
        self._header.clear()
        self.offset += size

    def finish(self, frame_no: int, ts: float) -> Optional[Frame]:
        # A frame left pending by a hole and a frame in progress exclude each
        # other: any feed() in between would have handed the pending one out.
        pending = self._pending
        self._pending = None
        if not self._synced:
            skipped = self._resync_skipped + len(self._resync_buf)
            self._report("resync-failed", frame_no, ts, {"skipped": skipped})
            self._resync_buf.clear()
            self._resync_chunks.clear()
            self._resync_skipped = 0
            return pending
        if self._header:
            self._report("frame-truncated", frame_no, ts,
                         {"header_bytes": len(self._header), "first_frame": self._header_frame_no})
            self._header.clear()
            return pending
        frame = self._frame
        if frame is None:
            return pending
        frame.payload_complete = False
        self._report("frame-truncated", frame_no, ts,
                     {"opcode": frame.opcode, "length": frame.length,
                      "missing": self._remaining, "first_frame": frame.first_frame})
        self._end_frame(frame)
        return frame

    # -- parsing ------------------------------------------------------------

    def _parse(self, data, frame_no: int, ts: float, out: list) -> None:
        n = len(data)
        pos = 0
        keep_by_opcode = self._keep_by_opcode
        while pos < n:
            frame = self._frame
            if frame is not None:
                pos = self._continue_payload(frame, data, pos, n, frame_no, ts, out)
                continue

            if self._header:
                # Finish a header that began in an earlier chunk.
                header = self._header
                if len(header) < 2:
                    take = 2 - len(header)
                    header += data[pos:pos + take]
                    pos += take
                    if len(header) < 2:
                        return
                header_len = _header_len(header[1])
                take = header_len - len(header)
                if take > 0:
                    header += data[pos:pos + take]
                    pos += take
                    if len(header) < header_len:
                        return
                source: Union[bytes, bytearray, memoryview] = bytes(header)  # or `data` below
                header.clear()
                at = 0
                first_frame = self._header_frame_no
                start_time = self._header_ts
            else:
                if n - pos < 2:
                    self._stash_header(data, pos, n, frame_no, ts)
                    return
                header_len = _header_len(data[pos + 1])
                if n - pos < header_len:
                    self._stash_header(data, pos, n, frame_no, ts)
                    return
                source = data
                at = pos
                pos += header_len
                first_frame = frame_no
                start_time = ts

            b0 = source[at]
            b1 = source[at + 1]
            length = b1 & 0x7F
            if length == 126:
                length = _unpack_u16(source, at + 2)[0]
                if length < 126:
                    self._report("length-not-minimal", frame_no, ts, {"length": length, "bits": 16})
            elif length == 127:
                length = _unpack_u64(source, at + 2)[0]
                if length < 65536:
                    self._report("length-not-minimal", frame_no, ts, {"length": length, "bits": 64})
                if length >> 63:
                    self._report("length-msb-set", frame_no, ts, {"length": length})
            if b1 & 0x80:
                mask = bytes(source[at + header_len - 4:at + header_len])
                masked = True
                self._masked_seen = 1
            else:
                mask = None
                masked = False
                self._masked_seen = 0
            opcode = b0 & 0x0F
            fin = b0 >= 0x80
            if opcode == OP_CONTINUATION:
                keep = self._continuation_keep
                to_sink = self._continuation_binary
            else:
                if opcode == OP_BINARY:
                    # A compressed message is useless as a prefix: keep it like text.
                    keep = self.keep_text if b0 & 0x40 else keep_by_opcode[OP_BINARY]
                    to_sink = True
                else:
                    keep = keep_by_opcode[opcode]
                    to_sink = False
                if not fin and opcode < 8:
                    self._continuation_keep = keep
                    self._continuation_binary = to_sink
            # The header's last byte is in this chunk, so this is the frame's
            # packet until payload bytes arrive in later ones.
            frame = Frame(fin, (b0 >> 4) & 7, opcode, masked, mask, length, header_len,
                          first_frame, start_time, frame_no, ts)
            self.frames_parsed += 1
            to_sink = to_sink and self.binary_sink is not None

            if n - pos >= length:
                # Common case: the whole payload is in this chunk.
                end = pos + length
                if length:
                    if to_sink:
                        self._sink(frame, data, pos, end, mask, 0)
                    kept_end = pos + keep if keep < length else end
                    if mask is not None:
                        frame.payload = unmask(data[pos:kept_end], mask)
                    else:
                        frame.payload = bytes(data[pos:kept_end])
                out.append(frame)
                pos = end
                continue

            self._frame = frame
            self._remaining = length
            self._keep = keep if keep < length else length
            self._payload_offset = 0
            self._to_sink = to_sink
            # The next loop turn reads what this chunk holds of the payload.

    def _continue_payload(self, frame: Frame, data, pos: int, n: int,
                          frame_no: int, ts: float, out: list) -> int:
        remaining = self._remaining
        take = n - pos
        if take > remaining:
            take = remaining
        end = pos + take
        keep = self._keep
        if keep:
            kept_end = pos + keep if keep < take else end
            # Copied: the caller may reuse its buffer before the frame completes.
            self._kept.append(bytes(data[pos:kept_end]))
            self._keep = keep - (kept_end - pos)
        frame.frame = frame_no
        frame.time = ts
        if self._to_sink:
            self._sink(frame, data, pos, end, frame.mask, self._payload_offset & 3)
        self._payload_offset += take
        remaining -= take
        self._remaining = remaining
        if not remaining:
            self._end_frame(frame)
            out.append(frame)
        return end

    def _end_frame(self, frame: Frame) -> None:
        kept = self._kept
        if kept:
            payload = kept[0] if len(kept) == 1 else b"".join(kept)
            kept.clear()
            frame.payload = payload if frame.mask is None else unmask(payload, frame.mask)
        self._frame = None
        self._remaining = 0
        self._keep = 0
        self._to_sink = False

    def _sink(self, frame: Frame, data, start: int, end: int, mask: Optional[bytes], phase: int) -> None:
        if mask is not None:
            self.binary_sink(frame, unmask(data[start:end], mask, phase))  # type: ignore[misc]
        else:
            self.binary_sink(frame, memoryview(data)[start:end])  # type: ignore[misc]

    def _stash_header(self, data, pos: int, n: int, frame_no: int, ts: float) -> None:
        self._header += data[pos:n]
        self._header_frame_no = frame_no
        self._header_ts = ts

    # -- losing and finding sync ------------------------------------------

    def _lose_sync(self, skipped: int, offset: int, frame_no: int, ts: float) -> None:
        self._synced = False
        self._resync_skipped = skipped
        self._resync_buf.clear()
        self._resync_chunks.clear()
        self._continuation_keep = self.keep_binary
        self._continuation_binary = True
        self._report("sync-lost", frame_no, ts, {"skipped": skipped, "offset": offset})

    def _feed_unsynced(self, data, frame_no: int, ts: float, out: list) -> None:
        buf = self._resync_buf
        if not buf:
            self._resync_start_offset = self.offset
        buf += data
        self._resync_chunks.append((len(buf), frame_no, ts))
        want_masked = self._masked_seen if self._masked_seen is not None else int(self.from_client)
        end = len(buf)
        offset = 0
        found = False
        while offset < end:
            status = _check_run(buf, offset, end, want_masked, self.deflate, RESYNC_WINDOW, True)
            if status == _RUN_FOUND:
                found = True
                break
            if status == _RUN_UNDETERMINED:
                break
            offset += 1
        if offset:
            self._resync_skipped += offset
            del buf[:offset]
            self._resync_start_offset += offset
            self._resync_chunks = [(chunk_end - offset, f, t)
                                   for chunk_end, f, t in self._resync_chunks if chunk_end > offset]
        if not found:
            return
        self._synced = True
        self._report("resync", frame_no, ts,
                     {"skipped": self._resync_skipped, "offset": self._resync_start_offset})
        self._resync_skipped = 0
        chunks = self._resync_chunks
        self._resync_chunks = []
        self._resync_buf = bytearray()
        view = memoryview(buf)
        chunk_start = 0
        for chunk_end, chunk_frame_no, chunk_ts in chunks:
            self._parse(view[chunk_start:chunk_end], chunk_frame_no, chunk_ts, out)
            chunk_start = chunk_end

    def _report(self, kind: str, frame_no: int, ts: float, detail: dict) -> None:
        if self.on_anomaly is not None:
            self.on_anomaly(kind, frame_no, ts, detail)
            return
        counts = self.anomaly_counts
        counts[kind] = counts.get(kind, 0) + 1
        if len(self.anomalies) < MAX_ANOMALIES:
            self.anomalies.append((kind, frame_no, ts, detail))
        else:
            self.anomalies_dropped += 1


def _header_len(b1: int) -> int:
    length = b1 & 0x7F
    header_len = 2 if length < 126 else (4 if length == 126 else 10)
    return header_len + 4 if b1 & 0x80 else header_len
