"""The live dashboard in a real terminal (tmux): the silence counter of a session whose
client stops sending goes green -> yellow (half the threshold) -> red with "SILENT"
(over the threshold), then freezes at the server's close, at the value the final
report gives for the gap.

The server (captures/fake_deepgram.py) closes with 1011 NET-0001 after 6 s of client
silence; dgcap watch runs with --gap-threshold 3.  A second stream pauses its audio for
12 s while the client pings every 2 s: with the default threshold the counter still passes
10 s and turns red (pings do not reset NET-0001's clock), the pings column counts them.
tmux runs on its own socket.
"""
from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time

import pytest

from test_watch_loopback import ROOT, env, free_port

pytestmark = pytest.mark.skipif(
    shutil.which("dumpcap") is None or shutil.which("tmux") is None or os.geteuid() != 0,
    reason="needs dumpcap, tmux and root")

SGR = re.compile(r"\x1b\[([0-9;]*)m")
# The silent cell: its colour codes, the seconds, and the marker over the threshold.
CELL = re.compile(r"((?:\x1b\[[0-9;]*m)*)\s*(\d+\.\d) s(?:\x1b\[[0-9;]*m)*( SILENT)?")


def silent_cell(line: str):
    """(seconds, set of SGR parameters, marked) of the silent column in a dashboard row."""
    cells = line.split("│")
    # columns: "", #, client → server, endpoint, handshake, request id, audio, RTF, silent, ...
    m = CELL.search(cells[8])
    if m is None:
        return None
    params = {p for seq in SGR.findall(m.group(1)) for p in seq.split(";") if p}
    return float(m.group(2)), params, bool(m.group(3))


def level(params: set) -> str:
    if "41" in params:
        return "red"
    if "33" in params:
        return "yellow"
    if "32" in params:
        return "green"
    return "?"


def consistent(threshold: float, seconds: float, colour: str, marked: bool) -> bool:
    """Does a silent cell's colour follow its value (cut to tenths)?  Green below half the
    threshold, yellow up to it, red with SILENT from it (a shown 3.0 may be 3.05 > 3)."""
    if colour == "red":
        return marked and seconds >= threshold
    if colour == "yellow":
        return not marked and threshold / 2 <= seconds <= threshold
    return colour == "green" and not marked and seconds < threshold / 2


class Tmux:
    def __init__(self, tmp):
        self.socket = f"dgcap-test-{os.getpid()}"
        self.tmp = tmp

    def __call__(self, *args, check=True) -> str:
        res = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                             timeout=10, env={**env(), "TERM": "xterm-256color"})
        if check:
            assert res.returncode == 0, res.stderr
        return res.stdout

    def pane(self, colours: bool = True) -> str:
        return self("capture-pane", "-p", "-t", "watch", *(["-e"] if colours else []))


def start_dashboard(tmp_path, port: int, *watch_args: str) -> tuple[Tmux, object, object]:
    """`dgcap watch -i lo` in a 200x50 tmux pane, writing its JSON report; waits until it shows."""
    # tmux's server daemonizes through /dev/null ("daemon failed: No such device" otherwise).
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode), \
        "/dev/null is not the null device (something replaced it, e.g. an atomic write to -o /dev/null)"
    out = tmp_path / "report.json"
    rc_file = tmp_path / "rc"
    cmd = (f"cd {shlex.quote(str(ROOT))} && {shlex.quote(sys.executable)} -m analyzer.cli watch -i lo "
           f"--filter 'tcp port {port}' {' '.join(map(shlex.quote, watch_args))} --format json "
           f"-o {shlex.quote(str(out))}; echo $? > {shlex.quote(str(rc_file))}; sleep 60")
    tmux = Tmux(tmp_path)
    tmux("new-session", "-d", "-s", "watch", "-x", "200", "-y", "50",
         "-e", f"PYTHONPATH={dashboard_env()['PYTHONPATH']}", cmd)
    deadline = time.monotonic() + 20
    while "dgcap watch lo" not in tmux.pane(colours=False):
        assert time.monotonic() < deadline, tmux.pane(colours=False)
        time.sleep(0.1)
    return tmux, out, rc_file


def dashboard_env() -> dict:
    environment = env()
    environment.pop("NO_COLOR", None)
    return environment


def drive(tmp_path, port: int, timeout: float, scenario: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "test_watch_loopback.py"), "drive", "--port", str(port),
         "--workdir", str(tmp_path), "--timeout", str(timeout), scenario],
        cwd=ROOT, env=dashboard_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def watch_rows(tmux: Tmux, driver: subprocess.Popen) -> list[tuple]:
    """(seconds, colour, marked, pings cell) of the session's silent cell, frame by frame,
    until the driver exits."""
    seen = []
    while driver.poll() is None:
        for line in tmux.pane().splitlines():
            if "listen" in line and "│" in line:
                cell = silent_cell(line)
                if cell is not None:
                    seconds, params, marked = cell
                    seen.append((seconds, level(params), marked, SGR.sub("", line.split("│")[9]).strip()))
        time.sleep(0.1)
    return seen


def stop_dashboard(tmux: Tmux, rc_file) -> tuple[str, str]:
    """(last frame with colours, screen after Ctrl-C without) once the driver is done."""
    time.sleep(0.8)
    final = tmux.pane()
    tmux("send-keys", "-t", "watch", "C-c")
    deadline = time.monotonic() + 20
    while not rc_file.exists() or not rc_file.read_text().strip():
        assert time.monotonic() < deadline, tmux.pane(colours=False)
        time.sleep(0.1)
    return final, tmux.pane(colours=False)


