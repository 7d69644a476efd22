"""dgcap watch's parts without a live capture: the pcapng stream reader (through a real
pipe), the ring writer, the live per-session state and the dashboard, dumpcap's error
messages, the key-log follower.  The sample captures stand in for dumpcap's output.
"""
from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path

import pytest
from rich.console import Console

from analyzer.capture import CaptureError, open_capture
from analyzer.capture.stream import open_stream
from analyzer.live.capture import KeyLogFollower, classify_dumpcap_error, dumpcap_command
from analyzer.live.dashboard import Status, pair, render, tenths
from analyzer.live.ring import RingWriter
from analyzer.live.state import LiveState
from analyzer.model import CaptureReport
from analyzer.pipeline import CaptureAnalyzer, Options, analyze_capture
from analyzer.tls import KeyLog

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
MULTI = CAPTURES / "dg_multi.pcapng"
EMBEDDED = CAPTURES / "tls13_embedded_secrets.pcapng"


def pipe_of(data: bytes, chunk: int = 777):
    """A real pipe that receives `data` in odd-sized writes from another thread."""
    r, w = os.pipe()

    def feed():
        with os.fdopen(w, "wb", buffering=0) as f:
            for i in range(0, len(data), chunk):
                f.write(data[i:i + chunk])
    t = threading.Thread(target=feed, daemon=True)
    t.start()
    return os.fdopen(r, "rb")


class Tee:
    def __init__(self):
        self.blocks: list[tuple] = []

    def __call__(self, block_type, data):
        self.blocks.append((block_type, data))

    @property
    def data(self) -> bytes:
        return b"".join(d for _, d in self.blocks)


def file_packets(path):
    cap = open_capture(path)
    with cap:
        packets = [(n, ts, lt, bytes(d)) for n, ts, lt, d in cap.packets()]
    return packets, cap


# ------------------------------------------------------------------ stream reader
@pytest.mark.parametrize("path", [MULTI, EMBEDDED], ids=lambda p: p.name)
def test_stream_reads_what_the_file_reader_reads_and_tees_every_byte(path):
    data = path.read_bytes()
    tee = Tee()
    stream = open_stream(pipe_of(data), tee, name="-")
    got = [(n, ts, lt, bytes(d)) for n, ts, lt, d in stream.packets()]
    want, cap = file_packets(path)
    assert got == want
    assert (stream.packet_count, stream.truncated, stream.interfaces, stream.secrets) == \
        (cap.packet_count, None, cap.interfaces, cap.secrets)
    assert tee.data == data and stream.bytes_read == len(data)
    # One call per block, each a whole block: its length field matches.
    for block_type, raw in tee.blocks:
        assert int.from_bytes(raw[4:8], "little") == len(raw)
    assert tee.blocks[0][0] == 0x0A0D0D0A


def test_stream_with_embedded_secrets_feeds_the_pipeline_like_a_file():
    data = EMBEDDED.read_bytes()
    stream = open_stream(pipe_of(data), name=str(EMBEDDED))
    report = CaptureReport(path=str(EMBEDDED), format="pcapng")
    analyzer = CaptureAnalyzer(Options(), report)
    analyzer.use_secrets_from(stream)
    for pkt in stream.packets():
        analyzer.packet(*pkt)
    analyzer.finish()
    report.packets, report.bytes = stream.packet_count, stream.bytes_read
    want = analyze_capture(str(EMBEDDED)).to_json()
    assert report.to_json() == want
    assert want["sessions"][0]["transport"] == "tls-decrypted"


def test_stream_cut_inside_a_block_reports_what_the_file_reader_reports(tmp_path):
    data = MULTI.read_bytes()[:-1000]
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data)
    tee = Tee()
    stream = open_stream(pipe_of(data), tee, name=str(cut))
    n = sum(1 for _ in stream.packets())
    want, cap = file_packets(cut)
    assert n == len(want) == cap.packet_count
    assert stream.truncated == cap.truncated
    assert stream.truncated[1].startswith("file ends inside the pcapng block at byte ")
    assert tee.data == data and tee.blocks[-1][0] is None  # the partial block is kept too


