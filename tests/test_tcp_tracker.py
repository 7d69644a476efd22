import pytest

from analyzer.tcp import ACK, FIN, PSH, RST, SYN, TcpTracker

C_IP, S_IP = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
C_PORT, S_PORT = 50000, 443
CISN, SISN = 1000, 7000


class Recorder:
    """A handler that writes down every callback."""

    def __init__(self, conn, log, swap_on_first_server_data=False, ignore_after=None):
        self.conn = conn
        self.log = log
        self.swap = swap_on_first_server_data
        self.ignore_after = ignore_after

    def data(self, direction, data, frame_no, ts):
        self.log.append(("data", self.conn.stream, direction, bytes(data), frame_no, ts))
        if self.swap and direction == 1:
            self.swap = False
            self.conn.swap_roles()
        if self.ignore_after is not None and frame_no >= self.ignore_after:
            self.conn.ignore()

    def hole(self, direction, size, frame_no, ts):
        self.log.append(("hole", self.conn.stream, direction, size, frame_no, ts))

    def tcp_end(self, kind, direction, frame_no, ts):
        self.log.append((kind, self.conn.stream, direction, frame_no, ts))

    def finish(self):
        self.log.append(("finish", self.conn.stream))

    def abandon(self):
        self.log.append(("abandon", self.conn.stream))


class Harness:
    def __init__(self, max_ack_wait=None, **handler_options):
        self.log = []
        self.conns = []
        self.frame = 0

        def factory(conn):
            self.conns.append(conn)
            return Recorder(conn, self.log, **handler_options)

        self.tracker = TcpTracker(factory) if max_ack_wait is None else \
            TcpTracker(factory, max_ack_wait=max_ack_wait)

    def c2s(self, seq, ack, flags, payload=b"", missing=0, sport=C_PORT):
        return self._send(C_IP, S_IP, sport, S_PORT, seq, ack, flags, payload, missing)

    def s2c(self, seq, ack, flags, payload=b"", missing=0, dport=C_PORT):
        return self._send(S_IP, C_IP, S_PORT, dport, seq, ack, flags, payload, missing)

    def _send(self, src, dst, sport, dport, seq, ack, flags, payload, missing):
        self.frame += 1
        self.tracker.packet(self.frame, self.frame / 10, src, dst, sport, dport, seq % (1 << 32),
                            ack % (1 << 32), flags, memoryview(payload), missing)
        return self.frame

    def handshake(self, cisn=CISN, sisn=SISN, sport=C_PORT):
        self.c2s(cisn, 0, SYN, sport=sport)
        self.s2c(sisn, cisn + 1, SYN | ACK, dport=sport)
        self.c2s(cisn + 1, sisn + 1, ACK, sport=sport)


def test_handshake_data_and_orderly_close():
    h = Harness()
    h.handshake()
    h.c2s(CISN + 1, SISN + 1, ACK | PSH, b"GET / HTTP/1.1\r\n\r\n")            # 4
    h.s2c(SISN + 1, CISN + 19, ACK | PSH, b"HTTP/1.1 101 OK\r\n\r\n")        # 5
    h.c2s(CISN + 19, SISN + 20, FIN | ACK)                                   # 6
    h.s2c(SISN + 20, CISN + 20, FIN | ACK)                                   # 7
    assert h.log[-1] == ("fin", 0, 1, 7, 0.7)
    h.c2s(CISN + 20, SISN + 21, ACK)                                         # 8: final ACK
    assert h.log == [
        ("data", 0, 0, b"GET / HTTP/1.1\r\n\r\n", 4, 0.4),
        ("data", 0, 1, b"HTTP/1.1 101 OK\r\n\r\n", 5, 0.5),
        ("fin", 0, 0, 6, 0.6),
        ("fin", 0, 1, 7, 0.7),
        ("finish", 0),
    ]
    conn, = h.conns
    assert conn.stream == 0
    assert conn.client == (C_IP, C_PORT) and conn.server == (S_IP, S_PORT)
    assert not conn.role_guessed
    assert (conn.syn_frame, conn.syn_time) == (1, 0.1)
    assert (conn.first_frame, conn.first_time, conn.last_frame, conn.last_time) == (1, 0.1, 8, 0.8)
    assert conn.fins == ((6, 0.6), (7, 0.7))
    assert conn.state == "closed"
    assert conn.reassemblers is None
    assert h.tracker.stats == {"connections": 1, "ignored_connections": 0, "retransmissions": 0,
                               "holes": 0, "hole_bytes": 0, "conflicts": 0}


