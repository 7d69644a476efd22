"""Issue 13 on the recorded egress captures (captures/lab/, truth in <name>.truth.json, made by
captures/lab/record_lab.py): did the audio leave, to Deepgram, how much, and when did it stop,
without keys.  Expected values come from the truth files (the lab's own logs and tshark) and,
where a truth file does not list a frame, from tshark itself (the independent oracle)."""
import functools
import json
import os
import subprocess
import sys

import pytest

from analyzer.pipeline import Options, analyze_capture

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LAB = os.path.join(ROOT, "captures", "lab")
SILENCE_FINDINGS = {"client-gap", "audio-gap"}


def truth(name: str) -> dict:
    with open(os.path.join(LAB, f"{name}.truth.json")) as f:
        return json.load(f)


@functools.lru_cache(maxsize=None)
def report(name: str, keys: bool = False, list_all: bool = False):
    options = Options(keylog=os.path.join(LAB, f"{name}.keys") if keys else None, list_all=list_all)
    return analyze_capture(os.path.join(LAB, f"{name}.pcap"), options)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "analyzer.cli", "report", *args], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT,
                                                               "COLUMNS": "200"})


def tshark_fields(name: str, display_filter: str, *fields: str) -> list[list[str]]:
    args = ["tshark", "-r", os.path.join(LAB, f"{name}.pcap"), "-Y", display_filter, "-T", "fields"]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def stream_truth(t: dict) -> dict:
    return t["egress"][0]


def connection(t: dict, tcp_stream: int) -> dict:
    return next(c for c in t["connections"] if c["tcp_stream"] == tcp_stream)


def deepgram_tcp_stream(t: dict) -> int:
    return next(s["tcp_stream"] for s in t["sessions"] if s["class"] == "deepgram-stream")


def within(value, expected, fraction):
    return abs(value - expected) <= fraction * expected


def test_mixed_without_keys_lists_exactly_the_deepgram_stream():
    t, cap = truth("egress_mixed"), report("egress_mixed")
    # The chat WebSocket is encrypted and not shaped like an upload: without keys it is one of
    # the other connections (with keys it is a session: see below).
    assert [s.tcp_stream for s in cap.sessions] == [deepgram_tcp_stream(t)]
    assert cap.connections.total == t["connection_counts"]["total"] == 31
    assert (cap.connections.sessions, cap.connections.other.count, cap.connections.copies) == (1, 30, 0)
    by_name = cap.connections.other.by_server_name
    assert {k: v["count"] for k, v in by_name.items()} == {
        "www.example.test": 7, "cdn.example.test": 7, "static.example.test": 7, "img.example.test": 7,
        "chat.example.test": 1, "172.31.10.53": 1}  # the DNS-over-TCP connection has no name
    s = cap.sessions[0]
    e, want = s.egress, stream_truth(t)
    conn = connection(t, s.tcp_stream)
    assert s.connection_class == "encrypted-stream"
    assert s.server_name.to_json() == {
        "name": "api.deepgram.com", "source": "sni", "frame": conn["tls"]["client_hello_frame"],
        "deepgram": True, "dns_frame": t["dns"]["api.deepgram.com"]["a_answer_frame_before_stream"]}
    assert (e.client_bytes, e.units, e.unit) == (want["client_tls_appdata_bytes"],
                                                 want["client_tls_appdata_records"], "records")
    assert (e.first_frame, e.last_frame) == (want["first_client_appdata_frame"],
                                             want["last_client_appdata_frame"])
    assert within(e.active_seconds, want["active_seconds"], 0.02)
    assert within(e.active_bytes_per_second, want["bytes_per_second"], 0.02)
    assert e.consistent_with == "16 kHz 16-bit mono (linear16) in real time"
    assert not [f for x in cap.sessions for f in x.findings if f.id in SILENCE_FINDINGS]
    fin = conn["fins"][0]
    assert (fin["by"], conn["tcp_end"]) == ("client", "fin")
    assert sorted(f.id for f in s.findings) == ["encrypted-client-closed", "tls-no-keys"]
    closed = next(f for f in s.findings if f.id == "encrypted-client-closed")
    assert closed.frames == [want["last_client_appdata_frame"], fin["frame"]]
    assert (s.close.tcp_end, s.close.tcp_end_by, s.close.tcp_end_frame) == ("fin", "client", fin["frame"])


