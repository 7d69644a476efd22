#!/usr/bin/env python3
"""A folder of N recorded captures, and dgcap's throughput over it (README, "Fleets").

    python bench/fleet.py                      # 200 captures: -j 1, -j 2, --scheduler local -j 2
    python bench/fleet.py --captures 500 --runs 3 --out /tmp/fleet

The folder is made from the real recordings in captures/: every sample once, `editcap -c
40` pieces of the larger ones (their later pieces start mid-connection, as a capture split
for a worker does), then copies of the samples under new names until N (in rounds: the
first as is, the next two moved 1 and 2 days later with `editcap -t`, as a ring buffer
running for days would hold), plus one corrupt capture (a pcap cut inside its file
header; the tests add it, the timing runs leave it out).  tests/test_fleet.py uses
build_fleet() for its fleet.

Each configuration runs `dgcap report DIR --format jsonl -o /dev/null -q` (plus -j N or
--scheduler local) in a child process, timed around it; the start-up cost is the same
command on one tiny capture (captures/dg_401.pcap), and the cost per capture is
(time for N - start-up) / N.  Median of --runs.  The machine's load average is printed with
the results: other work on it slows every number.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "captures"
# The larger recordings (90+ packets), each cut into 40-packet pieces.
SPLIT = ("dg_success.pcap", "dg_fast_1_5x.pcap", "dg_multi.pcapng", "dg_silence_7s.pcap",
         "flux_listen.pcap", "tls13_aes128_success.pcap")
SPLIT_PACKETS = 40
CORRUPT_NAME = "zz_corrupt.pcap"


# The recordings the fleet is made of: a fixed list, so recordings added to captures/ later
# do not change the fleet (and the numbers the tests and the README give for it).
SAMPLES = (
    "dg_400.pcap", "dg_401.pcap", "dg_data0000.pcap", "dg_deflate.pcap", "dg_empty_binary.pcap",
    "dg_fast_1_5x.pcap", "dg_ipv6.pcap", "dg_keepalive_binary.pcap", "dg_keepalive_only.pcap",
    "dg_multi.pcapng", "dg_net0001.pcap", "dg_no_closestream.pcap", "dg_rst.pcap", "dg_silence_7s.pcap",
    "dg_success.pcap", "dg_wait_for_server.pcap", "dg_wav_container.pcap", "flux_listen.pcap",
    "tls12_aes256gcm_success.pcap", "tls12_chacha20_success.pcap", "tls13_aes128_success.pcap",
    "tls13_chacha20_success.pcap", "tls13_embedded_secrets.pcapng", "tls13_net0001.pcap", "tts_speak.pcap",
    "ws_fragmented_ping.pcap",
)


def samples() -> list[Path]:
    return [CAPTURES / name for name in SAMPLES]


def _file_type(path: Path) -> str:
    """editcap's -F for the same format as the input (editcap writes pcapng by default)."""
    magic = path.read_bytes()[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        return "pcapng"
    return "nsecpcap" if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else "pcap"


def build_fleet(dest: Path, count: int = 200, corrupt: bool = True) -> dict:
    """Write `count` captures (plus the corrupt one) into dest; returns what went where.

    {"originals": {file name: sample name}, "splits": {file name: (sample, piece)},
     "copies": {file name: (sample name, days moved)}, "corrupt": file name or None}
    """
    dest.mkdir(parents=True, exist_ok=True)
    made = {"originals": {}, "splits": {}, "copies": {}, "corrupt": None}
    n = 0

    def name(kind: str, sample: str) -> str:
        return f"{n:03d}_{kind}_{sample}"

    for s in samples():
        shutil.copyfile(s, dest / name("orig", s.name))
        made["originals"][name("orig", s.name)] = s.name
        n += 1
    with tempfile.TemporaryDirectory() as tmp:
        for sample in SPLIT:
            out = Path(tmp) / sample
            out.mkdir()
            src = CAPTURES / sample
            subprocess.run(["editcap", "-F", _file_type(src), "-c", str(SPLIT_PACKETS), str(src),
                            str(out / f"piece{src.suffix}")],
                           check=True, capture_output=True)
            for piece, p in enumerate(sorted(out.iterdir())):
                if n >= count:
                    break
                target = name(f"split{piece}", sample)
                shutil.copyfile(p, dest / target)
                made["splits"][target] = (sample, piece)
                n += 1
    cycle = samples()
    i = 0
    while n < count:
        s = cycle[i % len(cycle)]
        # Two copies in three are moved 1 or 2 days later (editcap -t): a ring buffer that
        # ran for three days.  The others are byte-for-byte copies (same SHA-256), and so
        # are the pcapng ones (editcap 4.0 cannot rewrite a pcapng holding TLS secrets).
        days = (i // len(cycle)) % 3 if s.suffix == ".pcap" else 0
        target = dest / name(f"copy+{days}d", s.name)
        if days:
            subprocess.run(["editcap", "-F", _file_type(s), "-t", str(days * 86400), str(s), str(target)],
                           check=True, capture_output=True)
        else:
            shutil.copyfile(s, target)
        made["copies"][target.name] = (s.name, days)
        n += 1
        i += 1
    if corrupt:
        # A pcap whose file header is cut after 16 of its 24 bytes: it cannot be read at all.
        (dest / CORRUPT_NAME).write_bytes((CAPTURES / "dg_401.pcap").read_bytes()[:16])
        made["corrupt"] = CORRUPT_NAME
    return made


def _time(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "analyzer.cli", *args], env=env, cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"dgcap {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--captures", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, help="folder for the captures (default: a temporary one)")
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("SSLKEYLOGFILE", None)
    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory()
        args.out = Path(tmp.name)
    folder = args.out / "fleet"
    if folder.exists():
        shutil.rmtree(folder)
    made = build_fleet(folder, args.captures, corrupt=False)
    size = sum(p.stat().st_size for p in folder.iterdir())
    one = str(CAPTURES / "dg_401.pcap")
    configs = [("-j 1", ["-j", "1"]), ("-j 2", ["-j", "2"]), ("--scheduler local -j 2", ["--scheduler", "local", "-j", "2"])]
    print(f"{args.captures} captures ({len(made['originals'])} samples, {len(made['splits'])} editcap pieces, "
          f"{len(made['copies'])} copies), {size / 1e6:.1f} MB; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| run | wall time, N captures | captures/s | start-up (1 capture) | per capture after start-up |")
    print("|---|---:|---:|---:|---:|")
    for label, extra in configs:
        walls, starts = [], []
        for _ in range(args.runs):
            walls.append(_time(["report", str(folder), "--format", "jsonl", "-o", os.devnull, "-q", *extra], env))
            starts.append(_time(["report", one, "--format", "jsonl", "-o", os.devnull, "-q", *extra], env))
        wall, start = statistics.median(walls), statistics.median(starts)
        print(f"| `{label}` | {wall:.2f} s | {args.captures / wall:.1f} | {start:.2f} s | "
              f"{(wall - start) / args.captures * 1000:.1f} ms |", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
