"""The session builder's bounded records, to the exact JSON: the activity timeline (per-bin
frame and byte counts, bins doubling past MAX_BINS) and the TLS activity seen without keys.
Written against mutmut's survivors in analyzer/session.py (README, "Testing")."""
from __future__ import annotations

from analyzer.model import CLIENT, SERVER
from analyzer.session import ActivityTimeline, TlsActivity

COLUMNS = ["bin", "client_frames", "server_frames", "client_bytes", "server_bytes",
           "client_audio_bytes"]


def test_an_empty_timeline():
    assert ActivityTimeline().to_json() == {"origin": None, "bin_seconds": 1.0, "bins": [],
                                            "columns": COLUMNS}


def test_frames_and_bytes_land_in_one_second_bins_per_direction():
    t = ActivityTimeline()
    t.add(CLIENT, 100.0, 3200)
    t.add_audio(100.0, 6400)  # an audio message: its inflated size, apart from wire bytes
    t.add(SERVER, 100.5, 40)
    t.add(CLIENT, 100.99, 10)
    t.add(CLIENT, 102.0, 3200)
    t.add_audio(102.0, 3200)
    assert t.to_json() == {"origin": 100.0, "bin_seconds": 1.0,
                           "bins": [[0, 2, 1, 3210, 40, 6400], [2, 1, 0, 3200, 0, 3200]],
                           "columns": COLUMNS}


