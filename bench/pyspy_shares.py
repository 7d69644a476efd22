#!/usr/bin/env python3
"""Shares of the sampled time by Python function, from `py-spy record --format raw` files.

    py-spy record -r 2000 -f raw -o before.txt -- python -m analyzer.cli report --format json FILE
    python bench/pyspy_shares.py before.txt [after.txt] [--top 40]

A sampling profiler does not inflate code made of many small calls the way cProfile does, so
these shares are comparable with CPU time.  "own" is the function's own lines, "inclusive" the
function and everything it called; "by file" adds up the own samples of each file's functions
(a layer's share: reader.py, decode.py, tracker.py...).  With two files, the second column is the second run's
share and the last the change in samples scaled to the first run's total (a rough estimate:
sampling totals vary with the machine's load).
"""
from __future__ import annotations

import argparse
import collections


def load(path: str) -> tuple[int, collections.Counter, collections.Counter, collections.Counter]:
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    by_file: collections.Counter = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            names = [_name(frame) for frame in stack.split(";")]
            own[names[-1]] += n
            by_file[names[-1].rpartition(" ")[2]] += n
            for name in set(names):
                incl[name] += n
    return total, own, incl, by_file


def _name(frame: str) -> str:
    # "function (path/to/pkg/file.py:123)" -> "function pkg/file.py"
    function, _, where = frame.partition(" (")
    return f"{function} {'/'.join(where.split(':')[0].split('/')[-2:])}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    runs = [load(p) for p in args.files[:2]]
    for kind in (3, 1, 2):
        title = {1: "own share by function", 2: "inclusive share by function",
                 3: "own share by file"}[kind]
        print(f"## {title} (top {args.top})\n")
        first_total, first = runs[0][0], runs[0][kind]
        for name, n in first.most_common(args.top):
            row = f"{100 * n / first_total:6.1f}%"
            if len(runs) > 1:
                total, other = runs[1][0], runs[1][kind]
                row += f" {100 * other[name] / total:6.1f}%"
            print(f"{row}  {name}")
        print()


if __name__ == "__main__":
    main()
