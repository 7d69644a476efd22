"""SessionBuilder semantics, pinned with exact values.

Each test here fails on one specific change of meaning that the capture-based tests let
through: the gap boundary (strictly more than the threshold), what ends a silence, what
counts as audio, whose empty binary frame it is, how the TCP end is recorded, and the
silence still running when the capture ends.  Hand-built events (unit edge cases), fed
the way every engine feeds them.
"""
from __future__ import annotations

from typing import Optional

from analyzer.events import HandshakeRequest, HandshakeResponse, TcpEnd, TlsRecord
from analyzer.http import Request, Response
from analyzer.limits import SESSION_ANOMALY_RECORDS
from analyzer.model import CLIENT, SERVER, Gap, Session, TlsInfo
from analyzer.session import SessionBuilder
from analyzer.websocket import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, Frame, Message

T = 1_000_000.0  # a round epoch second: T + 10.0 - T == 10.0 exactly


def builder(threshold: float = 10.0, open_at: Optional[float] = T) -> SessionBuilder:
    """A session whose 101 (frame 2) arrived at `open_at` (None: not opened by a handshake)."""
    b = SessionBuilder(Session(0, "10.0.0.1:5000", "10.0.0.2:80", 0), threshold)
    if open_at is not None:
        b.request(HandshakeRequest(Request("GET", "/chat", "/chat", {}, "HTTP/1.1",
                                           [["Upgrade", "websocket"]]), 1, open_at))
        assert b.response(HandshakeResponse(Response("HTTP/1.1", 101, "Switching Protocols", []), 2, open_at))
    return b


def frame(b: SessionBuilder, direction: int, no: int, at: float, opcode: int = OP_BINARY,
          length: int = 100, fin: bool = True) -> None:
    f = Frame(fin, 0, opcode, direction == CLIENT, None, length, 2, no, at, no, at)
    b.ws_frame(direction, f)


def close(b: SessionBuilder, direction: int, no: int, at: float, code: int = 1000) -> None:
    frame(b, direction, no, at, OP_CLOSE, 2)
    m = Message(OP_CLOSE, code.to_bytes(2, "big"), 2, 2, False, no, at, no, at)
    m.close_code = code
    b.ws_messages(direction, [m])


def gaps(b: SessionBuilder, capture_end: Optional[float] = None) -> list[tuple]:
    s = b.finish(capture_end)
    return [(g.kind, g.seconds, g.after_frame, g.before_frame, g.ended_by) for g in s.gaps]


# -- the threshold: strictly more than it is a gap -----------------------------------------

def test_a_silence_of_exactly_the_threshold_is_not_a_gap():
    b = builder()
    frame(b, CLIENT, 3, T + 10.0)
    frame(b, CLIENT, 4, T + 20.0)
    assert gaps(b) == []


def test_a_silence_just_over_the_threshold_is_a_gap_of_both_kinds():
    b = builder()
    frame(b, CLIENT, 3, T + 10.5)
    assert gaps(b) == [("any", 10.5, 2, 3, "frame"), ("audio", 10.5, 2, 3, "frame")]


def test_text_frames_end_the_any_silence_only():
    b = builder()
    frame(b, CLIENT, 3, T + 1.0)  # audio
    frame(b, CLIENT, 4, T + 6.0, OP_TEXT, 20)  # KeepAlive-like
    frame(b, CLIENT, 5, T + 12.0, OP_TEXT, 20)
    frame(b, CLIENT, 6, T + 12.5)
    assert gaps(b) == [("audio", 11.5, 3, 6, "frame")]


def test_server_close_exactly_at_the_threshold_is_not_a_gap_and_just_over_is():
    b = builder()
    close(b, SERVER, 3, T + 10.0)
    assert gaps(b) == []
    b = builder()
    close(b, SERVER, 3, T + 10.25)
    assert gaps(b) == [("any", 10.25, 2, 3, "close"), ("audio", 10.25, 2, 3, "close")]


def test_capture_end_exactly_at_the_threshold_is_not_a_gap():
    b = builder()
    assert gaps(b, capture_end=T + 10.0) == []


