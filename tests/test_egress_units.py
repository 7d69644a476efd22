"""Unit tests for the egress pieces: DNS answers, server names, rates, the streaming shape."""
from struct import pack

from analyzer.dns import DnsNames, DnsTcpStream, parse_response, read_name
from analyzer.egress import (COMPRESSED, ENCRYPTED_STREAM, OTHER, WEBSOCKET, busy_seconds,
                             connection_class, consistent_with, egress_summary, human_bytes,
                             looks_like_streaming_upload, ws_frame_overhead)
from analyzer.model import Gap
from analyzer.servername import HostMatcher, choose_server_name, host_without_port, is_deepgram_host
from analyzer.session import ActivityTimeline


def _name(n: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in n.split(".")) + b"\0"


def _response(question: str, answers: list[tuple[bytes, int, bytes]], flags=0x8180) -> bytes:
    head = pack("!HHHHHH", 0x1234, flags, 1, len(answers), 0, 0)
    body = _name(question) + pack("!HH", 1, 1)
    for owner, rtype, rdata in answers:
        body += owner + pack("!HHIH", rtype, 1, 60, len(rdata)) + rdata
    return head + body


PTR_QUESTION = b"\xc0\x0c"  # compression pointer to the question name at offset 12


def test_cname_chain_maps_address_to_the_name_asked_for():
    msg = _response("api.deepgram.com", [
        (PTR_QUESTION, 5, _name("lb.deepgram.net")),
        (_name("lb.deepgram.net"), 5, _name("edge7.cdn.example")),
        (_name("edge7.cdn.example"), 1, bytes([172, 31, 10, 20])),
        (_name("edge7.cdn.example"), 28, bytes(range(16))),
    ])
    names = DnsNames()
    names.udp(memoryview(msg), 171)
    assert names.lookup(bytes([172, 31, 10, 20])) == ("api.deepgram.com", 171)
    assert names.lookup(bytes(range(16))) == ("api.deepgram.com", 171)
    assert names.responses == 1


def test_latest_answer_for_an_address_wins_and_queries_are_not_answers():
    names = DnsNames()
    names.udp(_response("a.example", [(PTR_QUESTION, 1, b"\x0a\0\0\x01")]), 5)
    names.udp(_response("b.example", [(PTR_QUESTION, 1, b"\x0a\0\0\x01")]), 9)
    names.udp(_response("c.example", [(PTR_QUESTION, 1, b"\x0a\0\0\x02")], flags=0x0100), 11)
    assert names.lookup(b"\x0a\0\0\x01") == ("b.example", 9)
    assert names.lookup(b"\x0a\0\0\x02") is None
    assert (names.responses, names.unreadable) == (2, 1)


def test_malformed_names_do_not_raise():
    assert read_name(b"\xc0\x00", 0) == (None, 0)  # a pointer loop to itself
    assert read_name(b"\x05ab", 0) == (None, 0)  # label past the end
    assert parse_response(b"\x00" * 5) is None
    cut = _response("api.deepgram.com", [(PTR_QUESTION, 1, b"\x01\x02\x03\x04")])[:-2]
    assert parse_response(cut) == ("api.deepgram.com", [])


def test_dns_over_tcp_length_prefixed_messages_split_anywhere():
    names = DnsNames()
    stream = DnsTcpStream(names)
    one = _response("x.example", [(PTR_QUESTION, 1, b"\x01\x01\x01\x01")])
    two = _response("y.example", [(PTR_QUESTION, 1, b"\x02\x02\x02\x02")])
    wire = pack("!H", len(one)) + one + pack("!H", len(two)) + two
    stream.feed(wire[:7], 40)
    stream.feed(wire[7:len(one) + 5], 41)
    stream.feed(wire[len(one) + 5:], 42)
    assert names.lookup(b"\x01\x01\x01\x01") == ("x.example", 41)
    assert names.lookup(b"\x02\x02\x02\x02") == ("y.example", 42)
    stream.hole()
    stream.feed(pack("!H", len(one)) + one, 50)
    assert names.responses == 2


def test_server_name_sources_and_deepgram_hosts():
    sn = choose_server_name([("dns", None, None), ("host", "API.Deepgram.com:443", 12),
                             ("sni", "api.deepgram.com", 10)], dns=("api.deepgram.com", 4))
    assert sn.to_json() == {"name": "api.deepgram.com", "source": "sni", "frame": 10, "dns_frame": 4,
                            "deepgram": False}
    assert sn.evidence() == "SNI in No. 10, DNS answer No. 4"
    assert choose_server_name([], dns=("x.example", 3)).to_json() == \
        {"name": "x.example", "source": "dns", "frame": 3, "deepgram": False}
    assert choose_server_name([("sni", None, 4)]) is None
    assert host_without_port("[::1]:8080") == "::1"
    for host in ("api.deepgram.com", "api.eu.deepgram.com", "agent.deepgram.com", "API.DEEPGRAM.COM."):
        assert is_deepgram_host(host)
    for host in ("deepgram.com.evil.example", "notdeepgram.com", None, ""):
        assert not is_deepgram_host(host)
    assert HostMatcher(["asr-*.corp.example"]).matches("asr-3.corp.example")
    assert not HostMatcher().matches("asr-3.corp.example")


