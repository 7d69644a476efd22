"""`dgcap report PATH...`: every WebSocket session in the captures, with findings.

Formats: rich (terminal), json (docs/json-contract.md, validated by
analyzer/schema/dgcap.report.schema.json), markdown and html (self-contained, with a
timeline chart per session) for support tickets; for fleets of captures, jsonl (one
record per line, written as each session ends) and parquet (three tables in a folder),
see analyzer/fleet/.  Several captures (or a folder) get a cross-capture summary first;
`-j N` analyses them in N processes (the report keeps the input order), `--scheduler`
on a Dask cluster; `--shards` splits one capture's connections over processes of the same
pool (analyzer/shards.py); `--stream` prints a line per session as soon as its connection ends.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
from typing import Callable, Optional

from ..cli import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, error, write_output
from ..model import CaptureReport, Report
from .common import READS_TWICE, capture_error_line

# Documents rendered from the whole Report at the end (har's messages are collected through a
# hook as the analysis goes); record formats are written as the analysis goes (sessions as they
# end), so they never hold the fleet in memory.
DOCUMENT_FORMATS = ("rich", "json", "markdown", "html")
RECORD_FORMATS = ("jsonl", "parquet")
FORMATS = DOCUMENT_FORMATS + ("har",) + RECORD_FORMATS
MACHINE_FORMATS = ("json", "markdown", "html", "har", "jsonl")


def add_parser(sub) -> None:
    import argparse
    from ..cli import EXIT_CODES_HELP
    r = sub.add_parser("report", help="report every WebSocket session in the captures",
                       description="Report every WebSocket session in pcap/pcapng captures (Deepgram's live "
                                   "APIs and any WebSocket): each session's verdict, the facts behind it, "
                                   "findings with Wireshark filters, and Deepgram's explanation.",
                       epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("paths", nargs="+", metavar="PATH",
                   help="capture files or folders (searched recursively); - for standard input (a pipe)")
    r.add_argument("--format", choices=FORMATS, default="rich",
                   help="rich (terminal, default), json (machine-readable), markdown or html (for a "
                        "support ticket; html is one self-contained file with a timeline per session), "
                        "har (HAR 1.2 with every WebSocket message, for Chrome DevTools and HAR viewers), "
                        "jsonl (one record per line as sessions end, for a SIEM) or parquet (tables "
                        "captures/sessions/findings.parquet in the folder given with -o)")
    r.add_argument("--har-binary", action="store_true",
                   help="with --format har: binary messages as base64 (default: length and SHA-256)")
    r.add_argument("-o", "--output", metavar="FILE",
                   help="write the report to FILE instead of stdout (a folder for --format parquet)")
    add_analysis_options(r)
    r.add_argument("--transcript", action="store_true", help="show the final transcript of each session")
    focus = r.add_argument_group("what the report shows (rich, markdown, html; json always has every session)")
    focus.add_argument("--session", type=int, action="append", default=[], metavar="N", dest="session_numbers",
                       help="show only session N (the # column; repeatable)")
    focus.add_argument("--errors-only", action="store_true", help="show only sessions with an error finding")
    focus.add_argument("--summary", action="store_true", dest="summary_only",
                       help="show the capture lines, the summary and the sessions table, no session details")
    focus.add_argument("--width", type=int, metavar="N",
                       help="terminal report width in columns (default: the terminal's, or 120 when written "
                            "to a file or a pipe)")
    r.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar (it is shown on stderr when a capture takes more than half a "
                        "second and stderr is a terminal)")
    r.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="analyse N captures in parallel processes (0: one per CPU; default 1); the "
                        "report keeps the order of the input (one capture: see --shards)")
    r.add_argument("--shards", type=_shards_arg, default="auto", metavar="auto|off|N",
                   help="split one capture's TCP connections over N processes (the report is the same); "
                        "auto (default): a single uncompressed capture of 64 MB or more, over the idle "
                        "cores (measured in /proc/stat at start-up); off: one process")
    r.add_argument("--scheduler", metavar="local|tcp://HOST:PORT",
                   help="analyse the captures on Dask: 'local' starts a cluster of -j N worker processes "
                        "on this machine (with Dask's dashboard), an address uses a running cluster whose "
                        "workers see the same paths (needs: pip install 'dgcap[fleet]')")
    r.add_argument("--stream", action="store_true",
                   help="print a one-line summary of each session as soon as its connection ends, then "
                        "the full report (on stderr when the report itself goes to stdout as "
                        "json/markdown/html)")


def _shards_arg(value: str):
    import argparse
    if value in ("auto", "off"):
        return value if value == "auto" else 1
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError("auto, off or a number of processes (1 or more)")
    return n


def add_server_name_option(p) -> None:
    p.add_argument("--server-name", action="append", default=[], metavar="PATTERN", dest="server_names",
                   help="also treat servers named PATTERN (shell wildcards, e.g. '*.asr.corp.example') as "
                        "Deepgram: self-hosted deployments (repeatable; *.deepgram.com always is)")


def add_analysis_options(p) -> None:
    p.add_argument("--gap-threshold", type=float, default=10.0, metavar="SECONDS",
                   help="report client silences longer than this (default 10, Deepgram's NET-0001 timeout)")
    p.add_argument("--keylog", metavar="FILE",
                   help="TLS key log (NSS format) to decrypt wss:// sessions; SSLKEYLOGFILE is used too")
    p.add_argument("--show-secrets", action="store_true",
                   help="do not redact API keys, tokens and JWTs (the report then contains secrets)")
    add_server_name_option(p)
    p.add_argument("--all", action="store_true", dest="list_all",
                   help="list every other TCP connection (ordinary HTTPS, h2, DNS...) in full, not only "
                        "their summary")
    p.add_argument("--engine", choices=("native", "tshark"), default="native",
                   help="native (default, fast) or tshark: the same report built from Wireshark's dissectors")
    limits = p.add_argument_group("limits against hostile or broken captures (each hit is a finding)")
    for flag, field, what in LIMIT_FLAGS:
        limits.add_argument(flag, type=int, default=None, metavar="N", dest=field,
                            help=f"{what} (default {getattr(_default_options(), field):,})")


# (flag, Options field, what it bounds)
LIMIT_FLAGS = (
    ("--max-connections", "max_connections", "TCP connections analysed at once"),
    ("--max-message", "max_message", "bytes of text/control payload kept per message"),
    ("--max-inflate", "max_inflate", "bytes inflated per compressed message"),
    ("--max-http-header", "max_http_header", "bytes of an HTTP request/response head"),
)


def _default_options():
    from ..pipeline import Options
    return Options()


def options_from(args):
    """Options for the pipeline from the shared flags, or an error message."""
    from ..pipeline import Options
    if not 0 < args.gap_threshold < float("inf"):  # nan and inf too: the JSON report would not be JSON
        return None, "--gap-threshold must be a positive number of seconds"
    keylog = args.keylog or os.environ.get("SSLKEYLOGFILE") or None
    if keylog and not os.path.isfile(keylog):
        return None, f"{keylog}: key log file not found"
    options = Options(gap_threshold=args.gap_threshold, keylog=keylog, show_secrets=args.show_secrets,
                      server_names=tuple(getattr(args, "server_names", None) or ()),
                      list_all=bool(getattr(args, "list_all", False)))
    for flag, field, _ in LIMIT_FLAGS:
        value = getattr(args, field, None)
        if value is not None:
            if value <= 0:
                return None, f"{flag} must be a positive number"
            setattr(options, field, value)
    return options, None


def analyze_paths(paths, options, show_secrets: bool, engine: str = "native", *, jobs: int = 1,
                  progress: bool = False, stream: Optional[Callable[[str], None]] = None,
                  records=None, scheduler: Optional[str] = None, shards=1):
    """Analyse every capture under `paths`. Returns (captures, input_error).

    jobs > 1 analyses captures in that many processes (results in input order);
    progress shows a progress bar on stderr (when it is a terminal); stream receives a
    one-line summary of each session as soon as its connection ends (already redacted);
    records (a fleet.records.RecordSink) receives each capture's line records as its
    sessions end, and the captures returned then have no sessions (the records are the
    output); scheduler ("local" or a Dask scheduler address) runs the captures on Dask;
    shards ("auto" or a number, analyzer/shards.py) splits a capture's connections over processes.
    """
    files = find_captures(paths, READS_TWICE["tshark"] if engine == "tshark" else None, jobs, scheduler)
    if files is None:
        return [], True
    return analyze_files(files, options, show_secrets, engine, jobs=jobs, progress=progress, stream=stream,
                         records=records, scheduler=scheduler, shards=shards)


def find_captures(paths, reads_twice: Optional[str] = None, jobs: int = 1,
                  scheduler: Optional[str] = None) -> Optional[list[str]]:
    """The capture files under `paths`, or None after printing why there are none.

    `-` is standard input (once).  reads_twice: why the command cannot take a pipe (None: it
    can); jobs, scheduler: as analyze_files gets them (worker processes do not share our
    standard input).
    """
    from ..capture import STDIN
    from ..pipeline import capture_files
    from .common import pipe_problem
    if paths.count(STDIN) > 1:
        error("-: standard input can be given only once")
        return None
    for p in paths:
        if p != STDIN and not os.path.exists(p):
            error(f"{p}: no such file or folder")
            return None
    files = capture_files(paths)
    if not files:
        error(f"no capture files (pcap/pcapng) found in {', '.join(paths)}")
        return None
    for p in files:
        problem = pipe_problem(p, reads_twice)
        if problem:
            error(problem)
            return None
    if STDIN in files and _parallel(files, jobs, scheduler):
        error("-: standard input cannot be handed to worker processes (-j/--scheduler): "
              "save it to a file, or drop -j/--scheduler")
        return None
    return files


def _parallel(files: list, jobs: int, scheduler: Optional[str]) -> bool:
    """Do these captures go to worker processes?"""
    return scheduler is not None or (jobs > 1 and len(files) > 1)


def analyze_files(files, options, show_secrets: bool, engine: str = "native", *, jobs: int = 1,
                  progress: bool = False, stream=None, records=None, scheduler: Optional[str] = None,
                  shards=1):
    """analyze_paths for a list of capture files (found already)."""
    from ..report.progress import ProgressDisplay
    display = ProgressDisplay(files, enabled=progress and sys.stderr.isatty())
    sink = records.write if records is not None else None
    splits = _shard_plan(files, options, engine, shards if scheduler is None and stream is None and sink is None
                         else 1)
    parallel = _parallel(files, jobs, scheduler) or max(splits) > 1

    def lost(path: str, why: str):
        """A capture whose worker never returned: its error row, in the records too."""
        result = (CaptureReport(path=path, format=None, error=f"worker failed: {why}"),
                  f"{path}: the worker analysing it failed ({why})")
        if sink is not None:
            from ..fleet.records import CaptureRef, capture_records, file_sha256
            sink(capture_records(CaptureRef(path, file_sha256(path)), result[0].to_json(), 0, 0))
        return result

    try:
        if scheduler is not None:
            from ..fleet.cluster import analyze_on_dask
            results = analyze_on_dask(files, scheduler, jobs, display, _dask_task,
                                      (options, show_secrets, engine, stream is not None, sink is not None),
                                      stream, sink, lost)
        elif parallel:
            results = _analyze_parallel(files, options, show_secrets, engine, max(jobs, *splits), display, stream,
                                        sink, lost, splits)
        else:
            results = []
            for i, path in enumerate(files):
                result = _capture_task(path, options, show_secrets, engine, line=stream, records=sink,
                                       progress=(lambda b, n, i=i: display.update(i, b, n))
                                       if display.enabled else None)
                display.done(i)
                _report_problems(path, result)
                results.append(result)
    finally:
        display.close()
    if parallel:
        for path, result in zip(files, results):
            _report_problems(path, result)
    captures = [cap for cap, _ in results]
    input_error = any(problem is not None for _, problem in results)
    return captures, input_error


def _shard_plan(files, options, engine: str, shards) -> list[int]:
    """Processes per capture (1: not split).  Sessions are merged once every shard is done,
    so observers of sessions as they end (--stream, records, har's messages) keep one process."""
    from ..shards import shard_count
    hooks = (options.frame_hook, options.message_hook, options.binary_hook, options.session_hook,
             options.record_hook, options.builder_hook)
    if shards == 1 or any(h is not None for h in hooks):
        return [1] * len(files)
    return [shard_count(path, shards, single_capture=len(files) == 1, native=engine == "native")
            for path in files]


def _capture_task(path: str, options, show_secrets: bool, engine: str, *, line=None, progress=None,
                  records=None):
    """One capture, wherever it runs: (CaptureReport, problem).

    line(str) gets the --stream line of each session as it ends; records(list) gets the
    capture's line records (sessions as they end, the capture record last), and then the
    CaptureReport returned has no sessions: the records carry them.
    """
    recorder = None
    if records is not None:
        from ..fleet.records import CaptureRecorder, CaptureRef, file_sha256
        recorder = CaptureRecorder(CaptureRef(path, file_sha256(path)), records, show_secrets)
    opts = _with_hooks(options, path, show_secrets, line, progress, recorder)
    # The recorder redacts each session as it ends (before its record is made): not twice.
    cap, problem = _analyze_one(path, opts, not show_secrets and recorder is None, engine)
    if recorder is not None:
        recorder.capture_ended(cap)
        cap = copy.copy(cap)
        cap.sessions = []
    return cap, problem


def _with_hooks(options, path: str, show_secrets: bool, stream, progress, recorder=None):
    """A copy of `options` with the progress callback and the session hooks (records, --stream)."""
    changes = {}
    if progress is not None:
        changes["progress"] = progress
    if stream is not None or recorder is not None:
        from ..report.progress import stream_line
        previous = options.session_hook

        def hook(session, previous=previous):
            if previous is not None:
                previous(session)
            if recorder is not None:
                recorder.session_ended(session)
            if stream is not None:
                stream(stream_line(path, session, show_secrets))
        changes["session_hook"] = hook
    return dataclasses.replace(options, **changes) if changes else options


def _analyze_one(path: str, options, redact: bool, engine: str, analyze_capture=None):
    """(CaptureReport, problem) for one file; problem is None, or the error line to print.

    redact: mask the secrets of every session of the report (False with --show-secrets,
    and when a CaptureRecorder has redacted them as they ended).  analyze_capture(path,
    options): instead of the engine's (the merge of a capture's shards).
    """
    from ..capture import CaptureError
    if analyze_capture is None and engine == "tshark":
        from ..engines.tshark import analyze_capture_tshark as analyze_capture
    elif analyze_capture is None:
        from ..pipeline import analyze_capture
    from ..redact import redact_session
    try:
        cap = analyze_capture(path, options)
    except CaptureError as e:
        return CaptureReport(path=path, format=None, error=str(e)), capture_error_line(path, e)
    except MemoryError:
        return (CaptureReport(path=path, format=None, error="out of memory"),
                f"{path}: out of memory while analysing (please report this capture)")
    except Exception as e:  # a bug must not become a traceback in a user's terminal
        if os.environ.get("DGCAP_DEBUG"):
            raise
        return (CaptureReport(path=path, format=None, error=f"internal error: {e}"),
                f"{path}: internal error: {type(e).__name__}: {e} (set DGCAP_DEBUG=1 for details; "
                "please report it)")
    if redact:
        for s in cap.sessions:
            redact_session(s)
    return cap, None


def _report_problems(path: str, result) -> None:
    cap, problem = result
    if problem is not None:
        error(problem)
        return
    for f in cap.findings:
        if f.id in ("capture-truncated", "analysis-interrupted"):
            # The report says it too; this line reaches the terminal with -o and JSON.
            sys.stderr.write(f"dgcap: warning: {path}: {f.message}\n")


# -- parallel analysis: one capture per task, results pickled back -------------------

_worker_queue = None
_worker_sync = None  # shards.ShardSync of the one capture split over this pool, or None


def _worker_init(queue, sync=None) -> None:
    global _worker_queue, _worker_sync
    _worker_queue = queue
    _worker_sync = sync
    import signal
    # Ctrl-C is the parent's to handle: it cancels the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker(index: int, path: str, options, show_secrets: bool, engine: str, stream: bool, progress: bool,
            records: bool = False, shard: Optional[tuple] = None):
    """Task `index`: a whole capture, or shard (k, n) of it (progress from shard 0 only)."""
    q = _worker_queue
    send_line = (lambda line: q.put(("line", index, line))) if stream and q is not None else None
    send_progress = ((lambda b, n: q.put(("progress", index, b, n)))
                     if progress and q is not None and not (shard and shard[0]) else None)
    send_records = (lambda batch: q.put(("records", index, batch))) if records and q is not None else None
    try:
        if shard is not None:
            return _shard_task(path, options, shard, send_progress)
        return _capture_task(path, options, show_secrets, engine, line=send_line, progress=send_progress,
                             records=send_records)
    finally:
        if q is not None:
            # After everything this capture sent: the parent waits for it, so no line or
            # record still in the pipe when the result arrives is lost.
            q.put(("end", index))