def test_packets_after_close_stay_in_the_stream_without_callbacks():
    h = Harness()
    h.handshake()
    h.c2s(CISN + 1, SISN + 1, FIN | ACK)
    h.s2c(SISN + 1, CISN + 2, FIN | ACK)
    h.c2s(CISN + 2, SISN + 2, ACK)
    count = len(h.log)
    h.s2c(SISN + 1, CISN + 2, FIN | ACK)     # 7: retransmitted FIN
    assert len(h.log) == count
    tombstone = h.tracker.connection(S_IP, C_IP, S_PORT, C_PORT)
    assert tombstone is not h.conns[0] and tombstone.stream == 0
    assert h.conns[0].last_frame == 6        # frozen at the close


def test_without_final_ack_the_connection_ends_at_capture_end():
    h = Harness()
    h.handshake()
    h.c2s(CISN + 1, SISN + 1, FIN | ACK)
    h.s2c(SISN + 1, CISN + 2, FIN | ACK)
    assert h.log == [("fin", 0, 0, 4, 0.4), ("fin", 0, 1, 5, 0.5)]
    h.tracker.finish()
    assert h.log[-1] == ("finish", 0)


def test_fin_is_reported_only_when_the_stream_reaches_it():
    h = Harness()
    h.handshake()
    h.c2s(CISN + 4, SISN + 1, FIN | ACK, b"def")          # 4: FIN after a gap
    assert h.log == []
    h.c2s(CISN + 1, SISN + 1, ACK, b"abc")                # 5: fills the gap
    assert h.log == [("data", 0, 0, b"abc", 5, 0.5), ("data", 0, 0, b"def", 5, 0.5),
                     ("fin", 0, 0, 4, 0.4)]


def test_fin_after_missing_data_is_reported_after_the_hole():
    h = Harness()
    h.handshake()
    h.c2s(CISN + 11, SISN + 1, FIN | ACK)                 # 4: FIN at offset 10, nothing seen
    h.s2c(SISN + 1, CISN + 12, ACK)                       # 5: server acks all of it
    assert h.log == []  # the 10 bytes may still come (a span port late in one direction)
    h.tracker.finish()
    assert h.log[:2] == [("hole", 0, 0, 10, 5, 0.5), ("fin", 0, 0, 4, 0.4)]


def test_hole_detected_from_the_peers_ack():
    h = Harness(max_ack_wait=0)
    h.handshake()
    h.c2s(CISN + 1, SISN + 1, ACK, b"aaaa")               # 4
    h.c2s(CISN + 9, SISN + 1, ACK, b"cccc")               # 5: bytes 4..7 not captured
    h.s2c(SISN + 1, CISN + 13, ACK | PSH, b"resp")        # 6: acks through 12
    assert h.log == [
        ("data", 0, 0, b"aaaa", 4, 0.4),
        ("hole", 0, 0, 4, 6, 0.6),
        ("data", 0, 0, b"cccc", 5, 0.5),  # released by the ACK, carried by packet 5
        ("data", 0, 1, b"resp", 6, 0.6),
    ]
    assert h.conns[0].reassemblers[0].holes == [(4, 4, 6, 0.6)]
    assert h.tracker.stats["holes"] == 1 and h.tracker.stats["hole_bytes"] == 4


