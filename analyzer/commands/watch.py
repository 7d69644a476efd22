"""`dgcap watch -i IFACE`: capture live and watch every WebSocket session as it happens.

dumpcap captures (`dumpcap -i IFACE -f BPF -q -w -`) into a pipe; the pcapng stream is
teed to `--write FILE` (a size-capped ring) and fed to the same CaptureAnalyzer as
`dgcap report`.  A dashboard (rich Live, on stderr when it is a terminal) shows each
session's endpoint, handshake, client audio rate (payload bytes, inflated) and real-time
factor, seconds since the client's last audio or text frame (the NET-0001 clock; pings and
pongs are counted beside it), server messages and close codes; findings appear when a
connection ends.  Ctrl-C (or --duration) stops: the full report follows, the same as
`dgcap report FILE` gives for the written file.
"""
from __future__ import annotations

import math
import os
import signal
import stat
import sys
import time
from typing import Optional

from ..cli import EXIT_INPUT, error
from .report import DOCUMENT_FORMATS, add_server_name_option, exit_code, render

REFRESH_PER_SECOND = 4
KEYLOG_LAG = 1.0  # seconds packets wait for their TLS secrets to reach the key log file


def add_parser(sub) -> None:
    import argparse
    from ..cli import EXIT_CODES_HELP
    w = sub.add_parser("watch", help="capture live and watch WebSocket sessions as they happen",
                       description="Capture live with dumpcap and show every WebSocket session as it happens "
                                   "(endpoint, handshake, audio rate, seconds since the client's last audio or text frame, "
                                   "close codes); Ctrl-C or --duration stops and prints the full report, the "
                                   "same as `dgcap report` on the written file.",
                       epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("-i", "--interface", required=True, metavar="IFACE",
                   help="interface to capture on (lo, eth0, any...; list them with dumpcap -D)")
    w.add_argument("-f", "--filter", default="tcp", metavar="BPF",
                   help="capture filter, e.g. \"tcp port 443\" (default: tcp)")
    w.add_argument("--keylog", metavar="FILE",
                   help="TLS key log the client writes (SSLKEYLOGFILE=FILE): new secrets are read as "
                        "they appear, to decrypt wss:// sessions; SSLKEYLOGFILE is used too")
    w.add_argument("-w", "--write", metavar="FILE.pcapng",
                   help="keep the raw capture (pcapng) for the ticket; `dgcap report FILE` reproduces "
                        "the final report (checked before the capture starts)")
    w.add_argument("--ring-size", type=float, default=100.0, metavar="MB",
                   help="with --write: start a new file when this size is reached (default 100; 0 = "
                        "one file, no limit)")
    w.add_argument("--ring-files", type=int, default=5, metavar="N",
                   help="with --write and a ring size: keep the newest N files (default 5)")
    add_server_name_option(w)
    w.add_argument("--gap-threshold", type=float, default=10.0, metavar="SECONDS",
                   help="client silence over this turns the counter red (no audio or text frame; "
                        "pings do not count) and is a gap finding in the report (default 10, "
                        "Deepgram's NET-0001 timeout); yellow from half of it")
    w.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this many seconds")
    w.add_argument("--format", choices=DOCUMENT_FORMATS, default="rich", help="final report format")
    w.add_argument("-o", "--output", metavar="FILE", help="write the final report to FILE instead of stdout")
    w.add_argument("--show-secrets", action="store_true",
                   help="do not redact API keys, tokens and JWTs")
    w.add_argument("--transcript", action="store_true", help="show the final transcript of each session")
    w.add_argument("--snapshot", action="append", metavar="FILE", default=[],
                   help="save the dashboard as it was when the capture was stopped: FILE.svg, FILE.html "
                        "or FILE.txt (repeat for several)")
    w.add_argument("--no-dashboard", action="store_true",
                   help="one line per session event on stderr instead of the live dashboard "
                        "(the default when stderr is not a terminal)")


def _check(args):
    if not math.isfinite(args.gap_threshold) or args.gap_threshold <= 0:
        return "--gap-threshold must be a positive number of seconds"
    if args.duration is not None and args.duration <= 0:
        return "--duration must be a positive number of seconds"
    if args.ring_size < 0:
        return "--ring-size must be 0 (no limit) or a positive number of MB"
    if args.ring_files < 1:
        return "--ring-files must be at least 1"
    if args.write:
        folder = os.path.dirname(os.path.abspath(args.write))
        if not os.path.isdir(folder):
            return f"{args.write}: folder {folder} does not exist"
        if os.path.isdir(args.write):
            return f"{args.write}: is a folder; give a file name such as capture.pcapng"
        problem = _unwritable(args.write)
        if problem:
            return problem
    for path in args.snapshot:
        if not path.endswith((".svg", ".html", ".htm", ".txt")):
            return f"--snapshot {path}: give a .svg, .html or .txt file name"
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            return f"--snapshot {path}: folder {os.path.dirname(os.path.abspath(path))} does not exist"
    if args.keylog:
        folder = os.path.dirname(os.path.abspath(args.keylog))
        if not os.path.isdir(folder):
            return f"{args.keylog}: folder {folder} does not exist"
    return None


def _unwritable(path: str) -> Optional[str]:
    """Why `path` cannot be written, found before the capture starts (not after it ran for
    its whole duration), or None.  A new file is created and removed again: the writer
    creates it at the first packet.  An existing file is opened for appending, so it is
    not changed; a FIFO or device without a reader is left alone (opening would block)."""
    try:
        if os.path.exists(path):
            if not stat.S_ISREG(os.stat(path).st_mode):
                return None if os.access(path, os.W_OK) else f"{path}: cannot write to it: permission denied"
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            os.unlink(path)
    except OSError as e:
        return f"{path}: cannot write the capture there: {e.strerror or e}"
    return None


def run(args) -> int:
    from ..live.capture import LiveCapture, LiveCaptureError
    from ..live.state import LiveState
    from ..pipeline import Options

    problem = _check(args)
    if problem:
        error(problem)
        return EXIT_INPUT
    keylog = args.keylog or os.environ.get("SSLKEYLOGFILE") or None
    if args.show_secrets:
        sys.stderr.write("dgcap: warning: --show-secrets: this report contains API keys and tokens; "
                         "do not attach it to a ticket\n")
    options = Options(gap_threshold=args.gap_threshold, show_secrets=args.show_secrets,
                      server_names=tuple(args.server_names))
    ring_bytes = int(args.ring_size * 1_000_000) if args.ring_size else None
    cap = LiveCapture(args.interface, args.filter, options, write=args.write, ring_bytes=ring_bytes,
                      ring_files=args.ring_files, keylog=keylog,
                      lag=KEYLOG_LAG if keylog else 0.0)
    events = _EventLog(sys.stderr) if (args.no_dashboard or not sys.stderr.isatty()) else None
    state = LiveState(args.gap_threshold, cap.analyzer.sessions,
                      on_conclude=_redactor(args.show_secrets, events))
    state.install(options)
    if events is not None:
        events.state = state

    stop = _StopFlag()
    stop.install()
    try:
        cap.start()
    except LiveCaptureError as e:
        error(str(e))
        return EXIT_INPUT
    sys.stderr.write(f"dgcap: capturing on {args.interface} (filter: {args.filter})"
                     + (f", writing {args.write}" if args.write else "") + "; Ctrl-C stops\n")
    sys.stderr.flush()
    try:
        dashboard = _loop(cap, state, args, stop, events)
    finally:
        cap.stop()
    report = cap.finish()
    captures = [report]
    from ..redact import redact_session
    if not args.show_secrets:
        for s in report.sessions:
            redact_session(s)
    if dashboard is not None:
        for path in args.snapshot:
            _snapshot(dashboard, path)
    _summary(cap, report, args)
    from ..model import Report
    full = Report(captures=captures, options={"gap_threshold": args.gap_threshold,
                                              "secrets_redacted": not args.show_secrets})
    render(full, args)
    input_error = cap.error is not None and not report.packets
    return exit_code(captures, input_error)


class _StopFlag:
    """SIGINT/SIGTERM/SIGHUP ask for a clean stop; a second one stops waiting for dumpcap."""

    def __init__(self):
        self.count = 0

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal closed
            signal.signal(sig, self._handler)

    def _handler(self, signum, frame) -> None:
        self.count += 1

    def __bool__(self) -> bool:
        return self.count > 0


def _redactor(show_secrets: bool, events):
    def concluded(session, number) -> None:
        if not show_secrets:
            from ..redact import redact_session
            redact_session(session)  # idempotent: the final report redacts again
        if events is not None:
            events.ended(session, number)
    return concluded


class _EventLog:
    """Without a terminal: one line per session event (handshake answered, ended)."""

    def __init__(self, out):
        self.out = out
        self.state = None
        self._announced: set = set()
        self._keep: list = []  # announced sessions stay referenced: their ids stay unique

    def tick(self, now: float) -> None:
        for s in self.state.sessions:
            if id(s) not in self._announced and (
                    s.handshake.status is not None or s.transport == "tls" or s.midstream):
                self._announce(s, now)

    def _announce(self, s, now: float) -> None:
        self._announced.add(id(s))
        self._keep.append(s)
        v = self.state.view(s, now)
        self._line(f"session {v.number} {v.client} -> {v.server} {v.endpoint} {v.handshake}"
                   + (f" dg-request-id {v.request_id}" if v.request_id else ""))

    def ended(self, session, number: int) -> None:
        from ..live.state import close_text
        if id(session) not in self._announced:
            self._announce(session, session.end_time or 0.0)
        ids = ", ".join(sorted({f.id for f in session.findings})) or "none"
        self._line(f"session {number} ended: {close_text(session)}; findings: {ids}")

    def _line(self, text: str) -> None:
        self.out.write(f"dgcap: {text}\n")
        self.out.flush()


def _loop(cap, state, args, stop, events):
    """Analyse and draw until stopped and everything captured is analysed.

    Returns the last frame drawn before the stop (for --snapshot)."""
    from ..live.dashboard import Status, render as render_dashboard
    status = Status(interface=args.interface, bpf=args.filter, writing=args.write,
                    keylog=cap.keylog_path, lag=cap.lag)
    started = time.monotonic()
    period = 1.0 / REFRESH_PER_SECOND
    stop_at = None  # monotonic deadline for dumpcap to finish after being asked
    last = None
    snapshot = None  # the last frame drawn while capturing (--snapshot)
    problem = None

    def frame():
        status.elapsed = time.monotonic() - started
        status.packets = cap.analyzer.packets
        if cap.writer is not None:
            status.written = cap.writer.bytes_written
            if len(cap.writer.files) > 1:
                status.writing = f"{cap.writer.files[-1]} (ring of {len(cap.writer.files)})"
        if cap.follower is not None:
            status.keys = len(cap.follower.keylog)
        return render_dashboard(status, state, state.views(cap.view_time(), cap.analyzer.last_time))

    live = None
    if events is None:
        from rich.console import Console
        from rich.live import Live
        console = Console(stderr=True)
        live = Live(console=console, auto_refresh=False, transient=False, redirect_stdout=False,
                    redirect_stderr=False)
        live.start()
    try:
        while True:
            tick = time.monotonic()
            if (stop or (args.duration is not None and tick - started >= args.duration)) and stop_at is None:
                status.state = "stopping"
                cap.stop()
                stop_at = tick + 10.0
            if stop_at is not None and (stop.count > 1 or tick > stop_at):
                cap.kill()
            if cap.reader_done and stop_at is None:
                problem = cap.dumpcap_problem() or cap.error
                status.note = f"capture ended: {problem}" if problem else "capture ended"
                stop_at = tick
            if cap.reader_done:
                while not cap.done:  # the stream has ended: analyse everything left
                    cap.pump(drain=True)
            else:
                cap.pump()
            if events is not None:
                events.tick(cap.view_time())
            if cap.done:
                status.state = "stopped"
                last = frame()
                if live is not None:
                    live.update(_fit(last, live.console), refresh=True)
                break
            last = frame()
            if status.state == "capturing":
                snapshot = last
            if live is not None:
                live.update(_fit(last, live.console), refresh=True)
            time.sleep(max(0.0, period - (time.monotonic() - tick)))
    finally:
        if live is not None:
            live.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C now interrupts the report
    if problem:
        error(problem)
    return snapshot or last


def _fit(renderable, console):
    # Two columns short of the terminal: the terminal echoes "^C" after the last line, and
    # on a full-width line that wraps, which would leave a stale line above the next frame.
    from rich.constrain import Constrain
    return Constrain(renderable, width=max(20, console.width - 2))


def _snapshot(renderable, path: str) -> None:
    from rich.console import Console
    with open(os.devnull, "w") as devnull:
        console = Console(record=True, width=170, file=devnull, force_terminal=True,
                          color_system="truecolor")
        console.print(renderable)
    try:
        if path.endswith(".svg"):
            console.save_svg(path, title="dgcap watch")
        elif path.endswith((".html", ".htm")):
            console.save_html(path)
        else:
            console.save_text(path)
    except OSError as e:
        error(f"{path}: cannot write the snapshot: {e.strerror or e}")


def _summary(cap, report, args) -> None:
    lines = [f"{report.packets} packets captured"]
    counts = cap.dropped()
    if counts is not None:
        lines[0] += f", {counts[1]} dropped by the kernel"
        if counts[1]:
            lines.append("warning: packets were dropped: the report may show holes that were not on the wire")
    if cap.writer is not None:
        files = cap.writer.files
        if cap.writer.error:
            lines.append(f"warning: writing the capture failed: {cap.writer.error}")
        if not files:
            lines.append(f"nothing was written to {cap.writer.path}")
        elif len(files) == 1:
            lines.append(f"capture written to {files[0]} (dgcap report {files[0]} reproduces this report)")
        else:
            lines.append(f"capture written to a ring of {len(files)} files: {', '.join(files)}"
                         + (f" ({len(cap.writer.deleted)} older file(s) deleted)" if cap.writer.deleted else "")
                         + "; frame numbers restart in each file")
    for line in lines:
        sys.stderr.write(f"dgcap: {line}\n")
    sys.stderr.flush()