@pytest.mark.parametrize("data, message", [
    (b"", "-: the capture stream ended before its first block (0 bytes)"),
    (bytes.fromhex("d4c3b2a1") + bytes(20), "-: not a pcapng stream (starts with d4 c3 b2 a1)"),
    (bytes.fromhex("0a0d0d0a") + b"\x1c\x00\x00\x00" + b"\x00" * 4,
     "-: not a readable pcapng stream: Section Header Block has a bad byte-order magic 00000000"),
])
def test_stream_that_is_not_pcapng(data, message):
    with pytest.raises(CaptureError) as e:
        open_stream(io.BytesIO(data))
    assert str(e.value) == message


# ------------------------------------------------------------------ ring writer
def multi_blocks():
    tee = Tee()
    stream = open_stream(io.BytesIO(MULTI.read_bytes()), tee)
    for _ in stream.packets():
        pass
    return tee.blocks, stream.packet_count


def test_ring_writer_without_cap_writes_the_stream_unchanged(tmp_path):
    blocks, _ = multi_blocks()
    w = RingWriter(str(tmp_path / "a.pcapng"))
    for b in blocks:
        w.block(*b)
    w.close()
    assert (tmp_path / "a.pcapng").read_bytes() == MULTI.read_bytes()
    assert (w.files, w.rotations, w.bytes_written) == ([str(tmp_path / "a.pcapng")], 0, MULTI.stat().st_size)


def test_ring_writer_rotates_keeps_n_files_each_a_valid_capture(tmp_path):
    blocks, packets = multi_blocks()
    header = sum(len(d) for t, d in blocks if t in (0x0A0D0D0A, 1))
    w = RingWriter(str(tmp_path / "ring.pcapng"), max_bytes=header + 20_000, files=3)
    for b in blocks:
        w.block(*b)
    w.close()
    names = [os.path.basename(f) for f in w.files]
    assert names == [f"ring_{n:05d}.pcapng" for n in range(w.rotations - 1, w.rotations + 2)]
    assert len(w.deleted) == w.rotations + 1 - 3 and w.rotations >= 4
    assert sorted(os.listdir(tmp_path)) == names  # the first file was renamed, old ones deleted
    counts = []
    for f in w.files:
        assert os.path.getsize(f) <= header + 20_000
        got, cap = file_packets(f)
        assert cap.truncated is None and cap.interfaces == [(1, 262144, 1_000_000_000)]  # lo: Ethernet, ns
        counts.append(len(got))
    # The newest files hold the newest packets, in order, none lost between them.
    all_packets, _ = file_packets(MULTI)
    tail = [p[3] for p in all_packets[-sum(counts):]]
    assert [p[3] for f in w.files for p in file_packets(f)[0]] == tail


def test_ring_writer_never_rotates_or_removes_a_fifo(tmp_path):
    # A FIFO (like /dev/null, not a regular file) is written as a stream.
    blocks, _ = multi_blocks()
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    w = RingWriter(str(fifo), max_bytes=10_000, files=2)
    for b in blocks:
        w.block(*b)
    w.close()
    reader.join(10)
    assert received == [MULTI.read_bytes()]
    assert (w.regular, w.max_bytes, w.rotations, w.files) == (False, None, 0, [str(fifo)])
    assert os.listdir(tmp_path) == ["out.fifo"]


def test_ring_writer_opens_its_file_at_the_first_block(tmp_path):
    # A capture that never starts (no permission...) must not truncate an existing file.
    existing = tmp_path / "old.pcapng"
    existing.write_bytes(MULTI.read_bytes())
    w = RingWriter(str(existing))
    w.flush()
    w.close()
    assert existing.read_bytes() == MULTI.read_bytes() and w.files == []
    w = RingWriter(str(tmp_path / "new.pcapng"))
    w.close()
    assert os.listdir(tmp_path) == ["old.pcapng"]