def test_data_acked_before_it_appears_is_delivered_not_a_hole():
    h = Harness()  # the default wait (3 s of capture time)
    h.handshake()
    h.s2c(SISN + 1, CISN + 13, ACK)                       # 4: server acks 12 bytes not yet seen
    h.c2s(CISN + 1, SISN + 1, ACK, b"aaaabbbbcccc")       # 5: they come 100 ms later
    assert h.log == [("data", 0, 0, b"aaaabbbbcccc", 5, 0.5)]
    assert h.tracker.stats["holes"] == 0


def test_hole_detected_at_capture_end():
    h = Harness()
    h.handshake()
    h.s2c(SISN + 6, CISN + 1, ACK, b"later")             # 4
    h.tracker.finish()
    assert h.log == [("hole", 0, 1, 5, 4, 0.4), ("data", 0, 1, b"later", 4, 0.4), ("finish", 0)]


def test_snaplen_missing_bytes_become_a_hole():
    h = Harness()
    h.handshake()
    h.c2s(CISN + 1, SISN + 1, ACK, b"head", missing=96)
    assert h.log == [("data", 0, 0, b"head", 4, 0.4), ("hole", 0, 0, 96, 4, 0.4)]


def test_retransmissions_and_conflicts_are_counted():
    h = Harness()
    h.handshake()
    h.c2s(CISN + 1, SISN + 1, ACK, b"abcd")
    h.c2s(CISN + 1, SISN + 1, ACK, b"abcd")
    h.c2s(CISN + 1, SISN + 1, ACK, b"abXd")
    assert h.log == [("data", 0, 0, b"abcd", 4, 0.4)]
    stats = h.tracker.stats
    assert (stats["retransmissions"], stats["conflicts"]) == (2, 1)
    assert h.conns[0].reassemblers[0].conflicts == [(6, 0, 4)]
    h.tracker.finish()
    assert h.tracker.stats == {"connections": 1, "ignored_connections": 0, "retransmissions": 2,
                               "holes": 0, "hole_bytes": 0, "conflicts": 1}


def test_rst_ends_the_connection_flushing_both_directions():
    h = Harness()
    h.handshake()
    h.c2s(CISN + 5, SISN + 1, ACK, b"tail")               # 4: bytes 0..3 missing
    h.s2c(SISN + 1, CISN + 1, RST | ACK)                  # 5
    h.c2s(CISN + 1, SISN + 1, ACK, b"late")               # 6: after the end
    assert h.log == [
        ("hole", 0, 0, 4, 5, 0.5),
        ("data", 0, 0, b"tail", 4, 0.4),
        ("rst", 0, 1, 5, 0.5),
        ("finish", 0),
    ]
    conn = h.conns[0]
    assert conn.rst == (1, 5, 0.5)
    assert conn.state == "closed"
    assert h.tracker.connection(C_IP, S_IP, C_PORT, S_PORT).stream == 0


def test_rst_reports_a_fin_already_reached_once_only():
    h = Harness()
    h.handshake()
    h.c2s(CISN + 1, SISN + 1, FIN | ACK)                 # 4
    h.s2c(SISN + 1, CISN + 2, RST | ACK)                 # 5
    assert h.log == [("fin", 0, 0, 4, 0.4), ("rst", 0, 1, 5, 0.5), ("finish", 0)]


def test_new_syn_with_new_isn_on_reused_tuple_is_a_new_stream():
    h = Harness()
    h.handshake()
    h.c2s(CISN + 1, SISN + 1, ACK | PSH, b"one")          # 4
    h.c2s(CISN + 4, SISN + 1, FIN | ACK)                  # 5
    h.c2s(90000, 0, SYN)                                  # 6: new ISN
    h.s2c(123, 90001, SYN | ACK)                          # 7
    h.c2s(90001, 124, ACK | PSH, b"two")                  # 8
    assert [c.stream for c in h.conns] == [0, 1]
    assert h.log == [
        ("data", 0, 0, b"one", 4, 0.4),
        ("fin", 0, 0, 5, 0.5),
        ("finish", 0),
        ("data", 1, 0, b"two", 8, 0.8),
    ]
    old, new = h.conns
    assert old.state == "replaced"
    assert (new.syn_frame, new.first_frame) == (6, 6)
    assert h.tracker.stats["connections"] == 2


