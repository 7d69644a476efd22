"""What several commands do before their own work: check the capture and key log, analyse the
capture with one line (never a traceback) on failure, pick a session by its number."""
from __future__ import annotations

import os
from typing import Optional

from ..cli import error


def input_problem(path: str, keylog_arg: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """(key log path or None, problem line or None) for a capture argument and --keylog."""
    if not os.path.isfile(path):
        return None, f"{path}: no such file"
    keylog = keylog_arg or os.environ.get("SSLKEYLOGFILE") or None
    if keylog and not os.path.isfile(keylog):
        return None, f"{keylog}: key log file not found"
    return keylog, None


def analyze_or_explain(path: str, options):
    """analyze_capture(path, options), or None after one line on stderr."""
    from ..capture import CaptureError
    from .audio import _analyze, _capture_error
    try:
        report = _analyze(path, options)
    except CaptureError as e:
        _capture_error(path, e)
        return None
    except OSError as e:
        error(f"{e.filename or path}: {e.strerror or e}")
        return None
    if report is not None and report.stats.get("interrupted"):
        error(f"{path}: interrupted")
        return None
    return report


def pick_session(path: str, sessions: list, number: int):
    """Session `number` (1-based, as numbered by `dgcap report`), or None after one line."""
    if number < 1:
        error("--session must be a session number (1 or more)")
        return None
    if not sessions:
        error(f"{path}: no WebSocket sessions in this capture")
        return None
    if number > len(sessions):
        count = len(sessions)
        which = "1 session" if count == 1 else f"{count} sessions (1-{count})"
        error(f"{path}: no session {number}; the capture has {which}")
        return None
    return sessions[number - 1]
