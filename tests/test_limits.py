"""Bounded resources under adversarial input, measured.

Each hostile capture is streamed to disk (never built in memory) and analysed end to end
with analyze_capture().  Memory is the tracemalloc peak of the analysis (every Python and
zlib allocation; the interpreter and imports are not counted).  Time is measured as work, not
seconds: the number of Python function calls (sys.setprofile) at three input sizes N, 2N, 3N
must grow by the same amount per step (a quadratic algorithm doubles its increment), or stay
flat where a limit caps the work.  Every limit is an Options field and its hit is a finding.

Work is counted in a child process running the pure-Python build (DGCAP_PURE=1), whichever
build the tests run on: code compiled by mypyc makes no Python calls to count, and its
algorithms are those of the same source (tests/test_compiled_build.py shows the two builds'
reports identical).  The memory peaks are measured here, on the build under test.

Measured (tracemalloc peak of analyze_capture, after a warm-up; RSS growth for the 100k test):
  frame claiming 2**63-1 bytes + 24 MB after it: binary 0.25 MiB; text 5.3 MiB (1 MiB kept)
  1 GiB permessage-deflate bomb (6.5 MB on the wire), text or binary ...... 5.3 MiB
  100 MB text frame: max_message 1 MiB -> 5.3 MiB; max_message 64 KiB -> 0.45 MiB
  HTTP request (or response) head that never ends, 32 MB ................... 0.26 MiB
  100 000 half-open connections, RSS growth: max_connections 1000 -> 35 MiB, 10 000 (the
    default) -> 47 MiB, no limit -> 167 MiB; per extra connection past the limit ~340 B
    (a tombstone kept for Wireshark's stream numbering) against ~1.6 KB analysed
A kept message costs ~5.3x its size at peak (pieces, join, unmask, text): bound() below.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest

from tests.support import capture_synth as synth
from analyzer.model import Report
from analyzer.pipeline import Options, analyze_capture

CLIENT_IP, SERVER_IP = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
MiB = 1 << 20
SEGMENT = 60000  # TCP payload per packet (an IPv4 total length must fit 16 bits)
MASK = b"\x37\xfa\x21\x3d"


# --- streamed capture writing ----------------------------------------------------------------

class PcapWriter:
    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(synth.pcap([]))
        self.t = 1_700_000_000.0
        self.packets = 0

    def packet(self, frame: bytes, dt: float = 0.001) -> None:
        self.t += dt
        sec = int(self.t)
        self.f.write(struct.pack("<IIII", sec, int((self.t - sec) * 1e6), len(frame), len(frame)) + frame)
        self.packets += 1

    def close(self) -> None:
        self.f.close()


class Tcp:
    """One TCP connection written packet by packet; seq/ack bookkeeping included."""

    def __init__(self, w: PcapWriter, cport: int = 50000, sport: int = 80, client_ip=CLIENT_IP):
        self.w, self.cport, self.sport, self.cip = w, cport, sport, client_ip
        self.seq = [1000, 900000]

    def _send(self, direction: int, flags: int, payload: bytes = b"") -> None:
        src, dst = (self.cip, SERVER_IP) if direction == 0 else (SERVER_IP, self.cip)
        sp, dp = (self.cport, self.sport) if direction == 0 else (self.sport, self.cport)
        ack = self.seq[1 - direction] if flags & synth.ACK else 0
        self.w.packet(synth.ethernet(synth.ipv4(synth.tcp(sp, dp, self.seq[direction] & 0xFFFFFFFF,
                                                          ack & 0xFFFFFFFF, flags, payload),
                                                src=src, dst=dst)))
        self.seq[direction] += len(payload) + (1 if flags & (synth.SYN | synth.FIN) else 0)

    def syn(self) -> None:
        self._send(0, synth.SYN)

    def open(self) -> None:
        self._send(0, synth.SYN)
        self._send(1, synth.SYN | synth.ACK)
        self._send(0, synth.ACK)

    def send(self, direction: int, data: bytes) -> None:
        for i in range(0, len(data), SEGMENT):
            self._send(direction, synth.ACK | synth.PSH, data[i:i + SEGMENT])

    def close(self) -> None:
        self._send(0, synth.FIN | synth.ACK)
        self._send(1, synth.FIN | synth.ACK)
        self._send(0, synth.ACK)


def upgrade(tcp: Tcp, extensions: str = "", path: str = "/v1/listen?encoding=linear16&sample_rate=16000",
            request_headers: tuple = (), response_headers: tuple = ()) -> None:
    """TCP handshake, then an HTTP upgrade answered by a 101 (shared by the other test modules)."""
    ext = [("Sec-WebSocket-Extensions", extensions)] if extensions else []
    request = (f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in [
        ("Host", "localhost"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
        *ext, *request_headers]) + "\r\n")
    response = ("HTTP/1.1 101 Switching Protocols\r\n" + "".join(f"{k}: {v}\r\n" for k, v in [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), *ext, *response_headers]) + "\r\n")
    tcp.open()
    tcp.send(0, request.encode())
    tcp.send(1, response.encode())


def ws_frame(opcode: int, payload: bytes, from_client: bool) -> bytes:
    """A whole frame: masked with MASK from the client, plain from the server."""
    if from_client:
        return frame_header(opcode, len(payload)) + masked(payload)
    return _server_header(opcode, len(payload)) + payload


def _server_header(opcode: int, length: int) -> bytes:
    if length < 126:
        return bytes([0x80 | opcode, length])
    if length < 65536:
        return bytes([0x80 | opcode, 126]) + struct.pack("!H", length)
    return bytes([0x80 | opcode, 127]) + struct.pack("!Q", length)


def frame_header(opcode: int, length: int, rsv1: bool = False, mask: bytes = MASK, fin: bool = True) -> bytes:
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if length < 126:
        head = bytes([b0, 0x80 | length])
    elif length < 65536:
        head = bytes([b0, 0x80 | 126]) + struct.pack("!H", length)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack("!Q", length)
    return head + mask


def masked(payload: bytes, mask: bytes = MASK, phase: int = 0) -> bytes:
    n = len(payload)
    key = (mask[phase:] + mask[:phase]) * (n // 4 + 1)
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key[:n], "little")).to_bytes(n, "little")


def send_masked_stream(tcp: Tcp, size: int, byte: int = 0x41) -> None:
    """`size` masked payload bytes of a repeated `byte`, one segment at a time."""
    block = masked(bytes([byte]) * SEGMENT)  # SEGMENT is a multiple of 4: the mask phase repeats
    full, rest = divmod(size, SEGMENT)
    for _ in range(full):
        tcp._send(0, synth.ACK | synth.PSH, block)
    if rest:
        tcp._send(0, synth.ACK | synth.PSH, block[:rest])


# --- measuring ---------------------------------------------------------------------------------

@pytest.fixture(autouse=True, scope="module")
def _warm_up():
    # Modules imported lazily (finding rules, renderers) must not count in the first peak.
    for name in ("dg_success.pcap", "dg_deflate.pcap"):
        analyze_capture(str(Path(__file__).resolve().parents[1] / "captures" / name))


def bound(max_message: int) -> int:
    """Peak memory allowed for a message kept up to `max_message` bytes: the kept pieces,
    their join, the unmask (two big ints and the result) and its text: ~5.3x, plus 512 KiB."""
    return 6 * max_message + 512 * 1024


def measure(path, options: Options):
    """(report, tracemalloc peak bytes) of analyze_capture(path)."""
    tracemalloc.start()
    try:
        report = analyze_capture(str(path), options)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return report, peak


_WORK_CHILD = """
import json, sys
from analyzer.pipeline import Options, analyze_capture
options = Options(**json.loads(sys.argv[2]))
calls = 0
def profile(frame, event, arg):
    global calls
    if event == "call" or event == "c_call":
        calls += 1
