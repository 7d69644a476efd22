"""Where tshark (4.0.17, the version CI installs) and the native engine see a capture differently.

Each case is a small synthetic capture built here byte by byte (a real TCP conversation: SYN,
handshake, frames, FIN), so the evidence is exact and reproducible.  Two kinds of cases:

* tshark behaviours the tshark engine works around: both engines must agree;
* tshark limitations the engine cannot work around: the exact differences `dgcap verify`
  reports are pinned, with what each side shows and why the native reading is the right one.

docs/tshark-differences.md lists the same cases for readers.
"""
from __future__ import annotations

import base64
import hashlib
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from analyzer.capture import open_capture
from tests.support import capture_synth as S
from analyzer.engines.compare import compare_reports
from analyzer.engines.tshark import analyze_capture_tshark
from analyzer.pipeline import Options, analyze_capture

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None,
                                reason="tshark not installed (apt-get install tshark); the tshark engine needs it")

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
MASK = b"\x01\x02\x03\x04"
PORT = 18099
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


# -- building captures -----------------------------------------------------------------------

def ws_frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0, mask=None) -> bytes:
    """One RFC 6455 frame (rsv: RSV1 = 4)."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        header = bytes([b0, m | n])
    elif n < 65536:
        header = bytes([b0, m | 126]) + struct.pack("!H", n)
    else:
        header = bytes([b0, m | 127]) + struct.pack("!Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        header += mask
    return header + payload


def deflate(data: bytes) -> bytes:
    """permessage-deflate payload of one message (no context takeover)."""
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


def handshake(extensions=None) -> tuple[bytes, bytes]:
    ext = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    request = (f"GET /v1/listen?encoding=linear16&sample_rate=16000 HTTP/1.1\r\nHost: localhost:{PORT}\r\n"
               f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
               f"Sec-WebSocket-Version: 13\r\n{ext}\r\n").encode()
    accept = base64.b64encode(hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    response = (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept.decode()}\r\n{ext}\r\n").encode()
    return request, response


def conversation(segments, order=None, drop=(), duplicate=None, t0=1_700_000_000.0, step=0.01) -> bytes:
    """A pcap of one TCP connection 10.0.0.1:40000 -> 10.0.0.2:18099.

    segments: [("c" | "s", bytes)] in stream order, one TCP segment each.  Packets: SYN,
    SYN-ACK, ACK (No. 1-3), then the segments (No. 4 on) in `order` (indexes), without those in
    `drop`, with `duplicate[i]` sent again right after segment i (same sequence number), then
    the server's FIN, the client's FIN and the last ACK.
    """
    cseq, sseq = 1001, 5001
    planned = []
    for side, data in segments:
        if side == "c":
            planned.append((True, cseq, sseq, data))
            cseq += len(data)
        else:
            planned.append((False, sseq, cseq, data))
            sseq += len(data)
    records, t = [], t0

    def emit(client: bool, seq: int, ack: int, flags: int, payload: bytes = b"") -> None:
        nonlocal t
        if client:
            ip = S.ipv4(S.tcp(40000, PORT, seq, ack, flags, payload), S.CLIENT_IP, S.SERVER_IP)
        else:
            ip = S.ipv4(S.tcp(PORT, 40000, seq, ack, flags, payload), S.SERVER_IP, S.CLIENT_IP)
        sec = int(t)
        records.append((sec, round((t - sec) * 1e6), S.ethernet(ip)))
        t += step

    emit(True, 1000, 0, S.SYN)
    emit(False, 5000, 1001, S.SYN | S.ACK)
    emit(True, 1001, 5001, S.ACK)
    for i in (order if order is not None else range(len(planned))):
        if i in drop:
            continue
        client, seq, ack, data = planned[i]
        emit(client, seq, ack, S.ACK | S.PSH, data)
        if duplicate and i in duplicate:
            emit(client, seq, ack, S.ACK | S.PSH, duplicate[i])
    emit(False, sseq, cseq, S.FIN | S.ACK)
    emit(True, cseq, sseq + 1, S.FIN | S.ACK)
    emit(False, sseq + 1, cseq + 1, S.ACK)
    return S.pcap(records)


def close_frames():
    return [("c", ws_frame(8, struct.pack("!H", 1000), mask=MASK)), ("s", ws_frame(8, struct.pack("!H", 1000)))]


def audio_frame(i: int) -> bytes:
    return ws_frame(2, bytes((i * 7 + j) & 0xFF for j in range(3072 + i)), mask=MASK)


def audio_session(n: int = 6):
    request, response = handshake()
    return ([("c", request), ("s", response)] + [("c", audio_frame(i)) for i in range(n)]
            + [("c", ws_frame(1, b'{"type":"CloseStream"}', mask=MASK))] + close_frames())


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def both(path: str, **kw):
    native = analyze_capture(path, Options(**kw))
    return native, analyze_capture_tshark(path, Options(**kw), native=native)


def differences(path: str, **kw) -> list[tuple]:
    native, other = both(path, **kw)
    return [(d.tcp_stream, d.name, d.native, d.tshark) for d in compare_reports(native, other)]


def tshark_fields(path: str, *args: str, fields=("frame.number", "websocket.opcode")) -> list[list[str]]:
    cmd = ["tshark", "-r", path, "-Y", "websocket", "-T", "fields"] + list(args)
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def frame_count(rows) -> int:
    return sum(len(r[1].split(",")) for r in rows)


# -- worked around: the engines agree ---------------------------------------------------------

def test_midstream_needs_decode_as(tmp_path):
    """tshark's WebSocket heuristic is off by default ("tcp websocket F" in
    `tshark -G heuristic-decodes`): a connection picked up after its handshake shows no
    WebSocket at all.  The engine learns the port from the native engine and passes
    `-d tcp.port==18001,websocket`; then both see the same 40 frames."""
    with open_capture(str(CAPTURES / "dg_success.pcap")) as cap:
        records = [(ts, bytes(data)) for _, ts, _, data in cap.packets()]
    cut = records[8:]  # dg_success.pcap from No. 9: after the 101 and the first frames
    path = write(tmp_path, "midstream.pcap", S.pcap(
        [(int(ts), round((ts - int(ts)) * 1e6), data) for ts, data in cut]))
    assert tshark_fields(path) == []
    assert frame_count(tshark_fields(path, "-d", "tcp.port==18001,websocket")) == 40
    native, other = both(path)
    assert other.stats["tshark"]["decode_as"] == ["tcp.port==18001,websocket"]
    (s,) = other.sessions
    assert (s.midstream, s.frames[0].total + s.frames[1].total) == (True, 40)
    assert compare_reports(native, other) == []


def test_out_of_order_segments(tmp_path):
    """tshark 4.0 does not reorder TCP segments by default (tcp.reassemble_out_of_order FALSE):
    with the 2nd and 3rd audio segments swapped (No. 7 carries audio 2, No. 8 audio 1), it shows
    5 binary frames of 6.  The engine turns reordering on; then it finds all 6, as native does."""
    path = write(tmp_path, "reordered.pcap", conversation(audio_session(), order=[0, 1, 2, 4, 3, 5, 6, 7, 8, 9, 10]))
    # 9 frames in all (6 audio, CloseStream, 2 closes); tshark's default loses one of the swapped.
    assert frame_count(tshark_fields(path)) == 8
    assert frame_count(tshark_fields(path, "-o", "tcp.reassemble_out_of_order:TRUE")) == 9
    native, other = both(path)
    assert other.sessions[0].frames[0].binary == native.sessions[0].frames[0].binary == 6
    assert compare_reports(native, other) == []


def _fragmented_after_text():
    request, response = handshake()
    return [("c", request), ("s", response), ("c", ws_frame(1, b'{"type":"KeepAlive"}', mask=MASK)),
            ("c", ws_frame(2, b"\x00\x01" * 10, fin=False, mask=MASK)), ("c", ws_frame(0, b"\x02\x03" * 10, mask=MASK)),
            ("s", ws_frame(2, b"\x00\x01" * 4, fin=False)), ("s", ws_frame(0, b"\x02\x03" * 4)),
            ("s", ws_frame(1, b"hello ", fin=False)), ("s", ws_frame(0, b"world"))] + close_frames()


def test_reassembled_message_types(tmp_path):
    """A fragmented message is shown by tshark only at its final fragment, reassembled; its
    type is the opcode tshark remembered for it.  Wireshark's packet-websocket.c after 4.0
    remembers the opcode (and the RSV1 "compressed" bit) of the *connection's* first frame
    (first_frag is only set when the conversation's WebSocket data is created), so there a
    reassembled binary message after a text frame would be dissected as text.  4.0.17 keeps the
    first fragment's opcode: here the client's binary message (No. 8) is data, the server's
    binary (No. 10) data and its text (No. 12) text.  The engine never takes a message type from
    tshark's reassembly anyway: it follows the opcode of each frame header, as native does."""
    path = write(tmp_path, "fragments.pcap", conversation(_fragmented_after_text()))
    rows = tshark_fields(path, fields=("frame.number", "websocket.opcode", "data.data", "websocket.payload.text"))
    shown = {r[0]: (r[2], r[3]) for r in rows}
    assert shown == {"6": ("", '{"type":"KeepAlive"}'), "7": ("", ""),
                     "8": ("0001" * 10 + "0203" * 10, ""), "9": ("", ""),
                     "10": ("0001" * 4 + "0203" * 4, ""), "11": ("", ""),
                     "12": ("", "hello world"), "13": ("", ""), "14": ("", "")}
    messages = []
    native = analyze_capture(path)
    other = analyze_capture_tshark(path, Options(message_hook=lambda s, d, m: messages.append(
        (d, m.opcode, m.frame, m.size, bytes(m.data)))), native=native)
    assert messages == [(0, 1, 6, 20, b'{"type":"KeepAlive"}'),
                        (0, 2, 8, 40, b"\x00\x01" * 10 + b"\x02\x03" * 10),
                        (1, 2, 10, 16, b"\x00\x01" * 4 + b"\x02\x03" * 4),
                        (1, 1, 12, 11, b"hello world"),
                        (0, 8, 13, 2, b"\x03\xe8"), (1, 8, 14, 2, b"\x03\xe8")]
    assert compare_reports(native, other) == []


def test_deflate_first_frame_uncompressed(tmp_path):
    """permessage-deflate where the connection's first frame is an uncompressed ping and a later
    text message is sent uncompressed (RSV1 = 0 is allowed per message, RFC 7692 §6).  Wireshark
    after 4.0 decides decompression from the connection's first frame (first_frag_pmc); 4.0.17
    decompresses per message, and both engines read the same texts."""
    request, response = handshake("permessage-deflate; client_no_context_takeover; server_no_context_takeover")
    path = write(tmp_path, "deflate.pcap", conversation(
        [("c", request), ("s", response), ("s", ws_frame(9, b"hi")), ("c", ws_frame(10, b"hi", mask=MASK)),
         ("c", ws_frame(1, deflate(b'{"type":"KeepAlive"}'), rsv=4, mask=MASK)),
         ("c", ws_frame(1, b'{"type":"CloseStream"}', mask=MASK)),
         ("s", ws_frame(1, deflate(b'{"type":"Metadata","request_id":"x"}'), rsv=4))] + close_frames()))
    texts = []
    native = analyze_capture(path)
    other = analyze_capture_tshark(path, Options(message_hook=lambda s, d, m: texts.append(
        (d, m.frame, m.compressed, m.size, bytes(m.data)))), native=native)
    assert [t for t in texts if t[4][:1] == b"{"] == [
        (0, 8, True, 20, b'{"type":"KeepAlive"}'), (0, 9, False, 22, b'{"type":"CloseStream"}'),
        (1, 10, True, 36, b'{"type":"Metadata","request_id":"x"}')]
    assert other.sessions[0].frames[0].payload_bytes == native.sessions[0].frames[0].payload_bytes == 2 + 22 + 22 + 2
    assert compare_reports(native, other) == []


# -- limitations: pinned differences ---------------------------------------------------------

def test_client_frame_before_the_101(tmp_path):
    """The client sends a KeepAlive text frame (No. 5) right after its request, before the 101
    (No. 6).  RFC 6455 §4.1 tells clients to wait, but a server reads those bytes as a frame, and
    so does native (it keeps the client's bytes after the request and parses them once the 101
    arrives).  tshark's HTTP dissector owns the stream until the response: No. 5 shows as a
    continuation of the request, no WebSocket frame."""
    request, response = handshake()
    segments = [("c", request), ("c", ws_frame(1, b'{"type":"KeepAlive"}', mask=MASK)), ("s", response)] + audio_session()[2:]
    path = write(tmp_path, "early.pcap", conversation(segments))
    assert [r[0] for r in tshark_fields(path)][:2] == ["7", "8"]
    assert differences(path) == [
        (0, "frames.client.text", 2, 1),
        (0, "frames.client.payload_bytes", 20 + sum(3072 + i for i in range(6)) + 22 + 2, sum(3072 + i for i in range(6)) + 22 + 2),
        (0, "frames.client.first_frame", 5, 7),
        (0, "messages", {"client": {"KeepAlive": 1, "audio": 6, "CloseStream": 1}, "server": {}},
         {"client": {"audio": 6, "CloseStream": 1}, "server": {}}),
    ]


def test_close_frame_with_one_byte(tmp_path):
    """The server's close frame (No. 14) carries one byte (0x03).  RFC 6455 §5.5.1: a close
    body starts with a 2-byte code, so one byte is a protocol error, which native reports
    (close-payload-one-byte).  tshark's tree shows only "Close" with no status code and no
    expert item: the byte is not visible to the engine."""
    segments = audio_session()[:-2] + [("c", ws_frame(8, struct.pack("!H", 1000), mask=MASK)), ("s", ws_frame(8, b"\x03"))]
    path = write(tmp_path, "close1.pcap", conversation(segments))
    assert differences(path) == [
        (0, "findings", ["close-payload-one-byte", "closed-before-metadata"], ["closed-before-metadata"]),
        (0, "findings.close-payload-one-byte.frames", [14], None),
    ]


def test_conflicting_retransmission(tmp_path):
    """Audio frame 0 (No. 6) is sent again (No. 7) with one byte changed.  Both engines use the
    first copy (the frames and audio agree), but only native compares the copies and reports
    tcp-overlap-conflict: tshark flags No. 7 as a retransmission without comparing contents
    (tcp.segment.overlap.conflict only covers overlaps inside one reassembled PDU)."""
    segments = audio_session()
    changed = bytearray(segments[2][1])
    changed[20] ^= 0xFF
    path = write(tmp_path, "conflict.pcap", conversation(segments, duplicate={2: bytes(changed)}))
    assert differences(path) == [
        (0, "findings", ["closed-before-metadata", "tcp-overlap-conflict"], ["closed-before-metadata"]),
        (0, "findings.tcp-overlap-conflict.frames", [7], None),
    ]


def test_missing_segment(tmp_path):
    """Audio frame 2 is not in the capture (the segment was dropped by the capture, No. 8
    follows No. 7 with a 3082-byte gap).  With reordering on (the engine's setting, see
    test_out_of_order_segments) tshark waits for the missing bytes for good: nothing the client
    sent after the hole is dissected, not even its close frame.  Native reports the hole,
    resynchronises on the next frame header and finds audio 3-5, CloseStream and the close.
    Native attributes those frames to No. 13, the packet after which it stopped waiting, not to
    the packets that carried them (No. 8-12): a native-engine question, noted in
    docs/tshark-differences.md."""
    path = write(tmp_path, "hole.pcap", conversation(audio_session(), drop={4}))
    diffs = dict(((name, (a, b)) for _, name, a, b in differences(path)))
    assert diffs["frames.client.binary"] == (5, 2)
    assert diffs["frames.client.close"] == (1, 0)
    assert diffs["close.client.code"] == (1000, None)
    assert diffs["findings.tcp-hole.frames"] == ([13], [8])
    assert diffs["findings"] == (["closed-before-metadata", "data-missing", "resync", "sync-lost",
                                  "tcp-hole"], ["close-unanswered", "data-missing", "tcp-hole"])
    # Both engines count the same missing bytes; each names the packet it found the gap at.
    assert diffs["findings.data-missing.frames"] == ([13], [8])
    # tshark's own default (no reordering) gets past this hole only because every frame here
    # starts a segment: 5 audio frames, CloseStream and both closes.
    assert frame_count(tshark_fields(path, "-d", f"tcp.port=={PORT},http")) == 8


def test_missing_segment_inside_frames(tmp_path):
    """Why the engine turns tshark's reordering on even though it stalls after a hole: 8 audio
    frames of 3200 bytes cut into 1448-byte segments, segment 5 lost (the gap is inside a frame).
    With tshark's default, the segments after the hole are parsed from their first byte, in the
    middle of a frame: dozens of bogus frames with reserved opcodes.  With reordering on, tshark
    shows only what came before the hole (audio 0) and the server's close.  Native reports the
    hole, marks the frame cut by it and resynchronises: 7 binary frames (one with payload missing)."""
    request, response = handshake()
    stream = b"".join(ws_frame(2, bytes((i * 7 + j) & 0xFF for j in range(3200)), mask=MASK) for i in range(8))
    chunks = [("c", stream[i:i + 1448]) for i in range(0, len(stream), 1448)]
    path = write(tmp_path, "hole-inside.pcap", conversation(
        [("c", request), ("s", response)] + chunks + [("c", ws_frame(1, b'{"type":"CloseStream"}', mask=MASK))]
        + close_frames(), drop={6}))
    default = tshark_fields(path, "-d", f"tcp.port=={PORT},http")
    opcodes = [int(op) for row in default for op in row[1].split(",")]
    assert len(opcodes) > 50 and {3, 4, 5, 6, 7, 11, 12, 13, 14, 15} & set(opcodes)
    native, other = both(path)
    assert (native.sessions[0].frames[0].binary, other.sessions[0].frames[0].binary) == (7, 1)
    assert "frame-payload-missing" in [f.id for f in native.sessions[0].findings]
    assert (other.sessions[0].close.client, other.sessions[0].close.server.code) == (None, 1000)
