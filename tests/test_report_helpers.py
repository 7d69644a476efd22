"""Shared helpers for the report tests (no tests here): sample captures, a hostile capture,
the CLI in a subprocess, and headless Chromium driven over the DevTools protocol."""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import pytest

from tests.support import capture_synth as synth

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "captures"
CORPUS = REPO.parent / "shared" / "corpus" / "public"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus/public")
CAPTURE_RE = re.compile(r"\.pcap(ng)?(\.gz)?$")
TEST_KEY = "dgtest_0123456789abcdef0123456789abcdef"
# The bearer JWT in the corpus' wstunnel-http.pcap (Sec-WebSocket-Protocol: v1, authorization.bearer.<JWT>).
WSTUNNEL_JWT_PARTS = ("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9",
                      "eyJpZCI6IjAxOGNmZWFiLWY5OWQtNzBmNy05NmFmLTBlOGJhNjk2YTFmNiIsInAiOiJUY3AiLCJyIjoiemVlay5vcmciLCJycCI6ODB9",
                      "FsquetBp_jsIDzBslWyyTPlS2hcMprVuWmbT2r57N0A")


def sample_captures() -> list[Path]:
    return sorted(p for p in CAPTURES.iterdir() if CAPTURE_RE.search(p.name))


def sample_folder(tmp: Path) -> Path:
    """The top-level sample captures (with their key logs and expectations) as one folder,
    without captures/lab/: the network-lab recordings (about 11 MB) are checked by
    tests/test_lab_truth.py and would only slow the folder-report tests down."""
    folder = tmp / "samples"
    folder.mkdir()
    for p in CAPTURES.iterdir():
        if p.is_file():
            (folder / p.name).symlink_to(p)
    return folder


def corpus_captures() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if CAPTURE_RE.search(p.name))


def expected(path: Path) -> Optional[dict]:
    name = CAPTURE_RE.sub("", path.name)
    f = path.with_name(f"{name}.expected.json")
    return json.loads(f.read_text()) if f.exists() else None


def keylog_for(path: Path) -> Optional[str]:
    exp = expected(path) or {}
    if exp.get("use_keylog") and exp.get("keylog"):
        return str(path.with_name(exp["keylog"]))
    keys = path.with_name(CAPTURE_RE.sub("", path.name) + ".keys")
    return str(keys) if keys.exists() else None


@functools.lru_cache(maxsize=None)
def analyzed(path: str, keylog: Optional[str] = None):
    """The redacted Report of one capture, as `dgcap report` builds it."""
    from analyzer.commands.report import analyze_paths
    from analyzer.model import Report
    from analyzer.pipeline import Options
    captures, input_error = analyze_paths([path], Options(keylog=keylog), False)
    assert not input_error, path
    return Report(captures=captures, options={"gap_threshold": 10.0, "secrets_redacted": True})


def take_output(out: Path) -> bytes:
    """The report written with -o OUT, then removed: the file's bytes, or for --format parquet
    (a folder of compressed tables) the tables' values as JSON text, so a search sees them."""
    if out.is_dir():
        import pyarrow.parquet as pq
        data = b"".join(json.dumps(pq.read_table(t).to_pylist(), default=str, ensure_ascii=False).encode()
                        for t in sorted(out.iterdir()))
        shutil.rmtree(out)
        return data
    data = out.read_bytes()
    out.unlink()
    return data


