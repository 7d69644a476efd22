"""Property tests: frames round-trip under any chunking; no input makes the parsers raise."""
from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode

from analyzer.websocket import FrameParser, Message, MessageAssembler, find_frame_sync

KEEP_BINARY, KEEP_TEXT = 5, 200
SIZES = st.one_of(st.integers(0, 140), st.sampled_from([125, 126, 127, 65535, 65536, 70000]))


def pattern(n: int, seed: int) -> bytes:
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


@st.composite
def frame_specs(draw):
    size = draw(SIZES)
    encodings = [7, 16, 64] if size < 126 else ([16, 64] if size < 65536 else [64])
    return {
        "opcode": draw(st.sampled_from([0, 1, 2, 8, 9, 10, 3, 11])),
        "fin": draw(st.booleans()),
        "rsv": draw(st.integers(0, 7)),
        "mask": draw(st.one_of(st.none(), st.binary(min_size=4, max_size=4))),
        "payload": pattern(size, draw(st.integers(0, 255))),
        "bits": draw(st.sampled_from(encodings)),
    }


def encode(spec) -> bytes:
    payload, mask, bits = spec["payload"], spec["mask"], spec["bits"]
    out = bytes([(0x80 if spec["fin"] else 0) | (spec["rsv"] << 4) | spec["opcode"]])
    mask_bit = 0x80 if mask is not None else 0
    if bits == 7:
        out += bytes([mask_bit | len(payload)])
    elif bits == 16:
        out += bytes([mask_bit | 126]) + struct.pack("!H", len(payload))
    else:
        out += bytes([mask_bit | 127]) + struct.pack("!Q", len(payload))
    if mask is not None:
        out += mask
        key = (mask * (len(payload) // 4 + 1))[:len(payload)]
        payload = bytes(a ^ b for a, b in zip(payload, key))
    return out + payload


def expected_prefixes(specs) -> list[bytes]:
    """What the parser keeps of each payload: text/control whole, binary a prefix,
    continuations like the message they continue, compressed binary like text."""
    out = []
    continuation_keep = KEEP_BINARY
    for spec in specs:
        opcode = spec["opcode"]
        if opcode == 0:
            keep = continuation_keep
        elif opcode == 2:
            keep = KEEP_TEXT if spec["rsv"] & 4 else KEEP_BINARY
        elif opcode in (1, 8, 9, 10):
            keep = KEEP_TEXT
        else:
            keep = KEEP_BINARY
        if 1 <= opcode <= 7 and not spec["fin"]:  # reserved data opcodes start messages too
            continuation_keep = keep
        out.append(spec["payload"][:keep])
    return out


def chunk_index(cuts: list[int], offset: int) -> int:
    """Index of the chunk holding stream byte `offset` (chunk i = [cuts[i], cuts[i+1]))."""
    index = 0
    while cuts[index + 1] <= offset:
        index += 1
    return index


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(frame_specs(), min_size=1, max_size=8), data=st.data())
def test_frames_round_trip_under_any_chunking(specs, data):
    wires = [encode(s) for s in specs]
    stream = b"".join(wires)
    inner_cuts = data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=12, unique=True)) if len(stream) > 1 else []
    cuts = [0] + sorted(inner_cuts) + [len(stream)]
    parser = FrameParser(from_client=True, keep_binary=KEEP_BINARY, keep_text=KEEP_TEXT)
    frames = []
    for i in range(len(cuts) - 1):
        frames += parser.feed(stream[cuts[i]:cuts[i + 1]], 100 + i, float(i))
    assert parser.finish(999, 99.0) is None

    assert len(frames) == len(specs)
    start = 0
    for frame, spec, wire, prefix in zip(frames, specs, wires, expected_prefixes(specs)):
        end = start + len(wire)
        assert (frame.fin, frame.rsv, frame.opcode) == (spec["fin"], spec["rsv"], spec["opcode"])
        assert (frame.masked, frame.mask) == (spec["mask"] is not None, spec["mask"])
        assert frame.length == len(spec["payload"])
        assert frame.header_len == len(wire) - len(spec["payload"])
        assert frame.payload == prefix
        assert frame.payload_complete is True
        assert frame.first_frame == 100 + chunk_index(cuts, start)
        assert frame.frame == 100 + chunk_index(cuts, end - 1)
        assert frame.time == float(frame.frame - 100)
        start = end
    non_minimal = sum(1 for s in specs if (s["bits"] == 16 and len(s["payload"]) < 126)
                      or (s["bits"] == 64 and len(s["payload"]) < 65536))
    assert parser.anomaly_counts.get("length-not-minimal", 0) == non_minimal
    assert parser.offset == len(stream)