def test_mixed_headline_and_first_line_in_every_format():
    t = truth("egress_mixed")
    want = stream_truth(t)
    conn = connection(t, want["tcp_stream"])
    kb = f"{want['client_tls_appdata_bytes'] / 1000:.1f} kB"
    rate = f"{want['bytes_per_second'] / 1000:.1f} kB/s"
    line = (f"Audio left the network: {kb} in {want['client_tls_appdata_records']} records over "
            f"{want['active_seconds']:.1f} s ({rate}, consistent with 16 kHz 16-bit mono (linear16) in "
            f"real time) to api.deepgram.com {conn['server']} (SNI in No. "
            f"{conn['tls']['client_hello_frame']}, DNS answer No. "
            f"{t['dns']['api.deepgram.com']['a_answer_frame_before_stream']}).")
    headline = (f"Session 1 to Deepgram (api.deepgram.com, {conn['server']}): "
                f"{want['client_tls_appdata_bytes']:,} client bytes ({kb}) over "
                f"{want['active_seconds']:.1f} s active at {rate}, last client data No. "
                f"{want['last_client_appdata_frame']} at ")
    path = os.path.join("captures", "lab", "egress_mixed.pcap")
    rich = cli(path)
    assert rich.returncode == 0, rich.stderr
    flat = " ".join(rich.stdout.replace("│", " ").split())
    assert headline in flat and line in flat
    assert flat.index(headline) < flat.index("Session 1: ")
    assert "31 TCP connection(s): 1 session(s), 30 other" in flat
    for fmt in ("markdown", "html"):
        out = cli(path, "--format", fmt)
        assert out.returncode == 0, out.stderr
        assert line in out.stdout and headline in out.stdout
    js = json.loads(cli(path, "--format", "json").stdout)["captures"][0]
    assert js["connections"]["total"] == 31 and js["connections"]["sessions"] == 1
    session = js["sessions"][0]
    assert session["class"] == "encrypted-stream"
    assert session["egress"]["client_bytes"] == want["client_tls_appdata_bytes"]


def test_mixed_with_keys_both_websockets_are_sessions():
    t, cap = truth("egress_mixed"), report("egress_mixed", keys=True)
    assert [s.tcp_stream for s in cap.sessions] == [s["tcp_stream"] for s in t["sessions"]]
    assert [s.connection_class for s in cap.sessions] == ["websocket", "websocket"]
    dg, chat = cap.sessions
    assert (dg.server_name.name, dg.server_name.source) == ("api.deepgram.com", "sni")
    assert (chat.server_name.name, chat.server_name.deepgram) == ("chat.example.test", False)
    want = t["sessions"][0]["websocket"]["client"]
    assert dg.egress.client_bytes == want["payload_bytes"]
    assert (dg.egress.first_frame, dg.egress.last_frame) == (want["first_frame"], want["last_frame"])
    assert cap.connections.other.count == 29
    assert not [f for f in dg.findings if f.id in SILENCE_FINDINGS]


def test_all_lists_every_other_connection():
    t, cap = truth("egress_mixed"), report("egress_mixed", list_all=True)
    listed = cap.connections.listed
    assert sorted(o.tcp_stream for o in listed) == sorted(
        c["tcp_stream"] for c in t["connections"] if c["class"] != "deepgram-stream")
    # The truth sums tcp.len, retransmissions included; dgcap counts each byte once.
    retransmitted: dict = {}
    for stream, port, length in tshark_fields("egress_mixed", "tcp.analysis.retransmission && tcp.len > 0",
                                              "tcp.stream", "tcp.srcport", "tcp.len"):
        key = (int(stream), int(port))
        retransmitted[key] = retransmitted.get(key, 0) + int(length)
    for o in listed:
        c = connection(t, o.tcp_stream)
        assert (o.client, o.server, o.first_frame, o.last_frame) == (c["client"], c["server"],
                                                                     c["first_frame"], c["last_frame"])
        client_port, server_port = (int(x.rsplit(":", 1)[1]) for x in (c["client"], c["server"]))
        assert (o.client_bytes, o.server_bytes) == (
            c["client_payload_bytes"] - retransmitted.get((o.tcp_stream, client_port), 0),
            c["server_payload_bytes"] - retransmitted.get((o.tcp_stream, server_port), 0))
    assert "Other connections" in cli(os.path.join("captures", "lab", "egress_mixed.pcap"), "--all").stdout


