"""TCP through the connection tracker (not just one reassembler): both directions of a real
connection, each cut into arbitrary segments, reordered within its direction, duplicated, and
the two directions interleaved arbitrarily, reach the handler byte-for-byte, with no hole, and
end with one FIN per side.  Arbitrary segments never raise (tests/test_fuzz_harnesses.py
replays the atheris harness fuzz/fuzz_tcp.py, which also feeds raw garbage).
"""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.tcp import TcpTracker

from test_fuzz_harnesses import seeds

A, B = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
FIN, SYN, PSH, ACK = 1, 2, 8, 16
# Real connections: the plain-text ones of the samples, cut to 20 kB per direction.
STREAMS = [(c[:20000], s[:20000]) for path in seeds.capture_paths()
           for c, s in seeds.tcp_streams(path) if c and s][:24]


class Handler:
    def __init__(self):
        self.out = [bytearray(), bytearray()]
        self.holes = 0
        self.ends = []

    def data(self, direction, data, frame_no, ts):
        self.out[direction] += data

    def hole(self, direction, size, frame_no, ts):
        self.holes += size

    def tcp_end(self, kind, direction, frame_no, ts):
        self.ends.append((kind, direction))

    def finish(self):
        pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(STREAMS))), st.integers(0, 2 ** 32 - 1), st.integers(0, 2 ** 32 - 1),
       st.integers(0, 2 ** 32), st.integers(0, 2 ** 32))
def test_both_directions_reassemble_exactly_through_the_tracker(index, client_isn, server_isn, seed, seed2):
    streams = STREAMS[index]
    isn = [client_isn, server_isn]
    rng = random.Random(seed)
    segments = []
    for direction, stream in enumerate(streams):
        pieces = []
        for _ in range(rng.randint(1, 2)):
            cuts = sorted({rng.randrange(1, len(stream)) for _ in range(rng.randrange(0, 30))} | {0, len(stream)})
            pieces += [(a, stream[a:b]) for a, b in zip(cuts, cuts[1:])]
        pieces += [rng.choice(pieces) for _ in range(rng.randrange(0, 5))]
        rng.shuffle(pieces)
        segments.append([(direction, off, data) for off, data in pieces])
    # Interleave the directions in any way, keeping each direction's own (shuffled) order.
    mix = random.Random(seed2)
    order = []
    queues = [list(s) for s in segments]
    while any(queues):
        d = mix.choice([i for i in (0, 1) if queues[i]])
        order.append(queues[d].pop(0))
    handlers = []
    tracker = TcpTracker(lambda conn: handlers.append(Handler()) or handlers[-1])
    frame = 0

    def send(direction, seq, flags, payload=b""):
        nonlocal frame
        frame += 1
        src, dst, sport, dport = (A, B, 50000, 443) if direction == 0 else (B, A, 443, 50000)
        # ACK numbers acknowledge only the handshake: the data's ACKs could reveal holes.
        ack = (isn[1 - direction] + 1) & 0xFFFFFFFF
        tracker.packet(frame, frame * 0.001, src, dst, sport, dport, seq & 0xFFFFFFFF, ack, flags,
                       memoryview(payload), 0)

    send(0, isn[0], SYN)
    send(1, isn[1], SYN | ACK)
    send(0, isn[0] + 1, ACK)
    for direction, offset, data in order:
        send(direction, isn[direction] + 1 + offset, ACK | PSH, data)
    send(0, isn[0] + 1 + len(streams[0]), FIN | ACK)
    send(1, isn[1] + 1 + len(streams[1]), FIN | ACK)
    tracker.finish()
    [h] = handlers
    assert (bytes(h.out[0]), bytes(h.out[1])) == streams
    assert h.holes == 0
    assert sorted(h.ends) == [("fin", 0), ("fin", 1)]