# -- what ends a silence ---------------------------------------------------------------

def test_a_client_close_ends_the_audio_silence_as_a_close_and_the_any_silence_as_a_frame():
    b = builder()
    frame(b, CLIENT, 3, T + 1.0)
    frame(b, CLIENT, 4, T + 6.0, OP_TEXT, 20)
    close(b, CLIENT, 5, T + 17.0)
    frame(b, CLIENT, 6, T + 40.0)  # after its own close: not measured
    assert gaps(b, capture_end=T + 60.0) == [("audio", 16.0, 3, 5, "close"), ("any", 11.0, 4, 5, "frame")]
    assert b.session.close.client.frame == 5 and b.session.close.initiator == "client"


def test_nothing_is_measured_after_the_server_close():
    b = builder()
    frame(b, CLIENT, 3, T + 1.0)
    close(b, SERVER, 4, T + 2.0)
    frame(b, CLIENT, 5, T + 30.0)
    assert gaps(b, capture_end=T + 60.0) == []
    assert b.session.close.initiator == "server"


def test_a_gap_is_measured_up_to_the_end_of_the_capture():
    b = builder()
    frame(b, CLIENT, 3, T + 1.0)
    assert gaps(b, capture_end=T + 13.0) == [("any", 12.0, 3, None, "capture-end"),
                                             ("audio", 12.0, 3, None, "capture-end")]


def test_the_tcp_end_ends_the_silence_and_no_capture_end_gap_follows():
    b = builder()
    frame(b, CLIENT, 3, T + 1.0)
    b.tcp_end(TcpEnd("fin", SERVER, 4, T + 15.0))
    assert gaps(b, capture_end=T + 100.0) == [("any", 14.0, 3, 4, "tcp-end"), ("audio", 14.0, 3, 4, "tcp-end")]


# -- what counts as audio -------------------------------------------------------------

def test_fragmented_binary_messages_count_as_audio():
    b = builder()
    frame(b, CLIENT, 3, T + 1.0, OP_BINARY, 100, fin=False)
    frame(b, CLIENT, 4, T + 12.0, OP_CONTINUATION, 100, fin=False)
    frame(b, CLIENT, 5, T + 12.5, OP_CONTINUATION, 100, fin=True)
    frame(b, CLIENT, 6, T + 24.0, OP_CONTINUATION, 100, fin=True)  # no message in progress: not audio
    frame(b, CLIENT, 7, T + 24.5, OP_TEXT, 10, fin=False)
    frame(b, CLIENT, 8, T + 36.0, OP_CONTINUATION, 10, fin=True)  # text: not audio
    counts = b.session.frames[CLIENT]
    assert (counts.binary, counts.continuation, counts.text, counts.payload_bytes) == (1, 4, 1, 420)
    assert gaps(b) == [("any", 11.0, 3, 4, "frame"), ("audio", 11.0, 3, 4, "frame"),
                       ("any", 11.5, 5, 6, "frame"), ("any", 11.5, 7, 8, "frame")]
    b.ws_messages(CLIENT, [Message(OP_BINARY, b"", 300, 300, False, 3, T + 1.0, 5, T + 12.5)])
    bins = b.timeline.bins
    # client audio bytes: the message of frames 3, 4 and 5, at its last frame (bin 11: origin T + 1.0)
    assert {i: v[4] for i, v in bins.items() if v[4]} == {11: 300}


def test_timeline_audio_counts_inflated_message_bytes_frames_count_wire_bytes():
    """permessage-deflate: 3,200 bytes of audio sent as 120 on the wire.  The chart's audio
    row and the Stream section count 3,200 (the real-time factor's bytes); the frame
    columns and frames.payload_bytes the 120 on the wire."""
    b = builder()
    for i in range(10):
        at = T + 0.1 * i
        frame(b, CLIENT, 3 + i, at, OP_BINARY, 120)
        b.ws_messages(CLIENT, [Message(OP_BINARY, b"", 3200, 120, True, 3 + i, at, 3 + i, at)])
    assert b.timeline.to_json()["bins"] == [[0, 10, 0, 1200, 0, 32000]]
    assert b.session.frames[CLIENT].payload_bytes == 1200