def run_cli(*args: str, cwd: Path = REPO, timeout: float = 300, env: Optional[dict] = None):
    """`dgcap ARGS` from this checkout (whatever `dgcap` on PATH points to)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("SSLKEYLOGFILE", None)
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "analyzer.cli", *args], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=timeout)


# -- a hostile capture: everything a peer controls tries to break out ----------------------

HOSTILE_UA = '<script>alert("ua")</script> | [click](http://evil.example/ua) `tick` ``` \\'
HOSTILE_REQUEST_ID = '<img src=x onerror=alert(1)>|id'
HOSTILE_REASON = '</title><script>alert(1)</script>|[x](http://evil.example/r)`\n# owned <b>'
HOSTILE_TEXT = '{"type":"Results","channel":{"alternatives":[{"transcript":"<script>alert(2)</script> | `x`"}]},"is_final":true}'
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_frame(opcode: int, payload: bytes, mask: Optional[bytes] = None, fin: bool = True) -> bytes:
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack("!Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


class Conversation:
    """One TCP connection as pcap records (Ethernet/IPv4), with correct sequence numbers."""

    def __init__(self, t0: float = 1700000000.0, cport: int = 50123, sport: int = 18099):
        self.t = t0
        self.cport, self.sport = cport, sport
        self.seq = [1000, 90000]
        self.records = []
        self._packet(0, synth.SYN, b"")
        self.seq[0] += 1
        self._packet(1, synth.SYN | synth.ACK, b"")
        self.seq[1] += 1
        self._packet(0, synth.ACK, b"")

    def _packet(self, direction: int, flags: int, payload: bytes, dt: float = 0.001) -> None:
        self.t += dt
        src, dst = (synth.CLIENT_IP, synth.SERVER_IP) if direction == 0 else (synth.SERVER_IP, synth.CLIENT_IP)
        sp, dp = (self.cport, self.sport) if direction == 0 else (self.sport, self.cport)
        ack = self.seq[1 - direction] if flags != synth.SYN else 0
        seg = synth.tcp(sp, dp, self.seq[direction], ack, flags, payload)
        frame = synth.ethernet(synth.ipv4(seg, src=src, dst=dst))
        sec = int(self.t)
        self.records.append((sec, int(round((self.t - sec) * 1e6)), frame))

    def send(self, direction: int, payload: bytes, dt: float = 0.001) -> None:
        self._packet(direction, synth.ACK | synth.PSH, payload, dt)
        self.seq[direction] += len(payload)

    def fin(self, direction: int, dt: float = 0.001) -> None:
        self._packet(direction, synth.ACK | synth.FIN, b"", dt)
        self.seq[direction] += 1

    def pcap(self) -> bytes:
        return synth.pcap(self.records)


def hostile_capture(path: Path) -> Path:
    key = base64.b64encode(b"0123456789abcdef").decode()
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    c = Conversation()
    request = (f"GET /v1/listen?model=nova-3&encoding=linear16&sample_rate=16000&tag=%3Cscript%3E HTTP/1.1\r\n"
               f"Host: api.deepgram.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Authorization: Token {TEST_KEY}\r\nUser-Agent: {HOSTILE_UA}\r\n\r\n").encode()
    c.send(0, request)
    response = (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\ndg-request-id: {HOSTILE_REQUEST_ID}\r\n\r\n").encode()
    c.send(1, response)
    mask = b"\x11\x22\x33\x44"
    for _ in range(5):
        c.send(0, ws_frame(2, b"\x00\x01" * 1600, mask), dt=0.1)
    c.send(1, ws_frame(1, HOSTILE_TEXT.encode()), dt=0.05)
    c.send(0, ws_frame(1, b'{"type":"KeepAlive"}', mask), dt=0.5)
    # 11 s of client silence, then the server closes with a hostile reason
    c.send(1, ws_frame(8, struct.pack("!H", 1011) + HOSTILE_REASON.encode()), dt=11.0)
    c.send(0, ws_frame(8, struct.pack("!H", 1011), mask))
    c.fin(1)
    c.fin(0)
    path.write_bytes(c.pcap())
    return path


# -- headless Chromium over the DevTools protocol -----------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio"]


def chromium() -> str:
    """The Chromium binary; installed with apt-get when missing (as .ci/run does)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, check=False, capture_output=True)
        found = shutil.which("chromium")
        if found:
            return found
    pytest.fail("Chromium is needed for the HTML report tests: apt-get install -y chromium")


