"""`dgcap messages CAPTURE [--session N] [--format text|jsonl]`: every WebSocket message in
order, Wireshark's "Follow WebSocket stream" for a whole session: time, frame, direction,
type, length, and the text (unmasked, inflated, secrets redacted) or a binary summary
(length and SHA-256)."""
from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timezone

from ..cli import EXIT_INPUT, EXIT_OK, error, exit_codes_help, write_output
from ..message_log import LoggedMessage, MessageLog, binary_summary
from ..websocket import OP_CLOSE, OP_TEXT
from .common import add_capture_arguments, analyze_args, pick_session


def add_parser(sub) -> None:
    p = sub.add_parser("messages", help="print every WebSocket message of a session, in order",
                       description="Print the WebSocket messages of each session in order: time, "
                                   "frame, direction, type, length, and the text (unmasked and "
                                   "inflated) or a binary summary (length and SHA-256). Secrets "
                                   "are redacted.",
                       epilog=exit_codes_help("printed", None, "input or usage error (bad capture, no such session, no "
                                                               "WebSocket session;\n     one line on stderr)"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_capture_arguments(p, one_pass=True)
    p.add_argument("--session", type=int, metavar="N",
                   help="only session N (numbered as in `dgcap report`); default every session")
    p.add_argument("--format", choices=("text", "jsonl"), default="text",
                   help="text (default) or jsonl: one JSON object per message")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--show-secrets", action="store_true",
                   help="do not redact API keys and tokens (never attach that output)")


def run(args) -> int:
    from ..redact import redact_session

    path = args.capture
    log = MessageLog(redact=not args.show_secrets)
    _keylog, report = analyze_args(args, attach=log.attach)
    if report is None:
        return EXIT_INPUT
    sessions = report.sessions
    if args.session is not None:
        one = pick_session(path, sessions, args.session)
        if one is None:
            return EXIT_INPUT
        sessions = [one]
    elif not sessions:
        error(f"{path}: no WebSocket sessions in this capture")
        return EXIT_INPUT
    if args.show_secrets:
        sys.stderr.write("dgcap: warning: --show-secrets: this output contains API keys and tokens\n")
    else:
        for s in sessions:
            redact_session(s)
    render = _jsonl if args.format == "jsonl" else _text
    write_output(lambda f: render(f, sessions, log), args.output)
    return EXIT_OK


def _jsonl(out, sessions, log: MessageLog) -> None:
    for s in sessions:
        for m in log.messages(s):
            row = {"session": s.index, "tcp_stream": s.tcp_stream}
            row.update(m.to_json())
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _clock(ts: float) -> str:
    # Microseconds, not timefmt.clock's milliseconds: a pong follows its ping within a few
    # hundred of them, and every message's time should be readable on its own line.
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S.%f")


_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


def one_line(text: str) -> str:
    """The text on one line: control characters and backslashes escaped as in JSON."""
    return _CONTROL.sub(lambda c: json.dumps(c.group(0))[1:-1], text)


def message_line(m: LoggedMessage) -> str:
    """One message as a line: time, No., direction, type, length, then what it says."""
    if m.opcode == OP_TEXT or (m.text is not None and m.opcode != OP_CLOSE):
        what = one_line(m.text)
    elif m.opcode == OP_CLOSE:
        code = "no status code" if m.close_code is None else str(m.close_code)
        what = f"{code} {json.dumps(m.close_reason or '', ensure_ascii=False)}"
    else:
        what = binary_summary(m, with_length=False)
    flags = []
    if m.fragments > 1:
        flags.append(f"{m.fragments} fragments from No. {m.first_frame}")
    if m.compressed:
        flags.append(f"compressed {m.wire_size} bytes")
    if not m.complete:
        flags.append("incomplete")
    tail = f"  [{', '.join(flags)}]" if flags else ""
    return (f"{_clock(m.time)}  No. {m.frame:<6} {m.direction_name:<6}  {m.kind:<6} "
            f"{m.size:>7}  {what}{tail}")


def _text(out, sessions, log: MessageLog) -> None:
    for i, s in enumerate(sessions):
        messages = log.messages(s)
        if i:
            out.write("\n")
        out.write(f"Session {s.index}: {s.client} -> {s.server} (tcp.stream {s.tcp_stream}, "
                  f"{s.transport}), {len(messages)} messages\n")
        if not messages:
            why = ("encrypted: give the TLS key log (--keylog)" if s.transport == "tls" else
                   "no WebSocket messages" if s.websocket else
                   f"no WebSocket: the handshake got {s.handshake.status or 'no answer'}")
            out.write(f"  ({why})\n")
        for m in messages:
            out.write(message_line(m) + "\n")
