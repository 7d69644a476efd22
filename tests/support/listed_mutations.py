"""The code changes listed in issue 12 ("Why"), applied one at a time: each must fail the
pinned tests.  `python -m tests.support.listed_mutations` from the repository root (edits a
source file, runs tests/test_session_builder.py and tests/test_websocket_boundaries.py,
restores the file; exit 1 if a mutation survives).  mutmut (README, "Testing") covers the
rest of the mutation space."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
S, F, M = "analyzer/session.py", "analyzer/websocket/frames.py", "analyzer/websocket/messages.py"
MUTATIONS = [
    ("gap > -> >= (frame, any)", S, "        if ts - silence.since_time > threshold:\n            self._gap(silence, frame, ts, \"frame\")\n        silence.since_frame, silence.since_time = frame, ts\n        if audio:",
                                     "        if ts - silence.since_time >= threshold:\n            self._gap(silence, frame, ts, \"frame\")\n        silence.since_frame, silence.since_time = frame, ts\n        if audio:"),
    ("gap > -> >= (frame, audio)", S, "            if ts - silence.since_time > threshold:",
                                       "            if ts - silence.since_time >= threshold:"),
    ("gap > -> >= (close/tcp/capture end)", S, "        if ts - silence.since_time > self.threshold:", "        if ts - silence.since_time >= self.threshold:"),
    ("client close does not end the audio silence", S, '            self._end(self.audio, frame, ts, "close")\n', ""),
    ("non-final binary on the fast path", S, "if op == OP_BINARY and length and f.fin:", "if op == OP_BINARY and length:"),
    ("server empty binary counted for the client", S, "if length == 0 and direction == CLIENT:", "if length == 0:"),
    ("RST after FIN not recorded", S, "if close.tcp_end == \"open\" or kind == \"rst\":", "if close.tcp_end == \"open\":"),
    ("no gap up to the capture end", S, '            self.silence.end(None, capture_end, "capture-end")', "            self.silence.stop()"),
    ("control-frame-too-long at >= 125", M, "        if length > 125:", "        if length >= 125:"),
    ("64-bit top bit >> 64", F, "                if length >> 63:", "                if length >> 64:"),
    ("64-bit top bit >> 62", F, "                if length >> 63:", "                if length >> 62:"),
    ("resync: control length >= 125", F, "            if not fin or length > 125:", "            if not fin or length >= 125:"),
    ("resync: control length > 126", F, "            if not fin or length > 125:", "            if not fin or length > 126:"),
    ("resync: 16-bit < 127", F, "            if length < 126:\n                return _RUN_INVALID", "            if length < 127:\n                return _RUN_INVALID"),
    ("resync: 16-bit < 125", F, "            if length < 126:\n                return _RUN_INVALID", "            if length < 125:\n                return _RUN_INVALID"),
    ("resync: 64-bit < 65535", F, "            if length < 65536 or length >> 63:", "            if length < 65535 or length >> 63:"),
    ("resync: 64-bit < 65537", F, "            if length < 65536 or length >> 63:", "            if length < 65537 or length >> 63:"),
    ("resync: 64-bit top bit dropped", F, "            if length < 65536 or length >> 63:", "            if length < 65536:"),
    ("find_frame_sync skips the last findable offset", F, "    for offset in range(max(0, n - 1)):", "    for offset in range(max(0, n - 6)):"),
]
TESTS = ["tests/test_session_builder.py", "tests/test_websocket_boundaries.py"]
env = dict(os.environ, PYTHONPATH=ROOT)
bad = 0
for name, path, old, new in MUTATIONS:
    full = os.path.join(ROOT, path)
    src = open(full).read()
    assert src.count(old) >= 1, name
    open(full, "w").write(src.replace(old, new, 1))
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    finally:
        open(full, "w").write(src)
    failed = [l for l in r.stdout.splitlines() if l.startswith("FAILED")]
    print(("KILLED  " if r.returncode else "SURVIVED"), name, "|", failed[0][7:90] if failed else "")
    bad += r.returncode == 0
print("survivors:", bad)
sys.exit(1 if bad else 0)
