"""`dgcap verify CAPTURE...`: a second opinion from Wireshark's dissectors.

Runs the native engine and the tshark engine (analyzer/engines/tshark.py) on every capture
and lists, per session, every value they disagree on: handshake status and headers, frame
counts per direction and opcode, payload bytes, close codes and reasons, TCP end, gaps,
findings, and the Deepgram reading (endpoint, message counts, transcript, diagnosis).
Sessions are matched by tcp.stream.  Exit status: 0 the engines agree on every capture,
1 they disagree somewhere, 2 input error or tshark not installed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..cli import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, error, exit_codes_help, write_output
from .report import add_analysis_options, options_from

_EPILOG = """\
what is compared (per session, matched by tcp.stream): client, server, transport,
start/end frame; handshake status, reason, method, path, query, request/response frames,
request and response headers, body, dg-request-id, dg-error, Sec-WebSocket-Accept check,
subprotocol, extensions; frame counts per direction (text, binary, empty binary,
continuation, ping, pong, close, reserved), payload bytes, first/last frame; close codes,
reasons and frames, initiator, TCP end; gaps; finding ids and their frames; Deepgram
endpoint, message counts, transcript, diagnosis, audio bytes and chunks; TLS version,
cipher suite, SNI, decryption.  Known tshark limitations: docs/tshark-differences.md.

