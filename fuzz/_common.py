"""Shared bits of the atheris harnesses.

Each harness `fuzz/fuzz_<name>.py` defines `TestOneInput(data: bytes)`, which raises only
on a bug (an exception out of a parser, or a broken property).  The harnesses import the
analyzer under `instrument()` so that atheris sees its coverage; without atheris installed
they still import, so the test suite can replay the seed corpora through them
(tests/test_fuzz_harnesses.py).
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
for folder in (str(ROOT), str(FUZZ)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

try:
    import atheris  # noqa: F401
except ImportError:  # the harnesses stay importable (and replayable) without it
    atheris = None


def instrument():
    """Context manager: imports inside it are coverage-instrumented when fuzzing."""
    if atheris is None or os.environ.get("DGCAP_FUZZ_NO_INSTRUMENT"):
        return contextlib.nullcontext()
    return atheris.instrument_imports(include=["analyzer"])


class Input:
    """Deterministic reader over a fuzz input: small integers from the front, the rest as bytes."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def int(self, nbytes: int) -> int:
        value = 0
        for _ in range(nbytes):
            value = value << 8 | self.byte()
        return value

    def take(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def rest(self) -> bytes:
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos


def cuts(rng_bytes: bytes, size: int, count: int) -> list[int]:
    """Sorted distinct cut points in (0, size) derived from `rng_bytes`."""
    if size < 2 or not rng_bytes:
        return []
    import random
    rng = random.Random(rng_bytes)
    return sorted({rng.randrange(1, size) for _ in range(count)})


def chunks_of(data: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


def main(test_one_input) -> None:
    """`python fuzz/fuzz_<name>.py [libFuzzer flags] [corpus dirs]`."""
    if atheris is None:
        sys.exit("atheris is not installed: pip install atheris (or replay seeds with "
                 "python fuzz/run.py --replay)")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
