"""permessage-deflate (RFC 7692): context takeover, window bits, bombs, failures."""
from __future__ import annotations

import json
import random
import struct
import tracemalloc
import zlib

from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode

from analyzer.websocket import Frame, FrameParser, MessageAssembler

MASK = b"\xa5\x5a\x0f\xf0"
TRAILER = b"\x00\x00\xff\xff"


def ws_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bytes | None = None) -> bytes:
    length = len(payload)
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if mask is not None:
        key = (mask * (length // 4 + 1))[:length]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
        head += mask
    return head + payload


def deflate_params(**kw) -> dict:
    params = {"server_no_context_takeover": False, "client_no_context_takeover": False,
              "server_max_window_bits": 15, "client_max_window_bits": 15}
    params.update(kw)
    return params


def assemble(wire: bytes, deflate: dict | None, from_client: bool = True, chunk: int = 1448, **kw):
    parser = FrameParser(from_client, keep_binary=kw.get("keep_binary", 64), keep_text=kw.pop("keep_text", 1 << 20))
    assembler = MessageAssembler(from_client, deflate, deflate is not None, **kw)
    messages, anomalies = [], []
    for i in range(0, len(wire), chunk):
        for frame in parser.feed(wire[i:i + chunk], i // chunk + 1, 0.0):
            found, problems = assembler.frame(frame)
            messages += found
            anomalies += problems
    return messages, anomalies


def raw_deflate(messages, wbits: int, takeover: bool = True) -> list[bytes]:
    """Compress each message as a permessage-deflate sender does (sync flush, trailer removed)."""
    out = []
    compressor = zlib.compressobj(wbits=-wbits)
    for data in messages:
        if not takeover:
            compressor = zlib.compressobj(wbits=-wbits)
        payload = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert payload.endswith(TRAILER)
        out.append(payload[:-4])
    return out


def transcripts(n: int) -> list[bytes]:
    return [json.dumps({"type": "Results", "channel_index": [0, 1], "duration": 1.02 + i,
                        "is_final": i % 2 == 0,
                        "channel": {"alternatives": [{"transcript": f"hello number {i} world",
                                                      "confidence": 0.98}]}}).encode()
            for i in range(n)]


def test_context_takeover_over_several_messages_websockets_as_producer():
    # The client side of a connection that agreed permessage-deflate with context takeover.
    extension = PerMessageDeflate(False, False, 15, 15)
    texts = transcripts(5)
    frames = [WsFrame(Opcode.TEXT, t) for t in texts[:4]]
    # A fragmented message with a ping between its fragments.
    frames += [WsFrame(Opcode.TEXT, texts[4][:40], fin=False), WsFrame(Opcode.PING, b"p"),
               WsFrame(Opcode.CONT, texts[4][40:])]
    wire = b"".join(f.serialize(mask=True, extensions=[extension]) for f in frames)
    messages, anomalies = assemble(wire, deflate_params(), chunk=37)
    assert anomalies == []
    assert [(m.opcode, m.compressed) for m in messages] == [(1, True)] * 4 + [(9, False), (1, True)]
    data_messages = [m for m in messages if m.opcode == 1]
    assert [m.data for m in data_messages] == texts
    assert [m.size for m in data_messages] == [len(t) for t in texts]
    assert [m.utf8_valid for m in data_messages] == [True] * 5
    assert data_messages[4].fragments == 2
    # Later messages refer back to earlier ones: that only decodes with the context kept.
    assert data_messages[1].wire_size < data_messages[0].wire_size // 2


def test_no_context_takeover_is_honoured():
    texts = transcripts(3)
    extension = PerMessageDeflate(False, True, 15, 15)  # client_no_context_takeover
    wire = b"".join(WsFrame(Opcode.TEXT, t).serialize(mask=True, extensions=[extension]) for t in texts)
    messages, anomalies = assemble(wire, deflate_params(client_no_context_takeover=True))
    assert ([m.data for m in messages], anomalies) == (texts, [])


def test_declared_no_context_takeover_fails_on_a_stream_that_keeps_context():
    texts = transcripts(2)
    wire = b"".join(ws_frame(1, p, rsv=4, mask=MASK) for p in raw_deflate(texts, 15))
    messages, anomalies = assemble(wire, deflate_params(client_no_context_takeover=True))
    assert messages[0].data == texts[0]
    assert messages[1].complete is False
    assert [a[0] for a in anomalies] == ["inflate-failed"]
    assert anomalies[0][3] == {"error": "Error -3 while decompressing data: invalid distance too far back",
                               "context_lost": False}


def test_server_direction_uses_server_parameters():
    texts = transcripts(3)
    wire = b"".join(ws_frame(1, p, rsv=4) for p in raw_deflate(texts, 9, takeover=False))
    params = deflate_params(server_no_context_takeover=True, server_max_window_bits=9, client_max_window_bits=8)
    messages, anomalies = assemble(wire, params, from_client=False)
    assert ([m.data for m in messages], anomalies) == (texts, [])


def test_window_bits_12():
    texts = [b"Zeek_WebSocket_Test_String_" * 50, b"Hello_Zeek_Analyzer_" * 50] + transcripts(3)
    wire = b"".join(ws_frame(1, p, rsv=4, mask=MASK) for p in raw_deflate(texts, 12))
    messages, anomalies = assemble(wire, deflate_params(client_max_window_bits=12))
    assert ([m.data for m in messages], anomalies) == (texts, [])


def test_window_larger_than_agreed_within_a_fragmented_message():
    rng = random.Random(7)
    repeated = rng.randbytes(300)
    data = repeated + rng.randbytes(6000) + repeated  # a match 6300 bytes back: needs an 8 KiB window
    (payload,) = raw_deflate([data], 15)
    # A streaming sender's small fragments: each is inflated on its own, so the far
    # match reaches past the 4 KiB of history a 12-bit window holds, and zlib says so.
    pieces = [payload[i:i + 64] for i in range(0, len(payload), 64)]
    wire = b"".join(ws_frame(2 if i == 0 else 0, p, rsv=4 if i == 0 else 0, fin=i == len(pieces) - 1, mask=MASK)
                    for i, p in enumerate(pieces))
    wire += ws_frame(2, raw_deflate([b"next"], 15)[0], rsv=4, mask=MASK)
    messages, anomalies = assemble(wire, deflate_params(client_max_window_bits=12, client_no_context_takeover=True),
                                   chunk=len(wire), keep_binary=100000)
    assert [m.data for m in messages] == [data, b"next"]
    assert [(m.size, m.fragments, m.complete) for m in messages] == [(6600, len(pieces), True), (4, 1, True)]
    assert anomalies == [("deflate-window-exceeded", 1, 0.0, {"agreed_window_bits": 12})]


def test_window_larger_than_agreed_across_messages_keeps_the_history():
    rng = random.Random(8)
    first = rng.randbytes(9000)
    second = first[:500] + b"tail"  # refers 9000 bytes back, into the previous message
    wire = b"".join(ws_frame(2, p, rsv=4, mask=MASK) for p in raw_deflate([first, second, first[-100:]], 15))
    messages, anomalies = assemble(wire, deflate_params(client_max_window_bits=12), keep_binary=100000)
    assert [m.data for m in messages] == [first, second, first[-100:]]
    assert [a[0] for a in anomalies] == ["deflate-window-exceeded"]


def test_bfinal_block_starts_a_new_stream():
    texts = transcripts(2)
    payloads = []
    for t in texts:
        compressor = zlib.compressobj(wbits=-15)
        payloads.append(compressor.compress(t) + compressor.flush(zlib.Z_FINISH))
    wire = b"".join(ws_frame(1, p, rsv=4, mask=MASK) for p in payloads)
    messages, anomalies = assemble(wire, deflate_params())
    assert ([m.data for m in messages], anomalies) == (texts, [])


def test_garbage_fails_and_the_next_message_reports_the_lost_context():
    texts = transcripts(2)
    good = raw_deflate(texts, 15)
    wire = ws_frame(1, b"\xff\xff\xff\xff", rsv=4, mask=MASK) + b"".join(ws_frame(1, p, rsv=4, mask=MASK) for p in good)
    messages, anomalies = assemble(wire, deflate_params())
    assert [a[0] for a in anomalies] == ["inflate-failed"]
    assert anomalies[0][3] == {"error": "Error -3 while decompressing data: invalid block type",
                               "context_lost": False}
    # The first good message needs no history; the second refers to it, which we have again.
    assert [m.data for m in messages[1:]] == texts
    assert [m.complete for m in messages] == [False, True, True]


def test_uncompressed_message_on_a_deflate_connection():
    wire = ws_frame(1, b"plain", mask=MASK)
    messages, anomalies = assemble(wire, deflate_params())
    assert [(m.data, m.compressed) for m in messages] == [(b"plain", False)]
    assert anomalies == []


def test_rsv1_without_negotiated_deflate_is_not_inflated():
    (payload,) = raw_deflate([b"hello"], 15)
    messages, anomalies = assemble(ws_frame(1, payload, rsv=4, mask=MASK), None)
    assert [(m.data, m.compressed) for m in messages] == [(payload, False)]
    assert [a[0] for a in anomalies] == ["rsv-without-extension", "invalid-utf8"]


def test_hole_in_a_compressed_message_keeps_what_inflated_before_it():
    text = b"".join(transcripts(40))
    (payload,) = raw_deflate([text], 15)
    wire = ws_frame(1, payload, rsv=4, mask=MASK)
    parser = FrameParser(True)
    assembler = MessageAssembler(True, deflate_params(), True)
    parser.feed(wire[:300], 1, 0.1)
    parser.hole(len(wire) - 300, 2, 0.2)
    (message,), anomalies = assembler.frame(parser.finish(3, 0.3))
    assert anomalies == ()
    assert message.complete is False
    assert 0 < len(message.data) == message.size < len(text)
    assert text.startswith(message.data)


# -- deflate bomb ---------------------------------------------------------------

def _bits(bits) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        out[i >> 3] |= bit << (i & 7)
    return bytes(out)


def _code(value: int, width: int) -> list[int]:
    return [(value >> (width - 1 - i)) & 1 for i in range(width)]  # Huffman codes: MSB first


def deflate_bomb(inflated_size: int) -> bytes:
    """Raw deflate of `inflated_size`-ish zero bytes, built by hand so no test has to compress a GiB.

    One fixed-Huffman block: literal 0, then (length 258, distance 1) matches, 13 bits each;
    8 matches are exactly 13 bytes, so the body is one 13-byte unit repeated.  Deflate tops
    out near 1:1032, so a 1 GiB bomb is ~6.5 MB, not 1 KB.
    """
    match = _code(0b11000101, 8) + _code(0, 5)  # length code 285 = 258 bytes, distance code 0 = 1
    prefix = _bits([0, 1, 0] + _code(0x30, 8) + match)  # BFINAL 0, BTYPE 01, literal 0x00, one match
    unit = _bits(match * 8)
    end = _bits(_code(0, 7) + [0, 0, 0])  # end of block, then the stored-block bits of the stripped flush
    units = max(0, (inflated_size - 259) // (258 * 8))
    return prefix + unit * units + end


def test_deflate_bomb_builder_is_exact():
    assert zlib.decompressobj(-15).decompress(deflate_bomb(100000) + TRAILER) == bytes(1 + 258 + 2064 * 48)


def test_deflate_bomb_is_capped_at_max_inflate():
    bomb = deflate_bomb(1 << 30)  # 1 GiB of zeros in 6.5 MB
    assert len(bomb) < 7 << 20
    frame = Frame(True, 4, 2, True, MASK, len(bomb), 14, 3, 0.3, 5, 0.5)
    frame.payload = bomb
    after = Frame(True, 4, 2, True, MASK, 0, 6, 6, 0.6, 6, 0.6)
    after.payload = raw_deflate([b"still alive"], 15)[0]
    assembler = MessageAssembler(True, deflate_params(), True)  # default caps: 64 MiB inflate
    tracemalloc.start()
    try:
        (message,), anomalies = assembler.frame(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20  # one decompress chunk at a time, never the inflated message
    assert (message.opcode, message.size, message.wire_size, message.data) == (2, 64 << 20, len(bomb), bytes(64))
    assert message.complete is False
    assert anomalies == [("inflate-limit", 5, 0.5, {"max_inflate": 64 << 20, "wire_size": len(bomb)}),
                         ("message-too-big", 5, 0.5, {"size": 64 << 20, "max": 16 << 20})]
    # Inflation was abandoned mid-stream; the next message starts from a fresh context.
    (next_message,), anomalies = assembler.frame(after)
    assert (next_message.data, anomalies) == (b"still alive", ())


def test_deflate_bomb_in_a_text_message_keeps_max_message():
    bomb = deflate_bomb(50 << 20)
    messages, anomalies = assemble(ws_frame(1, bomb, rsv=4, mask=MASK), deflate_params(), chunk=1 << 20,
                                   keep_text=8 << 20, max_message=1 << 20, max_inflate=8 << 20)
    (message,) = messages
    assert (message.size, len(message.data), message.utf8_valid) == (8 << 20, 1 << 20, True)
    assert [a[0] for a in anomalies] == ["inflate-limit", "message-too-big"]


def test_deflate_agreed_without_parameters_uses_rfc_defaults():
    texts = transcripts(2)
    wire = b"".join(ws_frame(1, p, rsv=4, mask=MASK) for p in raw_deflate(texts, 15))
    parser = FrameParser(True)
    assembler = MessageAssembler(True, {}, True)
    results = [assembler.frame(f) for f in parser.feed(wire, 1, 0.0)]
    assert [[m.data for m in messages] for messages, _ in results] == [[t] for t in texts]
    assert [anomalies for _, anomalies in results] == [(), ()]