def test_retransmitted_syn_with_same_isn_is_the_same_stream():
    h = Harness()
    h.c2s(CISN, 0, SYN)
    h.c2s(CISN, 0, SYN)
    h.s2c(SISN, CISN + 1, SYN | ACK)
    assert len(h.conns) == 1
    assert h.tracker.stats["connections"] == 1


def test_same_isn_syn_after_rst_keeps_the_stream_but_is_analysed_afresh():
    h = Harness()
    h.c2s(CISN, 0, SYN)                           # 1
    h.s2c(0, CISN + 1, RST | ACK)                 # 2: refused
    h.c2s(CISN, 0, SYN)                           # 3: retried with the same ISN
    h.s2c(SISN, CISN + 1, SYN | ACK)              # 4: accepted this time
    h.c2s(CISN + 1, SISN + 1, ACK, b"hi")         # 5
    assert [(c.stream, c.first_frame) for c in h.conns] == [(0, 1), (0, 3)]
    assert h.log == [("rst", 0, 1, 2, 0.2), ("finish", 0), ("data", 0, 0, b"hi", 5, 0.5)]
    assert h.tracker.stats["connections"] == 1


def test_same_isn_syn_on_an_ignored_connection_stays_ignored():
    seen = []
    tracker = TcpTracker(lambda conn: seen.append(conn))
    for frame, flags in ((1, SYN), (2, RST | ACK), (3, SYN)):
        src, dst, sport, dport = (C_IP, S_IP, C_PORT, S_PORT) if flags == SYN else (S_IP, C_IP, S_PORT, C_PORT)
        tracker.packet(frame, 0.0, src, dst, sport, dport, CISN if flags == SYN else 0, CISN + 1,
                       flags, memoryview(b""), 0)
    assert len(seen) == 1


def test_syn_without_fin_or_rst_but_new_isn_splits_like_tshark_4_0():
    h = Harness()
    h.handshake()
    h.c2s(CISN + 1, SISN + 1, ACK, b"x")
    h.c2s(CISN + 500, 0, SYN)
    assert [c.stream for c in h.conns] == [0, 1]


def test_syn_from_the_old_server_side_splits_when_its_base_differs():
    h = Harness()
    h.handshake()
    h.s2c(SISN, 0, SYN)                                   # same as the server's base: no split
    assert len(h.conns) == 1
    h.s2c(SISN + 77, 0, SYN)                              # differs: new stream
    assert len(h.conns) == 2
    new = h.conns[1]
    assert new.client == (S_IP, S_PORT) and new.server == (C_IP, C_PORT)


def test_midstream_syn_equal_to_first_seq_minus_one_is_the_same_stream():
    h = Harness()
    h.c2s(5000, 100, ACK, b"zz")
    h.c2s(4999, 0, SYN)
    assert len(h.conns) == 1
    h.c2s(4000, 0, SYN)
    assert len(h.conns) == 2


def test_roles_from_syn_ack_when_the_syn_is_missing():
    h = Harness()
    h.s2c(SISN, CISN + 1, SYN | ACK)
    conn, = h.conns
    assert conn.client == (C_IP, C_PORT) and conn.server == (S_IP, S_PORT)
    assert not conn.role_guessed
    assert conn.syn_frame == 1
    h.c2s(CISN + 1, SISN + 1, ACK, b"hi")
    assert h.log == [("data", 0, 0, b"hi", 2, 0.2)]


def test_roles_guessed_from_ports_when_no_handshake():
    h = Harness()
    h.s2c(SISN, CISN, ACK, b"from server")            # the 443 side sends first
    conn, = h.conns
    assert conn.role_guessed
    assert conn.client == (C_IP, C_PORT) and conn.server == (S_IP, S_PORT)
    assert conn.syn_frame is None
    assert h.log == [("data", 0, 1, b"from server", 1, 0.1)]


