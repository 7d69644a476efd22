"""In-order byte stream for one direction of one TCP connection (sans-I/O).

Offsets are stream offsets: byte 0 is the first data byte after the SYN (or
the first byte of the first segment seen when the connection was picked up
mid-stream).  Raw 32-bit sequence numbers are unwrapped against the next
expected sequence number, so streams longer than 4 GiB and ISNs near 2**32
need no special casing.

Buffer contract: payloads are kept by reference, never copied (out-of-order
data, and the recent delivered bytes used to verify retransmissions).  The
caller must not reuse a payload's buffer for a later packet; bytes objects and
slices of an immutable file image are fine.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import deque
from operator import itemgetter
from typing import Any

SEQ_MASK = 0xFFFFFFFF
_HALF = 0x80000000
_WRAP = 0x100000000
NO_CHUNKS = ()
# Evidence lists keep the first entries only; the *_count / *_bytes totals keep counting.
MAX_RECORDS = 100
# How long (capture seconds) bytes the peer ACKed may take to appear before they are a hole.
ACK_WAIT_SECONDS = 3.0
# ACKed-but-unseen ranges remembered per direction (each ACK that went further adds one).
MAX_ACK_WAITS = 4096

_END = itemgetter(1)


class StreamReassembler:
    """One direction of one connection; see the module docstring for offsets.

    Every method returns chunks ``(data, frame_no, ts, hole_size)``: ``data`` is
    a memoryview of in-order bytes (``hole_size`` 0), or ``None`` with
    ``hole_size`` > 0 bytes that were sent but are absent from the capture.
    The frame of a chunk is the packet whose arrival made it deliverable.

    An ACK from the peer for bytes not seen yet is not taken as proof that they are lost:
    span ports and taps that merge two directions with different delays put the data after
    its ACK.  The acknowledged range waits (`_acked`, a queue of (target offset, frame, ts)
    per ACK that went further) until the data comes, and becomes a hole only when it has
    waited `max_ack_wait` seconds of capture time (checked on the next packet of either
    direction), when the buffered data behind it passes `max_pending` bytes, or at flush().
    The hole then carries the frame and time of the ACK that first acknowledged it.
    """

    __slots__ = (
        "max_pending", "verify_window",
        "next_offset", "pending_bytes", "retransmissions",
        "conflicts", "conflict_count", "holes", "hole_count", "hole_bytes",
        "fin_offset", "fin_acked",
        "_next_seq", "_pending", "_recent", "_recent_bytes", "max_ack_wait", "_acked",
    )

    def __init__(self, max_pending: int = 4 * 1024 * 1024, verify_window: int = 32 * 1024,
                 max_ack_wait: float = ACK_WAIT_SECONDS):
        self.max_pending = max_pending
        self.max_ack_wait = max_ack_wait
        # ACKed ranges not seen yet: deque of [target offset, frame, ts], targets increasing.
        self._acked: deque | None = None
        # How many recently delivered bytes are kept (by reference) to compare
        # retransmitted bytes against; 0 turns the comparison off.
        self.verify_window = verify_window
        self.next_offset = 0
        self.pending_bytes = 0
        self.retransmissions = 0
        # Shared empty tuples until the first record: most streams never get one.
        self.conflicts: list | tuple = ()
        self.conflict_count = 0
        self.holes: list | tuple = ()
        self.hole_count = 0
        self.hole_bytes = 0
        self.fin_offset: int | None = None
        self.fin_acked = False
        # Raw 32-bit sequence number of next_offset; None until a SYN, a
        # segment or the peer's ACK tells where the stream is.
        self._next_seq: int | None = None
        self._pending: list | None = None  # sorted, non-overlapping (start, end, data|None)
        self._recent: deque | None = None  # delivered memoryviews, or int hole sizes
        self._recent_bytes = 0

    # -- inputs -----------------------------------------------------------

    def syn(self, seq: int) -> None:
        if self._next_seq is None:
            self._next_seq = (seq + 1) & SEQ_MASK

    def in_order(self, seq: int, payload: Any) -> bool:
        """Take `payload` (not empty) starting at `seq` if it is simply the stream's next
        bytes (nothing buffered, nothing awaited): True, and the caller delivers it as it is,
        at its own packet; else False, and nothing changed (call segment())."""
        if seq != self._next_seq or self._pending:
            return False
        n = len(payload)
        if not n:
            return False
        self.next_offset += n
        self._next_seq = (seq + n) & SEQ_MASK
        recent = self._recent
        if recent is not None:
            recent.append(payload)
            self._recent_bytes += n
            if self._recent_bytes > 2 * self.verify_window:
                self._trim_recent()
        elif self.verify_window:
            self._recent = deque((payload,))
            self._recent_bytes = n
        return True

    def segment(self, seq: int, payload: Any, frame_no: int, ts: float, missing: int = 0) -> Any:
        if not missing and payload and self.in_order(seq, payload):
            return ((payload, frame_no, ts, 0),)
        if seq == self._next_seq and not missing and not self._pending:
            return NO_CHUNKS  # no payload
        return self._segment_slow(seq, payload, frame_no, ts, missing)

    def fin(self, seq: int) -> None:
        """The sender's FIN occupies sequence number ``seq`` (just after its last data byte)."""
        if self.fin_offset is not None:
            return
        if self._next_seq is None:
            self._next_seq = seq
        self.fin_offset = self._offset(seq)
        acked = self._acked
        if acked and acked[-1][0] > self.fin_offset:
            # The peer ACKed the FIN before it showed (a late direction): it takes one
            # sequence number but no stream byte, so no range waits beyond it.
            self.fin_acked = True
            for entry in acked:
                if entry[0] > self.fin_offset:
                    entry[0] = self.fin_offset

    def acked(self, ack: int, frame_no: int, ts: float) -> Any:
        nxt_seq = self._next_seq
        if nxt_seq is None:
            # Picked up mid-stream: the peer expects `ack` next, so that is offset 0.
            self._next_seq = ack
            return NO_CHUNKS
        delta = (ack - nxt_seq) & SEQ_MASK
        if not delta or delta >= _HALF:
            return NO_CHUNKS
        target = self.next_offset + delta
        fin = self.fin_offset
        if fin is not None and target > fin:
            # The FIN takes one sequence number but no stream byte.
            self.fin_acked = True
            target = fin
            if target <= self.next_offset:
                return NO_CHUNKS
        acked = self._acked
        if acked is None:
            acked = self._acked = deque()
        if not acked or target > acked[-1][0]:
            if len(acked) >= MAX_ACK_WAITS:
                acked[-1][0] = target  # bounded: the newest range grows instead
            else:
                acked.append([target, frame_no, ts])
        return self._expire_acked(ts)

    def _expire_acked(self, now):
        """Declare missing the ACKed ranges that waited too long (or past the byte bound)."""
        acked = self._acked
        nxt = self.next_offset
        while acked and acked[0][0] <= nxt:
            acked.popleft()
        if not acked:
            return NO_CHUNKS
        if now - acked[0][2] < self.max_ack_wait and self.pending_bytes <= self.max_pending:
            return NO_CHUNKS
        out = []
        while acked and (now - acked[0][2] >= self.max_ack_wait
                         or self.pending_bytes > self.max_pending):
            target, frame_no, ts = acked.popleft()
            if target > self.next_offset:
                self._advance(target, frame_no, ts, out)
        return out or NO_CHUNKS

    def flush(self, frame_no, ts):
        out = []
        acked = self._acked
        while acked:  # acknowledged, never seen: lost after all
            target, ack_frame, ack_ts = acked.popleft()
            if target > self.next_offset:
                self._advance(target, ack_frame, ack_ts, out)
        pending = self._pending
        if pending:
            self._advance(pending[-1][1], frame_no, ts, out)
        if self.fin_offset is not None and self.fin_offset > self.next_offset:
            self._advance(self.fin_offset, frame_no, ts, out)
        return out or NO_CHUNKS

    @property
    def fin_reached(self) -> bool:
        """Every byte before the FIN has been delivered or declared missing."""
        return self.fin_offset is not None and self.next_offset >= self.fin_offset

    # -- internals --------------------------------------------------------

    def _offset(self, seq: int) -> int:
        delta = (seq - self._next_seq) & SEQ_MASK
        if delta >= _HALF:
            delta -= _WRAP
        return self.next_offset + delta

    def _segment_slow(self, seq, payload, frame_no, ts, missing):
        n = len(payload)
        if self._next_seq is None:
            if not n and not missing:
                return NO_CHUNKS
            self._next_seq = seq
        start = self._offset(seq)
        data_end = start + n
        end = data_end + missing
        nxt = self.next_offset
        if end <= start:
            return NO_CHUNKS
        mv = payload if type(payload) is memoryview else memoryview(payload)
        if end <= nxt:
            if end - start == 1 and end == nxt:
                # Keep-alive probe: one garbage byte just below the next expected
                # one; neither a retransmission nor a conflict.
                return NO_CHUNKS
            if n and self._recent:
                self._verify_delivered(mv, start, min(data_end, nxt), frame_no)
            self.retransmissions += 1
            return NO_CHUNKS
        if start < nxt:
            if n and self._recent and start < data_end:
                self._verify_delivered(mv, start, min(data_end, nxt), frame_no)
            new_from = nxt
        else:
            new_from = start
        if not self._insert(new_from, end, mv, start, data_end, frame_no, ts):
            self.retransmissions += 1
            return NO_CHUNKS
        out = []
        if self._pending[0][0] == self.next_offset:
            self._drain(frame_no, ts, out)
        if self._acked:
            expired = self._expire_acked(ts)
            if expired:
                out.extend(expired)
        if self.pending_bytes > self.max_pending:
            while self.pending_bytes > self.max_pending:
                self._advance(self._pending[0][0], frame_no, ts, out)
        return out or NO_CHUNKS

    def _insert(self, start, end, mv, mv_start, data_end, frame_no, ts) -> int:
        """Buffer the parts of [start, end) not buffered yet; return how many bytes were new.

        Bytes in [data_end, end) were cut by the snaplen: buffered as a known hole.
        Where the range overlaps buffered bytes, the buffered copy wins.
        """
        pending = self._pending
        if pending is None:
            pending = self._pending = []
        lo = i = bisect_right(pending, start, key=_END)
        count = len(pending)
        merged: list = []
        added = 0
        cursor = start
        while cursor < end and i < count:
            entry = pending[i]
            p_start, p_end, p_data = entry[0], entry[1], entry[2]
            if p_start >= end:
                break
            if cursor < p_start:
                added += self._piece(merged, cursor, p_start, mv, mv_start, data_end, frame_no, ts)
            if p_data is not None:
                a = cursor if cursor > p_start else p_start
                b = p_end if p_end < end else end
                if b > data_end:
                    b = data_end
                if a < b and mv[a - mv_start:b - mv_start] != p_data[a - p_start:b - p_start]:
                    self._conflict(frame_no, a, b - a)
            merged.append(entry)
            cursor = p_end
            i += 1
        if cursor < end:
            added += self._piece(merged, cursor, end, mv, mv_start, data_end, frame_no, ts)
        if added:
            pending[lo:i] = merged
        return added

    def _piece(self, merged, a, b, mv, mv_start, data_end, frame_no, ts) -> int:
        if a < data_end:
            cut = b if b < data_end else data_end
            merged.append((a, cut, mv[a - mv_start:cut - mv_start], frame_no, ts))
            self.pending_bytes += cut - a
        if b > data_end:
            merged.append((a if a > data_end else data_end, b, None, frame_no, ts))
        return b - a

    def _drain(self, frame_no, ts, out, own_packets=False) -> None:
        """Deliver the buffered bytes that are now in order.

        Filled by a late segment, they become readable at that segment's packet (as
        Wireshark shows a reassembled PDU); released past a declared hole, nothing
        completed them, so each keeps the packet that carried it.
        """
        pending = self._pending
        nxt = self.next_offset
        k = 0
        count = len(pending)  # type: ignore[arg-type]  # called with data pending
        while k < count:
            start, end, data, seg_frame, seg_ts = pending[k]
            if start != nxt:
                break
            if own_packets:
                frame_no, ts = seg_frame, seg_ts
            if data is None:
                self._hole(start, end - start, frame_no, ts, out)
            else:
                size = end - start
                self.pending_bytes -= size
                self.next_offset = end
                self._next_seq = (self._next_seq + size) & SEQ_MASK
                out.append((data, frame_no, ts, 0))
                self._remember(data, size)
            nxt = end
            k += 1
        del pending[:k]

    def _advance(self, target, frame_no, ts, out) -> None:
        """Everything below `target` not buffered is declared missing; buffered data on the way is released."""
        pending = self._pending
        after_hole = False
        while True:
            if pending and pending[0][0] == self.next_offset:
                self._drain(frame_no, ts, out, own_packets=after_hole)
            nxt = self.next_offset
            if nxt >= target:
                return
            gap_end = target
            if pending and pending[0][0] < target:
                gap_end = pending[0][0]
            self._hole(nxt, gap_end - nxt, frame_no, ts, out)
            after_hole = True

    def _hole(self, start, size, frame_no, ts, out) -> None:
        out.append((None, frame_no, ts, size))
        self.next_offset = start + size
        self._next_seq = (self._next_seq + size) & SEQ_MASK
        self.hole_count += 1
        self.hole_bytes += size
        if self.hole_count <= MAX_RECORDS:
            if not self.holes:
                self.holes = []
            self.holes.append((start, size, frame_no, ts))
        self._remember(size, size)

    def _remember(self, item, size) -> None:
        recent = self._recent
        if recent is None:
            if not self.verify_window:
                return
            recent = self._recent = deque()
        recent.append(item)
        self._recent_bytes += size
        if self._recent_bytes > 2 * self.verify_window:
            self._trim_recent()

    def _trim_recent(self) -> None:
        # Trimming is lazy (at twice the window, so not on every segment) but exact: what
        # remains is the shortest run of the latest items holding verify_window bytes, the
        # same as trimming after every item would leave.  _verify_delivered trims first.
        recent = self._recent
        window = self.verify_window
        kept = self._recent_bytes  # a local in the loop: it pops about one item per segment
        while len(recent) > 1:  # type: ignore[arg-type]  # called with bytes remembered
            first = recent[0]
            size = first if type(first) is int else len(first)
            if kept - size < window:
                break
            recent.popleft()
            kept -= size
        self._recent_bytes = kept

    def _verify_delivered(self, mv, mv_start, end, frame_no) -> None:
        """Compare payload bytes [mv_start, end) with the delivered bytes still remembered."""
        if self._recent_bytes > self.verify_window:
            self._trim_recent()
        found: list[tuple[int, int]] = []
        item_end = self.next_offset
        for item in reversed(self._recent):  # type: ignore[arg-type]  # called with bytes remembered
            if type(item) is int:
                item_start = item_end - item
            else:
                item_start = item_end - len(item)
                a = mv_start if mv_start > item_start else item_start
                b = end if end < item_end else item_end
                if a < b and mv[a - mv_start:b - mv_start] != item[a - item_start:b - item_start]:
                    found.append((a, b - a))
            if item_start <= mv_start:
                break
            item_end = item_start
        for offset, length in reversed(found):
            self._conflict(frame_no, offset, length)

    def _conflict(self, frame_no, offset, length) -> None:
        conflicts = self.conflicts
        if conflicts:
            last_frame, last_offset, last_length = conflicts[-1]
            if last_frame == frame_no and last_offset + last_length == offset:
                # One overlap that spans two earlier copies is one conflict.
                conflicts[-1] = (frame_no, last_offset, last_length + length)
                return
        self.conflict_count += 1
        if self.conflict_count <= MAX_RECORDS:
            if not conflicts:
                conflicts = self.conflicts = []
            conflicts.append((frame_no, offset, length))
