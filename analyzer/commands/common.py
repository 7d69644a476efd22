"""What several commands do before their own work: the capture and --keylog arguments, their
checks, analysing the capture with one line (never a traceback) on failure, picking a session
by its number."""
from __future__ import annotations

import os
from typing import Optional

from ..cli import error


def add_capture_arguments(p, one_pass: bool = False) -> None:
    """CAPTURE and --keylog, as every single-capture command takes them."""
    p.add_argument("capture", metavar="CAPTURE",
                   help="pcap or pcapng file (gzip too), or - for standard input" if one_pass else
                   "pcap or pcapng file (gzip too); not - or a pipe: it is read twice")
    p.add_argument("--keylog", metavar="FILE",
                   help="TLS key log (NSS format) to decrypt wss:// sessions; SSLKEYLOGFILE is used too")
    from .report import add_server_name_option  # one definition of the flag for every command
    add_server_name_option(p)


def capture_options(args, keylog: Optional[str], **fields):
    """The pipeline Options every single-capture command starts from (key log, server names)."""
    from ..pipeline import Options
    return Options(keylog=keylog, server_names=tuple(args.server_names), **fields)


# Why a command cannot take a pipe (`-`, a FIFO, `<(...)`): it reads the capture twice.
READS_TWICE = {
    "audio": "dgcap audio reads the capture twice (its sessions, then their audio)",
    "extract": "dgcap extract reads the capture twice (its sessions, then their packets)",
    "verify": "dgcap verify reads each capture twice (once per engine)",
    "tshark": "the tshark engine reads each capture twice (dgcap finds the WebSocket ports, then tshark dissects)",
}


def pipe_problem(path: str, reads_twice: Optional[str]) -> Optional[str]:
    """The error line for a pipe given to a command that reads its capture twice, or None."""
    from ..capture import STDIN, is_pipe
    if reads_twice is None or not is_pipe(path):
        return None
    what = "standard input" if path == STDIN else "a pipe"
    return f"{path}: {what} can be read only once, and {reads_twice}: save it to a file first"


def check_inputs(args) -> tuple[Optional[str], bool]:
    """(key log path or None, ok) for args.capture, args.keylog and args.session (if any);
    not ok after one line on stderr.  `-` is standard input, for the commands that read the
    capture once."""
    from ..capture import STDIN
    path = args.capture
    if os.path.isdir(path) and path != STDIN:
        error(f"{path}: is a folder; dgcap {args.command} takes one capture file "
              "(dgcap report takes folders)")
        return None, False
    if path != STDIN and not os.path.exists(path):
        error(f"{path}: no such file")
        return None, False
    problem = pipe_problem(path, READS_TWICE.get(args.command))
    if problem:
        error(problem)
        return None, False
    keylog = args.keylog or os.environ.get("SSLKEYLOGFILE") or None
    if keylog and not os.path.isfile(keylog):
        error(f"{keylog}: key log file not found")
        return None, False
    if getattr(args, "session", None) is not None and args.session < 1:
        error("--session must be a session number (1 or more)")
        return None, False
    return keylog, True


def analyze(path: str, options):
    """analyze_capture, with internal errors as one line (None) instead of a traceback.
    CaptureError and OSError propagate."""
    from ..capture import CaptureError
    from ..pipeline import analyze_capture
    try:
        return analyze_capture(path, options)
    except (CaptureError, OSError):
        raise
    except MemoryError:
        error(f"{path}: out of memory while analysing (please report this capture)")
        return None
    except Exception as e:  # a bug must not become a traceback in a user's terminal
        if os.environ.get("DGCAP_DEBUG"):
            raise
        error(f"{path}: internal error: {type(e).__name__}: {e} (set DGCAP_DEBUG=1 for details; "
              "please report it)")
        return None


def capture_error_line(path: str, e: Exception) -> str:
    """The error line for a capture that cannot be read: the path once (open_capture's
    messages start with it, the tshark engine's do not)."""
    msg = str(e)
    return msg if msg.startswith(f"{path}: ") else f"{path}: {msg}"


def capture_error(path: str, e: Exception) -> None:
    error(capture_error_line(path, e))


def analyze_or_explain(path: str, options, interrupted: str = "interrupted"):
    """analyze(path, options), or None after one line on stderr (unreadable capture,
    internal error, Ctrl-C: `interrupted` says what was not done)."""
    from ..capture import CaptureError
    try:
        report = analyze(path, options)
    except CaptureError as e:
        capture_error(path, e)
        return None
    except OSError as e:
        error(f"{e.filename or path}: {e.strerror or e}")
        return None
    if report is not None and report.stats.get("interrupted"):
        error(interrupted)
        return None
    return report


def analyze_args(args, attach=None, interrupted: str = "interrupted"):
    """The single-capture commands' prologue: check_inputs, then the analysis of
    args.capture.  (key log path, report); report None after one line on stderr.
    `attach(options)` lets a command add its observers (messages' MessageLog)."""
    keylog, ok = check_inputs(args)
    if not ok:
        return keylog, None
    options = capture_options(args, keylog)
    if attach is not None:
        options = attach(options)
    return keylog, analyze_or_explain(args.capture, options, interrupted)


def pick_session(path: str, sessions: list, number: int):
    """Session `number` (1-based, as numbered by `dgcap report`), or None after one line."""
    if not sessions:
        error(f"{path}: no WebSocket sessions in this capture")
        return None
    if number > len(sessions):
        count = len(sessions)
        which = "1 session" if count == 1 else f"{count} sessions (1-{count})"
        error(f"{path}: no session {number}; the capture has {which}")
        return None
    return sessions[number - 1]
