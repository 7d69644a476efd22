"""TcpTracker's stream numbers against tshark's `tcp.stream`, frame by frame.

Three sources of pcaps: hand-built edge cases, seeded random packet soup on
many 4-tuples (seqs and acks drawn from tiny sets so that SYNs collide with
base sequence numbers often), and real loopback traffic captured with tcpdump
(several connections, port reuse in TIME_WAIT and after RST, a refused
connect, IPv6), whose reassembled bytes are also checked against what was sent.
"""
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from analyzer.tcp import ACK, FIN, PSH, RST, SYN, TcpTracker

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")


# -- pcap bytes ---------------------------------------------------------------

def tcp_frame(src, dst, sport, dport, seq, ack, flags, payload=b""):
    """An Ethernet frame carrying IPv4 or IPv6 (by address length) and TCP."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      5 << 4, flags, 65535, 0, 0) + payload
    return _ip_frame(src, dst, 6, tcp)


def icmp_error_frame(src, dst, quoted):
    icmp = struct.pack("!BBHI", 3, 3, 0, 0) + quoted
    return _ip_frame(src, dst, 1, icmp)


def _ip_frame(src, dst, proto, body):
    if len(src) == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0, 64, proto, 0, src, dst)
        return bytes(12) + b"\x08\x00" + ip + body
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(body), proto, 64, src, dst)
    return bytes(12) + b"\x86\xdd" + ip + body


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for i, frame in enumerate(frames):
            ts = 1000 + i * 0.001
            f.write(struct.pack("<IIII", int(ts), int(round((ts % 1) * 1e6)) % 1000000,
                                len(frame), len(frame)) + frame)


def read_pcap(path):
    """(frame_no, ts, frame, orig_len) for an Ethernet pcap (usec or nsec)."""
    with open(path, "rb") as f:
        blob = f.read()
    magic, = struct.unpack("<I", blob[:4])
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), "little-endian pcap expected"
    scale = 1e-6 if magic == 0xA1B2C3D4 else 1e-9
    assert struct.unpack("<I", blob[20:24])[0] == 1, "Ethernet expected"
    view = memoryview(blob)
    pos, frame_no = 24, 0
    while pos < len(blob):
        sec, frac, caplen, orig = struct.unpack_from("<IIII", blob, pos)
        pos += 16
        frame_no += 1
        yield frame_no, sec + frac * scale, view[pos:pos + caplen], orig
        pos += caplen


def parse(frame):
    """("tcp", fields) / ("quoted", fields) / None, the way the capture layer hands them over."""
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    ip = frame[14:]
    if ethertype == 0x0800:
        ihl = (ip[0] & 15) * 4
        proto, total = ip[9], struct.unpack_from("!H", ip, 2)[0]
        src, dst = bytes(ip[12:16]), bytes(ip[16:20])
        body, body_len = ip[ihl:], total - ihl
    elif ethertype == 0x86DD:
        proto, body_len = ip[6], struct.unpack_from("!H", ip, 4)[0]
        src, dst = bytes(ip[8:24]), bytes(ip[24:40])
        body = ip[40:]
    else:
        return None
    if proto == 1 and body[0] == 3:
        quoted = body[8:]
        ihl = (quoted[0] & 15) * 4
        tcp = quoted[ihl:]
        if quoted[9] != 6 or len(tcp) < 16:     # tshark needs the header through the window field
            return None
        sport, dport, seq = struct.unpack_from("!HHI", tcp)
        return "quoted", (bytes(quoted[12:16]), bytes(quoted[16:20]), sport, dport, seq, tcp[13])
    if proto != 6:
        return None
    sport, dport, seq, ack, off, flags = struct.unpack_from("!HHIIBB", body)
    hlen = (off >> 4) * 4
    payload = body[hlen:body_len]
    missing = body_len - hlen - len(payload)
    return "tcp", (src, dst, sport, dport, seq, ack, flags, payload, missing)


class Collector:
    def __init__(self, conn, done):
        self.conn, self.done = conn, done
        self.bytes = [bytearray(), bytearray()]
        self.events = []

    def data(self, direction, data, frame_no, ts):
        self.bytes[direction] += data

    def hole(self, direction, size, frame_no, ts):
        self.events.append(("hole", direction, size))

    def tcp_end(self, kind, direction, frame_no, ts):
        self.events.append((kind, direction))

    def finish(self):
        self.done.append(self)


def run_tracker(path, factory=None):
    """Feed a pcap through a TcpTracker; return ({frame_no: stream}, finished handlers, tracker)."""
    done = []
    tracker = TcpTracker(factory or (lambda conn: Collector(conn, done)))
    streams = {}
    for frame_no, ts, frame, _orig in read_pcap(path):
        parsed = parse(frame)
        if parsed is None:
            streams[frame_no] = None
            continue
        kind, fields = parsed
        if kind == "quoted":
            src, dst, sport, dport, seq, flags = fields
            tracker.quoted(frame_no, ts, src, dst, sport, dport, seq, flags)
        else:
            src, dst, sport, dport = fields[:4]
            tracker.packet(frame_no, ts, *fields)
        streams[frame_no] = tracker.connection(src, dst, sport, dport).stream
    tracker.finish()
    return streams, done, tracker


def tshark_streams(path):
    out = subprocess.run([TSHARK, "-r", str(path), "-T", "fields", "-e", "frame.number", "-e", "tcp.stream"],
                         capture_output=True, text=True, check=True).stdout
    result = {}
    for line in out.splitlines():
        number, _, stream = line.partition("\t")
        result[int(number)] = int(stream) if stream else None
    return result


def assert_same_streams(path, labels=None, factory=None):
    ours, done, tracker = run_tracker(path, factory)
    theirs = tshark_streams(path)
    assert len(theirs) == len(ours)
    wrong = [(n, (labels or {}).get(n), ours[n], theirs[n]) for n in theirs if ours[n] != theirs[n]]
    assert wrong == [], "frame, case, ours, tshark"
    return ours, done, tracker


# -- hand-built edge cases ----------------------------------------------------

A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def edge_cases():
    """name -> packets as (from_a, seq, ack, flags); each case gets its own port pair."""
    def hs(ci, si):
        return [(1, ci, 0, SYN), (0, si, ci + 1, SYN | ACK), (1, ci + 1, si + 1, ACK)]
    return {
        "retransmitted SYN": [(1, 100, 0, SYN), (1, 100, 0, SYN), (0, 500, 101, SYN | ACK)],
        "new ISN while established": hs(100, 500) + [(1, 9000, 0, SYN), (0, 700, 9001, SYN | ACK)],
        "same ISN after FIN": hs(100, 500) + [(1, 101, 501, FIN | ACK), (0, 501, 102, FIN | ACK),
                                              (1, 102, 502, ACK), (1, 100, 0, SYN)],
        "same ISN after RST": [(1, 100, 0, SYN), (0, 0, 101, RST | ACK), (1, 100, 0, SYN)],
        "new ISN after RST": [(1, 100, 0, SYN), (0, 0, 101, RST | ACK), (1, 150, 0, SYN)],
        "midstream then SYN": [(1, 1000, 5000, ACK), (1, 50, 0, SYN)],
        "midstream SYN = first seq - 1": [(1, 1000, 5000, ACK), (1, 999, 0, SYN)],
        "SYN from old server, new ISN": hs(100, 500) + [(0, 7000, 0, SYN)],
        "SYN from old server, its ISN": hs(100, 500) + [(0, 500, 0, SYN)],
        "SYN from a side never seen": [(1, 100, 0, SYN), (0, 7000, 0, SYN), (0, 7001, 0, SYN)],
        "SYN-ACK with new ISN": hs(100, 500) + [(0, 800, 101, SYN | ACK)],
        "SYN-ACK first, then SYNs": [(0, 500, 101, SYN | ACK), (1, 100, 0, SYN), (1, 300, 0, SYN)],
        "ACK sets peer base": [(0, 500, 101, ACK), (1, 100, 0, SYN), (1, 101, 0, SYN)],
        "SYN|RST with new ISN": hs(100, 500) + [(1, 9000, 0, SYN | RST)],
        "SYN|FIN with same ISN": hs(100, 500) + [(1, 100, 0, SYN | FIN)],
        "ISN near 2**32": [(1, 0xFFFFFFFF, 0, SYN), (0, 5, 0, SYN | ACK), (1, 0, 6, ACK),
                           (1, 0xFFFFFFFF, 0, SYN), (1, 0, 0, SYN)],
        "first seq 0: base wraps": [(1, 0, 9, ACK), (1, 0xFFFFFFFF, 0, SYN), (1, 0, 0, SYN)],
        # A SYN-ACK always re-bases its own direction:
        "2nd SYN-ACK re-bases, SYN repeats it": [(1, 100, 0, SYN), (0, 500, 101, SYN | ACK),
                                                 (0, 800, 101, SYN | ACK), (0, 800, 0, SYN)],
        "2nd SYN-ACK re-bases, SYN repeats 1st": [(1, 100, 0, SYN), (0, 500, 101, SYN | ACK),
                                                  (0, 800, 101, SYN | ACK), (0, 500, 0, SYN)],
        "SYN-ACK after data re-bases": [(1, 50, 7, ACK), (1, 300, 7, SYN | ACK), (1, 49, 0, SYN)],
        "SYN|ACK|RST re-bases too": [(1, 100, 0, SYN), (1, 300, 7, SYN | ACK | RST), (1, 300, 0, SYN)],
        "SYN-ACK's ack only fills": [(1, 100, 0, SYN), (0, 500, 301, SYN | ACK), (1, 100, 0, SYN)],
    }


@needs_tshark
def test_edge_cases_match_tshark(tmp_path):
    frames, labels = [], {}
    for i, (name, packets) in enumerate(edge_cases().items()):
        a_port, b_port = 20000 + i, 80
        for from_a, seq, ack, flags in packets:
            if from_a:
                frames.append(tcp_frame(A, B, a_port, b_port, seq, ack, flags))
            else:
                frames.append(tcp_frame(B, A, b_port, a_port, seq, ack, flags))
            labels[len(frames)] = name
    path = tmp_path / "edges.pcap"
    write_pcap(path, frames)
    ours, _, _ = assert_same_streams(path, labels)
    streams_per_case = {}
    for frame_no, name in labels.items():
        streams_per_case.setdefault(name, set()).add(ours[frame_no])
    split = {name for name, streams in streams_per_case.items() if len(streams) == 2}
    assert split == {
        "new ISN while established", "new ISN after RST", "midstream then SYN",
        "SYN from old server, new ISN", "SYN from a side never seen", "SYN-ACK first, then SYNs",
        "ACK sets peer base", "SYN|RST with new ISN", "ISN near 2**32", "first seq 0: base wraps",
        "2nd SYN-ACK re-bases, SYN repeats 1st", "SYN-ACK after data re-bases",
    }
    assert all(len(streams) <= 2 for streams in streams_per_case.values())


@needs_tshark
def test_icmp_quoted_headers_match_tshark(tmp_path):
    syn = tcp_frame(A, B, 3000, 80, 100, 0, SYN)[14:]
    other = tcp_frame(A, B, 3001, 80, 5, 0, SYN)[14:]
    frames = [
        tcp_frame(A, B, 3000, 80, 100, 0, SYN),
        icmp_error_frame(B, A, syn),                   # quotes a known connection
        icmp_error_frame(B, A, other),                 # opens a stream before any TCP packet
        icmp_error_frame(B, A, other[:20 + 15]),       # 15 header bytes: ignored by tshark
        tcp_frame(A, B, 3001, 80, 5, 0, SYN),
        tcp_frame(A, B, 3000, 80, 100, 0, ACK),        # sets nothing new
        icmp_error_frame(B, A, tcp_frame(A, B, 3000, 80, 900, 0, SYN)[14:]),   # quoted SYN, new ISN
        tcp_frame(A, B, 3000, 80, 101, 0, ACK),
    ]
    path = tmp_path / "icmp.pcap"
    write_pcap(path, frames)
    ours, _, _ = assert_same_streams(path)
    assert ours == {1: 0, 2: 0, 3: 1, 4: None, 5: 1, 6: 0, 7: 2, 8: 2}


# -- random packet soup --------------------------------------------------------

SEQS = [0, 1, 99, 100, 101, 102, 500, 501, 0xFFFFFFFF, 0xFFFFFFFE]
FLAG_CHOICES = [SYN, SYN, SYN | ACK, ACK, ACK | PSH, ACK, FIN | ACK, FIN, RST, RST | ACK,
                SYN | FIN, SYN | RST, 0]
ENDPOINT_PAIRS = [
    (bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])),
    (bytes([192, 168, 1, 9]), bytes([10, 9, 9, 9])),
    (bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])),
    (bytes(15) + b"\x01", bytes(15) + b"\x02"),
    (bytes(15) + b"\x01", bytes(15) + b"\x01"),
]


def soup(seed, tuples=60, packets=2500):
    rng = random.Random(seed)
    flows = []
    for i in range(tuples):
        a, b = ENDPOINT_PAIRS[i % len(ENDPOINT_PAIRS)]
        a_port = rng.choice([80, 443, 1000 + i, 60000 - i])
        b_port = rng.choice([80, 443, 2000 + i, a_port if a == b else 3000 + i])
        flows.append((a, b, a_port, b_port))
    frames = []
    for _ in range(packets):
        a, b, a_port, b_port = rng.choice(flows)
        if rng.random() < 0.5:
            a, b, a_port, b_port = b, a, b_port, a_port
        payload = rng.choice([b"", b"", b"x", b"hello"])
        frames.append(tcp_frame(a, b, a_port, b_port, rng.choice(SEQS), rng.choice(SEQS),
                                rng.choice(FLAG_CHOICES), payload))
    return frames


@needs_tshark
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_packet_soup_matches_tshark(tmp_path, seed):
    path = tmp_path / f"soup{seed}.pcap"
    write_pcap(path, soup(seed))
    done = []
    # Numbering must not depend on which connections are analysed.
    factory = (lambda conn: Collector(conn, done) if conn.stream % 3 else None)
    ours, _, tracker = assert_same_streams(path, factory=factory)
    assert tracker.stats["connections"] == max(ours.values()) + 1
    assert max(ours.values()) > 150     # the soup really splits connections a lot


# -- real traffic ----------------------------------------------------------------

def _free_port(family=socket.AF_INET):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        return s.getsockname()[1]


def _request(token):
    return token + b"|" + bytes(range(256)) * 300           # 76.8 kB: several segments


def _response(token):
    return token + b"|" + (token * 50000)[:150000]


class Server:
    """Echo-ish server: reads one request, answers, closes first when asked to."""

    def __init__(self, family, host):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn):
        with conn:
            buf = b""
            while not buf.endswith(bytes(range(256))):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            token = buf.split(b"|", 1)[0]
            conn.sendall(_response(token))
            if token.startswith(b"server-closes"):
                conn.shutdown(socket.SHUT_WR)
            try:
                while conn.recv(65536):
                    pass
            except ConnectionResetError:    # the clients that close with RST
                pass

    def close(self):
        self.sock.close()


def _exchange(family, host, port, token, bind_port=None, rst=False):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if bind_port:
        s.bind((host, bind_port))
    s.connect((host, port))
    s.sendall(_request(token))
    want = len(_response(token))
    got = b""
    while len(got) < want:
        chunk = s.recv(65536)
        assert chunk
        got += chunk
    assert got == _response(token)
    if token.startswith(b"server-closes"):
        assert s.recv(1) == b""
    if rst:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def _wait_until_file_settles(path, quiet=0.5, limit=10.0):
    """tcpdump writes each packet as it reads it; stop it only once it has caught up."""
    deadline = time.monotonic() + limit
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_size = os.path.getsize(path)
        if now_size != size:
            size, since = now_size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


def _can_capture():
    return shutil.which("tcpdump") and TSHARK and hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.mark.skipif(not _can_capture(), reason="needs tcpdump, tshark and root")
def test_real_loopback_capture_matches_tshark_and_reassembles_exactly(tmp_path):
    v4 = Server(socket.AF_INET, "127.0.0.1")
    v6 = Server(socket.AF_INET6, "::1")
    reuse_port, rst_port, refused_port = _free_port(), _free_port(), _free_port()
    path = tmp_path / "loopback.pcap"
    ports = [v4.port, v6.port, refused_port]
    capture = subprocess.Popen(
        ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-s", "0", "-B", "65536", "-w", str(path),
         "tcp and (" + " or ".join(f"port {p}" for p in ports) + ")"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert b"listening on" in capture.stderr.readline()
        time.sleep(0.3)
        _exchange(socket.AF_INET, "127.0.0.1", v4.port, b"plain-1")
        _exchange(socket.AF_INET, "127.0.0.1", v4.port, b"server-closes-1", bind_port=reuse_port)
        time.sleep(0.05)
        # Same 4-tuple again while the server side sits in TIME_WAIT.
        _exchange(socket.AF_INET, "127.0.0.1", v4.port, b"server-closes-2", bind_port=reuse_port)
        _exchange(socket.AF_INET, "127.0.0.1", v4.port, b"reset-1", bind_port=rst_port, rst=True)
        _exchange(socket.AF_INET, "127.0.0.1", v4.port, b"reset-2", bind_port=rst_port, rst=True)
        for _ in range(2):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", rst_port))
                with pytest.raises(ConnectionRefusedError):
                    s.connect(("127.0.0.1", refused_port))
        threads = [threading.Thread(target=_exchange, args=(socket.AF_INET, "127.0.0.1", v4.port,
                                                            b"parallel-%d" % i)) for i in range(3)]
        threads.append(threading.Thread(target=_exchange, args=(socket.AF_INET6, "::1", v6.port, b"six")))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _wait_until_file_settles(path)
    finally:
        capture.send_signal(signal.SIGINT)
        summary = capture.communicate(timeout=10)[1].decode()
        v4.close()
        v6.close()
    # A lossy capture would show up as holes; make sure it is the capture, not us.
    counts = dict(reversed(line.split(" ", 1)) for line in summary.strip().splitlines()[-3:])
    assert counts["packets dropped by kernel"] == "0", summary
    # On lo the filter sees every packet twice (out and in); libpcap keeps one.
    assert 2 * int(counts["packets captured"]) == int(counts["packets received by filter"]), summary

    ours, done, tracker = assert_same_streams(path)
    # 11 exchanges incl. two refused connects; the TIME_WAIT and RST reuses are new streams.
    assert tracker.stats["connections"] == 11
    by_token = {}
    for handler in done:
        request = bytes(handler.bytes[0])
        if request:
            by_token[request.split(b"|", 1)[0]] = handler
        else:
            assert handler.events == [("rst", 1)]            # refused connect
    assert sorted(by_token) == sorted([b"plain-1", b"server-closes-1", b"server-closes-2", b"reset-1",
                                       b"reset-2", b"parallel-0", b"parallel-1", b"parallel-2", b"six"])
    for token, handler in by_token.items():
        assert bytes(handler.bytes[0]) == _request(token)
        assert bytes(handler.bytes[1]) == _response(token)
        assert not [e for e in handler.events if e[0] == "hole"]
        assert not handler.conn.role_guessed
        assert handler.conn.client[1] != handler.conn.server[1]
        assert handler.conn.server[1] in (v4.port, v6.port)
        if token.startswith(b"reset"):
            assert ("rst", 0) in handler.events
        else:
            assert ("fin", 0) in handler.events and ("fin", 1) in handler.events
    reuse = [h.conn for h in done if h.conn.client[1] == reuse_port]
    assert len(reuse) == 2 and reuse[0].stream != reuse[1].stream
    # Loopback does retransmit now and then; the copies must be identical.
    assert tracker.stats["holes"] == 0
    assert tracker.stats["conflicts"] == 0