class Browser:
    """A headless Chromium; `load()` opens a file and reports requests, errors and DOM facts."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="dgcap-chromium-")
        self.proc = subprocess.Popen(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        url = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                break
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                url = m.group(1)
                break
        if url is None:
            self.close()
            pytest.fail("Chromium did not start its DevTools endpoint")
        # keep draining stderr so Chromium never blocks on a full pipe
        import threading
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        from websockets.sync.client import connect
        self._connection = connect(url, max_size=None, open_timeout=30)
        self.ws = self._connection.__enter__()
        self._id = 0

    def _send(self, method: str, params: Optional[dict] = None, session: Optional[str] = None) -> int:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        return self._id

    def _call(self, method: str, params: Optional[dict] = None, session: Optional[str] = None,
              events: Optional[list] = None, timeout: float = 30) -> dict:
        want = self._send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == want:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if events is not None and "method" in msg:
                events.append(msg)

    def load(self, path: Path, expression: str = "null", settle: float = 0.5, media: str = "",
             features: Optional[dict] = None, pdf: bool = False, width: int = 1200, height: int = 900) -> dict:
        """Open file://path; returns requests (non file:/data: URLs), errors, console, and `expression`'s value.

        media/features emulate CSS media ("print") and media features (prefers-color-scheme);
        pdf=True also prints the page (result["pdf"], bytes).
        """
        events: list = []
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Runtime", "Log", "Page"):
            self._call(f"{domain}.enable", session=session, events=events)
        self._call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                          "mobile": False}, session=session, events=events)
        if media or features:
            self._call("Emulation.setEmulatedMedia", {
                "media": media, "features": [{"name": k, "value": v} for k, v in (features or {}).items()]},
                session=session, events=events)
        self._call("Page.navigate", {"url": path.resolve().as_uri()}, session=session, events=events)
        deadline = time.monotonic() + 30
        loaded = False
        while time.monotonic() < deadline and not loaded:
            try:
                msg = json.loads(self.ws.recv(timeout=1))
            except TimeoutError:
                continue
            events.append(msg)
            loaded = msg.get("method") == "Page.loadEventFired"
        end = time.monotonic() + settle
        while time.monotonic() < end:
            try:
                events.append(json.loads(self.ws.recv(timeout=max(0.01, end - time.monotonic()))))
            except TimeoutError:
                break
        value = self._call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                           session=session, events=events)["result"].get("value")
        printed = None
        if pdf:
            data = self._call("Page.printToPDF", {"printBackground": True}, session=session, events=events,
                              timeout=60)["data"]
            printed = base64.b64decode(data)
        self._call("Target.closeTarget", {"targetId": target}, events=events)
        requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
        errors = [e["params"]["exceptionDetails"].get("text", "") + " " +
                  json.dumps(e["params"]["exceptionDetails"].get("exception", {}).get("description", ""))
                  for e in events if e.get("method") == "Runtime.exceptionThrown"]
        console = [e["params"]["entry"]["text"] for e in events
                   if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] in ("error", "warning")]
        console += [" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"].get("args", []))
                    for e in events if e.get("method") == "Runtime.consoleAPICalled"]
        return {"loaded": loaded, "requests": [u for u in requests if not u.startswith(("file:", "data:"))],
                "all_requests": requests, "errors": errors, "console": console, "value": value, "pdf": printed}

    def evaluate_at(self, url: str, expression: str, timeout: float = 60):
        """Open `url` (e.g. DevTools' own frontend, devtools://devtools/bundled/devtools_app.html),
        wait for its load event, and return the value of `expression` (promises awaited)."""
        events: list = []
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            self._call("Page.enable", session=session, events=events)
            self._call("Page.navigate", {"url": url}, session=session, events=events)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not any(e.get("method") == "Page.loadEventFired" for e in events):
                try:
                    events.append(json.loads(self.ws.recv(timeout=1)))
                except TimeoutError:
                    continue
            result = self._call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                     "awaitPromise": True}, session=session, events=events,
                                timeout=timeout)
        finally:
            self._call("Target.closeTarget", {"targetId": target}, events=events)
        if "exceptionDetails" in result:
            raise RuntimeError(json.dumps(result["exceptionDetails"])[:2000])
        return result["result"].get("value")

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                try:
                    self._send("Browser.close")
                except Exception:
                    pass
                self._connection.__exit__(None, None, None)
        finally:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)