# ------------------------------------------------------------------ live state
def replay(path, upto=None, gap_threshold=10.0, options=None):
    options = options or Options(gap_threshold=gap_threshold)
    analyzer = CaptureAnalyzer(options)
    state = LiveState(gap_threshold, analyzer.sessions)
    state.install(options)
    packets, _ = file_packets(path)
    for p in packets:
        if upto is not None and p[0] > upto:
            break
        analyzer.packet(*p)
    return analyzer, state, {p[0]: p[1] for p in packets}


def test_live_state_net0001_silence_rate_and_frozen_end():
    expected = json.loads((CAPTURES / "dg_net0001.expected.json").read_text())["sessions"][0]
    gap = expected["gaps"][0]
    last_audio, server_close = gap["after_frame"], gap["before_frame"]  # 26, 30
    first_audio = expected["frames"]["client"]["first_frame"]
    analyzer, state, t = replay(CAPTURES / "dg_net0001.pcap", upto=last_audio)
    (s,) = analyzer.sessions

    v = state.view(s, t[last_audio], newest_packet=t[last_audio])
    assert (v.number, v.endpoint, v.handshake, v.status, v.websocket) == (1, "listen", "101 Switching Protocols",
                                                                          101, True)
    assert v.request_id == expected["handshake"]["dg_request_id"]
    # 10 chunks of 3200 bytes over the time from the first to the last (younger than the window)
    assert v.rate == 32000 / (t[last_audio] - t[first_audio])
    assert v.realtime_factor == v.rate / 32000  # linear16, 16 kHz, mono
    assert (v.silent, v.silent_level, v.close, v.ended, v.server_messages) == (0.0, "ok", "open", False, 0)

    # No packet for 2 s: the rate window ends 1 s after the newest packet (1 s of delivery delay)
    v = state.view(s, t[last_audio] + 2.0, newest_packet=t[last_audio])
    assert v.rate == 32000 / (t[last_audio] + 1.0 - t[first_audio])
    assert v.silent == (t[last_audio] + 2.0) - t[last_audio]
    assert v.silent_level == "ok"
    assert state.view(s, t[last_audio] + 5.0).silent_level == "warn"  # half the threshold
    assert state.view(s, t[last_audio] + 9.99).silent_level == "warn"
    assert state.view(s, t[last_audio] + 10.01).silent_level == "silent"
    assert state.view(s, t[last_audio] + 9.0, newest_packet=t[last_audio]).rate == 0.0  # window is past

    # The rest: server close 1011, client echo, FIN.  The clock stops at the server's close.
    packets, _ = file_packets(CAPTURES / "dg_net0001.pcap")
    for p in packets[last_audio:]:
        analyzer.packet(*p)
    v = state.view(s, t[server_close] + 30.0)
    assert v.silent == t[server_close] - t[last_audio]
    assert round(v.silent, 6) == gap["seconds"]
    assert (v.silent_level, v.close, v.close_code, v.ended, v.server_messages) == \
        ("silent", "S:1011 C:1011 FIN", 1011, True, 1)
    assert v.findings == ["deepgram-close", "client-gap", "audio-gap"]  # in the rules' order
    assert [(n, f.id) for n, f in state.recent_findings(10)] == [(1, f) for f in v.findings]
    assert state.finding_counts == {"error": 1, "warning": 2, "info": 0}


def test_live_state_tls_without_keys_uses_records():
    expected = json.loads((CAPTURES / "tls13_net0001.expected.json").read_text())["sessions"][0]
    gap = expected["gaps"][0]
    analyzer, state, t = replay(CAPTURES / "tls13_net0001.pcap", upto=gap["before_frame"] - 1)
    (s,) = analyzer.sessions
    v = state.view(s, t[gap["before_frame"]])
    assert (v.transport, v.endpoint, v.handshake, v.request_id, v.websocket, v.realtime_factor) == \
        ("tls", "?", "TLS (no keys)", None, False, None)
    assert round(v.silent, 6) == gap["seconds"] and v.silent_level == "silent"
    assert v.server_messages == state.stats(s).server_records > 0


