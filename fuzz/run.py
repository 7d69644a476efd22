#!/usr/bin/env python3
"""Run the atheris fuzzers for a given time, seeded from captures/.

    python fuzz/run.py --seconds 60                 # every harness, 60 s each, one after another
    python fuzz/run.py --seconds 300 websocket tls  # some of them
    python fuzz/run.py --jobs 2 --seconds 120       # two harnesses at a time
    python fuzz/run.py --replay                     # no atheris needed: replay seeds, corpus and
                                                    # crash files through the harnesses once

Seeds are regenerated from captures/ into fuzz/corpus/seeds/<name>/ on every run; what the
fuzzer finds interesting accumulates in fuzz/corpus/<name>/ (kept between runs), crashing
inputs land in fuzz/crashes/<name>-crash-<sha1>.  Re-run one with
`python fuzz/fuzz_<name>.py fuzz/crashes/<file>`.  Exit status 1 when any harness crashed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
NAMES = ["pcap", "tcp", "http", "websocket", "deflate", "tls", "deepgram", "pipeline"]
sys.path.insert(0, str(FUZZ))


def prepare(names: list[str]) -> dict[str, int]:
    import shutil
    import seeds
    base = FUZZ / "corpus" / "seeds"
    for name in names:
        shutil.rmtree(base / name, ignore_errors=True)
    return seeds.write_corpora(base, names)


def fuzz_one(name: str, seconds: int, rss_mb: int) -> dict:
    corpus = FUZZ / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    crashes = FUZZ / "crashes"
    crashes.mkdir(exist_ok=True)
    cmd = [sys.executable, str(FUZZ / f"fuzz_{name}.py"), f"-max_total_time={seconds}",
           "-timeout=60", f"-rss_limit_mb={rss_mb}", "-print_final_stats=1",
           f"-artifact_prefix={crashes}/{name}-", str(corpus), str(FUZZ / "corpus" / "seeds" / name)]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", cwd=ROOT)
    elapsed = time.monotonic() - started
    log = proc.stdout + proc.stderr
    (FUZZ / "corpus" / f"{name}.log").write_text(log)
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    done = re.findall(r"Done (\d+) runs in (\d+) second", log)
    cov = re.findall(r"cov: (\d+)", log)
    crash_files = re.findall(r"Test unit written to (\S+)", log)
    return {"name": name, "seconds": round(elapsed, 1), "runs": int(runs[-1]) if runs else
            (int(done[-1][0]) if done else None), "coverage": int(cov[-1]) if cov else None,
            "corpus": len(list(corpus.iterdir())), "returncode": proc.returncode,
            "crashes": crash_files}


def replay(names: list[str]) -> int:
    os.environ.setdefault("DGCAP_FUZZ_NO_INSTRUMENT", "1")
    import importlib
    failed = 0
    for name in names:
        module = importlib.import_module(f"fuzz_{name}")
        files = []
        for folder in (FUZZ / "corpus" / "seeds" / name, FUZZ / "corpus" / name):
            if folder.is_dir():
                files += sorted(folder.iterdir())
        files += sorted((FUZZ / "crashes").glob(f"{name}-*")) if (FUZZ / "crashes").is_dir() else []
        bad = 0
        for path in files:
            try:
                module.TestOneInput(path.read_bytes())
            except Exception as exc:  # noqa: BLE001 - report every failing input
                bad += 1
                print(f"  {name}: {path}: {type(exc).__name__}: {str(exc)[:200]}")
        print(f"{name}: {len(files)} inputs replayed, {bad} failed")
        failed += bad
    return 1 if failed else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", metavar="NAME", help=f"harnesses (default all: {' '.join(NAMES)})")
    p.add_argument("--seconds", type=int, default=60, help="fuzzing time per harness (default 60)")
    p.add_argument("--jobs", type=int, default=1, help="harnesses run at the same time (default 1)")
    p.add_argument("--rss-limit-mb", type=int, default=3072)
    p.add_argument("--replay", action="store_true", help="replay the corpora without atheris")
    args = p.parse_args(argv)
    names = args.names or NAMES
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        p.error(f"unknown harness {', '.join(unknown)} (known: {' '.join(NAMES)})")
    counts = prepare(names)
    if args.replay:
        return replay(names)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed (pip install atheris); use --replay to run the seeds",
              file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda n: fuzz_one(n, args.seconds, args.rss_limit_mb), names))
    print(f"{'harness':10} {'seeds':>6} {'seconds':>8} {'inputs':>10} {'cov':>6} {'corpus':>7}  result")
    for r in results:
        status = "ok" if r["returncode"] == 0 and not r["crashes"] else \
            f"CRASH rc={r['returncode']} {' '.join(r['crashes'])}"
        print(f"{r['name']:10} {counts[r['name']]:>6} {r['seconds']:>8} {r['runs'] or '?':>10} "
              f"{r['coverage'] or '?':>6} {r['corpus']:>7}  {status}")
    with open(FUZZ / "corpus" / "runs.jsonl", "a") as f:
        for r in results:
            f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **r}) + "\n")
    return 1 if any(r["returncode"] != 0 or r["crashes"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