sys.setprofile(profile)
analyze_capture(sys.argv[1], options)
sys.setprofile(None)
print(calls)
"""


def work(path, **options) -> int:
    """Python function calls made by analyze_capture(path, Options(**options)) in the
    pure-Python build (a child process with DGCAP_PURE=1)."""
    import analyzer
    env = dict(os.environ, DGCAP_PURE="1", PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(analyzer.__file__)), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", _WORK_CHILD, str(path), json.dumps(options)],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    return int(r.stdout)


def assert_linear(works: list[int], tolerance: float = 0.1) -> None:
    """Work at sizes N, 2N, 3N grows by the same step (within `tolerance`)."""
    first, second = works[1] - works[0], works[2] - works[1]
    assert first > 0, works
    assert abs(second - first) <= tolerance * first, works


def findings(report, session_index: int = 0) -> dict:
    return {f.id: f for f in report.sessions[session_index].findings}


# --- a frame that claims 2**63 bytes ---------------------------------------------------------------

def write_huge_claim(path, payload_mb: int, length: int = (1 << 63) - 1, opcode: int = 2) -> None:
    w = PcapWriter(path)
    tcp = Tcp(w)
    upgrade(tcp)
    tcp.send(0, frame_header(opcode, length))
    send_masked_stream(tcp, payload_mb * MiB)
    w.close()


@pytest.mark.parametrize("opcode", [2, 1])
def test_frame_claiming_2_63_bytes(tmp_path, opcode):
    works = []
    for size in (8, 16, 24):
        path = tmp_path / f"claim{size}.pcap"
        write_huge_claim(path, size, opcode=opcode)
        report, peak = measure(path, Options())
        works.append(work(path))
        # Binary: 64 bytes kept, so nothing grows.  Text: kept up to max_message (1 MiB).
        assert peak < (512 * 1024 if opcode == 2 else bound(MiB)), peak
    assert_linear(works)
    [session] = report.sessions
    client = session.frames[0]
    assert (client.binary, client.text, client.payload_bytes) == (int(opcode == 2), int(opcode == 1), (1 << 63) - 1)
    found = findings(report)
    assert found["frame-truncated"].details == {"count": 1}
    assert found["message-too-big"].details == {"count": 1}
    json.dumps(Report(captures=[report]).to_json())


def test_frame_length_with_the_top_bit_set(tmp_path):
    path = tmp_path / "msb.pcap"
    write_huge_claim(path, 1, length=(1 << 64) - 1)
    report, peak = measure(path, Options())
    assert peak < MiB
    found = findings(report)
    assert {"length-msb-set", "frame-truncated", "message-too-big"} <= set(found)
    assert report.sessions[0].frames[0].payload_bytes == (1 << 64) - 1


# --- permessage-deflate bomb ---------------------------------------------------------------------

def deflate_bomb(inflated: int) -> bytes:
    """Raw deflate of ~`inflated` zero bytes, written directly (one fixed-Huffman block of
    (258, distance 1) matches: 8 matches are 13 bytes), so no test compresses a GiB."""
    def bits(seq):
        out = bytearray((len(seq) + 7) // 8)
        for i, bit in enumerate(seq):
            out[i >> 3] |= bit << (i & 7)
        return bytes(out)

    def code(value, width):
        return [(value >> (width - 1 - i)) & 1 for i in range(width)]
    match = code(0b11000101, 8) + code(0, 5)
    prefix = bits([0, 1, 0] + code(0x30, 8) + match)
    end = bits(code(0, 7) + [0, 0, 0])
    return prefix + bits(match * 8) * max(0, (inflated - 259) // 2064) + end


def test_deflate_bomb_builder_inflates_to_its_size():
    out = zlib.decompressobj(-15).decompress(deflate_bomb(5 * MiB) + b"\x00\x00\xff\xff")
    assert len(out) == 1 + 258 + 2064 * ((5 * MiB - 259) // 2064) and not out.strip(b"\x00")


def write_bomb(path, inflated: int, opcode: int) -> int:
    bomb = deflate_bomb(inflated)
    w = PcapWriter(path)
    tcp = Tcp(w)
    upgrade(tcp, "permessage-deflate")
    tcp.send(0, frame_header(opcode, len(bomb), rsv1=True) + masked(bomb))
    after = zlib.compressobj(9, zlib.DEFLATED, -15)
    alive = after.compress(b'{"type": "CloseStream"}') + after.flush(zlib.Z_SYNC_FLUSH)
    tcp.send(0, frame_header(1, len(alive) - 4, rsv1=True) + masked(alive[:-4]))
    tcp.close()
    w.close()
    return len(bomb)


@pytest.mark.parametrize("opcode", [1, 2])
def test_deflate_bomb_of_1_gib_inflates_only_to_the_limit(tmp_path, opcode):
    sizes = []

    def hook(session, direction, message):
        sizes.append((message.opcode, message.size, len(message.data), message.complete))
    path = tmp_path / "bomb.pcap"
    wire = write_bomb(path, 1 << 30, opcode)
    assert 6 * MiB < wire < 7 * MiB
    limit = 16 * MiB
    report, peak = measure(path, Options(message_hook=hook, max_inflate=limit, max_message=MiB))
    assert peak < bound(MiB), peak
    # The frame parser keeps max_message bytes of a compressed payload (1 MiB of this bomb
    # inflates to ~160 MiB): inflation stops exactly at max_inflate.
    bomb_message, after = sizes
    assert bomb_message[0] == opcode and bomb_message[1] == limit and bomb_message[3] is False
    assert bomb_message[2] == (MiB if opcode == 1 else 64)
    assert after == (1, 23, 23, True)  # the next message inflates from a fresh context
    found = findings(report)
    assert found["inflate-limit"].severity == "error"
    assert found["message-too-big"].details == {"count": 1}
    assert report.sessions[0].close.tcp_end == "fin"


def test_deflate_bomb_work_is_capped_whatever_its_size(tmp_path):
    inflated, works = [], []
    for size in (256 << 20, 512 << 20, 768 << 20):
        path = tmp_path / f"bomb{size}.pcap"
        write_bomb(path, size, 2)
        seen = []
        options = Options(max_inflate=4 * MiB,
                          message_hook=lambda s, d, m: seen.append(m.size) if m.opcode == 2 else None)
        measure(path, options)
        inflated.append(seen[0])
        works.append(work(path, max_inflate=4 * MiB))
    # Inflation stops at the limit: the same 4 MiB for a 256 MiB and a 768 MiB bomb...
    assert inflated == [4 * MiB] * 3
    # ...and the rest of the work is reading the bigger capture, linearly.
    assert_linear(works, tolerance=0.2)


# --- 100 000 half-open connections ---------------------------------------------------------------

def write_syn_flood(path, connections: int) -> None:
    w = PcapWriter(path)
    for i in range(connections):
        ip = bytes([10, 1 + (i >> 16), (i >> 8) & 255, i & 255])
        Tcp(w, cport=40000 + (i & 1023), sport=443, client_ip=ip).syn()
    w.close()


_RSS_CHILD = """
import json, resource, sys
from analyzer.pipeline import Options, analyze_capture
analyze_capture(sys.argv[3])  # imports and warm-up
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = analyze_capture(sys.argv[1], Options(max_connections=int(sys.argv[2])))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kib": after - before, "tcp": report.stats["tcp"],
                  "findings": [[f.id, f.details] for f in report.findings],
                  "sessions": len(report.sessions)}))
