"""`dgcap report PATH...`: every WebSocket session in the captures, with findings."""
from __future__ import annotations

import json
import os
import sys

from ..cli import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, error, write_output
from ..model import CaptureReport, Report

FORMATS = ("rich", "json")


def add_parser(sub) -> None:
    r = sub.add_parser("report", help="report every WebSocket session in the captures")
    r.add_argument("paths", nargs="+", metavar="PATH", help="capture files or folders (searched recursively)")
    r.add_argument("--format", choices=FORMATS, default="rich")
    r.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    add_analysis_options(r)
    r.add_argument("--transcript", action="store_true", help="show the final transcript of each session")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def add_analysis_options(p) -> None:
    p.add_argument("--gap-threshold", type=float, default=10.0, metavar="SECONDS",
                   help="report client silences longer than this (default 10, Deepgram's NET-0001 timeout)")
    p.add_argument("--keylog", metavar="FILE",
                   help="TLS key log (NSS format) to decrypt wss:// sessions; SSLKEYLOGFILE is used too")
    p.add_argument("--show-secrets", action="store_true",
                   help="do not redact API keys, tokens and JWTs (the report then contains secrets)")
    p.add_argument("--engine", choices=("native", "tshark"), default="native",
                   help="native (default, fast) or tshark: the same report built from Wireshark's dissectors")


def options_from(args):
    """Options for the pipeline from the shared flags, or an error message."""
    from ..pipeline import Options
    if args.gap_threshold <= 0:
        return None, "--gap-threshold must be a positive number of seconds"
    keylog = args.keylog or os.environ.get("SSLKEYLOGFILE") or None
    if keylog and not os.path.isfile(keylog):
        return None, f"{keylog}: key log file not found"
    return Options(gap_threshold=args.gap_threshold, keylog=keylog, show_secrets=args.show_secrets), None


def analyze_paths(paths, options, show_secrets: bool, engine: str = "native"):
    """Analyse every capture under `paths`. Returns (captures, input_error)."""
    from ..capture import CaptureError
    from ..pipeline import analyze_capture, capture_files
    if engine == "tshark":
        from ..engines.tshark import analyze_capture_tshark as analyze_capture  # noqa: F811
    from ..redact import redact_session

    for p in paths:
        if not os.path.exists(p):
            error(f"{p}: no such file or folder")
            return [], True
    files = capture_files(paths)
    if not files:
        error(f"no capture files (pcap/pcapng) found in {', '.join(paths)}")
        return [], True
    captures, input_error = [], False
    for path in files:
        try:
            cap = analyze_capture(path, options)
        except CaptureError as e:
            error(f"{path}: {e}")
            captures.append(CaptureReport(path=path, format=None, error=str(e)))
            input_error = True
            continue
        except MemoryError:
            error(f"{path}: out of memory while analysing (please report this capture)")
            captures.append(CaptureReport(path=path, format=None, error="out of memory"))
            input_error = True
            continue
        except Exception as e:  # a bug must not become a traceback in a user's terminal
            if os.environ.get("DGCAP_DEBUG"):
                raise
            error(f"{path}: internal error: {type(e).__name__}: {e} (set DGCAP_DEBUG=1 for details; "
                  "please report it)")
            captures.append(CaptureReport(path=path, format=None, error=f"internal error: {e}"))
            input_error = True
            continue
        if not show_secrets:
            for s in cap.sessions:
                redact_session(s)
        captures.append(cap)
    return captures, input_error


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
    if args.show_secrets:
        sys.stderr.write("dgcap: warning: --show-secrets: this report contains API keys and tokens; "
                         "do not attach it to a ticket\n")
    captures, input_error = analyze_paths(args.paths, options, args.show_secrets, args.engine)
    if not captures:
        return EXIT_INPUT
    report = Report(captures=captures, options={"gap_threshold": args.gap_threshold,
                                                "secrets_redacted": not args.show_secrets})
    render(report, args)
    return exit_code(captures, input_error)


def render(report: Report, args) -> None:
    if args.format == "json":
        write_output(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n", args.output)
        return
    from rich.console import Console
    from ..report.rich_report import render_rich
    if args.output:
        console = Console(record=True, width=120, file=open(os.devnull, "w"))
        render_rich(report, console, transcript=args.transcript)
        write_output(console.export_text(), args.output)
    else:
        render_rich(report, Console(), transcript=args.transcript)