VALID_FRAMES = st.one_of(
    st.builds(WsFrame, st.sampled_from([Opcode.TEXT, Opcode.BINARY, Opcode.CONT]),
              st.binary(max_size=300), st.booleans()),
    st.builds(WsFrame, st.sampled_from([Opcode.PING, Opcode.PONG, Opcode.CLOSE]), st.binary(max_size=125)),
)


@settings(max_examples=200, deadline=None)
@given(frames=st.lists(VALID_FRAMES, min_size=1, max_size=10), mask=st.booleans(),
       chunk=st.integers(1, 64))
def test_websockets_serialisation_round_trips(frames, mask, chunk):
    stream = b"".join(f.serialize(mask=mask) for f in frames)
    parser = FrameParser(from_client=mask, keep_binary=1000, keep_text=1000)
    parsed = []
    for i in range(0, len(stream), chunk):
        parsed += parser.feed(stream[i:i + chunk], i // chunk, 0.0)
    assert [(f.opcode, f.fin, f.payload, f.masked) for f in parsed] == [
        (int(f.opcode), f.fin, bytes(f.data), mask) for f in frames]
    assert parser.anomalies == []


DEFLATE = st.one_of(st.none(), st.fixed_dictionaries({
    "server_no_context_takeover": st.booleans(), "client_no_context_takeover": st.booleans(),
    "server_max_window_bits": st.integers(8, 15), "client_max_window_bits": st.integers(8, 15)}))


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.one_of(st.binary(max_size=200), st.integers(1, 300)), max_size=20),
       from_client=st.booleans(), deflate=DEFLATE, extensions=st.booleans())
def test_random_bytes_and_holes_never_raise(pieces, from_client, deflate, extensions):
    # Random bytes often start with valid-looking headers; biasing some toward RSV1
    # text/binary frames gets the inflater exercised on garbage too.
    parser = FrameParser(from_client, keep_binary=16, keep_text=4096)
    assembler = MessageAssembler(from_client, deflate, extensions, max_message=1000, max_inflate=5000)
    frames, messages, anomalies = [], [], []
    total = 0
    for i, piece in enumerate(pieces):
        if isinstance(piece, int):
            parser.hole(piece, i, float(i))
            total += piece
        else:
            frames += parser.feed(piece, i, float(i))
            total += len(piece)
    last = parser.finish(len(pieces), float(len(pieces)))
    if last is not None:
        frames.append(last)
        assert last.payload_complete is False
    for frame in frames:
        assert frame.first_frame <= frame.frame
        assert len(frame.payload) <= min(frame.length, 4096)
        found, problems = assembler.frame(frame)
        messages += found
        anomalies += problems
    found, problems = assembler.finish()
    for message in messages + found:
        assert isinstance(message, Message) and message.opcode in (1, 2, 8, 9, 10)
        assert len(message.data) <= max(message.size, 1000)
    for kind, frame_no, ts, detail in anomalies + list(problems):
        assert isinstance(kind, str) and isinstance(detail, dict)
    assert parser.offset == total
    assert len(parser.anomalies) <= 1000
    find_frame_sync(b"".join(p for p in pieces if isinstance(p, bytes)), from_client)


@st.composite
def valid_sequences(draw):
    """Frames as a conforming endpoint sends them: fragmented messages, controls between."""
    frames = []
    while len(frames) < 3:
        opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY]))
        fragments = draw(st.lists(st.binary(max_size=300), min_size=1, max_size=3))
        for i, fragment in enumerate(fragments):
            frames.append(WsFrame(opcode if i == 0 else Opcode.CONT, fragment, i == len(fragments) - 1))
            if draw(st.booleans()):
                frames.append(WsFrame(draw(st.sampled_from([Opcode.PING, Opcode.PONG])),
                                      draw(st.binary(max_size=125))))
    return frames


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(max_size=200), frames=valid_sequences(), mask=st.booleans())
def test_find_frame_sync_finds_a_real_run_after_garbage(garbage, frames, mask):
    stream = garbage + b"".join(f.serialize(mask=mask) for f in frames)
    offset = find_frame_sync(stream, from_client=mask)
    assert offset is not None and offset <= len(garbage)
    # Whatever it found really is three chained, complete-header frames.
    parser = FrameParser(from_client=mask)
    parsed = parser.feed(stream[offset:], 1, 0.0)
    tail = parser.finish(2, 0.0)
    assert len(parsed) + (tail is not None) >= 3
    assert all(f.masked == mask for f in parsed[:3])