""" + exit_codes_help("the engines agree on every capture", "they disagree on at least one capture",
                      "input or usage error, a capture that could not be read, or tshark missing\n"
                      "     (one line on stderr each)")


def add_parser(sub) -> None:
    p = sub.add_parser("verify", help="compare the native engine with tshark's dissection (second opinion)",
                       description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="CAPTURE", help="capture files or folders (searched recursively)")
    p.add_argument("--format", choices=("rich", "json"), default="rich")
    p.add_argument("-o", "--output", metavar="FILE", help="write the result to FILE instead of stdout")
    add_analysis_options(p)
    for action in p._actions:  # verify always runs both engines
        if action.dest == "engine":
            action.help = argparse.SUPPRESS


def run(args) -> int:
    from ..capture import CaptureError
    from ..engines.compare import compare_reports
    from ..engines.tshark import TSHARK_MISSING, analyze_capture_tshark, find_tshark, tshark_version
    from ..pipeline import analyze_capture
    from .common import capture_error_line
    from ..redact import redact_session

    options, problem = options_from(args)
    if problem:
        error(problem)
        return EXIT_INPUT
    tshark = find_tshark()
    if tshark is None:
        error(TSHARK_MISSING)
        return EXIT_INPUT
    from .common import READS_TWICE
    from .report import find_captures
    files = find_captures(args.paths, READS_TWICE["verify"])
    if files is None:
        return EXIT_INPUT

    results, failed = [], []
    for path in files:
        try:
            native = analyze_capture(path, options)
            other = analyze_capture_tshark(path, options, native=native)
        except CaptureError as e:
            failed.append((path, capture_error_line(path, e)))
            error(failed[-1][1])
            continue
        if not args.show_secrets:
            for s in native.sessions + other.sessions:
                redact_session(s)
        for f in native.findings + other.findings:
            if f.id == "capture-truncated":
                engine = "tshark" if f in other.findings else "native"
                sys.stderr.write(f"dgcap: warning: {path}: {engine} engine: {f.message.removeprefix('tshark: ')}\n")
        results.append((path, native, other, compare_reports(native, other)))

    version = tshark_version(tshark)
    if args.format == "json":
        write_output(json.dumps(_json(results, failed, version), indent=2, ensure_ascii=False, default=str) + "\n",
                     args.output)
    else:
        _rich(files, results, failed, version, args.output)
    if failed:
        return EXIT_INPUT
    return EXIT_FINDINGS if any(diffs for *_, diffs in results) else EXIT_OK


def summary_line(results, failed, version: str) -> str:
    """How many captures the engines agree on, differ on, and could not compare (one line)."""
    agree = sum(1 for *_, diffs in results if not diffs)
    total = len(results) + len(failed)
    parts = [f"{agree} of {total} capture{'s' if total != 1 else ''}: engines agree"]
    if len(results) - agree:
        parts.append(f"{len(results) - agree} differ{'s' if len(results) - agree == 1 else ''}")
    if failed:
        parts.append(f"{len(failed)} could not be read")
    return (f"{', '.join(parts)} (native vs tshark {version}); known tshark limitations: "
            "docs/tshark-differences.md")


def _json(results, failed, version: str) -> dict:
    agree = sum(1 for *_, diffs in results if not diffs)
    return {"tool": "dgcap", "command": "verify", "engines": {"native": {"name": "native"},
                                                           "tshark": {"name": "tshark", "version": version}},
            "summary": {"captures": len(results) + len(failed), "agree": agree,
                        "differ": len(results) - agree, "failed": len(failed)},
            "failed": [{"path": path, "error": line} for path, line in failed],
            "captures": [{"path": path, "agree": not diffs, "packets": native.packets,
                          "sessions": [_session(s) for s in native.sessions],
                          "differences": [{"tcp_stream": d.tcp_stream, "group": d.group, "name": d.name,
                                           "native": d.native, "tshark": d.tshark} for d in diffs]}
                         for path, native, _, diffs in results]}


def _session(s) -> dict:
    """What the native engine found (the tshark engine's differences are listed apart)."""
    return {"tcp_stream": s.tcp_stream, "client": s.client, "server": s.server, "transport": s.transport,
            "status": s.handshake.status, "gaps": len(s.gaps), "findings": [f.id for f in s.findings]}


def _value(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, (dict, list, tuple)):
        text = json.dumps(v, ensure_ascii=False, default=str)
    else:
        text = str(v)
    return text if len(text) <= 160 else text[:157] + "..."


def _rich(files, results, failed, version: str, output) -> None:
    """Status lines never wrap (a path broken across lines cannot be copied); a table of
    differences that does not fit the width is shown stacked, a difference per block."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    if output:
        console = Console(record=True, width=140, file=open(os.devnull, "w"))
    else:
        console = Console()

    def line(text: str) -> None:
        console.print(text, soft_wrap=True)

    compared = {path: (native, other, diffs) for path, native, other, diffs in results}
    for path in files:  # in the order given, failures too
        if path not in compared:
            line(f"[red]failed[/red] {escape(path)}: not compared (the error is on stderr)")
            continue
        native, other, diffs = compared[path]
        sessions = len(native.sessions)
        if not diffs:
            line(f"[green]agree[/green]  {escape(path)}: {sessions} session{'s' if sessions != 1 else ''}, "
                 f"{native.packets} packets")
            continue
        line(f"[red]differ[/red] {escape(path)}: {len(diffs)} difference{'s' if len(diffs) != 1 else ''}")
        labels = {s.tcp_stream: f"{s.client} -> {s.server}" for s in native.sessions + other.sessions}
        by_stream: dict = {}
        for d in diffs:
            by_stream.setdefault(d.tcp_stream, []).append(d)
        for stream, rows in by_stream.items():
            line(escape("capture" if stream is None else f"tcp.stream eq {stream}  {labels.get(stream, '')}"))
            header = ("group", "value", "native", f"tshark {version}")
            cells = [(d.group, d.name, _value(d.native), _value(d.tshark)) for d in rows]
            # Each column as wide as its widest cell, plus 3 per column and 1 for the borders.
            needed = sum(max(len(c) for c in column) for column in zip(header, *cells)) + 3 * len(header) + 1
            if needed <= console.width:
                table = Table(show_lines=False, expand=False)
                for i, name in enumerate(header):
                    table.add_column(name, style="dim" if i == 0 else None, no_wrap=True)
                for row in cells:
                    table.add_row(*map(escape, row))
                console.print(table)
                continue
            for d in rows:
                line(f"  [dim]{escape(d.group)}[/dim] {escape(d.name)}")
                line(f"    native: {escape(_value(d.native))}")
                line(f"    tshark {version}: {escape(_value(d.tshark))}")
    line(escape(summary_line(results, failed, version)))
    if output:
        write_output(console.export_text(), output)
