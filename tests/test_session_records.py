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
    t.add(CLIENT, 100.0, 3200, True)
    t.add(SERVER, 100.5, 40, False)
    t.add(CLIENT, 100.99, 10, False)  # a text frame: bytes, not audio bytes
    t.add(CLIENT, 102.0, 3200, True)
    assert t.to_json() == {"origin": 100.0, "bin_seconds": 1.0,
                           "bins": [[0, 2, 1, 3210, 40, 3200], [2, 1, 0, 3200, 0, 3200]],
                           "columns": COLUMNS}


def test_past_max_bins_the_width_doubles_and_neighbours_merge():
    t = ActivityTimeline()
    last = ActivityTimeline.MAX_BINS - 1
    t.add(CLIENT, 0.0, 1, True)
    t.add(CLIENT, 1.0, 2, True)
    t.add(SERVER, float(last), 4, False)
    assert t.width == 1.0 and sorted(t.bins) == [0, 1, last]
    t.add(CLIENT, float(last + 1), 8, False)  # bin MAX_BINS: one doubling is enough
    assert t.to_json() == {"origin": 0.0, "bin_seconds": 2.0,
                           "bins": [[0, 2, 0, 3, 0, 3], [last // 2, 0, 1, 0, 4, 0],
                                    [(last + 1) // 2, 1, 0, 8, 0, 0]],
                           "columns": COLUMNS}


def test_a_bin_far_past_the_end_doubles_as_often_as_needed():
    t = ActivityTimeline()
    t.add(CLIENT, 0.0, 1, False)
    t.add(CLIENT, 4.0 * ActivityTimeline.MAX_BINS, 1, False)  # index 4*MAX_BINS: width 8
    assert t.width == 8.0
    assert t.to_json()["bins"] == [[0, 1, 0, 1, 0, 0],
                                   [ActivityTimeline.MAX_BINS // 2, 1, 0, 1, 0, 0]]


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
