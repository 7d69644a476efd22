"""Frame-parsing throughput: python -m bench.websocket_frames [frames]

Masked binary frames of 1-3 KB (client audio as Deepgram receives it), parsed
with keep_binary=64, fed in TCP-segment-sized and in large chunks.
"""
from __future__ import annotations

import os
import random
import struct
import sys
import time

if __package__ in (None, ""):  # run as `python bench/NAME.py`: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from analyzer.websocket.frames import FrameParser, unmask


def masked_binary_stream(count: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    frames = []
    for _ in range(count):
        payload = os.urandom(rng.randint(1024, 3072))
        mask = os.urandom(4)
        frames.append(b"\x82\xfe" + struct.pack("!H", len(payload)) + mask + unmask(payload, mask))
    return b"".join(frames)


def main(argv: list[str]) -> None:
    count = int(argv[1]) if len(argv) > 1 else 20000
    stream = masked_binary_stream(count)
    megabytes = len(stream) / 1e6
    for chunk_size in (1448, 16384, 65536):
        chunks = [stream[i:i + chunk_size] for i in range(0, len(stream), chunk_size)]
        best = float("inf")
        for _ in range(5):
            parser = FrameParser(from_client=True, keep_binary=64)
            started = time.perf_counter()
            parsed = 0
            for number, chunk in enumerate(chunks):
                parsed += len(parser.feed(chunk, number, 0.0))
            best = min(best, time.perf_counter() - started)
        assert parsed == count
        print(f"chunks of {chunk_size:5d} B: {count / best:9.0f} frames/s {megabytes / best:7.1f} MB/s "
              f"({count} frames, {megabytes:.1f} MB, best of 5)")


if __name__ == "__main__":
    main(sys.argv)
