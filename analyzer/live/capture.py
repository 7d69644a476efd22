"""Live capture: dumpcap -> pcapng pipe -> (tee to file) -> CaptureAnalyzer.

Threads:

* the reader thread reads dumpcap's stdout block by block (capture.stream.PcapngStream),
  hands every block to the RingWriter first, then queues the packet;
* a thread drains dumpcap's stderr (its "Capturing on" line, errors, final counts);
* the caller's thread (the dashboard loop) calls `pump()` a few times a second: it
  feeds queued packets to the CaptureAnalyzer and renders.  The analyzer, its hooks and
  the sessions are only ever touched from that thread, so nothing needs a lock.

With a TLS key log, packets wait `lag` seconds in the queue before analysis, and the
key log file is re-read (new lines only) before each batch: a client writes a
connection's secrets just after the ServerHello reaches it, about when dumpcap sees
that packet, and the ServerHello is where the pipeline looks the secrets up.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from typing import Optional

from ..capture.stream import PcapngStream, open_stream
from ..capture import CaptureError
from ..model import CaptureReport
from ..pipeline import CaptureAnalyzer, Options
from .ring import RingWriter

PERMISSION_HELP = ("run as root, or grant dumpcap CAP_NET_RAW and CAP_NET_ADMIN "
                   "(sudo setcap cap_net_raw,cap_net_admin=eip {dumpcap}), or join the 'wireshark' "
                   "group where dumpcap is installed for it (sudo usermod -aG wireshark $USER, then "
                   "log in again)")
MISSING_HELP = ("dumpcap not found: dgcap watch captures with Wireshark's dumpcap; install it "
                "(Debian/Ubuntu: sudo apt-get install tshark; Fedora: sudo dnf install wireshark-cli; "
                "macOS: brew install wireshark) or put it on PATH")

_DROPPED_RE = re.compile(r"Packets received/dropped on interface '[^']*': (\d+)/(\d+)")


class LiveCaptureError(Exception):
    """dumpcap could not start capturing; str() is one line for humans, `kind` says why."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind  # missing | permission | no-interface | bad-filter | failed


def find_dumpcap() -> Optional[str]:
    return shutil.which("dumpcap")


def dumpcap_command(dumpcap: str, interface: str, bpf: Optional[str]) -> list[str]:
    cmd = [dumpcap, "-i", interface, "-q", "-w", "-"]
    if bpf:
        cmd[3:3] = ["-f", bpf]
    return cmd


def classify_dumpcap_error(lines: list[str], interface: str, bpf: Optional[str], dumpcap: str,
                           returncode: Optional[int] = None) -> LiveCaptureError:
    """dumpcap's own words -> one line that says what to do."""
    text = "\n".join(lines)
    lower = text.lower()
    if ("permission" in lower or "operation not permitted" in lower
            or "you don't have permission" in lower):
        return LiveCaptureError(f"no permission to capture on {interface}: "
                                + PERMISSION_HELP.format(dumpcap=dumpcap), "permission")
    if "no device named" in lower or "no such device" in lower or "no such interface" in lower:
        return LiveCaptureError(f"no interface named {interface!r} (list them with: dumpcap -D)",
                                "no-interface")
    if "invalid capture filter" in lower:
        why = ""
        m = re.search(r"\(([^()]*)\)\.?\s*$", text.split("See the User")[0].strip())
        if m:
            why = f": {m.group(1)}"
        return LiveCaptureError(f"invalid capture filter {bpf!r}{why}", "bad-filter")
    useful = [ln.strip() for ln in lines if ln.strip() and not ln.startswith(("Capturing on", "File:"))]
    detail = useful[0] if useful else f"exit status {returncode}"
    if detail.lower().startswith("dumpcap: "):
        detail = detail[9:]
    return LiveCaptureError(f"dumpcap failed on {interface}: {detail}", "failed")