def test_live_state_with_keys_sees_frames():
    keys = CAPTURES / "tls13_net0001.keys"
    expected = json.loads((CAPTURES / "tls13_net0001.expected.json").read_text())["sessions"][0]
    analyzer, state, t = replay(CAPTURES / "tls13_net0001.pcap", options=Options(keylog=str(keys)))
    (s,) = analyzer.sessions
    v = state.view(s, t[expected["gaps"][0]["before_frame"]] + 5)
    assert (v.transport, v.endpoint, v.status, v.close) == ("tls-decrypted", "listen", 101, "S:1011 C:1011 FIN")
    assert round(v.silent, 6) == expected["gaps"][0]["seconds"]
    st = state.stats(s)
    assert st.audio_bytes == 32000 and st.server_messages == expected["frames"]["server"]["text"]


def test_session_numbers_follow_the_final_report_order():
    analyzer, state, t = replay(MULTI)
    analyzer.finish()
    views = state.views(max(t.values()))
    assert [(v.number, v.client, v.status) for v in views] == \
        [(s.index, s.client, s.handshake.status) for s in analyzer.report.sessions]
    assert [v.close for v in views] == ["S:1000 C:1000 FIN", "FIN", "S:1000 C:1000 FIN"]
    assert [v.silent is None for v in views] == [False, True, False]  # the 401 never opened


def test_install_keeps_an_existing_session_hook():
    seen = []
    options = Options(session_hook=lambda s: seen.append(s.client))
    analyzer, state, _ = replay(CAPTURES / "dg_success.pcap", options=options)
    analyzer.finish()
    assert seen == [analyzer.sessions[0].client] and state.stats(analyzer.sessions[0]).concluded


# ------------------------------------------------------------------ dashboard
def dashboard_text(live, views, width=200, **status) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(render(Status(interface="lo", bpf="tcp port 18004", **status), live, views))
    return console.export_text()


def test_dashboard_rows_and_findings():
    expected = json.loads((CAPTURES / "dg_net0001.expected.json").read_text())["sessions"][0]
    analyzer, state, t = replay(CAPTURES / "dg_net0001.pcap")
    end = t[expected["close"]["server"]["frame"]]
    text = dashboard_text(state, state.views(end + 60), packets=35)
    rid = expected["handshake"]["dg_request_id"]
    assert "dgcap watch lo  filter: tcp port 18004  00:00  35 packets  1 session(s), 0 active  1 error(s)  " \
           "2 warning(s)" in text
    row = next(ln for ln in text.splitlines() if rid in ln)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert expected["server"] == "127.0.0.1:18004"
    # Ended: the whole stream's audio rate, as the report gives it (10 chunks of 100 ms in 1.0 s).
    (s,) = analyzer.sessions
    first, last = expected["frames"]["client"]["first_frame"], expected["gaps"][0]["after_frame"]
    assert s.audio.pace.bytes_per_second == round(32000 / (t[last] - t[first] + 0.1), 1) == 31986.6
    assert cells == ["1", f"{expected['client']} → :18004", "listen", "101", rid, "32.0 kB/s",
                     "1.00×", f"{tenths(expected['gaps'][0]['seconds'])} SILENT", "-", "1", "S:1011 C:1011 FIN"]
    assert "#1  error    deepgram-close  Deepgram closed the stream with 1011 NET-0001" in text
    assert "Sessions (silence: yellow at 5 s, red over 10 s)" in text
    assert ("silent: since the client's last audio or text frame (Deepgram's NET-0001 clock; pings and pongs do "
            "not reset it). audio: payload bytes/s, inflated, over the last 3 s (the whole stream once it ended)") \
        in text


def test_dashboard_before_any_session_and_while_stopping():
    state = LiveState(10.0, [])
    text = dashboard_text(state, [], state="stopping", writing="x.pcapng", written=3 << 20)
    assert text.splitlines()[1:] == ["writing x.pcapng (3.0 MiB)", "stopping…",
                                     "No WebSocket session yet: start your client."]