def test_a_one_byte_audio_fragment_is_audio():
    b = builder()
    frame(b, CLIENT, 3, T + 10.5, OP_BINARY, 1, fin=False)
    assert gaps(b) == [("any", 10.5, 2, 3, "frame"), ("audio", 10.5, 2, 3, "frame")]


def test_empty_binary_frames_are_counted_for_their_own_direction_and_are_not_audio():
    b = builder()
    frame(b, SERVER, 3, T + 1.0, OP_BINARY, 0)
    frame(b, CLIENT, 4, T + 2.0, OP_BINARY, 0)
    frame(b, CLIENT, 5, T + 13.0, OP_BINARY, 0)
    s = b.session
    assert (s.frames[SERVER].binary, s.frames[SERVER].empty_binary) == (1, 1)  # both directions count (docs/json-contract.md)
    assert (s.frames[CLIENT].binary, s.frames[CLIENT].empty_binary) == (2, 2)
    assert [(e.frame, e.time) for e in s.empty_binary] == [(4, T + 2.0), (5, T + 13.0)]
    assert gaps(b) == [("any", 11.0, 4, 5, "frame")]


def test_control_frames_from_the_client_are_activity_but_not_audio():
    b = builder()
    frame(b, CLIENT, 3, T + 9.0, OP_PING, 4)
    frame(b, CLIENT, 4, T + 18.0, OP_PING, 4)
    assert gaps(b, capture_end=T + 18.5) == [("audio", 18.5, 2, None, "capture-end")]
    assert b.session.frames[CLIENT].ping == 2


# -- the TCP end ------------------------------------------------------------------------

def test_a_rst_after_a_fin_is_recorded_and_the_first_end_keeps_its_sender_and_frame():
    # The FIN ended the connection; the later RST is listed as such (issue 13: it used to
    # relabel the end "rst" while keeping the FIN's sender and frame).
    b = builder()
    b.tcp_end(TcpEnd("fin", CLIENT, 7, T + 3.0))
    b.tcp_end(TcpEnd("rst", SERVER, 9, T + 4.0))
    c = b.session.close
    assert (c.tcp_end, c.tcp_end_by, c.tcp_end_frame, c.tcp_end_time) == ("fin", "client", 7, T + 3.0)
    assert (c.later_rst.by, c.later_rst.frame, c.later_rst.time) == ("server", 9, T + 4.0)
    assert [(e.kind, e.by, e.frame) for e in c.tcp_ends] == [("fin", "client", 7), ("rst", "server", 9)]


def test_a_connection_that_never_opened_measures_nothing():
    b = builder(open_at=None)
    frame(b, CLIENT, 3, T + 1.0, OP_TEXT, 5)  # no 101 and no pickup: this opens the measurement
    b.tcp_end(TcpEnd("fin", SERVER, 4, T + 20.0))
    assert gaps(b, capture_end=T + 40.0) == [("any", 19.0, 3, 4, "tcp-end"), ("audio", 19.0, 3, 4, "tcp-end")]
    b = builder(open_at=None)
    b.tcp_end(TcpEnd("rst", CLIENT, 4, T + 20.0))
    s = b.finish(T + 40.0, end_frame=9, end_time=T + 40.0)
    assert (s.gaps, s.end_frame, s.end_time, s.close.tcp_end_by) == ([], 9, T + 40.0, "client")


def test_a_fin_after_a_rst_changes_nothing():
    b = builder()
    b.tcp_end(TcpEnd("rst", SERVER, 9, T + 4.0))
    b.tcp_end(TcpEnd("fin", CLIENT, 10, T + 5.0))
    c = b.session.close
    assert (c.tcp_end, c.tcp_end_by, c.tcp_end_frame) == ("rst", "server", 9)


# -- TLS without keys: the same measurement on records ---------------------------------