def test_rates_consistent_with_real_time_audio():
    assert consistent_with(32_044) == "16 kHz 16-bit mono (linear16) in real time"
    assert consistent_with(16_100) == "8 kHz 16-bit mono (linear16), or 16 kHz mu-law in real time"
    assert consistent_with(7_950) == "8 kHz 8-bit mono (mu-law or A-law) in real time"
    assert consistent_with(95_000) == "48 kHz 16-bit mono (linear16) in real time"
    assert consistent_with(3_000) == COMPRESSED
    assert consistent_with(24_000) is None
    assert consistent_with(None) is None
    assert ws_frame_overhead(3200) == 8 and ws_frame_overhead(20) == 6 and ws_frame_overhead(70000) == 14


def test_egress_excludes_silences_inside_the_active_period():
    gaps = [Gap("client", "any", 105.0, 117.0, 12.0, 50, 51, "frame"),
            Gap("client", "audio", 105.0, 117.0, 12.0, 50, 51, "frame"),  # not counted twice
            Gap("client", "any", 130.0, 141.0, 11.0, 90, 95, "close")]  # after the last data
    e = egress_summary(32_000 * 18, 180, "records", (10, 100.0), (90, 130.0), gaps, unit_overhead=25)
    assert e.active_seconds == 18.0
    assert e.active_bytes_per_second == 32_000.0
    assert round(e.payload_bytes_per_second, 1) == round((32_000 * 18 - 180 * 25) * 179 / 180 / 18, 1)
    assert e.consistent_with == "16 kHz 16-bit mono (linear16) in real time"
    assert e.silences == [{"seconds": 12.0, "after_frame": 50, "before_frame": 51,
                           "start": 105.0, "end": 117.0}]
    none = egress_summary(0, 0, "records", None, None, gaps)
    assert (none.active_seconds, none.active_bytes_per_second, none.consistent_with) == (0.0, None, None)
    assert human_bytes(1_492_152) == "1.49 MB" and human_bytes(999) == "999 B"


def _timeline(client_seconds, server_seconds=()):
    t = ActivityTimeline()
    t.add(0, 1000.0, 1)  # origin
    for s in client_seconds:
        t.add(0, 1000.0 + s + 0.5, 3200)
    for s in server_seconds:
        t.add(1, 1000.0 + s + 0.5, 300)
    return t


def test_streaming_upload_shape():
    t = _timeline(range(0, 40))
    busy = busy_seconds(t, 0, 1000.0, 1040.0)
    assert busy == 40.0  # bins 0..39 (the origin record shares bin 0)
    stream = egress_summary(3200 * 400, 400, "records", (1, 1000.0), (400, 1040.0), [])
    assert looks_like_streaming_upload("http/1.1", stream, server_bytes=20_000, busy=busy)
    assert not looks_like_streaming_upload("h2", stream, 20_000, busy)
    assert not looks_like_streaming_upload(None, stream, server_bytes=5_000_000, busy=busy)  # a download
    keepalive = egress_summary(300, 3, "records", (1, 1000.0), (3, 1058.0), [])
    assert not looks_like_streaming_upload(None, keepalive, 600, busy_seconds(_timeline([0, 29, 58]), 0, 1000.0, 1058.0))
    chat = egress_summary(6000, 20, "records", (1, 1000.0), (20, 1060.0), [])
    assert not looks_like_streaming_upload(None, chat, 4000, busy_seconds(_timeline(range(0, 60, 3)), 0, 1000.0, 1060.0))
    short = egress_summary(3200 * 30, 30, "records", (1, 1000.0), (30, 1003.0), [])
    assert not looks_like_streaming_upload(None, short, 100, 4.0)


def test_connection_class():
    assert connection_class(True, True, False, False) == WEBSOCKET
    assert connection_class(False, True, True, False) == ENCRYPTED_STREAM
    assert connection_class(False, True, False, True) == ENCRYPTED_STREAM
    assert connection_class(False, True, False, False) == OTHER
    assert connection_class(False, False, True, True) == OTHER
    assert connection_class(False, True, False, False, keys_failed=True) == ENCRYPTED_STREAM


