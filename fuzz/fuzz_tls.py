"""Fuzz the TLS layer (record framing, hello parsing, key log, decryption).

The real TLS connections of captures/ (with their key logs) are the base.  Byte 0 picks
the connection (bits 0-2), the direction fuzzed (bit 3) and the mode (bits 4-5); byte 1
the chunk size.
  mode 0: that direction's stream is replaced by the rest of the input;
  mode 1: the rest is a list of 3-byte patches (offset, offset, xor) applied to it;
  mode 2: the rest is key log text, used instead of the real key log;
  mode 3: like 1, with a hole at the first patch instead of an xor.
Properties: nothing raises and no tls-internal-error (TlsConnection turns its own bugs into
that anomaly); decrypted bytes are always, in order, pieces of what the application really
sent: AEAD never lets a corrupted record through as plaintext.
"""
from _common import Input, instrument, main

with instrument():
    from analyzer.tls import KeyLog, TlsConnection

import seeds  # noqa: E402  (after the instrumented import: seeds imports analyzer too)

# The handshake and the first application records: whole connections add time, not paths.
STREAM_BYTES = 12 * 1024
STREAMS = [(k, c[:STREAM_BYTES], s[:STREAM_BYTES]) for k, c, s in seeds.tls_streams()]
_GENUINE: dict = {}


def run(keylog_text: str, streams, chunk: int, hole_at=None):
    keylog = KeyLog()
    keylog.load_text(keylog_text)
    conn = TlsConnection(keylog)
    events = []
    frame = 0
    positions = [0, 0]
    while positions[0] < len(streams[0]) or positions[1] < len(streams[1]):
        for direction in (0, 1):
            start = positions[direction]
            data = streams[direction][start:start + chunk]
            if not data:
                continue
            frame += 1
            positions[direction] += len(data)
            if hole_at is not None and hole_at[0] == direction and start <= hole_at[1] < start + len(data):
                cut = hole_at[1] - start
                events += conn.feed(direction, data[:cut], frame, float(frame))
                events += conn.hole(direction, hole_at[2], frame, float(frame))
                data = data[cut + hole_at[2]:]
            events += conn.feed(direction, data, frame, float(frame))
    events += conn.finish()
    return conn, events


def plaintext(events, direction) -> list:
    return [e[2] for e in events if e[0] == "plaintext" and e[1] == direction]


def genuine(index: int) -> list:
    if index not in _GENUINE:
        keylog_text, client, server = STREAMS[index]
        _conn, events = run(keylog_text, (client, server), 1 << 20)
        _GENUINE[index] = [b"".join(plaintext(events, d)) for d in (0, 1)]
    return _GENUINE[index]


def in_order_pieces(pieces, whole: bytes) -> bool:
    at = 0
    for piece in pieces:
        found = whole.find(piece, at)
        if found < 0:
            return False
        at = found + len(piece)
    return True


def TestOneInput(data: bytes) -> None:
    inp = Input(data)
    sel = inp.byte()
    chunk = inp.byte() * 16 + 1
    index = (sel & 7) % len(STREAMS)
    direction = sel >> 3 & 1
    mode = sel >> 4 & 3
    keylog_text, client, server = STREAMS[index]
    streams = [client, server]
    hole_at = None
    if mode == 0:
        streams[direction] = inp.rest()
    elif mode == 2:
        keylog_text = inp.rest().decode("latin-1")
    else:
        stream = bytearray(streams[direction])
        first = True
        while inp.remaining >= 3 and stream:
            offset = inp.int(2) * len(stream) // 65536
            xor = inp.byte()
            if mode == 3 and first:
                hole_at = (direction, offset, xor + 1)
            else:
                stream[offset] ^= xor or 1
            first = False
        streams[direction] = bytes(stream)
    conn, events = run(keylog_text, streams, chunk, hole_at)
    internal = [e for e in events if e[0] == "anomaly" and e[1] == "tls-internal-error"]
    assert not internal, internal
    real = genuine(index)
    for d in (0, 1):
        assert in_order_pieces(plaintext(events, d), real[d]), d
    info = conn.info
    assert info["records"]["client"] >= 0 and info["records"]["server"] >= 0


if __name__ == "__main__":
    main(TestOneInput)