"""


def test_100k_half_open_connections_stay_bounded(tmp_path):
    import os
    import subprocess
    root = Path(__file__).resolve().parents[1]
    path = tmp_path / "synflood.pcap"
    write_syn_flood(path, 100_000)
    env = dict(os.environ, PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(path), "1000",
                          str(root / "captures" / "dg_success.pcap")],
                         capture_output=True, text=True, env=env, check=True, timeout=300)
    result = json.loads(out.stdout)
    # Resident memory growth of the whole process (tracemalloc: ~37 MiB; without the limit,
    # ~160 MiB traced and ~250 MiB resident).
    assert result["growth_kib"] < 64 * 1024, result["growth_kib"]
    tcp = result["tcp"]
    assert (tcp["connections"], tcp["connections_evicted"], tcp["connections_over_limit"]) == (100_000, 99_000, 0)
    assert result["findings"] == [["connection-limit",
                                   {"max_connections": 1000, "evicted": 99_000, "not_analysed": 0}]]
    assert result["sessions"] == 0


def test_half_open_memory_per_connection_is_a_tombstone_past_the_limit(tmp_path):
    peaks = {}
    for n in (5_000, 15_000):
        path = tmp_path / f"syn{n}.pcap"
        write_syn_flood(path, n)
        for limit in (1000, 0):
            tracemalloc.start()
            try:
                analyze_capture(str(path), Options(max_connections=limit))
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            peaks[n, limit] = peak
    per_connection_limited = (peaks[15_000, 1000] - peaks[5_000, 1000]) / 10_000
    per_connection_unlimited = (peaks[15_000, 0] - peaks[5_000, 0]) / 10_000
    assert per_connection_limited < 500, per_connection_limited  # a tombstone (stream numbering)
    assert per_connection_unlimited > 3 * per_connection_limited  # a live analysed connection


def test_connections_carrying_data_are_never_evicted(tmp_path):
    # 1200 connections each send an unfinished request head: all carry data, so past the
    # limit new ones are not analysed; none of the first 1000 is dropped.
    path = tmp_path / "busy.pcap"
    w = PcapWriter(path)
    for i in range(1200):
        tcp = Tcp(w, cport=20000 + i)
        tcp.open()
        tcp.send(0, b"GET /v1/listen HTTP/1.1\r\nHost: x\r\n")
    w.close()
    report = analyze_capture(str(path), Options(max_connections=1000))
    tcp = report.stats["tcp"]
    assert (tcp["connections_evicted"], tcp["connections_over_limit"]) == (0, 200)
    [finding] = [f for f in report.findings if f.id == "connection-limit"]
    assert finding.details == {"max_connections": 1000, "evicted": 0, "not_analysed": 200}


# --- an HTTP head that never ends --------------------------------------------------------------

def write_endless_head(path, size_mb: int, side: int) -> None:
    w = PcapWriter(path)
    tcp = Tcp(w)
    tcp.open()
    filler = b"X-Padding: " + b"a" * 100 + b"\r\n"
    block = filler * (SEGMENT // len(filler))
    if side == 0:
        tcp.send(0, b"GET /v1/listen HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n")
    else:
        upgrade_request = (b"GET /v1/listen HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        tcp.send(0, upgrade_request)
        tcp.send(1, b"HTTP/1.1 101 Switching Protocols\r\n")
    for _ in range(size_mb * MiB // len(block)):
        tcp._send(side, synth.ACK | synth.PSH, block)
    tcp.close()
    w.close()


def test_request_head_that_never_ends(tmp_path):
    works = []
    for size in (8, 16, 24):
        path = tmp_path / f"head{size}.pcap"
        write_endless_head(path, size, side=0)
        report, peak = measure(path, Options())
        works.append(work(path))
        assert peak < MiB, peak
    assert_linear(works)
    [finding] = [f for f in report.findings if f.id == "http-header-overflow"]
    assert finding.severity == "warning"
    assert finding.details == {"count": 1, "limit": 65536, "tcp_streams": [0]}
    assert report.sessions == []
    # The limit is an option.
    report = analyze_capture(str(path), Options(max_http_header=4096))
    [finding] = [f for f in report.findings if f.id == "http-header-overflow"]
    assert finding.details["limit"] == 4096


def test_response_head_that_never_ends(tmp_path):
    path = tmp_path / "response.pcap"
    write_endless_head(path, 8, side=1)
    report, peak = measure(path, Options())
    assert peak < MiB, peak
    [session] = report.sessions
    found = findings(report)
    assert found["http-header-overflow"].details == {"count": 1}
    assert found["http-header-overflow"].message.startswith("The HTTP response head grew past the limit")
    assert session.handshake.status is None and session.websocket is False


# --- a 100 MB text frame --------------------------------------------------------------------------

def write_text_frame(path, size: int) -> None:
    w = PcapWriter(path)
    tcp = Tcp(w)
    upgrade(tcp)
    tcp.send(0, frame_header(1, size))
    send_masked_stream(tcp, size)
    tcp.send(0, frame_header(8, 2) + masked(b"\x03\xe8"))
    tcp.send(1, b"\x88\x02\x03\xe8")
    tcp.close()
    w.close()


def test_100_mb_text_frame(tmp_path):
    path = tmp_path / "text100.pcap"
    write_text_frame(path, 100 * 1000 * 1000)
    report, peak = measure(path, Options())
    assert peak < bound(MiB), peak
    [session] = report.sessions
    assert (session.frames[0].text, session.frames[0].payload_bytes) == (1, 100_000_000 + 2)
    assert session.close.client.code == 1000 and session.close.server.code == 1000
    found = findings(report)
    assert found["message-too-big"].details == {"count": 1}
    [kept] = [m for m in session.messages if m.direction == 0]
    assert (kept.size, len(kept.text)) == (100_000_000, MiB) and set(kept.text) == {"A"}


def test_text_frame_work_is_linear_and_the_limit_configurable(tmp_path):
    works = []
    for size in (10, 20, 30):
        path = tmp_path / f"text{size}.pcap"
        write_text_frame(path, size * MiB)
        report, peak = measure(path, Options(max_message=64 * 1024))
        works.append(work(path, max_message=64 * 1024))
        assert peak < bound(64 * 1024), peak
    assert_linear(works)
    [kept] = [m for m in report.sessions[0].messages if m.direction == 0]
    assert (kept.size, len(kept.text)) == (30 * MiB, 64 * 1024)


# --- a connection picked up mid-stream that never shows a frame ------------------------------------

def test_midstream_sniffing_is_linear_in_tiny_segments(tmp_path):
    # No SYN, 1-byte segments that never look like WebSocket frames: the frame-sync search
    # used to rescan the whole buffer on every packet (quadratic: 40 s for 8000 bytes).
    works = []
    for n in (2000, 4000, 6000):
        path = tmp_path / f"tiny{n}.pcap"
        w = PcapWriter(path)
        tcp = Tcp(w, cport=50000, sport=8080)
        for _ in range(n):
            tcp._send(0, synth.ACK | synth.PSH, b"\xff")
        w.close()
        report, peak = measure(path, Options())
        works.append(work(path))
        assert report.sessions == []
    assert_linear(works, tolerance=0.2)


def test_server_only_stream_after_a_syn_is_not_buffered_forever(tmp_path):
    # Asymmetric capture: a SYN, then only server->client data.  Sniffing gives up after
    # 64 KiB instead of keeping everything in memory.
    path = tmp_path / "server-only.pcap"
    w = PcapWriter(path)
    tcp = Tcp(w)
    tcp.open()
    for _ in range(200):
        tcp._send(1, synth.ACK | synth.PSH, b"\x17" * SEGMENT)
    w.close()
    report, peak = measure(path, Options())
    assert peak < MiB, peak
    assert report.sessions == [] and report.stats["tcp"]["ignored_connections"] == 1


# --- JSON nested 100 000 deep ---------------------------------------------------------------------

def test_deeply_nested_json_messages_do_not_stop_the_analysis(tmp_path):
    # json.loads raises RecursionError on deep nesting; one such text message used to end the
    # whole capture's analysis as an "internal error".  Now it is a message that is not JSON.
    path = tmp_path / "deep.pcap"
    w = PcapWriter(path)
    tcp = Tcp(w)
    upgrade(tcp)
    tcp.send(1, ws_frame(1, b"[" * 100_000 + b"]" * 100_000, False))
    tcp.send(0, ws_frame(1, b'{"a":' * 900 + b'{"type": "KeepAlive"}' + b"}" * 900, True))
    tcp.send(1, ws_frame(1, b'{"type": "Metadata", "request_id": ' + b"[" * 70 + b"]" * 70 + b"}", False))
    tcp.send(0, ws_frame(8, b"\x03\xe8", True))
    tcp.send(1, ws_frame(8, b"\x03\xe8", False))
    tcp.close()
    w.close()
    report, peak = measure(path, Options())
    [session] = report.sessions
    from analyzer.redact import redact_session
    redact_session(session)
    json.dumps(Report(captures=[report]).to_json(), allow_nan=False)
    messages = session.to_json()["messages"]
    assert messages["server"] == {"(not JSON)": 2}
    assert messages["client"] == {"(not JSON)": 1}
    assert session.close.client.code == session.close.server.code == 1000
    assert peak < bound(512 * 1024)


# --- messages not kept are counted in the JSON ----------------------------------------------------

def test_server_text_beyond_the_budget_is_counted_as_messages_dropped(tmp_path):
    # 5 server text messages of 1000 characters with a 2500-character budget: the first 3 are
    # kept (the budget is checked before each one), the other 2 are counted, not lost silently.
    path = tmp_path / "budget.pcap"
    w = PcapWriter(path)
    tcp = Tcp(w)
    upgrade(tcp)
    for _ in range(5):
        tcp.send(1, ws_frame(1, b'{"type": "Results", "x": "' + b"r" * 972 + b'"}', False))
    tcp.close()
    w.close()
    report = analyze_capture(str(path), Options(max_kept_server_text=2500))
    [session] = report.sessions
    assert [len(m.text) for m in session.messages] == [1000, 1000, 1000]
    out = session.to_json()
    assert (out["messages_dropped"], out["anomalies_dropped"]) == (2, 0)
    assert report.stats["messages_not_kept"] == {"server_text_limit": 2500, "messages": 2}
