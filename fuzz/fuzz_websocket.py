"""Fuzz the WebSocket frame parser, the message assembler and frame-sync search.

Input: byte 0 = flags (bit 0 from_client, bit 1 deflate negotiated, bits 2-7 n: chunks of
n*n+1 bytes),
byte 1 = hole pattern; the rest is one direction's byte stream after the 101.
Properties: nothing raises; parsing does not depend on chunking (same frames, same
anomalies); every complete frame serialised again gives back exactly the bytes it was
parsed from; with holes, frames stay within their declared lengths and the assembler's
messages within their limits.
"""
import struct

from _common import Input, instrument, main

with instrument():
    from analyzer.websocket import FrameParser, MessageAssembler, find_frame_sync, unmask

BIG = 1 << 20
MAX_STREAM = 4096  # longer inputs add time, not paths


def serialise(frame) -> bytes:
    b0 = (0x80 if frame.fin else 0) | frame.rsv << 4 | frame.opcode
    mask_bit = 0x80 if frame.masked else 0
    size = frame.header_len - (4 if frame.masked else 0)
    if size == 2:
        head = bytes([b0, mask_bit | frame.length])
    elif size == 4:
        head = bytes([b0, mask_bit | 126]) + struct.pack("!H", frame.length)
    else:
        head = bytes([b0, mask_bit | 127]) + struct.pack("!Q", frame.length)
    if frame.masked:
        return head + frame.mask + unmask(frame.payload, frame.mask)
    return head + frame.payload


def parse(stream: bytes, from_client: bool, chunk: int, deflate: bool):
    parser = FrameParser(from_client, keep_binary=BIG, keep_text=BIG, deflate=deflate)
    frames = []
    for i in range(0, len(stream), chunk):
        frames += parser.feed(stream[i:i + chunk], i // chunk + 1, float(i))
    last = parser.finish(len(stream) // chunk + 2, -1.0)
    return parser, frames, last


def key(frame):
    return (frame.fin, frame.rsv, frame.opcode, frame.masked, frame.mask, frame.length,
            frame.header_len, frame.payload, frame.payload_complete)


def anomaly_records(parser):
    # Frame numbers depend on the chunking; the rest of each record must not.
    return [(k, {n: v for n, v in d.items() if n != "first_frame"}) for k, _, _, d in parser.anomalies]


def TestOneInput(data: bytes) -> None:
    inp = Input(data)
    flags = inp.byte()
    holes = inp.byte()
    stream = inp.rest()[:MAX_STREAM]
    from_client = bool(flags & 1)
    deflate = {"client_max_window_bits": 15, "server_max_window_bits": 15} if flags & 2 else None
    chunk = (flags >> 2) ** 2 + 1  # 1..3970 bytes: tiny chunks are slow, keep them rarer

    p1, frames1, last1 = parse(stream, from_client, max(1, len(stream)), deflate is not None)
    p2, frames2, last2 = parse(stream, from_client, chunk, deflate is not None)
    assert [key(f) for f in frames1] == [key(f) for f in frames2]
    assert (last1 is None) == (last2 is None)
    if last1 is not None:
        assert key(last1) == key(last2)
    assert anomaly_records(p1) == anomaly_records(p2)
    assert p1.offset == p2.offset == len(stream)

    # Round trip: the complete frames are exactly the bytes they came from.
    rebuilt = b"".join(serialise(f) for f in frames1)
    assert stream.startswith(rebuilt), (len(rebuilt), len(stream))
    if last1 is None and not p1.anomalies:
        assert rebuilt == stream

    # With holes: bounded frames, and the assembler never raises.
    parser = FrameParser(from_client, keep_binary=16, keep_text=4096, deflate=deflate is not None)
    assembler = MessageAssembler(from_client, deflate, deflate is not None, max_message=2048,
                                 max_inflate=1 << 16, keep_binary=16)
    frames = []
    pos = 0
    step = max(1, chunk)
    n = 0
    while pos < len(stream):
        n += 1
        frames += parser.feed(stream[pos:pos + step], n, float(n))
        pos += step
        if holes and n % 8 == holes % 8:
            parser.hole(holes, n, float(n))
    last = parser.finish(n + 1, float(n + 1))
    if last is not None:
        frames.append(last)
    for frame in frames:
        assert len(frame.payload) <= min(frame.length, 4096)
        assert frame.first_frame <= frame.frame
        messages, anomalies = assembler.frame(frame)
        for m in messages:
            assert len(m.data) <= max(2048, 16) or m.opcode >= 8
    messages, anomalies = assembler.finish()
    for m in messages:
        assert m.opcode in (1, 2)
    find_frame_sync(stream[:1024], from_client, deflate is not None)
    find_frame_sync(stream[:1024], None)


if __name__ == "__main__":
    main(TestOneInput)
