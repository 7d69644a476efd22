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

from ..cli import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, error, write_output
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

exit status: 0 the engines agree, 1 they disagree, 2 input error or tshark missing.
"""


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
    from ..pipeline import analyze_capture, capture_files
    from ..redact import redact_session

    options, problem = options_from(args)
    if problem:
        error(problem)
        return EXIT_INPUT
    tshark = find_tshark()
    if tshark is None:
        error(TSHARK_MISSING)
        return EXIT_INPUT
    for p in args.paths:
        if not os.path.exists(p):
            error(f"{p}: no such file or folder")
            return EXIT_INPUT
    files = capture_files(args.paths)
    if not files:
        error(f"no capture files (pcap/pcapng) found in {', '.join(args.paths)}")
        return EXIT_INPUT

    results, input_error = [], False
    for path in files:
        try:
            native = analyze_capture(path, options)
            other = analyze_capture_tshark(path, options, native=native)
        except CaptureError as e:
            error(f"{path}: {e}")
            input_error = True
            continue
        if not args.show_secrets:
            for s in native.sessions + other.sessions:
                redact_session(s)
        results.append((path, native, other, compare_reports(native, other)))

    version = tshark_version(tshark)
    if args.format == "json":
        write_output(json.dumps(_json(results, version), indent=2, ensure_ascii=False, default=str) + "\n",
                     args.output)
    else:
        _rich(results, version, args.output)
    if input_error:
        return EXIT_INPUT
    return EXIT_FINDINGS if any(diffs for *_, diffs in results) else EXIT_OK


def _json(results, version: str) -> dict:
    return {"tool": "dgcap", "command": "verify", "engines": {"native": {"name": "native"},
                                                           "tshark": {"name": "tshark", "version": version}},
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


def _rich(results, version: str, output) -> None:
    from rich.console import Console
    from rich.table import Table

    if output:
        console = Console(record=True, width=140, file=open(os.devnull, "w"))
    else:
        console = Console()
    agree = sum(1 for *_, diffs in results if not diffs)
    for path, native, other, diffs in results:
        sessions = len(native.sessions)
        if not diffs:
            console.print(f"[green]agree[/green]  {path}: {sessions} session{'s' if sessions != 1 else ''}, "
                          f"{native.packets} packets")
            continue
        console.print(f"[red]differ[/red] {path}: {len(diffs)} difference{'s' if len(diffs) != 1 else ''}")
        labels = {s.tcp_stream: f"{s.client} -> {s.server}" for s in native.sessions + other.sessions}
        by_stream: dict = {}
        for d in diffs:
            by_stream.setdefault(d.tcp_stream, []).append(d)
        for stream, rows in by_stream.items():
            title = "capture" if stream is None else f"tcp.stream eq {stream}  {labels.get(stream, '')}"
            table = Table(title=title, title_justify="left", show_lines=False, expand=False)
            table.add_column("group", style="dim")
            table.add_column("value", no_wrap=True)
            table.add_column("native", overflow="fold")
            table.add_column(f"tshark {version}", overflow="fold")
            for d in rows:
                table.add_row(d.group, d.name, _value(d.native), _value(d.tshark))
            console.print(table)
    console.print(f"{agree} of {len(results)} capture{'s' if len(results) != 1 else ''}: engines agree "
                  f"(native vs tshark {version}); known tshark limitations: docs/tshark-differences.md")
    if output:
        write_output(console.export_text(), output)
