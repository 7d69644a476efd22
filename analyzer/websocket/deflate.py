"""RFC 7692 permessage-deflate decompression for one direction.

Output is bounded twice: at most `max_inflate` bytes are ever inflated per
message (a deflate bomb stops there), and only the first `keep` bytes of a
message are retained; the rest is counted and dropped one decompress() call at
a time, so memory stays near `_OUTPUT_CHUNK` whatever the peer sent.

Window size: we inflate with the window the sender agreed to.  zlib notices a
larger window only when a match reaches further back than the history it holds
(typically across fragments or messages); matches inside the output of a single
decompress() call resolve silently, and correctly.  When zlib does notice, the
message is inflated again with a 15-bit window, seeded with the history kept
for that purpose, and `window_exceeded` is set.
"""
from __future__ import annotations

import zlib
from typing import Optional

__all__ = ["Inflater", "direction_parameters"]

_TRAILER = b"\x00\x00\xff\xff"  # removed by the sender (RFC 7692 §7.2.1), restored here
_OUTPUT_CHUNK = 256 * 1024  # most output produced by one decompress() call
_INPUT_CHUNK = 64 * 1024  # most input handed to one decompress() call
_WINDOW_MAX = 1 << 15


def direction_parameters(deflate: dict, from_client: bool) -> tuple[int, bool]:
    """(max_window_bits, no_context_takeover) that the sender in this direction agreed to."""
    side = "client" if from_client else "server"
    bits = deflate.get(f"{side}_max_window_bits")
    if not isinstance(bits, int) or isinstance(bits, bool) or not 8 <= bits <= 15:
        bits = 15
    return bits, bool(deflate.get(f"{side}_no_context_takeover"))


class Inflater:
    """Per-direction decompression context, one message at a time.

    begin(keep); feed(piece) per fragment; stop() if bytes are missing; end(final).
    The message's results are then in `output` (pieces of the kept prefix),
    `kept`, `size` (bytes inflated), `limit_hit`, `error`, `window_exceeded` and
    `context_lost` (an earlier failure may explain this message's).
    """

    def __init__(self, max_window_bits: int, no_context_takeover: bool, max_inflate: int) -> None:
        self.window_bits = max_window_bits
        self.no_context_takeover = no_context_takeover
        self.max_inflate = max_inflate
        self._decompressor = None
        # Once the window is known to be too small we inflate with 15 bits for good.
        self._may_exceed_window = max_window_bits < 15
        # Last 32 KiB of output, so a switch to a 15-bit window can carry the
        # history over (only kept while that switch is still possible).
        self._history = b""
        # With context takeover, a message after a failed one may refer to data
        # we could not inflate; the context is whole again once a full window
        # of output has been produced since the restart.
        self._context_lost = False
        self._produced_since_restart = 0
        self._reset_message(0)

    def _reset_message(self, keep: int) -> None:
        self.keep = keep
        self.output: list[bytes] = []
        self.kept = 0
        self.size = 0
        self.limit_hit = False
        self.error: Optional[str] = None
        self.window_exceeded = False
        self.context_lost = self._context_lost
        self.stopped = False  # nothing more of this message is inflated
        self._inputs: list = []  # compressed pieces, kept only for a window retry
        self._tail = b""

    def begin(self, keep: int) -> None:
        self._reset_message(keep)
        if self._decompressor is None or self.no_context_takeover:
            self._decompressor = zlib.decompressobj(-self.window_bits)

    def feed(self, piece) -> None:
        if self.stopped:
            return
        if self._may_exceed_window:
            self._inputs.append(piece)
        try:
            self._inflate_all(piece)
        except zlib.error as exc:
            self._failed(exc)

    def stop(self) -> None:
        """Inflate nothing more of this message: bytes are missing, what follows is undecodable."""
        self.stopped = True

    def end(self, final: bool) -> None:
        """The message is over; `final` when it ended with its FIN fragment."""
        if not self.stopped:
            if final:
                self.feed(_TRAILER)
            else:
                self.stop()
        if self.stopped:
            if not self.no_context_takeover:
                self._context_lost = True
                self._produced_since_restart = 0
                self._history = b""
            self._decompressor = None
        else:
            if self._context_lost:
                self._produced_since_restart += self.size
                if self._produced_since_restart >= 1 << self.window_bits:
                    self._context_lost = False
            if self._decompressor.eof:
                # The sender ended the deflate stream (BFINAL); it must start a new one.
                self._decompressor = None
                self._history = b""
            elif self._may_exceed_window and not self.no_context_takeover:
                history = self._history + self._tail
                self._history = history[-_WINDOW_MAX:] if len(history) > _WINDOW_MAX else history
        self._inputs = []
        self._tail = b""

    def _inflate_all(self, piece) -> None:
        # After every capped call zlib hands back the unconsumed input as a new
        # bytes object: bounded slices keep that copy small when a highly
        # compressed payload needs many calls.
        if len(piece) <= _INPUT_CHUNK:
            self._inflate(piece)
            return
        view = memoryview(piece)
        for start in range(0, len(view), _INPUT_CHUNK):
            self._inflate(view[start:start + _INPUT_CHUNK])
            if self.stopped:
                return

    def _inflate(self, data) -> None:
        decompressor = self._decompressor
        while True:
            budget = self.max_inflate - self.size
            if budget <= 0:
                # Probe for one more byte (a cap of 0 would mean "no limit" to zlib).
                if decompressor.decompress(data, 1):
                    self.limit_hit = True
                    self.stop()
                return
            cap = budget if budget < _OUTPUT_CHUNK else _OUTPUT_CHUNK
            out = decompressor.decompress(data, cap)
            if out:
                self._take(out)
            data = decompressor.unconsumed_tail
            # A full output buffer with no input left may still hide pending output.
            if not data and len(out) < cap:
                return

    def _failed(self, exc: zlib.error) -> None:
        if self._may_exceed_window and not self._context_lost and "too far back" in str(exc):
            self._retry_with_full_window()
        else:
            self.error = str(exc)
            self.stop()

    def _retry_with_full_window(self) -> None:
        """The peer used a larger window than agreed: inflate this message again with 15 bits."""
        inputs = self._inputs
        history = self._history if not self.no_context_takeover else b""
        self._may_exceed_window = False
        self.window_bits = 15
        self._history = b""
        self._decompressor = (zlib.decompressobj(-15, zdict=history) if history
                              else zlib.decompressobj(-15))
        self._reset_message(self.keep)
        self.window_exceeded = True
        try:
            for piece in inputs:
                self._inflate_all(piece)
                if self.stopped:
                    return
        except zlib.error as exc:
            self.error = str(exc)
            self.stop()

    def _take(self, out: bytes) -> None:
        self.size += len(out)
        room = self.keep - self.kept
        if room > 0:
            piece = out if len(out) <= room else out[:room]
            self.output.append(piece)
            self.kept += len(piece)
        if self._may_exceed_window and not self.no_context_takeover:
            if len(out) >= _WINDOW_MAX:
                self._tail = out[-_WINDOW_MAX:]
            else:
                tail = self._tail + out
                self._tail = tail[-_WINDOW_MAX:] if len(tail) > _WINDOW_MAX else tail
