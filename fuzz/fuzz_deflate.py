"""Fuzz permessage-deflate inflation (analyzer.websocket.deflate.Inflater).

Byte 0: bits 0-2 window bits - 8, bit 3 no_context_takeover, bit 4 round-trip mode,
bits 5-7 fragments per message.
Garbage mode: the rest, split into messages at b"\\xff\\xfe", is inflated as compressed
payloads: nothing raises, output stays within `max_inflate` and `keep`.
Round-trip mode: the rest (split the same way) is plain text; each message is compressed
the way a permessage-deflate sender does (raw deflate, sync flush, trailer removed, context
kept unless no_context_takeover), fragmented, and must inflate back to exactly itself.
"""
import zlib

from _common import Input, chunks_of, cuts, instrument, main

with instrument():
    from analyzer.websocket.deflate import Inflater

MAX_INFLATE = 1 << 18
KEEP = 1 << 16


def TestOneInput(data: bytes) -> None:
    inp = Input(data)
    mode = inp.byte()
    bits = 8 + (mode & 7)
    no_takeover = bool(mode & 8)
    fragments = mode >> 5
    messages = inp.rest().split(b"\xff\xfe")[:32]
    inflater = Inflater(bits, no_takeover, MAX_INFLATE)
    if mode & 16:
        # zlib refuses an 8-bit window for raw deflate streams it writes; 9 is what it uses.
        compressor = zlib.compressobj(9, zlib.DEFLATED, -max(bits, 9))
        for i, message in enumerate(messages):
            if no_takeover and i:
                compressor = zlib.compressobj(9, zlib.DEFLATED, -max(bits, 9))
            wire = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
            assert wire.endswith(b"\x00\x00\xff\xff")
            wire = wire[:-4]
            inflater.begin(KEEP)
            for piece in chunks_of(wire, cuts(message[:8] + bytes([i]), len(wire), fragments)):
                inflater.feed(piece)
            inflater.end(True)
            assert inflater.error is None, inflater.error
            assert not inflater.limit_hit
            assert inflater.size == len(message)
            assert b"".join(inflater.output) == message[:KEEP]
        return
    for i, message in enumerate(messages):
        inflater.begin(KEEP if i % 2 == 0 else 7)
        for piece in chunks_of(message, cuts(bytes([i, mode]), len(message), fragments)):
            inflater.feed(piece)
        inflater.end(i % 3 != 2)
        assert inflater.size <= MAX_INFLATE
        out = b"".join(inflater.output)
        assert len(out) == inflater.kept <= inflater.keep
        assert inflater.kept <= inflater.size
        assert inflater.error is None or isinstance(inflater.error, str)


if __name__ == "__main__":
    main(TestOneInput)
