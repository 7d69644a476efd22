"""`dgcap watch` end to end on the loopback interface, with the recording scenarios.

`dgcap watch -i lo` runs in a subprocess while this file, run as a script
(`python tests/test_watch_loopback.py drive ...`), plays the scenarios of
captures/record.py against captures/fake_deepgram.py on free loopback ports: plain
success and NET-0001 (10 s of client silence), and the success pattern over TLS 1.3
with the client's key log given to dgcap and without it.  After SIGINT, the live
final report must be the report `dgcap report` gives for the written capture.

Needs root (or capture capabilities) and dumpcap; traffic stays on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"

if __name__ != "__main__":
    import pytest

    pytestmark = pytest.mark.skipif(
        shutil.which("dumpcap") is None or os.geteuid() != 0,
        reason="live capture needs dumpcap and root")


# ------------------------------------------------------------------ the scenario driver
def _drive(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-port", type=int)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--keylog", help="key log of the TLS client whose keys dgcap gets")
    ap.add_argument("--timeout", type=float, default=10.0, help="the server's NET-0001 timeout")
    ap.add_argument("scenarios", nargs="+",
                    choices=["success", "net0001", "tls-keys", "tls-nokeys", "pings-pause"])
    args = ap.parse_args(argv)
    sys.path.insert(0, str(CAPTURES))
    import fake_deepgram as fdg
    import record

    async def main() -> dict:
        plain = record.Scenario(name="watch", port=args.port, description="", run=None)
        tls = record.Scenario(name="watch-tls", port=args.tls_port or 0, description="", run=None,
                              tls={"version": "TLSv1.3"})
        cert = key = None
        if any(s.startswith("tls") for s in args.scenarios):
            cert, key = fdg.make_self_signed(args.workdir)
        server = fdg.FakeDeepgram(request_ids=fdg.RequestIds(base=args.port), timeout=args.timeout)
        clients, runs = [], []
        for name in args.scenarios:
            if name.startswith("tls"):
                ctx = record.Ctx(tls, args.workdir)
                ctx.cafile = cert
                client = ctx.client()
                keys = args.keylog if name == "tls-keys" else os.path.join(args.workdir, "other.keys")
                make = ctx.ssl_context

                def ssl_context(_make=make, _keys=keys):
                    c = _make()
                    c.keylog_filename = _keys
                    return c
                ctx.ssl_context = ssl_context
                runs.append(record.success_pattern(client))
            else:
                client = record.Ctx(plain, args.workdir).client()
                pattern = {"success": record.success_pattern, "net0001": record.net0001_pattern,
                           "pings-pause": pings_pause_pattern}[name]
                runs.append(pattern(client))
            clients.append(client)
        servers = [server.serve("127.0.0.1", args.port)]
        if args.tls_port:
            servers.append(server.serve("127.0.0.1", args.tls_port,
                                        ssl_context=fdg.server_ssl_context(cert, key)))
        async with servers[0]:
            if len(servers) > 1:
                async with servers[1]:
                    await asyncio.gather(*runs)
            else:
                await asyncio.gather(*runs)
            await asyncio.sleep(0.3)
        return {"clients": [c.facts() for c in clients], "server": server.connections}

    print("FACTS " + json.dumps(asyncio.run(main())), flush=True)


PAUSE_SECONDS = 12.0
PING_EVERY = 2.0


async def pings_pause_pattern(c) -> None:
    """1 s of audio, a 12 s pause in which the client pings every 2 s (its WebSocket stays
    alive, NET-0001's clock does not stop), 0.5 s of audio, CloseStream.  Run with a server
    timeout over the pause (--timeout 30)."""
    assert await c.open()
    await c.stream(1.0)
    for _ in range(int(PAUSE_SECONDS / PING_EVERY)):
        await asyncio.sleep(PING_EVERY)
        await c.ws.ping()
    await c.stream(0.5)
    await c.send_text({"type": "CloseStream"})
    await c.closed()


# ------------------------------------------------------------------ helpers for the tests
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dgcap(*args: str) -> list[str]:
    return [sys.executable, "-m", "analyzer.cli", *args]


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.pop("SSLKEYLOGFILE", None)
    return e


def run_driver(tmp: Path, port: int, *scenarios: str, tls_port=None, keylog=None,
               timeout: float = 10.0) -> dict:
    cmd = [sys.executable, __file__, "drive", "--port", str(port), "--workdir", str(tmp),
           "--timeout", str(timeout)]
    if tls_port:
        cmd += ["--tls-port", str(tls_port)]
    if keylog:
        cmd += ["--keylog", str(keylog)]
    res = subprocess.run(cmd + list(scenarios), capture_output=True, text=True, timeout=60,
                         cwd=ROOT, env=env())
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("FACTS "))
    return json.loads(line[6:])


def start_watch(args: list[str], stderr_path: Path) -> subprocess.Popen:
    """Start `dgcap watch` and wait until it is capturing."""
    err = open(stderr_path, "w")
    proc = subprocess.Popen(dgcap("watch", *args), stdout=subprocess.PIPE, stderr=err,
                            cwd=ROOT, env=env(), text=True)
    deadline = time.monotonic() + 20
    while "capturing on" not in stderr_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"dgcap watch did not start: {stderr_path.read_text()}")
        time.sleep(0.05)
    return proc


def stop_watch(proc: subprocess.Popen) -> tuple[int, str]:
    time.sleep(0.6)  # the last ACKs
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


def report_json(path: Path, *extra: str) -> dict:
    res = subprocess.run(dgcap("report", str(path), "--format", "json", *extra), capture_output=True,
                         text=True, cwd=ROOT, env=env(), timeout=60)
    assert res.returncode in (0, 1), res.stderr
    return json.loads(res.stdout)


def summary(report: dict) -> list[dict]:
    """What the assertions name: per session, the facts a ticket quotes."""
    out = []
    for s in report["captures"][0]["sessions"]:
        close = s["close"]
        out.append({
            "transport": s["transport"], "status": s["handshake"]["status"],
            "path": s["handshake"]["path"],
            "client_text": s["frames"]["client"]["text"], "client_binary": s["frames"]["client"]["binary"],
            "server_close": close["server"]["code"] if close["server"] else None,
            "client_close": close["client"]["code"] if close["client"] else None,
            "tcp_end": close["tcp_end"],
            "gaps": [g["kind"] for g in s["gaps"]],
            "findings": sorted(f["id"] for f in s["findings"]),
        })
    return out


def json_diff(a, b, path="") -> list[str]:
    """Where two JSON values differ (readable failures for big reports)."""
    if type(a) is not type(b):
        return [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in json_diff(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{path}.{k}")]
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in json_diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


# ------------------------------------------------------------------ tests
def test_watch_final_report_equals_report_of_written_capture(tmp_path):
    """success + NET-0001 in plain text, success over TLS with and without the key log."""
    port, tls_port = free_port(), free_port()
    cap = tmp_path / "live.pcapng"
    keys = tmp_path / "client.keys"
    err = tmp_path / "watch.err"
    # --server-name localhost: the 3-second TLS stream without keys is a session only when its
    # server is named (else it is one of the other connections, too short for a stream's shape).
    proc = start_watch(["-i", "lo", "--filter", f"tcp port {port} or tcp port {tls_port}",
                        "--write", str(cap), "--keylog", str(keys), "--format", "json",
                        "--server-name", "localhost"], err)
    try:
        facts = run_driver(tmp_path, port, "success", "net0001", "tls-keys", "tls-nokeys",
                           tls_port=tls_port, keylog=keys)
    finally:
        code, out = stop_watch(proc)
    stderr = err.read_text()
    live = json.loads(out)
    assert code == 1, stderr  # NET-0001 is an error finding, as with dgcap report
    offline = report_json(cap, "--keylog", str(keys), "--server-name", "localhost")

    # The live report is the written capture's report; only the capture details differ.
    live_stats = live["captures"][0]["stats"].pop("live")
    assert json_diff(live, offline) == []
    assert live == offline
    assert live_stats["interface"] == "lo"
    assert live_stats["dropped"] == 0
    assert live_stats["files"] == [str(cap)]
    assert live_stats["received"] == live["captures"][0]["packets"]

    # ... and it says what happened on the wire.
    sent = sorted((c["sent"]["binary"], c["sent"]["text"]) for c in facts["clients"])
    assert sent == [(10, 0), (30, 3), (30, 3), (30, 3)]
    rows = sorted(summary(live), key=lambda s: (s["transport"], s["server_close"] or 0))
    success = {"status": 101, "path": "/v1/listen", "client_text": 3, "client_binary": 30,
               "server_close": 1000, "client_close": 1000, "tcp_end": "fin", "gaps": [], "findings": []}
    assert rows == [
        {**success, "transport": "tcp"},
        {"transport": "tcp", "status": 101, "path": "/v1/listen", "client_text": 0, "client_binary": 10,
         "server_close": 1011, "client_close": 1011, "tcp_end": "fin", "gaps": ["any", "audio"],
         "findings": ["audio-gap", "client-gap", "deepgram-close"]},
        # Without keys: records only; nothing inside the TLS stream is known but their timing
        # (the client ended the connection first, its server named as a Deepgram server).
        {"transport": "tls", "status": None, "path": None, "client_text": 0, "client_binary": 0,
         "server_close": None, "client_close": None, "tcp_end": "fin", "gaps": [],
         "findings": ["encrypted-client-closed", "tls-no-keys"]},
        {**success, "transport": "tls-decrypted"},
    ]
    tls = {s["transport"]: s["tls"] for s in live["captures"][0]["sessions"] if s["transport"] != "tcp"}
    assert tls["tls-decrypted"]["decryption"] == "ok"
    assert (tls["tls"]["decryption"], tls["tls"]["decryption_error"]) == \
        ("no-keys", "the key log has no entry for this client random")
    # Same message pattern, so the same records on the wire, with or without keys.
    assert tls["tls"]["activity"]["client"]["app_records"] == \
        tls["tls-decrypted"]["activity"]["client"]["app_records"]
    server_ids = {r["request_id"] for r in facts["server"]}
    assert len(server_ids) == 4
    seen_ids = [s["handshake"]["dg_request_id"] for s in live["captures"][0]["sessions"]
                if s["transport"] != "tls"]
    assert len(set(seen_ids)) == 3 and set(seen_ids) <= server_ids
    # Without a terminal, one line per session event.
    assert stderr.count("ended: S:1000 C:1000 FIN; findings: none") == 2
    assert stderr.count("ended: S:1011 C:1011 FIN; findings: audio-gap, client-gap, deepgram-close") == 1
    assert stderr.count("ended: FIN; findings: encrypted-client-closed, tls-no-keys") == 1
    assert "0 dropped by the kernel" in stderr
    assert f"capture written to {cap} (dgcap report {cap} reproduces this report)" in stderr


def test_watch_ring_of_files(tmp_path):
    """--ring-size/--ring-files: a capped ring of valid pcapng files; the live report is whole."""
    from analyzer.capture import open_capture

    port = free_port()
    cap = tmp_path / "ring.pcapng"
    err = tmp_path / "watch.err"
    proc = start_watch(["-i", "lo", "--filter", f"tcp port {port}", "--write", str(cap),
                        "--ring-size", "0.03", "--ring-files", "2", "--format", "json"], err)
    try:
        run_driver(tmp_path, port, "success")
    finally:
        code, out = stop_watch(proc)
    assert code == 0, err.read_text()
    live = json.loads(out)["captures"][0]
    stats = live["stats"]["live"]
    kept = [Path(f) for f in stats["files"]]
    n = stats["rotations"] + 1  # files written in all
    assert n >= 3
    assert [f.name for f in kept] == [f"ring_{i:05d}.pcapng" for i in (n - 1, n)]
    assert sorted(p.name for p in tmp_path.glob("ring*")) == [f.name for f in kept]
    assert live["path"] == "live:lo"  # no single file reproduces it
    packets = 0
    for f in kept:
        assert f.stat().st_size <= 30_000
        c = open_capture(f)
        with c:
            packets += sum(1 for _ in c.packets())
        assert c.truncated is None
    assert 0 < packets < live["packets"]  # the oldest packets were dropped with their files
    (session,) = live["sessions"]
    assert (session["frames"]["client"]["binary"], session["frames"]["client"]["text"],
            session["close"]["server"]["code"]) == (30, 3, 1000)
    assert (f"capture written to a ring of 2 files: {kept[0]}, {kept[1]} ({n - 2} older file(s) deleted); "
            "frame numbers restart in each file") in err.read_text()


def test_dumpcap_does_not_outlive_a_killed_watch(tmp_path):
    """kill -9 dgcap: its dumpcap (own session, filter matching nothing) must not linger."""
    proc = start_watch(["-i", "lo", "--filter", "tcp port 1 and tcp port 2"], tmp_path / "watch.err")
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    (dumpcap,) = [int(c) for c in children]
    assert Path(f"/proc/{dumpcap}/comm").read_text().strip() == "dumpcap"
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{dumpcap}").exists() and "Z" not in _state(dumpcap):
        assert time.monotonic() < deadline, "dumpcap still running after dgcap was killed"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


if __name__ == "__main__":
    if sys.argv[1:2] != ["drive"]:
        sys.exit("usage: test_watch_loopback.py drive --port P --workdir D SCENARIO...")
    _drive(sys.argv[2:])