def test_past_max_bins_the_width_doubles_and_neighbours_merge():
    t = ActivityTimeline()
    last = ActivityTimeline.MAX_BINS - 1
    t.add(CLIENT, 0.0, 1)
    t.add_audio(0.0, 1)
    t.add(CLIENT, 1.0, 2)
    t.add_audio(1.0, 2)
    t.add(SERVER, float(last), 4)
    assert t.width == 1.0 and sorted(t.bins) == [0, 1, last]
    t.add(CLIENT, float(last + 1), 8)  # bin MAX_BINS: one doubling is enough
    assert t.to_json() == {"origin": 0.0, "bin_seconds": 2.0,
                           "bins": [[0, 2, 0, 3, 0, 3], [last // 2, 0, 1, 0, 4, 0],
                                    [(last + 1) // 2, 1, 0, 8, 0, 0]],
                           "columns": COLUMNS}


def test_a_bin_far_past_the_end_doubles_as_often_as_needed():
    t = ActivityTimeline()
    t.add(CLIENT, 0.0, 1)
    t.add_audio(4.0 * ActivityTimeline.MAX_BINS, 5)  # index 4*MAX_BINS: width 8
    assert t.width == 8.0
    assert t.to_json()["bins"] == [[0, 1, 0, 1, 0, 0],
                                   [ActivityTimeline.MAX_BINS // 2, 0, 0, 0, 0, 5]]


def test_tls_activity_without_records():
    assert TlsActivity().to_json() == {
        "activity": {name: {"app_records": 0, "app_record_bytes": 0, "first_frame": None,
                            "last_frame": None, "bytes_per_second": None}
                     for name in ("client", "server")},
        "alerts": []}


def test_tls_activity_counts_records_per_direction_and_their_rate():
    a = TlsActivity()
    a.record(CLIENT, 3222, 10, 1.0)
    a.record(SERVER, 500, 11, 1.5)
    a.record(CLIENT, 3222, 12, 1.1)
    a.record(CLIENT, 3222, 14, 3.0)
    assert a.to_json() == {"activity": {
        "client": {"app_records": 3, "app_record_bytes": 9666, "first_frame": 10,
                   "last_frame": 14, "bytes_per_second": 4833.0},
        # one record: no span, no rate
        "server": {"app_records": 1, "app_record_bytes": 500, "first_frame": 11,
                   "last_frame": 11, "bytes_per_second": None}},
        "alerts": []}
    assert list(a.tail[CLIENT]) == [(3222, 10, 1.0), (3222, 12, 1.1), (3222, 14, 3.0)]
    for n in range(TlsActivity.TAIL + 2):
        a.record(SERVER, n, 20 + n, 2.0 + n)
    assert [r[1] for r in a.tail[SERVER]] == [22, 23, 24, 25]  # the last TAIL records


# -- kept text messages: the per-session caps and the capture's shared budget ---------------

from analyzer import session as session_module  # noqa: E402
from analyzer.model import Session  # noqa: E402
from analyzer.session import SessionBuilder, TextBudget  # noqa: E402
from analyzer.websocket import OP_TEXT, Message  # noqa: E402


def text(b: SessionBuilder, direction: int, no: int, data: bytes) -> None:
    b.ws_messages(direction, [Message(OP_TEXT, data, len(data), len(data), False, no, float(no),
                                      no, float(no))])


def kept(b: SessionBuilder) -> list:
    return [(m.direction, m.text, m.frame) for m in b.session.messages]


def new_builder(budget=None) -> SessionBuilder:
    return SessionBuilder(Session(0, "10.0.0.1:5000", "10.0.0.2:80", 0), 10.0, budget)


def test_server_text_draws_on_the_capture_budget_client_text_does_not():
    budget = TextBudget(10)
    b = new_builder(budget)
    text(b, SERVER, 3, b"abcdef")      # 6 of 10
    text(b, CLIENT, 4, b"0123456789AB")  # client text: not counted
    text(b, SERVER, 5, "é€x".encode())  # 3 characters (not 6 bytes): 9 of 10
    text(b, SERVER, 6, b"0123456789")  # 1 left: kept whole, the budget goes below zero
    text(b, SERVER, 7, b"z")           # none left: dropped
    text(b, SERVER, 8, b"y")
    text(b, CLIENT, 9, b"still kept")
    assert kept(b) == [(SERVER, "abcdef", 3), (CLIENT, "0123456789AB", 4), (SERVER, "é€x", 5),
                       (SERVER, "0123456789", 6), (CLIENT, "still kept", 9)]
    assert (budget.left, budget.dropped, budget.limit) == (-9, 2, 10)
    assert b.session.messages_dropped == 2


def test_without_a_budget_server_text_is_kept_up_to_the_session_caps(monkeypatch):
    monkeypatch.setattr(session_module, "SESSION_KEPT_MESSAGES", 3)
    b = new_builder()
    for no in range(3, 8):
        text(b, SERVER, no, b"m%d" % no)
    assert kept(b) == [(SERVER, "m3", 3), (SERVER, "m4", 4), (SERVER, "m5", 5)]
    assert b.session.messages_dropped == 2


def test_the_session_text_cap_counts_characters_of_both_directions(monkeypatch):
    monkeypatch.setattr(session_module, "SESSION_KEPT_TEXT_CHARS", 8)
    budget = TextBudget(100)
    b = new_builder(budget)
    text(b, CLIENT, 3, b"12345")
    text(b, SERVER, 4, b"678")   # 8 characters kept: the cap is reached
    text(b, SERVER, 5, b"9")
    text(b, CLIENT, 6, b"0")
    assert kept(b) == [(CLIENT, "12345", 3), (SERVER, "678", 4)]
    # messages past the session's cap do not draw on the capture's budget
    assert (b.session.messages_dropped, budget.left, budget.dropped) == (2, 97, 0)


def test_the_timeline_audio_column_holds_every_audio_byte_of_a_recorded_session():
    # Single-frame audio messages take the builder's shortcut (ws_binary_message), fragmented
    # or compressed ones go through ws_messages: both must reach the timeline's audio column.
    from pathlib import Path

    from analyzer.pipeline import Options, analyze_capture
    captures = Path(__file__).resolve().parent.parent / "captures"
    for name, audio_bytes in (("dg_success.pcap", 96000), ("dg_deflate.pcap", 64000)):
        s = analyze_capture(str(captures / name), Options()).sessions[0]
        assert s.audio.pace.bytes == audio_bytes
        assert sum(b[5] for b in s.timeline.to_json()["bins"]) == audio_bytes, name