def test_copies_matched_by_sequence_numbers_payload_and_time():
    from analyzer.copies import RECENT_PRINTS, ConnectionPrint, CopyMatcher, head_checksum
    hello = head_checksum(b"\x16\x03\x01" + bytes(range(61)))
    request = head_checksum(b"GET /v1/listen HTTP/1.1\r\nHost: api.deepgram.com\r\n")
    inside, outside, server = (b"\x0a\x63\x01\x0a", b"\xac\x1f\x00\x01", b"\xac\x1f\x0a\x14")
    m = CopyMatcher()
    assert m.add(ConnectionPrint(1000, 2000, hello, 10.0, (inside, server)), "a") is None
    assert m.add(ConnectionPrint(7, 8, request, 10.0, (inside, server)), "plain") is None
    # The same request bytes with other sequence numbers: another connection, not a copy.
    assert m.add(ConnectionPrint(9, 10, request, 10.1, (outside, server)), "plain2") is None
    # Same ISNs and bytes from the same host (a test generator): another connection.
    assert m.add(ConnectionPrint(7, 8, request, 10.0, (inside, server)), "plain3") is None
    assert m.add(ConnectionPrint(1000, 2000, hello, 13.0, (inside, server)), "late") is None  # too far apart
    assert m.add(ConnectionPrint(5, 6, None, 20.0, (inside, server)), "empty") is None  # no data
    assert m.add(ConnectionPrint(5, 6, None, 20.0, (outside, server)), "empty2") is None
    assert m.add(None, "unknown") is None
    # The copy that ends first but started later is still the copy.
    assert m.add(ConnectionPrint(7, 8, request, 9.9995, (outside, server)), "plain-nat") == "plain3"
    assert m.add(ConnectionPrint(1000, 2000, hello, 13.0004, (outside, server)), "late-nat") == "late-nat"
    assert m.pairs == [("plain-nat", "plain3"), ("late", "late-nat")]
    assert head_checksum(b"") is None and head_checksum(None) is None
    for i in range(RECENT_PRINTS + 10):  # memory stays bounded
        m.add(ConnectionPrint(i, i, hello, 100.0, (inside, server)), i)
    assert len(m._recent) == RECENT_PRINTS


def test_decoder_hands_dns_answers_to_the_sink_and_nothing_else():
    from analyzer.capture import PacketDecoder
    answer = _response("api.deepgram.com", [(PTR_QUESTION, 1, bytes([172, 31, 10, 20]))])

    def ipv4_udp(sport, dport, payload, options=b""):
        udp = pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        ihl = 5 + len(options) // 4
        ip = pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(udp), 0, 0, 64, 17, 0,
                  bytes([10, 0, 0, 53]), bytes([10, 0, 0, 2])) + options
        return b"\0" * 12 + b"\x08\x00" + ip + udp

    ipv6 = (b"\0" * 12 + b"\x86\xdd" + pack("!IHBB", 0x60000000, 8 + len(answer), 17, 64)
            + bytes(16) + bytes(16) + pack("!HHHH", 53, 40000, 8 + len(answer), 0) + answer)
    got = []
    decoder = PacketDecoder()
    decoder.dns_sink = lambda payload, frame: got.append((frame, bytes(payload)))
    assert decoder.decode(1, 1, ipv4_udp(53, 40000, answer)) is None
    assert decoder.decode(2, 1, ipv4_udp(40000, 53, b"query")) is None  # a query: not an answer
    assert decoder.decode(3, 1, ipv4_udp(53, 40000, answer, options=b"\x01\x01\x01\x00")) is None
    assert decoder.decode(4, 1, ipv6) is None
    assert decoder.decode(5, 1, ipv4_udp(53, 40000, answer)[:60]) is None  # snap length cut
    assert [f for f, _ in got] == [1, 3, 4, 5]
    assert got[0][1] == answer and got[2][1] == answer and got[3][1] == answer[:60 - 42]
    assert decoder.non_tcp == 5


