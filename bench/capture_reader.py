"""Throughput of the capture layer on a synthetic Ethernet/IPv4/TCP capture.

    python -m bench.capture_reader [--packets 500000] [--formats pcap,pcapng,pcap.gz]
"""
from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as `python bench/NAME.py`: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from analyzer.capture.decode import PacketDecoder
from analyzer.capture.reader import open_capture
from tests.support import capture_synth as synth

_PAYLOAD_SIZES = (0, 40, 200, 1000, 1448)  # pure ACKs to full-size segments


def _frames() -> list:
    return [synth.ethernet(synth.ipv4(synth.tcp(50000, 443, 1, 1, synth.ACK | synth.PSH, b"x" * n)))
            for n in _PAYLOAD_SIZES]


def write_pcap(path: str, packets: int) -> None:
    frames = _frames()
    start = 1_700_000_000_000_000
    with open(path, "wb") as out:
        out.write(synth.pcap([]))
        for i in range(packets):
            t = start + 137 * i
            frame = frames[i % len(frames)]
            out.write(synth.pcap([(t // 1_000_000, t % 1_000_000, frame)])[24:])


def write_pcapng(path: str, packets: int) -> None:
    frames = _frames()
    start = 1_700_000_000_000_000
    with open(path, "wb") as out:
        out.write(synth.shb() + synth.idb(1))
        for i in range(packets):
            out.write(synth.epb(0, start + 137 * i, frames[i % len(frames)]))


def _time_read(path: str) -> tuple:
    with open_capture(path) as cap:
        began = time.perf_counter()
        count = 0
        for _ in cap.packets():
            count += 1
        return count, time.perf_counter() - began


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=500_000)
    parser.add_argument("--formats", default="pcap,pcapng,pcap.gz")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        pcap_path = os.path.join(tmp, "bench.pcap")
        write_pcap(pcap_path, args.packets)
        for fmt in args.formats.split(","):
            path = os.path.join(tmp, "bench." + fmt)
            if fmt == "pcapng":
                write_pcapng(path, args.packets)
            elif fmt == "pcap.gz":
                with open(pcap_path, "rb") as src, gzip.open(path, "wb", compresslevel=6) as dst:
                    dst.write(src.read())
            count, seconds = _time_read(path)
            print(f"packets() {fmt:8} {count:>9,} packets {seconds:6.3f} s "
                  f"{count / seconds:>12,.0f} packets/s")

        with open_capture(pcap_path) as cap:
            records = [(frame_no, linktype, data) for frame_no, _ts, linktype, data in cap.packets()]
        decoder = PacketDecoder()
        decode = decoder.decode
        began = time.perf_counter()
        for frame_no, linktype, data in records:
            decode(frame_no, linktype, data)
        seconds = time.perf_counter() - began
        print(f"decode()  {'eth/ip4':8} {len(records):>9,} packets {seconds:6.3f} s "
              f"{len(records) / seconds:>12,.0f} packets/s  tcp={decoder.tcp}")


if __name__ == "__main__":
    main()