@pytest.mark.parametrize("client, server, shown", [
    ("127.0.0.1:5000", "127.0.0.1:443", "127.0.0.1:5000 → :443"),
    ("[::1]:5000", "[::1]:443", "[::1]:5000 → :443"),
    ("10.0.0.2:5000", "35.1.2.3:443", "10.0.0.2:5000 → 35.1.2.3:443"),
])
def test_pair_drops_the_repeated_host(client, server, shown):
    assert pair(client, server) == shown


@pytest.mark.parametrize("seconds, shown", [(1.46, "1.4 s"), (1.5, "1.5 s"), (2.3, "2.3 s"),
                                            (2.99, "2.9 s"), (10.007501, "10.0 s"), (0.0, "0.0 s")])
def test_tenths_cut_not_rounded(seconds, shown):
    assert tenths(seconds) == shown


# ------------------------------------------------------------------ dumpcap
def test_dumpcap_command():
    assert dumpcap_command("/usr/bin/dumpcap", "lo", "tcp port 443") == \
        ["/usr/bin/dumpcap", "-i", "lo", "-f", "tcp port 443", "-q", "-w", "-"]


@pytest.mark.parametrize("lines, kind, message", [
    (["Capturing on 'nonexist'", 'dumpcap: There is no device named "nonexist".', "(No such device exists)"],
     "no-interface", "no interface named 'eth9' (list them with: dumpcap -D)"),
    (["Capturing on 'Loopback: lo'", "dumpcap: Invalid capture filter \"tcp port\" for interface 'lo'.", "",
      "That string isn't a valid capture filter (can't parse filter expression: syntax error).",
      "See the User's Guide for a description of the capture filter syntax."],
     "bad-filter", "invalid capture filter 'tcp port': can't parse filter expression: syntax error"),
    (["Capturing on 'lo'", "dumpcap: The capture session could not be initiated (boom)."],
     "failed", "dumpcap failed on eth9: The capture session could not be initiated (boom)."),
    ([], "failed", "dumpcap failed on eth9: exit status 1"),
])
def test_dumpcap_errors(lines, kind, message):
    err = classify_dumpcap_error(lines, "eth9", "tcp port", "/usr/bin/dumpcap", 1)
    assert (err.kind, str(err)) == (kind, message)


def test_keylog_follower_reads_whole_new_lines(tmp_path):
    path = tmp_path / "keys.log"
    keylog = KeyLog()
    follower = KeyLogFollower(str(path), keylog)
    assert follower.poll() == 0  # not there yet
    line = "CLIENT_RANDOM " + "11" * 32 + " " + "22" * 48 + "\n"
    path.write_text(line[:40])
    assert follower.poll() == 0 and len(keylog) == 0  # half a line waits
    with open(path, "a") as f:
        f.write(line[40:] + "# comment\n")
    assert follower.poll() == 1 and len(keylog) == 1
    assert follower.poll() == 0
    path.write_text(line.replace("11", "33", 32))  # rewritten from scratch (smaller: truncated)
    assert follower.poll() == 1 and len(keylog) == 2