def _shard_task(path: str, options, shard: tuple, progress):
    """("shard", ShardResult), or ("whole", why) when the capture is to be analysed in one
    process (which also gives its errors the single-process wording)."""
    from ..shards import NotShardable, analyze_shard
    try:
        return "shard", analyze_shard(path, _with_hooks(options, path, True, None, progress), *shard,
                                      sync=_worker_sync)
    except NotShardable as e:
        return "whole", str(e)
    except Exception as e:  # CaptureError, MemoryError, a bug: one process says it properly
        return "whole", f"{type(e).__name__}: {e}"


def _merge_task(path: str, options, show_secrets: bool, engine: str, outcomes):
    """(CaptureReport, problem) of a capture analysed in shards: merged, or analysed again in
    this process when a shard could not be merged exactly (shards.NotShardable)."""
    from ..shards import NotShardable, merge_shards
    if all(kind == "shard" for kind, _ in outcomes):
        try:
            merged = merge_shards(path, options, [result for _, result in outcomes])
        except NotShardable:
            merged = None
        except Exception:  # a bug in merging: one process still gives the report
            if os.environ.get("DGCAP_DEBUG"):
                raise
            merged = None
        if merged is not None:
            # The workers masked the secrets of their sessions when nothing merged depends on them.
            redacted = all(result.redacted for _, result in outcomes)
            return _analyze_one(path, options, not show_secrets and not redacted, engine,
                                lambda _path, _options: merged)
    return _capture_task(path, options, show_secrets, engine)