def test_silent_counter_turns_yellow_then_red_and_freezes_at_the_close(tmp_path):
    port = free_port()
    tmux, out, rc_file = start_dashboard(tmp_path, port, "--gap-threshold", "3")
    try:
        driver = drive(tmp_path, port, 6, "net0001")
        seen = [x[:3] for x in watch_rows(tmux, driver)]
        assert driver.returncode == 0, driver.stderr.read()
        final, after = stop_dashboard(tmux, rc_file)
    finally:
        tmux("kill-server", check=False)

    # Colour follows the value in every frame (shown cut to tenths): < 1.5 green,
    # 1.5..3.0 yellow, from 3.0 red + SILENT (red at 3.0 means 3.0x, over the threshold).
    assert [x for x in seen if not consistent(3.0, *x)] == []
    colours = [c for s, c, m in seen]
    assert {"green", "yellow", "red"} <= set(colours)
    # ... in that order: once yellow, never green again until the end; once red, red.
    first_yellow = colours.index("yellow")
    first_red = colours.index("red")
    assert first_yellow < first_red
    assert set(colours[first_red:]) == {"red"}

    report = json.loads(out.read_text())
    assert rc_file.read_text().strip() == "1"  # the NET-0001 close is an error finding
    (session,) = report["captures"][0]["sessions"]
    assert (session["close"]["server"]["code"], session["close"]["client"]["code"]) == (1011, 1011)
    any_gap = next(g for g in session["gaps"] if g["kind"] == "any")
    assert (any_gap["before_frame"], any_gap["ended_by"]) == (session["close"]["server"]["frame"], "close")
    # Frozen at the server's close: the dashboard shows the report's gap.
    frozen = f"{math.floor(any_gap['seconds'] * 10 + 1e-9) / 10:.1f} s SILENT"
    row = next(ln for ln in final.splitlines() if "listen" in ln and "│" in ln)
    assert frozen in SGR.sub("", row)
    assert "S:1011 C:1011 FIN" in SGR.sub("", row)
    assert 6.0 <= any_gap["seconds"] < 6.5
    # The last frame stays on screen after Ctrl-C, with the findings.
    assert frozen in after and "client-gap" in after and "deepgram-close" in after


def test_pings_do_not_stop_the_silent_counter_it_turns_red_over_10_s(tmp_path):
    """A client pauses its audio for 12 s and pings every 2 s (its WebSocket is alive, but
    Deepgram's NET-0001 clock counts audio and text frames only): with the default threshold
    the counter passes 10 s, red with SILENT, while the pings column keeps counting."""
    from test_watch_loopback import PAUSE_SECONDS, PING_EVERY

    port = free_port()
    tmux, out, rc_file = start_dashboard(tmp_path, port)
    started = time.monotonic()
    try:
        # The server's NET-0001 timeout is set past the pause: the stream ends with CloseStream.
        driver = drive(tmp_path, port, 30, "pings-pause")
        seen = watch_rows(tmux, driver)
        assert driver.returncode == 0, driver.stderr.read()
        final, after = stop_dashboard(tmux, rc_file)
    finally:
        tmux("kill-server", check=False)
    assert time.monotonic() - started < 40

    assert [x for x in seen if not consistent(10.0, *x[:3])] == []
    red = [(seconds, pings) for seconds, colour, _, pings in seen if colour == "red"]
    assert red, seen
    # Red for the last part of the pause: from 10.0 s to about 12 s (the pause plus one chunk).
    assert min(s for s, _ in red) < 10.6
    assert 11.5 <= max(s for s, _ in red) <= 12.6
    # ... while the pings go on: 5 of them after 10 s of silence, the last under 2 s ago.
    ping_cells = {p for _, p in red}
    five = [p for p in ping_cells if p.startswith("5 (")]
    assert five, ping_cells
    ages = [float(re.match(r"5 \((\d+\.\d) s ago\)", p).group(1)) for p in five]
    assert max(ages) <= PING_EVERY + 0.3
    # The audio came back: green again, near 0.
    colours = [c for _, c, _, _ in seen]
    last_red = len(colours) - 1 - colours[::-1].index("red")
    assert set(colours[last_red + 1:]) == {"green"}

    report = json.loads(out.read_text())
    assert rc_file.read_text().strip() == "0"
    (session,) = report["captures"][0]["sessions"]
    pings = int(PAUSE_SECONDS / PING_EVERY)
    assert (session["frames"]["client"]["ping"], session["frames"]["server"]["pong"]) == (pings, pings)
    assert (session["close"]["server"]["code"], session["close"]["client"]["code"]) == (1000, 1000)
    # The report agrees: no audio for 12 s (an audio-gap); no "any" gap, the pings were frames.
    (gap,) = session["gaps"]
    assert (gap["kind"], gap["ended_by"]) == ("audio", "frame")
    assert PAUSE_SECONDS <= gap["seconds"] < PAUSE_SECONDS + 0.5
    assert sorted(f["id"] for f in session["findings"]) == ["audio-gap"]
    row = next(ln for ln in SGR.sub("", final).splitlines() if "listen" in ln and "│" in ln)
    assert f"{pings} (" in row.split("│")[9] and "S:1000 C:1000 FIN" in row