def test_net0001_diagnosed_from_timing_with_exit_code_1():
    t, cap = truth("egress_net0001"), report("egress_net0001")
    assert [s.tcp_stream for s in cap.sessions] == [deepgram_tcp_stream(t)]
    s = cap.sessions[0]
    net = [f for f in s.findings if f.id == "encrypted-net0001"]
    assert len(net) == 1 and net[0].severity == "error"
    # The last client record before the silence, the server's short close record (the one sent
    # when the lab's server logged its close), the server's FIN: records read with tshark.
    records = [(int(f), float(ts), int(port), int(n.split(",")[0])) for f, ts, port, n in tshark_fields(
        "egress_net0001", f"tcp.stream == {s.tcp_stream} && (tls.record.opaque_type == 23 || "
                          "tls.record.content_type == 23)",
        "frame.number", "frame.time_epoch", "tcp.srcport", "tls.record.length")]
    client_port = int(s.client.rsplit(":", 1)[1])
    close_at = t["deepgram"]["net0001"]["close_time"]
    server_close = min((r for r in records if r[2] != client_port), key=lambda r: abs(r[1] - close_at))
    last_client = max((r for r in records if r[2] == client_port and r[1] < server_close[1]),
                      key=lambda r: r[1])
    fin = connection(t, s.tcp_stream)["fins"][0]
    assert fin["by"] == "server"
    assert net[0].frames == [last_client[0], server_close[0], fin["frame"]]
    assert net[0].details["server_record_bytes"] == server_close[3] <= 300
    assert abs(net[0].details["silence_seconds"] - t["deepgram"]["net0001"]["silence_seconds"]) < 0.01
    assert "NET-0001" in net[0].message and "SSLKEYLOGFILE" in net[0].message
    assert s.diagnosis.startswith("Consistent with Deepgram's NET-0001 timeout")
    # The rate is over the active period: the 10 s silence is listed and left out.
    want = stream_truth(t)
    e = s.egress
    assert e.client_bytes == want["client_tls_appdata_bytes"]
    assert [x["after_frame"] for x in e.silences] == [last_client[0]]
    active = want["active_seconds"] - e.silences[0]["seconds"]
    assert within(e.active_seconds, active, 0.02)
    assert within(e.active_bytes_per_second, want["client_tls_appdata_bytes"] / active, 0.02)
    assert e.consistent_with == "16 kHz 16-bit mono (linear16) in real time"
    assert not [f for f in s.findings if f.id in ("encrypted-client-closed", "encrypted-server-closed")]
    out = cli(os.path.join("captures", "lab", "egress_net0001.pcap"))
    assert out.returncode == 1, out.stderr


def test_nat_both_sides_counts_the_stream_once():
    t, cap = truth("egress_nat_both"), report("egress_nat_both")
    first, second = t["egress"]
    assert [s.tcp_stream for s in cap.sessions] == [first["tcp_stream"]]
    s = cap.sessions[0]
    other = connection(t, second["tcp_stream"])
    assert s.copy.to_json() == {"client": other["client"], "server": other["server"],
                                "tcp_stream": other["tcp_stream"], "first_frame": other["first_frame"],
                                "last_frame": other["last_frame"]}
    assert s.egress.client_bytes == first["client_tls_appdata_bytes"]
    c = cap.connections
    assert (c.total, c.sessions, c.other.count, c.copies) == (62, 1, 30, 31)
    assert c.total == len(t["connections"])


def test_headers_only_bytes_and_one_capture_note():
    t, cap = truth("egress_headers_only"), report("egress_headers_only")
    assert t["snaplen"] == 128
    assert [s.tcp_stream for s in cap.sessions] == [deepgram_tcp_stream(t)]
    s = cap.sessions[0]
    want = stream_truth(t)
    assert s.egress.unit == "segments"
    assert within(s.egress.client_bytes, want["client_tls_appdata_bytes"], 0.01)
    assert within(s.egress.active_bytes_per_second, want["bytes_per_second"], 0.02)
    assert [f.id for f in cap.findings] == ["snaplen-truncated"]
    hello = connection(t, s.tcp_stream)["tls"]["client_hello_frame"]
    assert [(f.id, f.frames) for f in s.findings] == [("tls-handshake-cut", [hello])]
    tls = s.to_json()["tls"]
    assert tls["gaps_measured_on"] == "tcp-segments"
    assert "the ClientHello is cut short, not missing" in tls["note"]


def test_midstream_stream_kept_by_its_shape():
    t, cap = truth("egress_midstream"), report("egress_midstream")
    want = stream_truth(t)
    assert [s.tcp_stream for s in cap.sessions] == [want["tcp_stream"]]
    s = cap.sessions[0]
    assert (s.connection_class, s.server_name) == ("encrypted-stream", None)
    assert s.egress.client_bytes == want["client_tls_appdata_bytes"]
    assert within(s.egress.active_bytes_per_second, want["bytes_per_second"], 0.02)


@pytest.mark.parametrize("name", ["egress_mixed", "egress_headers_only", "egress_nat_both"])
def test_no_silence_finding_outside_the_stream(name):
    cap = report(name)
    assert all(s.connection_class in ("websocket", "encrypted-stream") for s in cap.sessions)
    assert len(cap.sessions) == 1
