"""WebSocket frames and messages of the real captures under any segmentation and loss.

Every frame stream after a 101 in captures/ (both directions, plain, deflate, fragmented with a
ping inside): serialised again from the parsed frames it is byte-for-byte the capture; cut into
any chunks it parses to the same frames and messages; with bytes missing inside one payload,
every frame is still found and only that one is incomplete.
"""
from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.websocket import FrameParser, MessageAssembler, unmask

from test_fuzz_harnesses import seeds

STREAMS = [s for s in seeds.websocket_streams() if s[1]]
BIG = 1 << 24
_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def serialise(f) -> bytes:
    b0 = (0x80 if f.fin else 0) | f.rsv << 4 | f.opcode
    m = 0x80 if f.masked else 0
    size = f.header_len - (4 if f.masked else 0)
    head = (bytes([b0, m | f.length]) if size == 2 else
            bytes([b0, m | 126]) + struct.pack("!H", f.length) if size == 4 else
            bytes([b0, m | 127]) + struct.pack("!Q", f.length))
    return head + (f.mask + unmask(f.payload, f.mask) if f.masked else f.payload)


def parse(stream: bytes, from_client: bool, cuts=(), hole=None):
    parser = FrameParser(from_client, keep_binary=BIG, keep_text=BIG)
    edges = sorted({0, len(stream), *[c for c in cuts if 0 < c < len(stream)]})
    frames = []
    for i, (a, b) in enumerate(zip(edges, edges[1:]), start=1):
        if hole is not None and a <= hole[0] < b:
            frames += parser.feed(stream[a:hole[0]], i, float(i))
            parser.hole(hole[1] - hole[0], i, float(i))
            frames += parser.feed(stream[hole[1]:b], i, float(i))
        elif hole is not None and hole[0] < a < hole[1]:
            frames += parser.feed(stream[max(a, hole[1]):b], i, float(i))
        else:
            frames += parser.feed(stream[a:b], i, float(i))
    tail = parser.finish(len(edges) + 1, 0.0)
    return parser, frames, tail


def shape(frames):
    return [(f.fin, f.rsv, f.opcode, f.masked, f.length) for f in frames]


def test_every_real_stream_serialises_back_exactly():
    assert len(STREAMS) >= 30
    for from_client, stream, _deflate in STREAMS:
        parser, frames, tail = parse(stream, from_client)
        assert tail is None and parser.anomalies == []
        assert b"".join(serialise(f) for f in frames) == stream


@settings(max_examples=60, **_SETTINGS)
@given(st.sampled_from(range(len(STREAMS))), st.lists(st.integers(0, 1 << 20), max_size=40))
def test_any_chunking_gives_the_same_frames_and_messages(index, cuts):
    from_client, stream, deflate = STREAMS[index]
    cuts = [c % (len(stream) + 1) for c in cuts]
    _, whole, _ = parse(stream, from_client)
    _, chunked, tail = parse(stream, from_client, cuts)
    assert tail is None
    assert [(shape([f]), f.payload) for f in chunked] == [(shape([f]), f.payload) for f in whole]

    def messages(frames):
        assembler = MessageAssembler(from_client, deflate, deflate is not None, keep_binary=BIG)
        out = []
        for f in frames:
            found, anomalies = assembler.frame(f)
            assert list(anomalies) == []
            out += [(m.opcode, m.data, m.size, m.complete) for m in found]
        return out
    assert messages(chunked) == messages(whole)


@settings(max_examples=60, **_SETTINGS)
@given(st.sampled_from(range(len(STREAMS))), st.data())
def test_bytes_missing_inside_a_payload_lose_only_that_frame(index, data):
    from_client, stream, _deflate = STREAMS[index]
    _, frames, _ = parse(stream, from_client)
    with_payload = [i for i, f in enumerate(frames) if f.length >= 2]
    if not with_payload:
        return
    victim = data.draw(st.sampled_from(with_payload))
    start = sum(f.header_len + f.length for f in frames[:victim]) + frames[victim].header_len
    a = data.draw(st.integers(start, start + frames[victim].length - 1))
    b = data.draw(st.integers(a + 1, start + frames[victim].length))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    parser, got, tail = parse(stream, from_client, cuts, hole=(a, b))
    assert tail is None
    assert shape(got) == shape(frames)
    assert [i for i, f in enumerate(got) if not f.payload_complete] == [victim]
    assert [f.payload for i, f in enumerate(got) if i != victim] == \
        [f.payload for i, f in enumerate(frames) if i != victim]
    assert [k for k, *_ in parser.anomalies] == ["frame-payload-missing"]