def test_live_silence_counts_data_frames_pings_are_shown_but_do_not_reset_it():
    """NET-0001's clock: a client that pauses its audio while pinging every 2 s is silent."""
    from analyzer.events import HandshakeRequest, HandshakeResponse
    from analyzer.http import Request, Response
    from analyzer.model import CLIENT, Session
    from analyzer.session import SessionBuilder
    from analyzer.websocket import OP_BINARY, OP_PING, Frame, Message

    T = 1_000_000.0
    options = Options()
    state = LiveState(10.0, [])
    state.install(options)
    session = Session(0, "127.0.0.1:5000", "127.0.0.1:18004", 0)
    state.sessions.append(session)
    b = SessionBuilder(session, 10.0, hooks=options)
    state.builder(b)
    b.request(HandshakeRequest(Request("GET", "/v1/listen?encoding=linear16&sample_rate=16000", "/v1/listen",
                                       {"encoding": "linear16", "sample_rate": "16000"}, "HTTP/1.1", []), 1, T))
    b.response(HandshakeResponse(Response("HTTP/1.1", 101, "Switching Protocols", []), 2, T))

    def send(no, at, opcode, length):
        b.ws_frame(CLIENT, Frame(True, 0, opcode, True, None, length, 2, no, at, no, at))
        b.ws_messages(CLIENT, [Message(opcode, b"", length, length, False, no, at, no, at)])

    send(3, T + 1.0, OP_BINARY, 3200)
    for i, at in enumerate((3.0, 5.0, 7.0, 9.0, 11.0)):
        send(4 + i, T + at, OP_PING, 0)
    v = state.view(session, T + 11.5)
    assert (v.silent, v.silent_level, v.pings, v.ping_age) == (10.5, "silent", 5, 0.5)
    text = dashboard_text(state, [v])
    row = next(ln for ln in text.splitlines() if "127.0.0.1:5000" in ln)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[7:9] == ["10.5 s SILENT", "5 (0.5 s ago)"]
    send(9, T + 12.0, OP_BINARY, 3200)
    v = state.view(session, T + 12.0)
    assert (v.silent, v.silent_level, v.pings, v.ping_age) == (0.0, "ok", 5, 1.0)


def test_deflate_dashboard_timeline_and_report_agree_on_the_audio_rate():
    """dg_deflate: 20 chunks of 3,200 bytes (100 ms of linear16 each) sent compressed.  The
    dashboard, the HTML timeline and the report's Stream section all count the inflated
    payload, so they show the same rate: 32.0 kB/s (the wire carried ~3,000 bytes a chunk)."""
    from analyzer.report.content import stream_rows
    from analyzer.report.egress_text import egress_line
    from analyzer.report.timeline import timeline_svg

    path = CAPTURES / "dg_deflate.pcap"
    report = analyze_capture(str(path))  # what `dgcap report` builds
    (rs,) = report.sessions
    audio = rs.to_json()["audio"]
    assert (audio["bytes"], audio["chunks"], audio["realtime_factor"]) == (64000, 20, 0.999)
    assert rs.frames[0].payload_bytes < 64000  # compressed on the wire
    # 64,000 bytes over the first to the last chunk plus its 100 ms
    assert audio["bytes_per_second"] == round(64000 / (rs.audio.pace.last_time - rs.audio.pace.first_time + 0.1),
                                              1) == 31982.1
    (row,) = [r for r in stream_rows(rs) if r.label == "Audio"]
    assert "64,000 bytes (payload, inflated) in 20 chunks = 2.0 s at 32.0 kB/s, real-time factor 0.999" in row.value
    # The egress line counts what the wire carried, and says so.
    assert egress_line(rs) == ("Client data left the network: 60.3 kB in 24 frames over 2.4 s (25.1 kB/s "
                               "compressed on the wire) to 127.0.0.1 127.0.0.1:18010 (Host header in No. 4).")

    # The timeline: 1 s bins of inflated audio; the full second holds 10 chunks.
    assert max(b[4] for b in rs.timeline.bins.values()) == 32000
    svg, _ = timeline_svg(rs, [], "s1")
    assert "max 32.0 kB/s" in svg

    # The dashboard fed the same packets (the watch's LiveState): while the stream runs, the
    # window's inflated bytes; once it ended, the report's number.
    analyzer, state, t = replay(path, upto=50)  # frame 50: the last audio chunk
    (s,) = analyzer.sessions
    v = state.view(s, t[50], newest_packet=t[50])
    assert v.rate == 64000 / (t[50] - t[10])  # frames 10..50, younger than the window
    assert state.stats(s).audio_bytes == 64000
    analyzer, state, t = replay(path)
    (s,) = analyzer.sessions
    v = state.view(s, max(t.values()) + 5)
    assert (v.ended, v.rate, v.realtime_factor) == (True, audio["bytes_per_second"], audio["realtime_factor"])
    row = next(ln for ln in dashboard_text(state, [v]).splitlines() if "listen" in ln)
    assert [c.strip() for c in row.split("│")[6:8]] == ["32.0 kB/s", "1.00×"]
