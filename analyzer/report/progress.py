"""Progress on stderr while captures are analysed, and one-line session summaries (--stream).

The bar appears only when the work takes more than a moment (DELAY seconds) and
stderr is a terminal; it shows bytes read of all the captures and packets per second,
and disappears when the analysis is done (the report follows on stdout).
"""
from __future__ import annotations

import os
import re
import sys
import time
from typing import Optional

from ..model import Session
from .content import findings_badge
from .text import close_summary, frames_summary, handshake_summary

DELAY = 0.5
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """No terminal control sequences from a capture reach the terminal."""
    return _UNPRINTABLE.sub("?", text)


def stream_line(path: str, s: Session, show_secrets: bool = False) -> str:
    """One line per finished session: what a support engineer scans first."""
    hs = s.handshake
    parts = [f"{path}: tcp.stream {s.tcp_stream} {s.client} → {s.server}",
             s.endpoint or s.transport, f"handshake {handshake_summary(s)}"]
    if hs.dg_request_id:
        parts.append(f"dg-request-id {hs.dg_request_id}")
    if s.websocket:
        parts.append(f"frames {frames_summary(s)}")
    parts.append(f"close {close_summary(s)}")
    parts.append(findings_badge(s))
    line = " | ".join(parts)
    if s.diagnosis:
        line += f": {s.diagnosis}"
    if not show_secrets:
        from ..redact import redact_text, session_secrets
        line = redact_text(line, session_secrets(s))
    return printable(line)


class ProgressDisplay:
    """One bar for every capture of the run; updated from the pipeline's progress callback."""

    def __init__(self, files: list[str], enabled: Optional[bool] = None, delay: Optional[float] = None,
                 console=None):
        if delay is None:  # DGCAP_PROGRESS_DELAY: seconds before the bar shows (tests use 0)
            try:
                delay = float(os.environ.get("DGCAP_PROGRESS_DELAY", DELAY))
            except ValueError:
                delay = DELAY
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.enabled = enabled and bool(files)
        self.files = files
        self.sizes = []
        from ..capture import is_pipe
        # A pipe's size is unknown until it ends: the bar then counts bytes without a total.
        self.unknown_size = any(is_pipe(f) for f in files)
        for f in files:
            try:
                self.sizes.append(0 if is_pipe(f) else os.path.getsize(f))
            except OSError:
                self.sizes.append(0)
        self.read = [0] * len(files)
        self.packets = [0] * len(files)
        self.finished = [False] * len(files)
        self.delay = delay
        self.t0 = time.monotonic()
        self._console = console
        self._progress = None
        self._task = None
        self._current = 0

    # -- fed by the analysis (main process) ------------------------------------
    def update(self, index: int, bytes_read: int, packets: int) -> None:
        if not self.enabled:
            return
        self.read[index] = bytes_read
        self.packets[index] = packets
        self._current = index
        self.refresh()

    def done(self, index: int) -> None:
        if not self.enabled:
            return
        self.finished[index] = True
        if not self.unknown_size:
            self.read[index] = self.sizes[index]
        self.refresh()

    def refresh(self) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.t0
        if self._progress is None:
            if elapsed < self.delay or all(self.finished):
                return
            self._start()
        n_done = sum(self.finished)
        running = [i for i, d in enumerate(self.finished) if not d and (self.read[i] or i == self._current)]
        name = os.path.basename(self.files[running[0] if running else self._current])
        label = f"{name}" if len(self.files) == 1 else f"{n_done}/{len(self.files)} captures, {name}"
        pps = sum(self.packets) / elapsed if elapsed > 0 else 0.0
        from rich.markup import escape
        read = sum(self.read) if self.unknown_size else min(sum(self.read), sum(self.sizes))
        self._progress.update(self._task, completed=read,
                              description=escape(printable(label)), pps=f"{pps:,.0f}")

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
        console = self._console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]analysing[/] {task.description}", markup=True),
            BarColumn(bar_width=24), DownloadColumn(), TextColumn("{task.fields[pps]} packets/s"),
            TimeElapsedColumn(),
            console=console, transient=True, refresh_per_second=8,
            # --stream lines on stdout go through the bar's console only when both share a terminal;
            # a redirected stdout keeps them.
            redirect_stdout=sys.stdout.isatty(), redirect_stderr=True)
        self._task = self._progress.add_task("", total=None if self.unknown_size else max(sum(self.sizes), 1),
                                             pps="0")
        self._progress.start()

    @property
    def started(self) -> bool:
        return self._progress is not None

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