@pytest.mark.parametrize("first_from", [C_IP, S_IP])
def test_roles_guessed_with_equal_ports_make_the_receiver_the_server(first_from):
    other = S_IP if first_from == C_IP else C_IP
    h = Harness()
    h._send(first_from, other, 7000, 7000, 1, 1, ACK, b"x", 0)
    h._send(other, first_from, 7000, 7000, 1, 2, ACK, b"y", 0)
    conn, = h.conns
    assert conn.client == (first_from, 7000) and conn.server == (other, 7000)
    assert h.log == [("data", 0, 0, b"x", 1, 0.1), ("data", 0, 1, b"y", 2, 0.2)]


def test_roles_guessed_when_the_low_port_side_sorts_first():
    h = Harness()
    h._send(S_IP, C_IP, 50000, 80, 1, 1, ACK, b"req", 0)     # 10.0.0.2:50000 -> 10.0.0.1:80
    conn, = h.conns
    assert conn.client == (S_IP, 50000) and conn.server == (C_IP, 80)
    assert h.log == [("data", 0, 0, b"req", 1, 0.1)]


def test_swap_roles_changes_directions_for_later_callbacks():
    h = Harness(swap_on_first_server_data=True)
    h._send(S_IP, C_IP, S_PORT, 9999, 500, 100, ACK, b"GET /", 0)        # guessed wrongly
    h._send(S_IP, C_IP, S_PORT, 9999, 505, 100, ACK, b" HTTP/1.1", 0)
    h._send(C_IP, S_IP, 9999, S_PORT, 100, 514, ACK, b"HTTP/1.1 101", 0)
    conn, = h.conns
    assert h.log == [
        ("data", 0, 1, b"GET /", 1, 0.1),
        ("data", 0, 0, b" HTTP/1.1", 2, 0.2),
        ("data", 0, 1, b"HTTP/1.1 101", 3, 0.3),
    ]
    assert conn.client == (S_IP, S_PORT) and conn.server == (C_IP, 9999)
    c2s, s2c = conn.reassemblers
    assert (c2s.next_offset, s2c.next_offset) == (14, 12)


def test_factory_returning_none_keeps_only_a_tombstone():
    seen = []
    tracker = TcpTracker(lambda conn: seen.append(conn))   # append returns None
    tracker.packet(1, 0.1, C_IP, S_IP, C_PORT, S_PORT, CISN, 0, SYN, memoryview(b""), 0)
    tracker.packet(2, 0.2, S_IP, C_IP, S_PORT, C_PORT, SISN, CISN + 1, SYN | ACK, memoryview(b""), 0)
    tracker.packet(3, 0.3, C_IP, S_IP, C_PORT, S_PORT, CISN + 1, SISN + 1, ACK, memoryview(b"data"), 0)
    tracker.packet(4, 0.4, C_IP, S_IP, C_PORT, S_PORT + 1, 1, 0, SYN, memoryview(b""), 0)
    conn = seen[0]
    assert conn.reassemblers is None and conn.handler is None
    assert conn.state == "ignored"
    assert conn.last_frame == 1                  # the table holds a tombstone, not conn
    assert tracker.connection(C_IP, S_IP, C_PORT, S_PORT) is not conn
    assert [c.stream for c in seen] == [0, 1]
    tracker.finish()
    assert tracker.stats == {"connections": 2, "ignored_connections": 2, "retransmissions": 0,
                             "holes": 0, "hole_bytes": 0, "conflicts": 0}