def _dask_task(path: str, options, show_secrets: bool, engine: str, stream: bool, records: bool):
    """One capture on a Dask worker: (CaptureReport, problem, lines, records), gathered by the client."""
    lines: list[str] = []
    batches: list[dict] = []
    cap, problem = _capture_task(path, options, show_secrets, engine, line=lines.append if stream else None,
                                 records=batches.extend if records else None)
    return cap, problem, lines, batches


def _analyze_parallel(files, options, show_secrets, engine, jobs, display, stream, records, lost, splits=None):
    """Every capture in a pool of `jobs` processes; splits[i] > 1 makes capture i that many
    tasks (shards of its connections, merged here: analyzer/shards.py)."""
    import multiprocessing
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    # Callbacks do not cross process boundaries: workers add their own.
    base = dataclasses.replace(options, progress=None, session_hook=None)
    q = ctx.Queue() if (stream is not None or display.enabled or records is not None) else None
    ended: set[int] = set()

    def handle(msg) -> None:
        if msg[0] == "line" and stream is not None:
            stream(msg[2])
        elif msg[0] == "records":
            records(msg[2])
        elif msg[0] == "progress":
            display.update(task_file[msg[1]], msg[2], msg[3])
        elif msg[0] == "end":
            ended.add(msg[1])

    def drain() -> None:
        while q is not None:
            try:
                msg = q.get_nowait()
            except queue_mod.Empty:
                return
            handle(msg)

    splits = splits or [1] * len(files)
    tasks = [(i, (k, n) if n > 1 else None) for i, n in enumerate(splits) for k in range(n)]
    task_file = [i for i, _ in tasks]
    unfinished = list(splits)  # tasks per capture still running
    sync = None
    if len(files) == 1 and splits[0] > 1 and not show_secrets and ctx.get_start_method() == "fork":
        # One capture split over the whole pool (a worker per shard, all at once): the workers
        # may mask their sessions' secrets themselves, in parallel (shards.ShardSync).
        from ..shards import ShardSync
        sync = ShardSync(ctx, splits[0])
    ex = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx,
                             initializer=_worker_init, initargs=(q, sync))
    try:
        futures = [ex.submit(_worker, t, files[i], base, show_secrets, engine, stream is not None, display.enabled,
                             records is not None, shard)
                   for t, (i, shard) in enumerate(tasks)]
        index = {f: i for i, f in enumerate(futures)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            drain()
            for f in done:
                unfinished[task_file[index[f]]] -= 1
                if not unfinished[task_file[index[f]]]:
                    display.done(task_file[index[f]])
            display.refresh()
        # What a worker put just before returning may still be in the pipe: wait for the
        # end mark of every capture whose worker returned (a dead one sends none).
        if q is not None:
            import time
            returned = {i for f, i in index.items() if f.exception() is None}
            deadline = time.monotonic() + 60
            while not returned <= ended and time.monotonic() < deadline:
                try:
                    handle(q.get(timeout=0.1))
                except queue_mod.Empty:
                    pass
            if not returned <= ended:
                missing = ", ".join(files[task_file[t]] for t in sorted(returned - ended))
                sys.stderr.write(f"dgcap: warning: the last lines or records of {missing} did not arrive from "
                                 "their worker in 60 s; they may be incomplete\n")
        outcomes: list[list] = [[] for _ in files]
        for t, f in enumerate(futures):
            try:
                outcomes[task_file[t]].append(f.result())
            except BrokenProcessPool as e:
                outcomes[task_file[t]].append(lost(files[task_file[t]], f"worker process died (out of memory?): {e}"))
        ex.shutdown(wait=True)
        results = []
        for path, n, got in zip(files, splits, outcomes):
            if n == 1:
                results.append(got[0])
            elif any(len(outcome) == 2 and isinstance(outcome[0], CaptureReport) for outcome in got):
                results.append(next(o for o in got if isinstance(o[0], CaptureReport)))  # a shard's worker died
            else:
                results.append(_merge_task(path, options, show_secrets, engine, got))
        return results
    except BaseException:
        # Ctrl-C (workers ignore it) or a bug: stop the workers now rather than wait for them.
        processes = list((getattr(ex, "_processes", None) or {}).values())
        ex.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            if proc.is_alive():
                proc.terminate()
        raise
    finally:
        if q is not None:
            q.close()


def exit_code(captures, input_error: bool) -> int:
    if input_error:
        return EXIT_INPUT
    has_error = any(f.severity == "error" for c in captures for s in c.sessions for f in s.findings) or \
        any(f.severity == "error" for c in captures for f in c.findings)
    return EXIT_FINDINGS if has_error else EXIT_OK


def run(args) -> int:
    options, problem = options_from(args)
    if problem:
        error(problem)
        return EXIT_INPUT
    if getattr(args, "width", None) is not None and args.width < 40:
        error("--width must be at least 40 columns")
        return EXIT_INPUT
    if any(n < 1 for n in getattr(args, "session_numbers", None) or ()):
        error("--session takes a session number from the # column (1 or more)")
        return EXIT_INPUT
    if args.jobs < 0:
        error("-j/--jobs must be 0 (one per CPU) or a positive number of processes")
        return EXIT_INPUT
    problem = _fleet_problem(args)
    if problem:
        error(problem)
        return EXIT_INPUT
    jobs = args.jobs or os.cpu_count() or 1
    if args.show_secrets:
        sys.stderr.write("dgcap: warning: --show-secrets: this report contains API keys and tokens; "
                         "do not attach it to a ticket\n")
    stream = _stream_writer(args) if args.stream else None
    if args.format in RECORD_FORMATS:
        return _run_records(args, options, jobs, stream)
    message_log = None
    if args.format == "har":  # the messages are collected through a hook: one process
        from ..message_log import MessageLog
        message_log = MessageLog(keep_binary_data=args.har_binary, redact=not args.show_secrets)
        options, jobs = message_log.attach(options), 1
    captures, input_error = analyze_paths(args.paths, options, args.show_secrets, args.engine, jobs=jobs,
                                          progress=not args.quiet, stream=stream, scheduler=args.scheduler,
                                          shards=args.shards)
    if not captures:
        return EXIT_INPUT
    report = Report(captures=captures, options={"gap_threshold": args.gap_threshold,
                                                "secrets_redacted": not args.show_secrets})
    if message_log is not None:
        from ..report.har import render_har
        write_output(lambda f: _write_json(f, render_har(captures, message_log, args.har_binary)), args.output)
        return exit_code(captures, input_error)
    render(report, args)
    return exit_code(captures, input_error)


def _fleet_problem(args) -> Optional[str]:
    """Why the parquet format or --scheduler cannot run here (checked before any work), or None."""
    if args.format == "parquet":
        from ..fleet.parquet import MISSING_PYARROW, pyarrow_available
        if not args.output:
            return "--format parquet writes a folder of tables: give it with -o DIR"
        if os.path.exists(args.output) and not os.path.isdir(args.output):
            return f"{args.output}: not a folder (--format parquet writes captures/sessions/findings.parquet there)"
        if not pyarrow_available():
            return MISSING_PYARROW
    if args.scheduler is not None:
        from ..fleet.cluster import scheduler_problem
        return scheduler_problem(args.scheduler)
    return None


def _run_records(args, options, jobs: int, stream) -> int:
    """jsonl and parquet: records written as the captures are analysed; exit code from the records."""
    files = find_captures(args.paths, READS_TWICE["tshark"] if args.engine == "tshark" else None, jobs,
                          args.scheduler)
    if files is None:
        return EXIT_INPUT
    outcome = {}

    def analyse(sink) -> None:
        outcome["captures"], outcome["input_error"] = analyze_files(
            files, options, args.show_secrets, args.engine, jobs=jobs, progress=not args.quiet, stream=stream,
            records=sink, scheduler=args.scheduler)
        sink.close()
        outcome["sink"] = sink

    if args.format == "jsonl":
        from ..fleet.records import JsonlSink
        write_output(lambda f: analyse(JsonlSink(None if f is sys.stdout else f)), args.output)
    else:
        from ..fleet.parquet import ParquetSink
        os.makedirs(args.output, exist_ok=True)
        sink = ParquetSink(args.output)
        try:
            analyse(sink)
        except BaseException:
            sink.abort()
            raise
    if outcome["input_error"]:
        return EXIT_INPUT
    return EXIT_FINDINGS if outcome["sink"].error_findings else EXIT_OK


def _stream_writer(args) -> Callable[[str], None]:
    """--stream lines go to stdout, unless the report itself is json/markdown/html/jsonl on stdout."""
    to_stderr = args.format in MACHINE_FORMATS and not args.output

    def write(line: str) -> None:
        out = sys.stderr if to_stderr else sys.stdout  # looked up now: a progress bar may redirect it
        out.write(line + "\n")
        out.flush()
    return write


def _write_json(f, doc) -> None:
    # One write: json.dump writes every token separately, a system call each when stdout is
    # unbuffered (PYTHONUNBUFFERED, as CI runners and IDEs set it): +0.7 s on a 1.7 MB report.
    f.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def render(report: Report, args) -> None:
    from ..report.summary import cross_summary
    from ..report.content import ViewOptions
    fmt = args.format
    transcript = getattr(args, "transcript", False)
    view = ViewOptions(tuple(getattr(args, "session_numbers", None) or ()), bool(getattr(args, "errors_only", False)),
                       bool(getattr(args, "summary_only", False)))
    summary = cross_summary(report.captures) if len(report.captures) > 1 else None
    if fmt == "json":
        doc = report.to_json()
        if summary is not None:  # before the captures, so a reader sees it first
            captures = doc.pop("captures")
            doc["summary"] = summary
            doc["captures"] = captures
        # Streamed: the text of a large report is never held in memory as a whole.
        write_output(lambda f: _write_json(f, doc), args.output)
        return
    if fmt == "markdown":
        from ..report.markdown import render_markdown
        write_output(render_markdown(report, transcript=transcript, summary=summary, view=view), args.output)
        return
    if fmt == "html":
        from ..report.html import render_html
        write_output(render_html(report, transcript=transcript, summary=summary, view=view), args.output)
        return
    from rich.console import Console
    from ..report.rich_report import console_width, render_rich
    from ..report.summary import render_summary_rich
    width = console_width(getattr(args, "width", None), not args.output and sys.stdout.isatty())
    if args.output:
        console = Console(record=True, width=width, file=open(os.devnull, "w"))
    else:
        console = Console(width=width)
    if summary is not None:
        render_summary_rich(summary, console)
    render_rich(report, console, transcript=transcript, view=view)
    if args.output:
        write_output(console.export_text(), args.output)