def test_tls_records_are_measured_with_the_same_rules_when_nothing_is_decrypted():
    b = builder(open_at=None)
    b.session.transport = "tls"
    b.tls_record(TlsRecord(CLIENT, 23, 100, 4, T - 11.0))
    b.tls_record(TlsRecord(CLIENT, 23, 100, 5, T))
    b.tls_record(TlsRecord(SERVER, 23, 300, 6, T + 1.0))
    b.tls_record(TlsRecord(CLIENT, 23, 100, 7, T + 10.0))  # exactly the threshold: no gap
    b.tls_record(TlsRecord(CLIENT, 23, 100, 8, T + 20.5))
    assert b.client_silence_since() == T + 20.5
    s = b.finish(T + 31.0, tls_info=TlsInfo(version="TLS 1.3"), no_keys_note="no keys")
    assert [(g.kind, g.seconds, g.after_frame, g.before_frame, g.ended_by) for g in s.gaps] == \
        [("any", 11.0, 4, 5, "frame"), ("any", 10.5, 7, 8, "frame"), ("any", 10.5, 8, None, "capture-end")]
    tls = s.tls
    assert (tls.gaps_measured_on, tls.note, tls.version) == ("tls-records", "no keys", "TLS 1.3")
    assert tls.activity["client"]["app_records"] == 4 and tls.activity["server"]["app_record_bytes"] == 300


def test_the_tcp_end_ends_the_record_silence_too():
    b = builder(open_at=None)
    b.session.transport = "tls"
    b.tls_record(TlsRecord(CLIENT, 23, 100, 5, T))
    b.tcp_end(TcpEnd("fin", CLIENT, 9, T + 12.0))
    s = b.finish(T + 60.0, tls_info=TlsInfo())
    assert [(g.kind, g.seconds, g.after_frame, g.before_frame, g.ended_by) for g in s.gaps] == \
        [("any", 12.0, 5, 9, "tcp-end")]


# -- the running silence a live view shows ---------------------------------------------

def test_the_running_silence_starts_at_the_101_then_the_last_client_frame_and_freezes_at_the_close():
    b = builder()
    assert b.client_silence_since() == T
    frame(b, CLIENT, 3, T + 2.0)
    assert b.client_silence_since() == T + 2.0
    close(b, CLIENT, 4, T + 5.0)  # the close ends the measurement: the silence started at 2.0
    frame(b, CLIENT, 5, T + 6.0)
    assert b.client_silence_since() == T + 2.0


def test_the_running_silence_counts_data_frames_only_pings_and_pongs_do_not_end_it():
    """The live counter is the NET-0001 clock (text or binary data); the report's "any" gap
    still ends at a ping (docs/json-contract.md: "no WebSocket frame")."""
    b = builder()
    frame(b, CLIENT, 3, T + 1.0)  # audio
    frame(b, CLIENT, 4, T + 4.0, OP_PING, 0)
    frame(b, CLIENT, 5, T + 8.0, OP_PONG, 0)
    assert b.client_silence_since() == T + 1.0
    frame(b, CLIENT, 6, T + 12.5, OP_PING, 0)
    assert b.client_silence_since() == T + 1.0
    frame(b, CLIENT, 7, T + 13.0, OP_TEXT, 20)  # a KeepAlive is data: it ends the silence
    assert b.client_silence_since() == T + 13.0
    frame(b, CLIENT, 8, T + 14.0, OP_BINARY, 0)  # an empty binary frame is a data frame too
    assert b.client_silence_since() == T + 14.0
    assert gaps(b, T + 14.5) == [("audio", 13.5, 3, None, "capture-end")]  # no "any" gap


# -- evidence past the cap --------------------------------------------------------------

def test_anomalies_past_the_record_cap_are_tallied_per_kind_with_first_and_last_frame():
    b = builder()
    for i in range(SESSION_ANOMALY_RECORDS + 400):
        b.anomaly("tcp-hole", 10 + i, T + i, CLIENT, {"bytes": 3})
    b.anomaly("sync-lost", 9000, T + 9000, CLIENT, {"skipped": 1})
    b.anomaly("resync", 9001, T + 9001, SERVER, {"skipped": 1})
    s = b.session
    assert len(s.anomalies) == SESSION_ANOMALY_RECORDS
    tally = s.anomaly_overflow["tcp-hole"]
    assert (tally.count, tally.first_frame, tally.last_frame, tally.bytes) == \
        (400, 10 + SESSION_ANOMALY_RECORDS, 10 + SESSION_ANOMALY_RECORDS + 399, 1200)
    assert (s.anomaly_overflow["resync"].count, s.anomaly_overflow["resync"].directions) == (1, 1 << SERVER)
    assert s.to_json()["anomalies_dropped"] == 402