def test_ignore_from_the_handler_stops_delivery_and_calls_abandon():
    h = Harness(ignore_after=4)
    h.handshake()
    h.c2s(CISN + 1, SISN + 1, ACK, b"not http")       # 4: handler gives up here
    h.c2s(CISN + 9, SISN + 1, ACK, b"more")           # 5
    h.tracker.finish()
    assert h.log == [("data", 0, 0, b"not http", 4, 0.4), ("abandon", 0)]
    conn = h.conns[0]
    assert conn.state == "ignored" and conn.reassemblers is None
    assert h.tracker.stats["ignored_connections"] == 1
    h.c2s(90000, 0, SYN)                              # numbering still works after ignore
    assert [c.stream for c in h.conns] == [0, 1]


def test_ignore_during_a_multi_chunk_release_stops_the_rest():
    h = Harness(ignore_after=5)
    h.handshake()
    h.c2s(CISN + 4, SISN + 1, ACK, b"def")            # 4: buffered
    h.c2s(CISN + 1, SISN + 1, ACK, b"abc")            # 5: releases abc, def; ignored after abc
    assert h.log == [("data", 0, 0, b"abc", 5, 0.5), ("abandon", 0)]


def test_stream_numbers_follow_first_packets_across_connections():
    h = Harness()
    h.c2s(1, 0, SYN, sport=1001)
    h.c2s(1, 0, SYN, sport=1002)
    h.s2c(1, 2, SYN | ACK, dport=1001)
    h.c2s(1, 0, SYN, sport=1003)
    assert [(c.stream, c.client[1]) for c in h.conns] == [(0, 1001), (1, 1002), (2, 1003)]


def test_quoted_header_takes_a_stream_number_and_sets_no_base():
    seen = []
    tracker = TcpTracker(lambda conn: seen.append(conn))
    tracker.quoted(1, 0.1, C_IP, S_IP, C_PORT, S_PORT, 100, SYN)       # ICMP error quoting a SYN
    tracker.packet(2, 0.2, C_IP, S_IP, C_PORT + 1, S_PORT, 5, 0, SYN, memoryview(b""), 0)
    tracker.packet(3, 0.3, C_IP, S_IP, C_PORT, S_PORT, 200, 0, SYN, memoryview(b""), 0)
    assert [(c.stream, c.first_frame) for c in seen] == [(1, 2), (0, 3)]
    assert tracker.stats["connections"] == 2
    tracker.quoted(4, 0.4, C_IP, S_IP, C_PORT, S_PORT, 300, SYN)       # quoted SYN, other ISN: split
    assert tracker.stats["connections"] == 3
    assert tracker.connection(C_IP, S_IP, C_PORT, S_PORT).stream == 2


def test_finish_calls_handlers_in_stream_order():
    h = Harness()
    h.c2s(1, 0, SYN, sport=1002)
    h.c2s(1, 0, SYN, sport=1001)
    h.c2s(1, 0, SYN, sport=1003)
    h.tracker.finish()
    assert h.log == [("finish", 0), ("finish", 1), ("finish", 2)]


def test_pure_acks_do_not_call_the_handler():
    h = Harness()
    h.handshake()
    h.c2s(CISN + 1, SISN + 1, ACK, b"abc")
    for _ in range(5):
        h.s2c(SISN + 1, CISN + 4, ACK)
    assert h.log == [("data", 0, 0, b"abc", 4, 0.4)]


@pytest.mark.parametrize("ipv6", [False, True])
def test_loopback_both_ends_same_address(ipv6):
    lo = bytes(15) + b"\x01" if ipv6 else bytes([127, 0, 0, 1])
    h = Harness()
    h._send(lo, lo, 40000, 8080, 10, 0, SYN, b"", 0)
    h._send(lo, lo, 8080, 40000, 20, 11, SYN | ACK, b"", 0)
    h._send(lo, lo, 40000, 8080, 11, 21, ACK, b"hello", 0)
    h._send(lo, lo, 8080, 40000, 21, 16, ACK, b"world", 0)
    conn, = h.conns
    assert conn.client == (lo, 40000) and conn.server == (lo, 8080)
    assert h.log == [("data", 0, 0, b"hello", 3, 0.3), ("data", 0, 1, b"world", 4, 0.4)]
