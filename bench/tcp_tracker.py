"""Throughput and memory of the TCP layer on synthetic traffic.

    python -m bench.tcp_tracker throughput [--packets 1000000] [--connections 4] [--segment 1448] [--ack-every 2]
    python -m bench.tcp_tracker halfopen [--connections 100000] [--ignore] [--tracemalloc]

`throughput` times only TcpTracker.packet: packets are generated beforehand in
batches.  `halfopen` feeds one SYN per connection and reports what stays.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc

if __package__ in (None, ""):  # run as `python bench/NAME.py`: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from analyzer.tcp.tracker import ACK, PSH, SYN, TcpTracker

_BATCH = 100_000


class _Sink:
    __slots__ = ("bytes",)

    def __init__(self):
        self.bytes = 0

    def data(self, direction, data, frame_no, ts):
        self.bytes += len(data)

    def hole(self, direction, size, frame_no, ts):
        raise AssertionError("no holes in synthetic in-order traffic")

    def tcp_end(self, kind, direction, frame_no, ts):
        pass

    def finish(self):
        pass


def _traffic(packets, connections, segment, ack_every, data=True, acks=True):
    """In-order client data with a server ACK after every `ack_every` segments, round-robin."""
    blob = bytes(range(256)) * (segment // 256 + 2)
    payloads = [memoryview(blob)[i:i + segment] for i in range(256)]
    empty = memoryview(b"")
    client, server = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    state = []
    frame = 0
    for c in range(connections):
        sport, cseq, sseq = 40000 + c, 1000 * c, 5000 * c
        for packet in ((client, server, sport, 443, cseq, 0, SYN, empty, 0),
                       (server, client, 443, sport, sseq, cseq + 1, SYN | ACK, empty, 0),
                       (client, server, sport, 443, cseq + 1, sseq + 1, ACK, empty, 0)):
            frame += 1
            yield (frame, frame * 1e-4) + packet
        state.append([sport, cseq + 1, sseq + 1, 0])
    c = 0
    while frame < packets:
        st = state[c]
        sport, cseq, sseq, sent = st
        if data:
            frame += 1
            yield (frame, frame * 1e-4, client, server, sport, 443, cseq, sseq, ACK | PSH,
                   payloads[frame & 255], 0)
            st[1] = cseq = (cseq + segment) & 0xFFFFFFFF
            st[3] = sent = sent + 1
        if acks and (not data or sent % ack_every == 0) and frame < packets:
            frame += 1
            yield (frame, frame * 1e-4, server, client, 443, sport, sseq, cseq, ACK, empty, 0)
        c = (c + 1) % connections


def throughput(packets, connections, segment, ack_every, data=True, acks=True):
    sinks = []

    def factory(conn):
        sinks.append(_Sink())
        return sinks[-1]

    tracker = TcpTracker(factory)
    packet = tracker.packet
    source = _traffic(packets, connections, segment, ack_every, data, acks)
    elapsed = 0.0
    count = 0
    while True:
        batch = [p for _, p in zip(range(_BATCH), source)]
        if not batch:
            break
        start = time.perf_counter()
        for p in batch:
            packet(*p)
        elapsed += time.perf_counter() - start
        count += len(batch)
    tracker.finish()
    delivered = sum(s.bytes for s in sinks)
    return count, elapsed, delivered


def halfopen(connections, ignore, trace):
    def factory(conn):
        return None if ignore else _Sink()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        tracemalloc.start()
    tracker = TcpTracker(factory)
    packet = tracker.packet
    server = bytes([10, 0, 0, 2])
    empty = memoryview(b"")
    start = time.perf_counter()
    for i in range(connections):
        # A fresh address object per packet, as the capture layer makes them.
        client = bytes([10, 1 + (i >> 16), (i >> 8) & 255, i & 255])
        packet(i + 1, i * 1e-5, client, server, 40000 + (i & 1023), 443, i * 7919, 0, SYN, empty, 0)
    elapsed = time.perf_counter() - start
    result = {"connections": tracker.stats["connections"], "seconds": elapsed}
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result.update(traced_current=current, traced_peak=peak)
    result["maxrss_growth_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.tcp_tracker")
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--packets", type=int, default=1_000_000)
    t.add_argument("--connections", type=int, default=4)
    t.add_argument("--segment", type=int, default=1448)
    t.add_argument("--ack-every", type=int, default=2)
    h = sub.add_parser("halfopen")
    h.add_argument("--connections", type=int, default=100_000)
    h.add_argument("--ignore", action="store_true", help="the factory returns None (tombstones only)")
    h.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args(argv)
    if args.what == "throughput":
        for label, data, acks in (("mixed", True, True), ("data only", True, False), ("acks only", False, True)):
            count, elapsed, delivered = throughput(args.packets, args.connections, args.segment,
                                                   args.ack_every, data, acks)
            print(f"{label:10s} {count:>9,d} packets in {elapsed:6.3f} s = {count / elapsed:>10,.0f} packets/s"
                  f"  ({delivered / 1e6:,.0f} MB delivered)")
    else:
        r = halfopen(args.connections, args.ignore, args.tracemalloc)
        line = f"{r['connections']:,d} half-open connections in {r['seconds']:.2f} s; maxrss +{r['maxrss_growth_kib'] / 1024:.1f} MiB"
        if "traced_current" in r:
            line += (f"; traced {r['traced_current'] / 2**20:.1f} MiB retained "
                     f"({r['traced_current'] / r['connections']:.0f} B/connection), peak {r['traced_peak'] / 2**20:.1f} MiB")
        print(line)


if __name__ == "__main__":
    main()