def test_gap_model_values_are_exact():
    b = builder()
    frame(b, CLIENT, 3, T + 10.75)
    (g,) = [g for g in b.finish(None).gaps if g.kind == "any"]
    assert g == Gap("client", "any", T, T + 10.75, 10.75, 2, 3, "frame")


# -- counts, timeline and the frame hook, per direction ------------------------------------

def test_every_opcode_is_counted_for_its_direction_with_the_timeline_and_hook_seeing_each_frame():
    seen = []

    class Hooks:
        frame_hook = staticmethod(lambda session, direction, f: seen.append((session, direction, f.frame)))

    b = SessionBuilder(Session(0, "10.0.0.1:5000", "10.0.0.2:80", 0), 10.0, hooks=Hooks)
    b.response(HandshakeResponse(Response("HTTP/1.1", 101, "", []), 2, T))
    script = [  # (direction, frame, at, opcode, length, fin)
        (CLIENT, 3, T + 0.1, OP_BINARY, 100, True), (SERVER, 4, T + 0.2, OP_BINARY, 50, True),
        (CLIENT, 5, T + 0.3, OP_BINARY, 1, False), (CLIENT, 6, T + 0.4, OP_PING, 4, True),
        (CLIENT, 7, T + 0.5, OP_CONTINUATION, 7, True), (CLIENT, 8, T + 1.2, OP_TEXT, 10, True),
        (SERVER, 9, T + 1.3, OP_TEXT, 20, True), (SERVER, 10, T + 1.4, OP_TEXT, 21, True),
        (CLIENT, 11, T + 1.5, 0x9, 2, True), (SERVER, 12, T + 1.6, 0xA, 3, True),
        (CLIENT, 13, T + 1.7, 0xA, 5, True), (CLIENT, 14, T + 2.1, 3, 6, True),
        (SERVER, 15, T + 2.2, 11, 8, True), (SERVER, 16, T + 2.3, OP_BINARY, 0, True),
        (SERVER, 17, T + 2.4, OP_CLOSE, 2, True), (CLIENT, 18, T + 2.5, 0xA, 1, True),
        (CLIENT, 19, T + 2.6, 3, 1, True), (CLIENT, 20, T + 2.7, OP_BINARY, 2, True),
        (SERVER, 21, T + 2.8, OP_CLOSE, 2, True),
    ]
    for direction, no, at, opcode, length, fin in script:
        frame(b, direction, no, at, opcode, length, fin)
    client, server = (b.session.frames[d].to_json() for d in (CLIENT, SERVER))
    assert client == {"text": 1, "binary": 3, "empty_binary": 0, "continuation": 1, "ping": 2, "pong": 2,
                      "close": 0, "other": 2, "payload_bytes": 139, "first_frame": 3, "last_frame": 20}
    assert server == {"text": 2, "binary": 2, "empty_binary": 1, "continuation": 0, "ping": 0, "pong": 1,
                      "close": 2, "other": 1, "payload_bytes": 106, "first_frame": 4, "last_frame": 21}
    assert (b.session.frames[CLIENT].first_time, b.session.frames[SERVER].last_time) == (T + 0.1, T + 2.8)
    # bin -> [client frames, server frames, client bytes, server bytes, client audio bytes]; the
    # audio column counts messages (none fed here: see the test below)
    assert b.timeline.to_json()["bins"] == [[0, 4, 1, 112, 50, 0], [1, 3, 3, 17, 44, 0],
                                            [2, 4, 4, 10, 12, 0]]
    assert seen == [(b.session, d, no) for d, no, *_ in script]
