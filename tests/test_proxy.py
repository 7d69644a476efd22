"""HTTP proxies on the lab's real captures (captures/lab, truth from the clients' logs and tshark).

CONNECT tunnels with and without the key log, refused CONNECTs (407, 403), ws:// through a
forward proxy (absolute-form target), and both legs of a proxied stream in one capture.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.http import absolute_form_authority
from analyzer.legs import link_proxy_legs
from analyzer.model import ProxyInfo, Session
from analyzer.pipeline import Options, analyze_capture

LAB = Path(__file__).resolve().parents[1] / "captures" / "lab"


def truth(name: str) -> dict:
    return json.loads((LAB / f"{name}.truth.json").read_text())


def report(name: str, keys: bool = False):
    keylog = str(LAB / f"{name}.keys") if keys else None
    return analyze_capture(str(LAB / f"{name}.pcap"), Options(keylog=keylog))


def _websocket_as_truth(session: Session) -> dict:
    """The session's frames in the truth file's shape (per direction)."""
    out = {}
    for side, counts in zip(("client", "server"), session.frames):
        close = session.close.client if side == "client" else session.close.server
        out[side] = {"text": counts.text, "binary": counts.binary,
                     "continuation": counts.continuation, "ping": counts.ping,
                     "pong": counts.pong, "payload_bytes": counts.payload_bytes,
                     "first_frame": counts.first_frame, "last_frame": counts.last_frame,
                     "close": {"frame": close.frame, "code": close.code, "reason": close.reason}}
    return out


def _truth_websocket(connection: dict) -> dict:
    keep = ("text", "binary", "continuation", "ping", "pong", "payload_bytes", "first_frame",
            "last_frame", "close")
    return {side: {k: v for k, v in connection["websocket"][side].items() if k in keep}
            for side in ("client", "server")}


def test_absolute_form_authority():
    assert absolute_form_authority("http://api.deepgram.com/v1/listen?x=1") == "api.deepgram.com"
    assert absolute_form_authority("WS://user:pw@h.example:8080?q") == "h.example:8080"
    assert absolute_form_authority("/v1/listen") is None
    assert absolute_form_authority("api.deepgram.com:443") is None


@pytest.mark.parametrize("keys", [False, True])
def test_connect_tunnel_is_found_and_named(keys):
    t = truth("proxy_connect")["connections"][0]
    (s,) = report("proxy_connect", keys).sessions
    assert (s.tcp_stream, s.client, s.server) == (0, t["client"], t["server"])
    assert s.proxy.to_json() == {
        "kind": "connect", "authority": "api.deepgram.com:443",
        "request_frame": t["http"]["request_frame"], "request_time": s.proxy.request_time,
        "status": 200, "reason": "Connection established",
        "response_frame": t["http"]["response_frame"], "response_time": s.proxy.response_time,
        "legs": []}
    assert s.server_name.to_json() == {"name": "api.deepgram.com", "source": "connect",
                                       "frame": t["http"]["request_frame"], "deepgram": True}
    assert s.tls.sni == t["tls"]["sni"]
    if keys:
        # Decrypted: the same WebSocket frames tshark shows with the key log (truth file).
        assert s.transport == "tls-decrypted"
        assert _websocket_as_truth(s) == _truth_websocket(t)
        assert s.diagnosis == "Stream completed normally: CloseStream, Metadata, close 1000."
    else:
        assert s.transport == "tls"
        activity = s.tls.activity
        assert activity["client"]["app_records"] == t["tls"]["client_appdata_records"]
        assert activity["server"]["app_records"] == t["tls"]["server_appdata_records"]


def test_refused_connects_are_their_own_outcome():
    t = truth("proxy_connect_denied")["connections"]
    r = report("proxy_connect_denied")
    assert [s.tcp_stream for s in r.sessions] == [0, 1]
    for s, expected in zip(r.sessions, t):
        http = expected["http"]
        assert (s.proxy.kind, s.proxy.authority, s.proxy.status, s.proxy.reason) == (
            "connect", http["target"], http["status"], http["reason"])
        assert (s.proxy.request_frame, s.proxy.response_frame) == (
            http["request_frame"], http["response_frame"])
        assert not s.websocket
        (finding,) = s.findings
        assert (finding.id, finding.severity, finding.frames) == (
            "proxy-refused", "error", [http["request_frame"], http["response_frame"]])
        assert finding.details == {"status": http["status"], "authority": http["target"]}
        assert s.diagnosis == finding.message
    assert r.sessions[0].diagnosis.startswith(
        "The proxy refused CONNECT api.deepgram.com:443 with 407 Proxy Authentication Required "
        "(frame 10): the proxy wants credentials")
    assert "403 Access violation (frame 22)" in r.sessions[1].diagnosis


def test_ws_through_a_forward_proxy_absolute_form():
    t = truth("proxy_ws_absolute")["connections"][0]
    (s,) = report("proxy_ws_absolute").sessions
    assert (s.proxy.kind, s.proxy.authority, s.proxy.request_frame) == (
        "forward", "api.deepgram.com", t["http"]["request_frame"])
    assert s.proxy.status is None
    assert s.handshake.target == t["http"]["target"]
    assert (s.handshake.status, s.handshake.response_frame) == (101, t["http"]["response_frame"])
    assert (s.server_name.name, s.server_name.source) == ("api.deepgram.com", "host")
    assert _websocket_as_truth(s) == _truth_websocket(t)


@pytest.mark.parametrize("name,keys", [("proxy_both_legs", False), ("proxy_both_legs", True),
                                       ("proxy_ws_absolute_both_legs", False)])
def test_both_legs_are_one_stream(name, keys):
    t = truth(name)
    legs = t["stream_legs"]
    r = report(name, keys)
    (s,) = r.sessions
    assert s.tcp_stream == legs["client_leg_tcp_stream"]
    by_stream = {c["tcp_stream"]: c for c in t["connections"]}
    assert [(leg.leg, leg.tcp_stream, leg.client, leg.server) for leg in s.proxy.legs] == [
        ("client-to-proxy", legs["client_leg_tcp_stream"],
         by_stream[legs["client_leg_tcp_stream"]]["client"],
         by_stream[legs["client_leg_tcp_stream"]]["server"]),
        ("proxy-to-server", legs["server_leg_tcp_stream"],
         by_stream[legs["server_leg_tcp_stream"]]["client"],
         by_stream[legs["server_leg_tcp_stream"]]["server"])]
    if keys or name.startswith("proxy_ws"):
        assert _websocket_as_truth(s) == _truth_websocket(by_stream[legs["client_leg_tcp_stream"]])


def test_legs_with_different_streams_are_not_linked():
    r = report("proxy_ws_absolute_both_legs")
    client_leg = r.sessions[0]
    client_leg.proxy.legs = []
    other = Session(index=0, client="172.31.1.10:1", server="172.31.10.20:80", tcp_stream=1)
    other.start_time = client_leg.proxy.request_time + 0.01
    other.handshake.request_headers = [["Host", "api.deepgram.com"]]
    other.frames[0].binary = client_leg.frames[0].binary - 1  # one frame fewer: another stream
    other.frames[0].payload_bytes = client_leg.frames[0].payload_bytes
    assert link_proxy_legs([client_leg, other]) == [client_leg, other]
    assert client_leg.proxy.legs == []
    unproxied = Session(index=0, client="a", server="b", tcp_stream=2)
    assert link_proxy_legs([unproxied]) == [unproxied]
    assert ProxyInfo("connect", "h:443", status=407).refused


@pytest.mark.parametrize("name", ["proxy_both_legs", "proxy_connect_denied", "proxy_ws_absolute"])
def test_proxy_sessions_validate_against_the_schema(name):
    import jsonschema

    from analyzer.schema import load_schema
    schema = load_schema()
    validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/session", "$defs": schema["$defs"]})
    for s in report(name).sessions:
        doc = s.to_json()
        assert "proxy" in doc and "server_name" in doc
        assert [e.message for e in validator.iter_errors(doc)] == []


def test_verify_does_not_count_a_folded_server_leg_as_missing():
    import copy

    from analyzer.engines.compare import compare_reports
    native = report("proxy_ws_absolute_both_legs")
    other = copy.deepcopy(native)  # an engine that reports the server leg on its own
    server_leg = copy.deepcopy(native.sessions[0])
    server_leg.tcp_stream, server_leg.proxy = 1, None
    other.sessions.append(server_leg)
    assert compare_reports(native, other) == []
    other.sessions[-1].tcp_stream = 2  # a stream native does not know at all
    assert [(d.tcp_stream, d.name) for d in compare_reports(native, other)] == [(2, "session")]
