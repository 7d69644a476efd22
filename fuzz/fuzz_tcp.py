"""Fuzz TCP reassembly and the connection tracker.

Mode 0 (first byte even): the input is a list of arbitrary segments (two endpoints,
any seq/ack/flags/payload) fed to a TcpTracker: nothing may raise, and every delivered
chunk is a byte range or a positive hole.
Mode 1 (first byte odd): the rest of the input is a byte stream; it is sent as a proper
connection whose data segments are cut, reordered and duplicated (chosen by the next
bytes): the handler must receive exactly the original bytes, with no hole.
"""
import random
import struct

from _common import Input, chunks_of, cuts, instrument, main

with instrument():
    from analyzer.tcp import TcpTracker

A, B = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16


class Handler:
    def __init__(self, conn):
        self.conn = conn
        self.out = [bytearray(), bytearray()]
        self.holes = [0, 0]
        self.ends = []
        self.finished = 0

    def data(self, direction, data, frame_no, ts):
        assert direction in (0, 1) and len(data) > 0
        self.out[direction] += data

    def hole(self, direction, size, frame_no, ts):
        assert direction in (0, 1) and size > 0
        self.holes[direction] += size

    def tcp_end(self, kind, direction, frame_no, ts):
        assert kind in ("fin", "rst") and direction in (0, 1)
        self.ends.append(kind)

    def finish(self):
        self.finished += 1


def arbitrary_segments(inp: Input) -> None:
    handlers = []
    tracker = TcpTracker(lambda conn: handlers.append(Handler(conn)) or handlers[-1],
                         max_pending=inp.byte() * 64 + 1, verify_window=inp.byte() * 16)
    frame = 0
    while inp.remaining >= 12:
        frame += 1
        head = inp.take(12)
        from_a = head[0] & 1
        port_bits = head[0] >> 1 & 3
        sport, dport = 40000 + port_bits, 443
        if not from_a:
            sport, dport = dport, sport
        seq, ack = struct.unpack("!II", head[1:9])
        flags = head[9] & 0x3F
        missing = head[10] if head[10] < 8 else 0
        payload = inp.take(head[11] % 64)
        src, dst = (A, B) if from_a else (B, A)
        tracker.packet(frame, float(frame), src, dst, sport, dport, seq, ack, flags,
                       memoryview(payload), missing)
    tracker.finish()
    for h in handlers:
        assert h.finished <= 1
        assert h.ends.count("rst") <= 1
    stats = tracker.stats
    # (a connection re-opened with the same SYN after its end keeps its stream number)
    assert all(h.conn.stream < stats["connections"] for h in handlers)


def reassembly(inp: Input) -> None:
    control = inp.take(8)
    stream = inp.rest()
    rng = random.Random(control)
    isn = rng.choice([rng.randrange(1 << 32), (1 << 32) - 1 - rng.randrange(len(stream) + 2)])
    server_isn = rng.randrange(1 << 32)
    segments = []
    for _ in range(1 + rng.randrange(3)):  # several segmentations: retransmissions
        points = cuts(control + bytes([len(segments) & 0xFF]), len(stream), rng.randrange(12))
        offset = 0
        for piece in chunks_of(stream, points):
            if piece:
                segments.append((offset, piece))
            offset += len(piece)
    segments += [rng.choice(segments) for _ in range(rng.randrange(4))] if segments else []
    rng.shuffle(segments)
    handlers = []
    tracker = TcpTracker(lambda conn: handlers.append(Handler(conn)) or handlers[-1])
    frames = iter(range(1, 1 << 30))

    def send(src, dst, sport, dport, seq, ack, flags, payload=b""):
        tracker.packet(next(frames), 0.0, src, dst, sport, dport, seq & 0xFFFFFFFF,
                       ack & 0xFFFFFFFF, flags, memoryview(payload), 0)

    send(A, B, 50000, 443, isn, 0, SYN)
    send(B, A, 443, 50000, server_isn, isn + 1, SYN | ACK)
    send(A, B, 50000, 443, isn + 1, server_isn + 1, ACK)
    for offset, piece in segments:
        send(A, B, 50000, 443, isn + 1 + offset, server_isn + 1, ACK | PSH, piece)
    send(A, B, 50000, 443, isn + 1 + len(stream), server_isn + 1, FIN | ACK)
    send(B, A, 443, 50000, server_isn + 1, isn + 2 + len(stream), FIN | ACK)
    send(A, B, 50000, 443, isn + 2 + len(stream), server_isn + 2, ACK)
    tracker.finish()
    [h] = handlers
    assert bytes(h.out[0]) == stream, (len(h.out[0]), len(stream))
    assert h.out[1] == b"" and h.holes == [0, 0], h.holes
    assert h.finished == 1 and h.ends == ["fin", "fin"], h.ends


def TestOneInput(data: bytes) -> None:
    inp = Input(data)
    if inp.byte() & 1:
        reassembly(inp)
    else:
        arbitrary_segments(inp)


if __name__ == "__main__":
    main(TestOneInput)
