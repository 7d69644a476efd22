#!/usr/bin/env python3
"""dgcap vs tshark on synthetic Deepgram captures: wall time, throughput, peak memory, and equal answers.

    python bench/run.py                                # mixed 400 MB and pure-stream 420 MB, 3 runs each
    python bench/run.py --case pure-stream --size 42M  # quick: a tenth of the pure-stream case
    python bench/run.py --case mixed --size 400M       # one 400 MB pcap, 3 runs each
    python bench/run.py --size 100M,400M --runs 5      # several sizes
    python bench/run.py --size 400M --format pcapng
    python bench/run.py --size 400M --tls              # wss:// sessions, decrypted with the key log
    python bench/run.py --size 4G --runs 1             # big: needs ~4 GB free in --out
    python bench/run.py --build pure,compiled          # both builds side by side (README "Compiled build")
    python bench/run.py --case pure-stream --shards 2  # also dgcap --shards 2 (same report, both cores)

Two kinds of capture (--case): "mixed" (40 concurrent Deepgram sessions of 30-120 s among HTTP
downloads, SSH, DNS and RTP that dgcap drops after their first bytes; 400 MB by default) and
"pure-stream" (nothing but 20 concurrent 10-minute linear16 sessions, 100 ms chunks over a
1448-byte MSS; 420 MB by default), the hardest realistic input for dgcap.  --size overrides
the case's size.  For each case and size the capture is synthesised by bench/synth.py into --out (default /tmp/dgbench,
deleted afterwards unless --keep; a kept capture with the same parameters is reused), then

    dgcap report --format json FILE                                  [--keylog KEYS]
    tshark -r FILE -Y websocket -T fields -e frame.number -e websocket.opcode \
           -e websocket.payload.close.status_code                    [-o tls.keylog_file:KEYS]

run alternately (the order flips every run), each in a child process whose wall time is
taken around it and whose peak RSS comes from its own rusage (os.wait4).  Before any timing
is believed, both outputs are checked: the report's WebSocket frames (client + server, summed
over sessions) per opcode and the close status codes must equal tshark's, and both must equal
what the generator wrote (OUT.truth.json).  Results are printed as a table and appended to
--out/results.jsonl.

--build chooses which dgcap builds run (each as its own engine in the same alternation):
"pure" (DGCAP_PURE=1: the pure-Python modules) and "compiled" (the mypyc extensions, built
first with `python setup.py build_ext --inplace`); by default both where the compiled build
is present, else pure.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import threading
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import synth  # noqa: E402

OPCODE_NAMES = {"0": "continuation", "1": "text", "2": "binary", "8": "close", "9": "ping", "10": "pong"}
FRAME_KINDS = ("continuation", "text", "binary", "close", "ping", "pong", "other")


REPO = os.path.dirname(HERE)


def dgcap_command(path: str, keylog: str | None, extra: list = ()) -> list:
    # `dgcap` itself, from this checkout (PYTHONPATH is set to it in run_child): the installed
    # console script may point at another copy, and pyenv's shim adds a bash start-up.
    cmd = [sys.executable, "-m", "analyzer.cli", "report", "--format", "json", path]
    if keylog:
        cmd += ["--keylog", keylog]
    return cmd + list(extra)


def tshark_command(path: str, keylog: str | None) -> list:
    cmd = ["tshark", "-r", path, "-Y", "websocket", "-T", "fields", "-e", "frame.number",
           "-e", "websocket.opcode", "-e", "websocket.payload.close.status_code"]
    if keylog:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    return cmd


def child_env(build: str | None = None) -> dict:
    env = dict(os.environ)
    env.pop("DGCAP_PURE", None)
    if build == "pure":
        env["DGCAP_PURE"] = "1"  # the .py files even where compiled extensions sit beside them
    env.pop("SSLKEYLOGFILE", None)  # dgcap would pick it up
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # Compiled bytecode, as an installed dgcap has: with PYTHONDONTWRITEBYTECODE set (as on
    # some shared machines) every run would compile every module first (~0.1 s).  The cache
    # goes under --out, not into the checkout; compile_bytecode() fills it before timing.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(PYCACHE_ROOT, "pycache")
    return env


PYCACHE_ROOT = "/tmp/dgbench"  # replaced by --out in main()


def compile_bytecode() -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "analyzer")],
                   env=child_env(), check=True, stdout=subprocess.DEVNULL)


def compiled_build_present() -> bool:
    r = subprocess.run([sys.executable, "-c", "from analyzer.build_kind import build_kind, COMPILED; "
                        "print(build_kind() == COMPILED)"], env=child_env("compiled"),
                       capture_output=True, text=True, check=True)
    return r.stdout.strip() == "True"


def run_child(cmd: list, stdout_path: str, stderr_path: str, build: str | None = None) -> dict:
    """Run cmd; wall time around it, CPU of it and its worker processes (rusage), peak RSS:
    its own ru_maxrss (KiB on Linux), or the sum over its process tree sampled every 50 ms
    when that is more (dgcap --shards: ru_maxrss is the largest process, not their sum)."""
    env = child_env(build)
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        tree_peak = [0]
        sampler = threading.Thread(target=_sample_tree_rss, args=(proc.pid, tree_peak), daemon=True)
        sampler.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - began
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"seconds": elapsed, "maxrss_kib": max(usage.ru_maxrss, tree_peak[0]), "user": usage.ru_utime,
            "sys": usage.ru_stime, "returncode": proc.returncode}


def _sample_tree_rss(root: int, peak: list) -> None:
    """peak[0]: the most KiB resident in `root` and its descendants at once, until it exits.

    Reads only the tree's own /proc entries (children lists, statm), every 0.1 s: walking
    all of /proc every 50 ms took the measured process's memory lock often enough to slow
    it down by ~10% (4.9 s against 4.4 s on the pure-stream capture)."""
    page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
    while True:
        tree, todo, total = set(), [root], 0
        while todo:
            pid = todo.pop()
            if pid in tree:
                continue
            tree.add(pid)
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * page_kib
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
            except (OSError, ValueError, IndexError):
                if pid == root:
                    return
        peak[0] = max(peak[0], total)
        time.sleep(0.1)


# ------------------------------------------------------------------------------ answers

def native_counts(report_path: str) -> dict:
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    capture = report["captures"][0]
    if capture.get("error"):
        raise SystemExit(f"dgcap could not read the capture: {capture['error']}")
    frames = {"client": collections.Counter(), "server": collections.Counter()}
    total = collections.Counter()
    codes = collections.Counter()
    for s in capture["sessions"]:
        for d in ("client", "server"):
            for kind in FRAME_KINDS:
                n = s["frames"][d][kind]
                if n:
                    frames[d][kind] += n
                    total[kind] += n
            close = s["close"][d]
            if close is not None and close["code"] is not None:
                codes[str(close["code"])] += 1
    return {"total": dict(total), "by_direction": {d: dict(c) for d, c in frames.items()},
            "close_codes": dict(codes), "sessions": len(capture["sessions"]),
            "websocket_sessions": sum(1 for s in capture["sessions"] if s["websocket"]),
            "packets": capture["packets"]}


def tshark_counts(tsv_path: str) -> dict:
    total = collections.Counter()
    codes = collections.Counter()
    lines = 0
    with open(tsv_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            lines += 1
            if len(fields) > 1 and fields[1]:
                for op in fields[1].split(","):
                    total[OPCODE_NAMES.get(op, "other")] += 1
            if len(fields) > 2 and fields[2]:
                for code in fields[2].split(","):
                    codes[code] += 1
    return {"total": dict(total), "close_codes": dict(codes), "packets_with_websocket": lines}


def truth_counts(truth: dict) -> dict:
    total = collections.Counter()
    for d in ("client", "server"):
        total.update(truth["ws_frames"][d])
    return {"total": dict(total), "by_direction": truth["ws_frames"], "close_codes": truth["close_codes"]}


def check(native: dict, tshark: dict, truth: dict) -> list:
    problems = []
    if native["total"] != tshark["total"]:
        problems.append(f"frames per opcode differ: dgcap {native['total']} tshark {tshark['total']}")
    if native["close_codes"] != tshark["close_codes"]:
        problems.append(f"close codes differ: dgcap {native['close_codes']} tshark {tshark['close_codes']}")
    t = truth_counts(truth)
    if native["total"] != t["total"]:
        problems.append(f"dgcap frames {native['total']} != generated {t['total']}")
    for d in ("client", "server"):
        if native["by_direction"][d] != t["by_direction"][d]:
            problems.append(f"dgcap {d} frames {native['by_direction'][d]} != generated {t['by_direction'][d]}")
    if native["close_codes"] != t["close_codes"]:
        problems.append(f"dgcap close codes {native['close_codes']} != generated {t['close_codes']}")
    if native["websocket_sessions"] != truth["sessions"]:
        problems.append(f"dgcap found {native['websocket_sessions']} WebSocket sessions, generated {truth['sessions']}")
    if native["packets"] != truth["packets"]:
        problems.append(f"dgcap read {native['packets']} packets, generated {truth['packets']}")
    return problems


# ------------------------------------------------------------------------------ capture

# The traffic of each case (synth.py's options); --sessions, --downloads and --ssh override.
CASES = {
    "mixed": {"size": "400M", "sessions": 40, "downloads": 1, "ssh": 3, "udp": True, "session_seconds": None},
    "pure-stream": {"size": "420M", "sessions": 20, "downloads": 0, "ssh": 0, "udp": False,
                    "session_seconds": 600},
}


def case_traffic(case: str, args) -> argparse.Namespace:
    """synth.py's traffic options for a case, with the command line's overrides."""
    traffic = dict(CASES[case])
    for name in ("sessions", "downloads", "ssh"):
        if getattr(args, name) is not None:
            traffic[name] = getattr(args, name)
    traffic["download_rate"] = args.download_rate
    return argparse.Namespace(**traffic)


def ensure_capture(out_dir: str, case: str, size: str, fmt: str, tls: bool, args) -> dict:
    traffic = case_traffic(case, args)
    name = f"dgbench-{'' if case == 'mixed' else case + '-'}{size}{'-tls' if tls else ''}.{fmt}"
    path = os.path.join(out_dir, name)
    truth_path = path + ".truth.json"
    params = synth.synth_params(traffic)
    if os.path.exists(path) and os.path.exists(truth_path):
        with open(truth_path) as f:
            truth = json.load(f)
        if (truth.get("synth_version") == synth.SYNTH_VERSION and truth.get("params") == params
                and truth.get("seed") == args.seed and truth.get("bytes") == os.path.getsize(path)):
            print(f"reusing {path}", flush=True)
            truth["reused"] = True
            return truth
    cmd = [sys.executable, os.path.join(HERE, "synth.py"), path, "--size", size, "--format", fmt,
           "--sessions", str(traffic.sessions), "--downloads", str(traffic.downloads), "--ssh", str(traffic.ssh),
           "--download-rate", str(traffic.download_rate), "--seed", str(args.seed)]
    if not traffic.udp:
        cmd.append("--no-udp")
    if traffic.session_seconds:
        cmd += ["--session-seconds", str(traffic.session_seconds)]
    if tls:
        cmd.append("--tls")
    print(f"synthesising {path} ...", flush=True)
    began = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(truth_path) as f:
        truth = json.load(f)
    print(f"  {truth['bytes'] / 1e6:,.1f} MB, {truth['packets']:,} packets, {truth['sessions']} Deepgram sessions "
          f"in {time.perf_counter() - began:.1f} s", flush=True)
    truth["reused"] = False
    return truth


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    tshark = subprocess.run(["tshark", "--version"], capture_output=True, text=True).stdout.splitlines()
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem_kib / 2**20:.0f} GiB RAM, Python {platform.python_version()}, "
            f"{tshark[0] if tshark else 'tshark ?'}")


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def bench_one(case: str, size: str, fmt: str, args) -> dict:
    truth = ensure_capture(args.out, case, size, fmt, args.tls, args)
    path, keylog = truth["path"], truth.get("keylog")
    native_cmd = dgcap_command(path, keylog, shlex.split(args.dgcap_args))
    tshark_cmd = tshark_command(path, keylog)
    base = path + ".out"
    # One engine per dgcap build ("native" is the last one: compiled when it runs), then tshark.
    builds = {("native" if i == len(args.builds) - 1 else f"native-{b}"): b for i, b in enumerate(args.builds)}
    if args.shards:  # dgcap again, split over processes: its report must be the same bytes
        builds["sharded"] = builds["native"]
    engines = list(builds) + ["tshark"]
    results = {engine: [] for engine in engines}
    counts, reports = {}, {}
    tshark_runs = args.runs if args.tshark_runs is None else args.tshark_runs
    for run in range(max(args.runs, tshark_runs)):
        order = engines if run % 2 == 0 else engines[::-1]
        for engine in order:
            if run >= (tshark_runs if engine == "tshark" else args.runs):
                continue
            cmd = tshark_cmd if engine == "tshark" else native_cmd + (
                ["--shards", str(args.shards)] if engine == "sharded" else [])
            load = load_average()
            r = run_child(cmd, f"{base}.{engine}", f"{base}.{engine}.err", builds.get(engine))
            r["load"] = load
            ok = r["returncode"] in ((0,) if engine == "tshark" else (0, 1))
            if not ok:
                with open(f"{base}.{engine}.err", errors="replace") as f:
                    sys.stderr.write(f.read()[-2000:])
                raise SystemExit(f"{engine} failed (exit {r['returncode']}): {' '.join(cmd)}")
            results[engine].append(r)
            print(f"  run {run + 1} {_engine_name(engine, builds, args.shards):30} {r['seconds']:7.2f} s (CPU {r['user'] + r['sys']:6.2f} s)  "
                  f"peak RSS {r['maxrss_kib'] / 1024:7.1f} MiB  load {r['load']:.1f}", flush=True)
            if run == 0:  # outputs are the same every run: check once
                if engine == "tshark":
                    tshark = tshark_counts(f"{base}.tshark")
                else:
                    counts[engine] = native_counts(f"{base}.{engine}")
                    reports[engine] = _without_build(f"{base}.{engine}")
    native = counts["native"]
    problems = check(native, tshark, truth)
    for engine in builds:
        if reports[engine] != reports["native"]:
            what = f"dgcap --shards {args.shards}" if engine == "sharded" else f"the {builds[engine]} build"
            problems.append(f"{what}'s report differs from the {builds['native']} build's with default settings")
    summary = {"case": case, "size": size, "format": fmt, "tls": args.tls, "dgcap_args": args.dgcap_args,
               "bytes": truth["bytes"], "packets": truth["packets"],
               "sessions": truth["sessions"], "runs": args.runs, "frames": native["total"],
               "close_codes": native["close_codes"], "answers_equal": not problems, "problems": problems,
               "machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S"),
               "builds": {engine: build for engine, build in builds.items()},
               "shards": args.shards or None,
               "commands": {"native": "PYTHONPATH=" + REPO + " " + " ".join(native_cmd), "tshark": " ".join(tshark_cmd)}}
    if args.shards:
        summary["commands"]["sharded"] = summary["commands"]["native"] + f" --shards {args.shards}"
    for engine in engines:
        rs = results[engine]
        secs = statistics.median(r["seconds"] for r in rs)
        summary[engine] = {"seconds_median": round(secs, 3), "seconds_all": [round(r["seconds"], 3) for r in rs],
                           "packets_per_second": round(truth["packets"] / secs),
                           "mb_per_second": round(truth["bytes"] / 1e6 / secs, 1),
                           "peak_rss_mib": round(max(r["maxrss_kib"] for r in rs) / 1024, 1),
                           "cpu_seconds_median": round(statistics.median(r["user"] + r["sys"] for r in rs), 3),
                           "cpu_seconds_all": [round(r["user"] + r["sys"], 3) for r in rs],
                           "load_all": [r["load"] for r in rs]}
    for engine in builds:
        summary[engine]["speedup"] = round(summary["tshark"]["seconds_median"] / summary[engine]["seconds_median"], 2)
        summary[engine]["speedup_cpu"] = round(
            summary["tshark"]["cpu_seconds_median"] / summary[engine]["cpu_seconds_median"], 2)
    summary["speedup"] = summary["native"]["speedup"]
    summary["speedup_cpu"] = summary["native"]["speedup_cpu"]
    for engine in engines:
        for suffix in ("", ".err"):
            if not args.keep and os.path.exists(f"{base}.{engine}{suffix}"):
                os.unlink(f"{base}.{engine}{suffix}")
    if not args.keep and not truth.get("reused"):
        for p in (path, path + ".truth.json", path + ".keys"):
            if os.path.exists(p):
                os.unlink(p)
    return summary


def _engine_name(engine: str, builds: dict, shards=None) -> str:
    if engine == "tshark":
        return "tshark"
    return f"dgcap ({builds[engine]})" + (f" --shards {shards}" if engine == "sharded" else "")


def _without_build(report_path: str) -> dict:
    """The report minus `tool_build`, the one field in which the builds' reports differ."""
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    report.pop("tool_build", None)
    return report