def _die_with_parent():
    """Linux: dumpcap gets SIGTERM if dgcap dies (kill -9): in its own session, nothing else
    would stop it, and with a filter that matches nothing it would never hit a broken pipe."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def set_pdeathsig() -> None:  # runs in the child between fork and exec
        prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    return set_pdeathsig


def _grow_pipe(f, size: int = 1 << 20) -> None:
    """A bigger pipe (Linux) absorbs bursts while the reader thread waits for the GIL."""
    try:
        import fcntl
        fcntl.fcntl(f.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (ImportError, OSError, ValueError):
        pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default will do


class KeyLogFollower:
    """Adds a key log file's new lines to the pipeline's key log as the client writes them."""

    def __init__(self, path: str, keylog):
        self.path = path
        self.keylog = keylog
        self._offset = 0
        self._partial = b""
        self._identity = None

    def poll(self) -> int:
        try:
            st = os.stat(self.path)
        except OSError:
            return 0
        identity = (st.st_dev, st.st_ino)
        if identity != self._identity or st.st_size < self._offset:
            self._identity, self._offset, self._partial = identity, 0, b""  # new or truncated file
        if st.st_size == self._offset:
            return 0
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return 0
        self._offset += len(data)
        data = self._partial + data
        complete, _, self._partial = data.rpartition(b"\n")
        if not complete:
            return 0
        return self.keylog.load_text(complete.decode("ascii", "replace"))


class LiveCapture:
    """One `dgcap watch` capture: start(), then pump() until done, then finish()."""

    def __init__(self, interface: str, bpf: Optional[str], options: Options,
                 write: Optional[str] = None, ring_bytes: Optional[int] = None, ring_files: int = 2,
                 keylog: Optional[str] = None, lag: float = 0.0, dumpcap: Optional[str] = None):
        self.interface = interface
        self.bpf = bpf
        self.options = options
        self.write = write
        self.ring_bytes = ring_bytes
        self.ring_files = ring_files
        self.keylog_path = keylog
        self.lag = lag if keylog else 0.0
        self.dumpcap = dumpcap
        self.report = CaptureReport(path=write or f"live:{interface}", format="pcapng")
        self.analyzer = CaptureAnalyzer(options, self.report)
        self.follower = KeyLogFollower(keylog, self.analyzer.analysis.keylog) if keylog else None
        if keylog:  # findings name the followed key log as `dgcap report --keylog` does
            self.analyzer.name_keylog(keylog)
        self.writer: Optional[RingWriter] = None
        self.stream: Optional[PcapngStream] = None
        self.proc: Optional[subprocess.Popen] = None
        self.stderr_lines: list[str] = []
        self.error: Optional[str] = None  # the reader's, after start
        self.started_at: Optional[float] = None
        self._queue: deque = deque()
        self._ready = threading.Event()
        self._reader_done = threading.Event()
        self._stderr_done = threading.Event()
        self._stop_sent = False

    # -- starting ----------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> None:
        dumpcap = self.dumpcap or find_dumpcap()
        if dumpcap is None:
            raise LiveCaptureError(MISSING_HELP, "missing")
        self.dumpcap = dumpcap
        if self.write:
            folder = os.path.dirname(os.path.abspath(self.write))
            if not os.access(folder, os.W_OK) or (os.path.exists(self.write)
                                                   and not os.access(self.write, os.W_OK)):
                raise LiveCaptureError(f"cannot write {self.write}: permission denied", "write")
            self.writer = RingWriter(self.write, self.ring_bytes, self.ring_files)
        cmd = dumpcap_command(dumpcap, self.interface, self.bpf)
        try:
            # Its own process group: a terminal's Ctrl-C reaches dgcap only, and dgcap
            # stops dumpcap itself after reading everything it captured.
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True,
                                         preexec_fn=_die_with_parent())
        except PermissionError:
            raise LiveCaptureError(f"cannot run {dumpcap}: permission denied; "
                                   + PERMISSION_HELP.format(dumpcap=dumpcap), "permission") from None
        except OSError as e:
            raise LiveCaptureError(f"cannot run {dumpcap}: {e.strerror or e}", "failed") from None
        _grow_pipe(self.proc.stdout)
        threading.Thread(target=self._drain_stderr, name="dumpcap-stderr", daemon=True).start()
        threading.Thread(target=self._read, name="dumpcap-reader", daemon=True).start()
        deadline = time.monotonic() + timeout
        # dumpcap opens the interface and sets the filter, then writes the file header:
        # once the Section Header Block is read, packets are being captured.
        while not self._ready.is_set():
            if self._reader_done.is_set():
                break
            if time.monotonic() > deadline:
                self.kill()
                self._reader_done.wait(5)
                raise LiveCaptureError(f"dumpcap did not start capturing on {self.interface} "
                                       f"within {timeout:g} s", "failed")
            time.sleep(0.02)
        if not self._ready.is_set():
            try:
                rc = self.proc.wait(5)
            except subprocess.TimeoutExpired:  # dumpcap runs, but its output is unreadable
                self.kill()
                self.proc.wait(5)
                raise LiveCaptureError(f"dumpcap on {self.interface}: {self.error}", "failed") from None
            self._stderr_done.wait(5)
            if rc == 0 and self.error:
                raise LiveCaptureError(f"dumpcap on {self.interface}: {self.error}", "failed")
            raise classify_dumpcap_error(self.stderr_lines, self.interface, self.bpf, dumpcap, rc)
        self.started_at = time.time()

    def _drain_stderr(self) -> None:
        try:
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\r\n").lstrip("\r")
                self.stderr_lines.append(line)
        finally:
            self._stderr_done.set()

    def _read(self) -> None:
        try:
            try:
                stream = open_stream(self.proc.stdout, self.writer.block if self.writer else None,
                                     name=self.write or "-")
            except CaptureError as e:
                self.error = str(e)
                return
            self.stream = stream
            self.analyzer.use_secrets_from(stream)
            self._ready.set()
            push = self._queue.append
            for pkt in stream.packets():
                push(pkt)
        except Exception as e:  # the dashboard must learn about it, not a dead thread
            self.error = f"reading the capture failed: {type(e).__name__}: {e}"
        finally:
            if self.writer is not None:
                self.writer.close()
            self._reader_done.set()

    # -- running -------------------------------------------------------------------
    @property
    def reader_done(self) -> bool:
        return self._reader_done.is_set()

    @property
    def done(self) -> bool:
        """Everything dumpcap wrote has been analysed."""
        return self._reader_done.is_set() and not self._queue

    @property
    def queued(self) -> int:
        return len(self._queue)

    def pump(self, budget: float = 0.15, drain: bool = False) -> int:
        """Analyse queued packets (older than `lag` unless draining); returns how many."""
        if self.follower is not None:
            self.follower.poll()
        queue = self._queue
        packet = self.analyzer.packet
        hold = self.lag > 0 and not drain
        limit = time.time() - self.lag
        deadline = time.monotonic() + budget
        n = 0
        while queue:
            pkt = queue[0]
            if hold and pkt[1] > limit:
                break
            queue.popleft()
            packet(*pkt)
            n += 1
            if not (n & 63) and time.monotonic() > deadline:
                break
        if self.writer is not None and not drain:
            self.writer.flush()
        return n

    def view_time(self) -> float:
        """The wall-clock moment the analysed state corresponds to."""
        return time.time() - self.lag

    def stop(self) -> None:
        """Ask dumpcap to stop (it flushes and ends the stream); idempotent."""
        if self.proc is not None and self.proc.poll() is None and not self._stop_sent:
            self._stop_sent = True
            try:
                self.proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass

    @property
    def dumpcap_exited(self) -> Optional[int]:
        return self.proc.poll() if self.proc is not None else None

    def dumpcap_problem(self) -> Optional[str]:
        """Why dumpcap ended, when it ended without being asked to."""
        if self._stop_sent or self.proc is None or self.proc.poll() is None:
            return None
        self._stderr_done.wait(2)
        err = classify_dumpcap_error(self.stderr_lines, self.interface, self.bpf, self.dumpcap or "dumpcap",
                                     self.proc.returncode)
        return str(err)

    def dropped(self) -> Optional[tuple[int, int]]:
        """(received, dropped) from dumpcap's final statistics, once it has ended."""
        for line in self.stderr_lines:
            m = _DROPPED_RE.search(line)
            if m:
                return int(m.group(1)), int(m.group(2))
        return None

    # -- the end ---------------------------------------------------------------------
    def finish(self) -> CaptureReport:
        """After `done`: end every connection, like the end of a capture file."""
        from ..findings.capture_findings import capture_findings
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
            self._stderr_done.wait(2)
        self.analyzer.finish()
        report = self.report
        stream = self.stream
        if stream is not None:
            report.packets = stream.packet_count
            report.bytes = stream.bytes_read
            report.findings.extend(capture_findings(stream, self.analyzer.decoder, report))
        live = {"interface": self.interface, "filter": self.bpf, "started": self.started_at}
        counts = self.dropped()
        if counts is not None:
            live["received"], live["dropped"] = counts
        if self.writer is not None:
            live["files"] = self.writer.files
            if self.writer.rotations:
                live["rotations"] = self.writer.rotations
                self.report.path = f"live:{self.interface}"
            if self.writer.error:
                live["write_error"] = self.writer.error
        report.stats["live"] = live
        return report
