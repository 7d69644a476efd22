"""The network-lab truth files (captures/lab/*.truth.json) still describe their captures.

Each check re-derives a value straight from the committed capture with tshark (simple
display filters, independent of the recorder's code) and compares it with the truth file
exactly, so a capture re-recorded without its truth (or a hand-edited truth) fails.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess

import pytest

LAB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "captures", "lab")
API_KEY = "dgtest_0123456789abcdef0123456789abcdef"
TRUTHS = sorted(glob.glob(os.path.join(LAB, "*.truth.json")))
EGRESS = ["egress_mixed", "egress_net0001", "egress_nat_both", "egress_midstream",
          "egress_headers_only"]
KEYED_EGRESS = ["egress_mixed", "egress_net0001", "egress_nat_both"]


def truth(name: str) -> dict:
    with open(os.path.join(LAB, f"{name}.truth.json")) as f:
        return json.load(f)


def tshark(name_or_path: str, fields: list[str], dfilter: str | None = None,
           keys: str | None = None, extra: tuple = ()) -> list[list[str]]:
    path = name_or_path if os.sep in name_or_path else os.path.join(LAB, name_or_path)
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=\t",
           "-E", "occurrence=a", "-E", "aggregator=,", *extra]
    for f in fields:
        cmd += ["-e", f]
    if dfilter:
        cmd += ["-Y", dfilter]
    if keys:
        cmd += ["-o", f"tls.keylog_file:{os.path.join(LAB, keys)}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    return [line.split("\t") for line in out.splitlines()]


def dg_session(t: dict, side: str | None = "outside") -> dict:
    s = [s for s in t["sessions"] if s["class"] == "deepgram-stream"
         and s.get("side", "outside") == side]
    assert len(s) == 1
    return s[0]


def test_lab_truth_files_exist():
    names = {os.path.basename(p)[:-len(".truth.json")] for p in TRUTHS}
    assert set(EGRESS) <= names


@pytest.mark.parametrize("path", TRUTHS, ids=os.path.basename)
def test_packet_count_and_no_key_in_truth(path):
    with open(path) as f:
        text = f.read()
    assert API_KEY not in text
    t = json.loads(text)
    assert len(tshark(t["capture"], ["frame.number"])) == t["packets"]
    size = os.path.getsize(os.path.join(LAB, t["capture"]))
    assert size < 2_000_000


def test_lab_set_is_small():
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(LAB, "*"))
                if not p.endswith(".py"))
    assert total < 15_000_000


@pytest.mark.parametrize("name", EGRESS)
def test_egress_connections(name):
    t = truth(name)
    syns = tshark(t["capture"], ["tcp.stream"], "tcp.flags.syn == 1 and tcp.flags.ack == 0")
    with_syn = [c["tcp_stream"] for c in t["connections"] if c["syn_seen"]]
    assert [int(r[0]) for r in syns] == with_syn
    assert t["connection_counts"]["total"] == len(t["connections"])
    streams = {int(r[0]) for r in tshark(t["capture"], ["tcp.stream"], "tcp")}
    assert streams == {c["tcp_stream"] for c in t["connections"]}
    assert {c["class"] for c in t["connections"]} <= {
        "deepgram-stream", "chat-websocket", "https-fetch", "idle-keepalive", "dns-tcp"}


@pytest.mark.parametrize("name", ["egress_mixed", "egress_net0001", "egress_nat_both"])
def test_egress_client_hello_and_dns(name):
    t = truth(name)
    rows = tshark(t["capture"], ["frame.number", "tcp.stream"],
                  'tls.handshake.type == 1 and tls.handshake.extensions_server_name == '
                  '"api.deepgram.com"')
    dg = [c for c in t["connections"] if c["class"] == "deepgram-stream"]
    assert [(int(r[0]), int(r[1])) for r in rows] == [
        (c["tls"]["client_hello_frame"], c["tcp_stream"]) for c in dg]
    answers = tshark(t["capture"], ["frame.number"],
                     'dns.flags.response == 1 and dns.qry.name == "api.deepgram.com"')
    assert [int(r[0]) for r in answers] == t["dns"]["api.deepgram.com"]["answer_frames"]


@pytest.mark.parametrize("name", ["egress_mixed", "egress_net0001"])
def test_egress_keyless_records_of_the_deepgram_stream(name):
    t = truth(name)
    e = t["egress"][0]
    c = next(c for c in t["connections"] if c["tcp_stream"] == e["tcp_stream"])
    ip, port = c["client"].rsplit(":", 1)
    rows = tshark(t["capture"], ["frame.number", "tls.record.opaque_type",
                                 "tls.record.content_type", "tls.record.length"],
                  f"tcp.stream == {e['tcp_stream']} and ip.src == {ip} and tls")
    count = nbytes = 0
    frames = []
    for no, opaque, clear, lengths in rows:
        types = (clear.split(",") if clear else []) + (opaque.split(",") if opaque else [])
        for ty, ln in zip(types, lengths.split(",")):
            if ty == "23":
                count += 1
                nbytes += int(ln)
                frames.append(int(no))
    assert (count, nbytes) == (e["client_tls_appdata_records"], e["client_tls_appdata_bytes"])
    assert (frames[0], frames[-1]) == (e["first_client_appdata_frame"],
                                       e["last_client_appdata_frame"])


def ws_counts(capture: str, stream: int, keys: str | None, extra: tuple = ()
              ) -> tuple[dict, dict]:
    """Binary frames per direction and the first close frame (frame, code) per direction of
    one tcp.stream, direction from the mask bit (client frames are masked)."""
    rows = tshark(capture, ["frame.number", "websocket.opcode", "websocket.mask",
                            "websocket.payload.close.status_code"],
                  f"tcp.stream == {stream} and websocket", keys=keys, extra=extra)
    binary = {"client": 0, "server": 0}
    closes: dict = {}
    for no, opcodes, masks, codes in rows:
        code_iter = iter(codes.split(",") if codes else [])
        for op, mask in zip(opcodes.split(","), masks.split(",")):
            side = "client" if mask in ("1", "True") else "server"
            if op == "2":
                binary[side] += 1
            if op == "8" and side not in closes:
                closes[side] = (int(no), int(next(code_iter)))
    return binary, closes


def assert_ws(capture: str, stream: int, keys: str | None, ws: dict, extra: tuple = ()) -> None:
    binary, closes = ws_counts(capture, stream, keys, extra)
    assert binary == {"client": ws["client"]["binary"], "server": ws["server"]["binary"]}
    for side in ("client", "server"):
        assert closes[side] == (ws[side]["close"]["frame"], ws[side]["close"]["code"])


@pytest.mark.parametrize("name", KEYED_EGRESS)
def test_egress_websocket_frames_with_keys(name):
    t = truth(name)
    s = dg_session(t)
    assert_ws(t["capture"], s["tcp_stream"], t["keylog"], s["websocket"])
    assert s["websocket"]["client"]["binary_payload_bytes"] == \
        t["deepgram"]["client"]["audio_bytes_sent"]


def test_egress_net0001_timing():
    t = truth("egress_net0001")
    dg = t["deepgram"]
    assert dg["server"]["close_sent"][0] == 1011
    assert dg["client"]["closestream_time"] is None
    ws = dg_session(t)["websocket"]
    silence = t["deepgram"]["net0001"]["silence_seconds"]
    assert 10.0 <= silence < 10.1
    rows = tshark(t["capture"], ["frame.time_epoch"],
                  f"frame.number == {ws['client']['last_binary_frame']} or "
                  f"frame.number == {ws['server']['close']['frame']}")
    gap = float(rows[1][0]) - float(rows[0][0])
    assert 10.0 <= gap < 10.1


def test_headers_only_is_frame_identical_to_the_full_capture():
    t = truth("egress_headers_only")
    full = tshark("egress_mixed.pcap", ["frame.len"])
    cut = tshark(t["capture"], ["frame.len", "frame.cap_len"])
    assert [r[0] for r in cut] == [r[0] for r in full]
    assert max(int(r[1]) for r in cut) == 128
    assert t["snaplen"] == 128


def test_nat_both_sees_every_connection_twice():
    t = truth("egress_nat_both")
    sides = {c["tcp_stream"]: c for c in t["connections"]}
    for c in t["connections"]:
        twin = sides[c["twin_tcp_stream"]]
        assert twin["twin_tcp_stream"] == c["tcp_stream"]
        assert {c["side"], twin["side"]} == {"inside", "outside"}
        assert (c["class"], c["client_payload_bytes"]) == (twin["class"],
                                                         twin["client_payload_bytes"])
    rows = tshark(t["capture"], ["ip.src"], "tcp.flags.syn == 1 and tcp.flags.ack == 0")
    inside = [r for r in rows if r[0].startswith("10.99.")]
    assert len(inside) * 2 == len(rows) == t["connection_counts"]["total"]


def test_midstream_has_no_handshake_of_the_speech_stream():
    t = truth("egress_midstream")
    e = t["egress"][0]
    assert not next(c for c in t["connections"] if c["tcp_stream"] == e["tcp_stream"])["syn_seen"]
    rows = tshark(t["capture"], ["frame.number"],
                  'tls.handshake.extensions_server_name == "api.deepgram.com"')
    assert rows == []
    assert 4.9 < t["capture_started_after_speech_open_seconds"] < 6.0


PROXY = ["proxy_connect", "proxy_both_legs", "proxy_connect_denied", "proxy_ws_absolute",
         "proxy_ws_absolute_both_legs"]


@pytest.mark.parametrize("name", PROXY)
def test_proxy_requests_and_responses(name):
    t = truth(name)
    rows = tshark(t["capture"], ["frame.number", "tcp.stream", "http.request.method",
                                 "http.request.uri", "http.response.code"],
                  "http.request or http.response", keys=t["keylog"])
    got: dict = {}
    for no, stream, method, uri, code in rows:
        h = got.setdefault(int(stream), {})
        if method and "request_frame" not in h:
            h.update(request_frame=int(no), method=method, target=uri)
        elif code and "response_frame" not in h:
            h.update(response_frame=int(no), status=int(code))
    want = {c["tcp_stream"]: {k: c["http"][k] for k in ("request_frame", "method", "target",
                                                        "response_frame", "status")}
            for c in t["connections"] if c["http"]}
    assert got == want


@pytest.mark.parametrize("name", ["proxy_connect", "proxy_both_legs", "proxy_ws_absolute",
                                  "proxy_ws_absolute_both_legs"])
def test_proxy_websocket_frames(name):
    t = truth(name)
    streams = [c for c in t["connections"] if c["class"] == "deepgram-stream"]
    assert len(streams) == (2 if name.endswith("both_legs") else 1)
    for c in streams:
        assert_ws(t["capture"], c["tcp_stream"], t["keylog"], c["websocket"])
        assert c["websocket"]["client"]["binary_payload_bytes"] == \
            t["deepgram"]["client"]["audio_bytes_sent"]


def test_proxy_connect_client_hello_inside_the_tunnel():
    t = truth("proxy_connect")
    c = t["connections"][0]
    rows = tshark(t["capture"], ["frame.number", "tls.handshake.extensions_server_name"],
                  "tls.handshake.type == 1")
    assert [(int(r[0]), r[1]) for r in rows] == [(c["tls"]["client_hello_frame"],
                                                 "api.deepgram.com")]
    assert c["http"]["method"] == "CONNECT" and c["http"]["target"] == "api.deepgram.com:443"
    assert c["tls"]["client_hello_frame"] > c["http"]["response_frame"]


def test_proxy_denied_statuses():
    t = truth("proxy_connect_denied")
    assert [c["http"]["status"] for c in t["connections"]] == [407, 403]
    assert [r["proxy_status"] for r in t["refused"]] == [407, 403]
    assert tshark(t["capture"], ["frame.number"], "tls") == []


TUNNEL_FIELDS = {  # capture -> (tshark field on the first carried frame, value in the file)
    "vxlan": ("vxlan.vni", "4242"), "vxlan_fragmented": ("vxlan.vni", "4242"),
    "vxlan_8472": ("vxlan.vni", "4242"),
    "geneve": ("geneve.vni", "0x001092"), "gretap": ("gre.key", "0x00001092"),
    "erspan_i": ("gre.proto", "0x88be"), "erspan_ii": ("erspan.spanid", "123"),
    "erspan_iii": ("erspan.spanid", "321"), "gtpu_vlan": ("gtp.teid", "0x0000a001"),
    "mpls": ("mpls.label", "1001,2002"), "ipip": ("ip.proto", "4,6"),
    "pppoe": ("pppoe.session_id", "0x0011"),
}


def ws_stream(t_inner: list) -> dict:
    s = [c for c in t_inner if c.get("websocket")]
    assert len(s) == 1
    return s[0]


def comparable(ws: dict) -> dict:
    """What must equal the decapsulated reference: counts, bytes, close codes and reasons."""
    return {side: ({k: v for k, v in d.items() if k in ("text", "binary", "continuation",
                                                        "close", "ping", "pong",
                                                        "payload_bytes")}
                   | {"close": (d["close"]["code"], d["close"]["reason"])})
            for side, d in ws.items()}


@pytest.mark.parametrize("name", sorted(TUNNEL_FIELDS))
def test_tunnel_session_equals_the_reference(name):
    t = truth(name)
    field, value = TUNNEL_FIELDS[name]
    extra = tuple(t["tshark_args"])
    rows = tshark(t["capture"], [field], "tcp.flags.syn == 1 and tcp.flags.ack == 0",
                  extra=extra)
    assert rows[0][0] == value
    inner = ws_stream(t["inner"])
    assert_ws(t["capture"], inner["tcp_stream"], None, inner["websocket"], extra)
    ref = ws_stream(t["reference"]["connections"])
    assert_ws(t["reference"]["capture"], ref["tcp_stream"], None, ref["websocket"])
    assert comparable(inner["websocket"]) == comparable(ref["websocket"])
    assert inner["websocket"]["client"]["binary_payload_bytes"] == \
        t["deepgram"]["client"]["audio_bytes_sent"]
    assert inner["websocket"]["server"]["close"]["code"] == 1000
    assert t["tunnel"]["real"] == name.startswith("vxlan")


def test_vxlan_8472_needs_a_decode_as():
    t = truth("vxlan_8472")
    assert tshark(t["capture"], ["frame.number"], "vxlan") == []
    assert len(tshark(t["capture"], ["frame.number"], "vxlan",
                      extra=tuple(t["tshark_args"]))) == t["packets"] - 2  # all but 2 ARP


def test_vxlan_fragmented_outer_fragments():
    t = truth("vxlan_fragmented")
    frags = tshark(t["capture"], ["frame.number"], "ip.flags.mf == 1 or ip.frag_offset > 0")
    assert len(frags) == t["outer_ip_fragment_frames"] > 100
    assert tshark("vxlan.pcap", ["frame.number"], "ip.flags.mf == 1 or ip.frag_offset > 0") == []


def test_rewrapped_timestamps_are_the_reference_timestamps():
    ref = [r[0] for r in tshark("vxlan_inner.pcap", ["frame.time_epoch"], "ip")]
    for name in ("geneve", "gtpu_vlan", "pppoe"):
        assert [r[0] for r in tshark(f"{name}.pcap", ["frame.time_epoch"], "tcp")] == ref


def test_span_skew_moves_server_packets_by_100_ms():
    t = truth("span_skew")
    server = t["reference"]["connections"][0]["server"].rsplit(":", 1)[0]
    key = ["ip.src", "tcp.seq_raw", "tcp.ack_raw", "tcp.len", "frame.time_epoch"]
    src = tshark(t["reference"]["capture"], key)
    skewed = tshark(t["capture"], key)
    assert sorted(r[:4] for r in src) == sorted(r[:4] for r in skewed)
    when: dict = {}  # identical headers (e.g. duplicate ACKs): k-th copy <-> k-th copy
    for r in src:
        when.setdefault(tuple(r[:4]), []).append(float(r[4]))
    for r in skewed:
        shift = float(r[4]) - when[tuple(r[:4])].pop(0)
        assert abs(shift - (0.1 if r[0] == server else 0.0)) < 1e-6
    times = [float(r[4]) for r in skewed]
    assert times == sorted(times)
    assert t["skew"]["server_data_segments_acked_before_they_appear"] == \
        t["skew"]["server_data_segments"] > 10
