"""Command line: `dgcap report PATH...`.

Exit codes: 0 no error finding, 1 at least one error finding, 2 input or usage error.
Bad input never produces a traceback: one line on stderr and exit 2 (or a partial
report that says what was lost).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Optional

from . import __version__
from .model import Report

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other input error
        sys.stderr.write(f"dgcap: error: {message} (see 'dgcap {self.prog.split()[-1]} --help')\n"
                         if " " in self.prog else f"dgcap: error: {message} (see 'dgcap --help')\n")
        sys.exit(EXIT_INPUT)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dgcap", description="Analyse Deepgram (and any) WebSocket sessions in pcap/pcapng captures.")
    p.add_argument("--version", action="version", version=f"dgcap {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    r = sub.add_parser("report", help="report every WebSocket session in the captures")
    r.add_argument("paths", nargs="+", metavar="PATH", help="capture files or folders (searched recursively)")
    r.add_argument("--format", choices=("rich", "json"), default="rich")
    r.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    r.add_argument("--gap-threshold", type=float, default=10.0, metavar="SECONDS",
                   help="report client silences longer than this (default 10, Deepgram's NET-0001 timeout)")
    r.add_argument("--keylog", metavar="FILE",
                   help="TLS key log (NSS format) to decrypt wss:// sessions; SSLKEYLOGFILE is used too")
    r.add_argument("--show-secrets", action="store_true",
                   help="do not redact API keys, tokens and JWTs (the report then contains secrets)")
    r.add_argument("--transcript", action="store_true", help="show the final transcript of each session")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help(sys.stderr)
        return EXIT_INPUT
    try:
        if args.command == "report":
            return _report(args)
    except KeyboardInterrupt:
        sys.stderr.write("dgcap: interrupted\n")
        return EXIT_INPUT
    except BrokenPipeError:
        return EXIT_OK
    return EXIT_INPUT


def _report(args) -> int:
    from .capture import CaptureError
    from .model import CaptureReport
    from .pipeline import Options, analyze_capture, capture_files

    if args.gap_threshold <= 0:
        _error("--gap-threshold must be a positive number of seconds")
        return EXIT_INPUT
    keylog = args.keylog or os.environ.get("SSLKEYLOGFILE")
    if args.keylog and not os.path.isfile(args.keylog):
        _error(f"{args.keylog}: key log file not found")
        return EXIT_INPUT
    for p in args.paths:
        if not os.path.exists(p):
            _error(f"{p}: no such file or folder")
            return EXIT_INPUT
    files = capture_files(args.paths)
    if not files:
        _error(f"no capture files (pcap/pcapng) found in {', '.join(args.paths)}")
        return EXIT_INPUT
    if args.show_secrets:
        sys.stderr.write("dgcap: warning: --show-secrets: this report contains API keys and tokens; "
                         "do not attach it to a ticket\n")
    options = Options(gap_threshold=args.gap_threshold, keylog=keylog, show_secrets=args.show_secrets)
    captures = []
    input_error = False
    for path in files:
        try:
            cap = analyze_capture(path, options)
        except CaptureError as e:
            _error(f"{path}: {e}")
            captures.append(CaptureReport(path=path, format=None, error=str(e)))
            input_error = True
            continue
        except MemoryError:
            _error(f"{path}: out of memory while analysing (please report this capture)")
            input_error = True
            continue
        except Exception as e:  # a bug must not become a traceback in a user's terminal
            if os.environ.get("DGCAP_DEBUG"):
                raise
            _error(f"{path}: internal error: {type(e).__name__}: {e} (set DGCAP_DEBUG=1 for details; "
                   "please report it)")
            captures.append(CaptureReport(path=path, format=None, error=f"internal error: {e}"))
            input_error = True
            continue
        if not options.show_secrets:
            from .redact import redact_session
            for s in cap.sessions:
                redact_session(s)
        captures.append(cap)
    report = Report(captures=captures, options={"gap_threshold": args.gap_threshold,
                                                "secrets_redacted": not args.show_secrets})
    _render(report, args)
    if input_error:
        return EXIT_INPUT
    has_error = any(f.severity == "error" for c in captures for s in c.sessions for f in s.findings) or \
        any(f.severity == "error" for c in captures for f in c.findings)
    return EXIT_FINDINGS if has_error else EXIT_OK


def _render(report: Report, args) -> None:
    if args.format == "json":
        text = json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
        _write(text, args.output)
        return
    from rich.console import Console
    from .report.rich_report import render_rich
    if args.output:
        console = Console(record=True, width=120, file=open(os.devnull, "w"))
        render_rich(report, console, transcript=args.transcript)
        _write(console.export_text(), args.output)
    else:
        render_rich(report, Console(), transcript=args.transcript)


def _write(text: str, path: Optional[str]) -> None:
    if not path:
        sys.stdout.write(text)
        return
    # Atomic: a reader never sees a half-written report.
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".dgcap-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _error(msg: str) -> None:
    sys.stderr.write(f"dgcap: error: {msg}\n")


if __name__ == "__main__":
    sys.exit(main())