def print_table(summaries: list) -> None:
    print()
    print("| capture | engine | wall time (median) | CPU time | packets/s | MB/s | peak RSS | speed-up (wall / CPU) "
          "| load (1 min) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for s in summaries:
        label = (f"{s.get('case', 'mixed')}: {s['bytes'] / 1e6:,.0f} MB {s['format']}{' TLS' if s['tls'] else ''}, "
                 f"{s['packets']:,} packets, {s['sessions']} sessions")
        builds = s.get("builds") or {"native": "pure"}
        engines = list(builds) + ["tshark"]
        for engine in engines:
            e = s[engine]
            ratio = "" if engine == "tshark" else \
                f"**{e.get('speedup', s['speedup']):.2f}x** / {e.get('speedup_cpu', s['speedup_cpu']):.2f}x"
            runs = len(e["seconds_all"])
            name = _engine_name(engine, builds, s.get("shards")) + (f" {s['dgcap_args']}" if s.get("dgcap_args") and engine != "tshark" else "")
            print(f"| {label if engine == engines[0] else ''} | {name} | "
                  f"{e['seconds_median']:.2f} s ({runs} run{'s' if runs > 1 else ''}) | "
                  f"{e['cpu_seconds_median']:.2f} s | {e['packets_per_second']:,} | "
                  f"{e['mb_per_second']:,.1f} | {e['peak_rss_mib']:,.0f} MiB | {ratio} | "
                  f"{min(e['load_all']):.1f}-{max(e['load_all']):.1f} |")
    print()
    for s in summaries:
        status = "equal" if s["answers_equal"] else "DIFFERENT: " + "; ".join(s["problems"])
        frames = ", ".join(f"{k} {v:,}" for k, v in sorted(s["frames"].items()))
        print(f"{s.get('case', 'mixed')} {s['size']} {s['format']}{' tls' if s['tls'] else ''}: WebSocket frames {frames}; "
              f"close codes {s['close_codes']}; dgcap vs tshark vs generator: {status}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--case", default="mixed,pure-stream",
                   help="mixed, pure-stream or both (default): what traffic the capture holds")
    p.add_argument("--size", default=None,
                   help="comma-separated sizes: 42M,100M,400M,4G (default: 400M mixed, 420M pure-stream)")
    p.add_argument("--format", default="pcap", help="pcap, pcapng or pcap,pcapng")
    p.add_argument("--runs", type=int, default=3, help="runs per engine (median time, max RSS); default 3")
    p.add_argument("--tshark-runs", type=int, default=None,
                   help="runs of tshark if fewer than --runs (it takes minutes on 4 GB)")
    p.add_argument("--dgcap-args", default="", help="extra arguments for dgcap report, e.g. --show-secrets")
    p.add_argument("--tls", action="store_true", help="Deepgram sessions in TLS 1.3, decrypted with a key log")
    p.add_argument("--out", default="/tmp/dgbench", help="folder for captures and outputs (default /tmp/dgbench)")
    p.add_argument("--keep", action="store_true", help="keep captures and outputs (and reuse kept captures)")
    p.add_argument("--sessions", type=int, default=None,
                   help="concurrent Deepgram sessions (default 40 mixed, 20 pure-stream)")
    p.add_argument("--downloads", type=int, default=None, help="concurrent HTTP downloads (default 1 mixed, 0 pure-stream)")
    p.add_argument("--download-rate", type=int, default=1_000_000, help="bytes/s per download")
    p.add_argument("--ssh", type=int, default=None, help="concurrent SSH sessions (default 3 mixed, 0 pure-stream)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--shards", type=int, default=0, metavar="N",
                   help="also run dgcap with --shards N (its report must equal the default run's, which is "
                        "one process or split by --shards auto; --dgcap-args=--shards=off for one process)")
    p.add_argument("--build", default=None,
                   help="dgcap builds to run: pure, compiled or pure,compiled (default: both where the "
                        "compiled build is present, else pure)")
    args = p.parse_args(argv)
    if shutil.which("tshark") is None:
        raise SystemExit("tshark not found on PATH")
    os.makedirs(args.out, exist_ok=True)
    global PYCACHE_ROOT
    PYCACHE_ROOT = args.out
    compile_bytecode()
    have_compiled = compiled_build_present()
    args.builds = [b.strip() for b in args.build.split(",")] if args.build else \
        (["pure", "compiled"] if have_compiled else ["pure"])
    for build in args.builds:
        if build not in ("pure", "compiled"):
            raise SystemExit(f"unknown --build {build!r}: choose from pure, compiled")
    if "compiled" in args.builds and not have_compiled:
        raise SystemExit("--build compiled: no compiled build here; make it with "
                         "`python setup.py build_ext --inplace` (README, \"Compiled build\")")
    print(machine(), flush=True)
    summaries = []
    cases = [c.strip() for c in args.case.split(",")]
    for case in cases:
        if case not in CASES:
            raise SystemExit(f"unknown --case {case!r}: choose from {', '.join(CASES)}")
    for case in cases:
        sizes = args.size or CASES[case]["size"]
        for size in sizes.split(","):
            for fmt in args.format.split(","):
                s = bench_one(case, size.strip(), fmt.strip(), args)
                summaries.append(s)
                with open(os.path.join(args.out, "results.jsonl"), "a") as f:
                    f.write(json.dumps(s) + "\n")
    print_table(summaries)
    return 0 if all(s["answers_equal"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