def test_tcp_end_is_the_first_end_and_a_later_rst_is_listed():
    """The FIN that ended the connection stays its end; a RST 25 s later from the other side
    is listed as such (it used to relabel the FIN's frame as "RST from the server")."""
    from analyzer.events import TcpEnd
    from analyzer.model import CLIENT, SERVER, Session
    from analyzer.session import SessionBuilder
    from analyzer.report.content import close_rows
    s = Session(index=1, client="10.0.0.1:5000", server="10.0.0.2:443", tcp_stream=0)
    b = SessionBuilder(s, 10.0)
    b.tcp_end(TcpEnd("fin", SERVER, 120, 1000.0))
    b.tcp_end(TcpEnd("fin", CLIENT, 121, 1000.1))
    b.tcp_end(TcpEnd("rst", CLIENT, 300, 1025.0))
    c = s.close
    assert (c.tcp_end, c.tcp_end_by, c.tcp_end_frame, c.tcp_end_time) == ("fin", "server", 120, 1000.0)
    assert [(e.kind, e.by, e.frame) for e in c.tcp_ends] == [("fin", "server", 120), ("fin", "client", 121),
                                                            ("rst", "client", 300)]
    assert c.to_json()["later_rst"] == {"kind": "rst", "by": "client", "frame": 300, "time": 1025.0}
    rows = [(r.label, r.value) for r in close_rows(s)]
    assert rows == [("TCP end", "FIN from the server"), ("Later RST", "from the client, 25.0 s after the FIN")]
    reset = Session(index=2, client="10.0.0.1:5001", server="10.0.0.2:443", tcp_stream=1)
    SessionBuilder(reset, 10.0).tcp_end(TcpEnd("rst", CLIENT, 7, 5.0))
    assert (reset.close.tcp_end, reset.close.tcp_end_by, reset.close.later_rst) == ("rst", "client", None)


def _keyless_stream(client_last, server_records, ends, gaps=()):
    """A keyless encrypted stream to api.deepgram.com, as the rules read it."""
    from analyzer.egress import egress_summary
    from analyzer.model import Session, TcpEndEvent
    from analyzer.servername import ServerName
    s = Session(index=1, client="10.0.0.1:5000", server="172.31.10.20:443", tcp_stream=3, transport="tls")
    s.connection_class = "encrypted-stream"
    s.server_name = ServerName("api.deepgram.com", "sni", 4, deepgram=True)
    s.gaps = list(gaps)
    s.egress = egress_summary(320_000, 100, "records", (10, 1000.0), client_last, s.gaps)
    s.egress.server_last_records = [{"length": n, "frame": f, "time": t} for n, f, t in server_records]
    s.close.tcp_ends = [TcpEndEvent(*e) for e in ends]
    first = s.close.tcp_ends[0]
    s.close.tcp_end, s.close.tcp_end_by, s.close.tcp_end_frame, s.close.tcp_end_time = \
        first.kind, first.by, first.frame, first.time
    return s


def _timing_findings(s):
    from analyzer.findings import encrypted_rules
    from analyzer.findings.registry import RuleContext
    ctx = RuleContext()
    return [(f.id, f.severity, f.frames) for rule in (encrypted_rules.encrypted_net0001,
                                                      encrypted_rules.encrypted_client_closed,
                                                      encrypted_rules.encrypted_server_closed)
            for f in rule(s, ctx)]


def test_encrypted_timing_rules():
    # The server ends it while the client is still sending: DATA-0000 or NET-0000, only keys tell.
    s = _keyless_stream((500, 1030.0), [(300, 498, 1029.9), (120, 501, 1030.2)],
                        [("fin", "server", 502, 1030.3), ("fin", "client", 503, 1030.4)])
    assert _timing_findings(s) == [("encrypted-server-closed", "error", [502, 500])]
    # The client stopped 5 s before the server ended it: not "still sending", not NET-0001.
    s = _keyless_stream((500, 1025.0), [(120, 501, 1030.2)], [("fin", "server", 502, 1030.3)])
    assert _timing_findings(s) == []
    # The client closes first.
    s = _keyless_stream((500, 1030.0), [(300, 498, 1029.9)], [("fin", "client", 501, 1030.1)])
    assert _timing_findings(s) == [("encrypted-client-closed", "info", [500, 501])]
    # NET-0001: 10 s of silence, a short server record at its end, the server's FIN after it.
    silence = Gap("client", "any", 1020.0, 1030.05, 10.05, 400, 501, "frame")
    s = _keyless_stream((502, 1030.06), [(129, 500, 1030.0), (19, 503, 1030.07)],
                        [("fin", "client", 504, 1030.08), ("fin", "server", 505, 1030.09)], [silence])
    assert _timing_findings(s) == [("encrypted-net0001", "error", [400, 500, 505])]
    # A long record at the end of the silence is not a close frame; a 9 s silence is not 10 s.
    s.egress.server_last_records[0]["length"] = 900
    assert _timing_findings(s) == [("encrypted-client-closed", "info", [502, 504])]
    short = Gap("client", "any", 1021.0, 1030.05, 9.05, 400, 501, "frame")
    s = _keyless_stream((502, 1030.06), [(129, 500, 1030.0)],
                        [("fin", "server", 505, 1030.09)], [short])
    assert _timing_findings(s) == [("encrypted-server-closed", "error", [505, 502])]
    # Not a Deepgram host: no timing verdict.
    s.server_name.deepgram = False
    assert _timing_findings(s) == []
