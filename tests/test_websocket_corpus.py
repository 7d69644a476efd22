"""The WebSocket layer alone against the public corpus (../shared/corpus/public).

A tiny pcap/pcapng reader and in-order TCP reassembly feed FrameParser and
MessageAssembler directly, so these tests exercise this package and nothing else;
the whole pipeline is checked by test_conformance.py.  Zeek's events.out traces
are compared line by line (Zeek prints the first 120 payload bytes of each frame).
"""
from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from analyzer.websocket import OPCODE_NAMES, FrameParser, Message, MessageAssembler

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "public"
ZEEK = CORPUS / "zeek"
SURICATA = CORPUS / "suricata-verify"

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")


# -- just enough capture reading -------------------------------------------------

def read_packets(path: Path) -> list[tuple[float, int, bytes]]:
    """(timestamp, link type, bytes) for every packet of a pcap or pcapng file."""
    data = path.read_bytes()
    packets = []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = "<" if magic[0] in (0xD4, 0x4D) else ">"
        scale = 1e9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e6
        link = struct.unpack(order + "I", data[20:24])[0]
        pos = 24
        while pos + 16 <= len(data):
            sec, frac, captured, _ = struct.unpack(order + "IIII", data[pos:pos + 16])
            packets.append((sec + frac / scale, link, data[pos + 16:pos + 16 + captured]))
            pos += 16 + captured
        return packets
    pos, order, links = 0, "<", []
    while pos + 12 <= len(data):
        block_type = struct.unpack(order + "I", data[pos:pos + 4])[0]
        if block_type == 0x0A0D0D0A:
            order = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        block_len = struct.unpack(order + "I", data[pos + 4:pos + 8])[0]
        if block_type == 1:
            links.append(struct.unpack(order + "H", data[pos + 8:pos + 10])[0])
        elif block_type == 6:
            iface, high, low, captured = struct.unpack(order + "IIII", data[pos + 8:pos + 24])
            packets.append((((high << 32) | low) / 1e6, links[iface], data[pos + 28:pos + 28 + captured]))
        pos += block_len
    return packets


def tcp_streams(path: Path) -> dict[tuple, list[tuple[int, float, bytes]]]:
    """Per (src, sport, dst, dport): [(packet number, ts, new bytes)] in sequence order."""
    streams: dict[tuple, list] = {}
    next_seq: dict[tuple, int] = {}
    for number, (ts, link, packet) in enumerate(read_packets(path), 1):
        if link == 1:
            ethertype, offset = struct.unpack("!H", packet[12:14])[0], 14
        elif link == 113:  # Linux cooked capture
            ethertype, offset = struct.unpack("!H", packet[14:16])[0], 16
        else:
            continue
        if ethertype == 0x0800 and packet[offset + 9] == 6:
            header_len = (packet[offset] & 15) * 4
            total = struct.unpack("!H", packet[offset + 2:offset + 4])[0]
            src, dst = packet[offset + 12:offset + 16], packet[offset + 16:offset + 20]
            segment = packet[offset + header_len:offset + total]
        elif ethertype == 0x86DD and packet[offset + 6] == 6:
            length = struct.unpack("!H", packet[offset + 4:offset + 6])[0]
            src, dst = packet[offset + 8:offset + 24], packet[offset + 24:offset + 40]
            segment = packet[offset + 40:offset + 40 + length]
        else:
            continue
        sport, dport, seq = struct.unpack("!HHI", segment[:8])
        key = (src, sport, dst, dport)
        if segment[13] & 0x02:  # SYN
            next_seq[key] = seq + 1
            streams.setdefault(key, [])
            continue
        payload = segment[(segment[12] >> 4) * 4:]
        expected = next_seq.get(key, seq)
        if seq < expected:  # retransmission: keep only new bytes
            payload = payload[expected - seq:]
            seq = expected
        if payload:
            streams.setdefault(key, []).append((number, ts, payload))
            next_seq[key] = seq + len(payload)
    return streams


def deflate_from(response_head: bytes) -> dict | None:
    match = re.search(rb"(?im)^sec-websocket-extensions:[ \t]*(.*?)\r$", response_head)
    if not match:
        return None
    names = [p.strip() for p in match.group(1).decode().split(";")]
    if names[0] != "permessage-deflate":
        return None
    params = {"server_no_context_takeover": False, "client_no_context_takeover": False,
              "server_max_window_bits": 15, "client_max_window_bits": 15}
    for param in names[1:]:
        name, _, value = param.partition("=")
        params[name.strip()] = int(value.strip('" ')) if name.strip().endswith("bits") else True
    return params


def websocket_events(path: Path, keep_binary: int = 120) -> list[list[tuple]]:
    """Per connection: [(packet, from_client, Frame | Message | anomaly)] in capture order."""
    streams = tcp_streams(path)
    connections = []
    for key, client_segments in streams.items():
        reverse = (key[2], key[3], key[0], key[1])
        server_segments = streams.get(reverse)
        if not client_segments or not server_segments or client_segments[0][0] > server_segments[0][0]:
            continue
        response = b"".join(s[2] for s in server_segments)
        head = response[:response.find(b"\r\n\r\n") + 4]
        if b" 101" not in head.split(b"\r\n", 1)[0]:
            continue
        deflate = deflate_from(head)
        events = []
        for from_client, segments in ((True, client_segments), (False, server_segments)):
            parser = FrameParser(from_client, keep_binary=keep_binary)
            assembler = MessageAssembler(from_client, deflate, deflate is not None, keep_binary=keep_binary)
            in_body = False
            for number, ts, data in segments:
                if not in_body:  # skip the HTTP head; frames may share its segment
                    end = data.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    data, in_body = data[end + 4:], True
                for frame in parser.feed(data, number, ts):
                    events.append((number, from_client, frame))
                    messages, anomalies = assembler.frame(frame)
                    events += [(number, from_client, a) for a in anomalies]
                    events += [(number, from_client, m) for m in messages]
            assert parser.finish(0, 0.0) is None
            assert parser.anomalies == [] or all(a[0] == "length-not-minimal" for a in parser.anomalies)
            assert assembler.finish() == ([], ())
        events.sort(key=lambda e: e[0])
        connections.append(events)
    return connections


def zeek_escape(data: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 and b != 0x5C else f"\\x{b:02x}" for b in data)


def zeek_trace(events, with_messages: bool = True) -> list[str]:
    lines = []
    for _, from_client, event in events:
        orig = "T" if from_client else "F"
        if isinstance(event, Message):
            if event.opcode == 8:
                lines.append(f"websocket_close, {orig}, status, {event.close_code or 0}, reason, {event.close_reason}")
            if with_messages:
                lines.append(f"websocket_message, {orig}, opcode, {OPCODE_NAMES[event.opcode]}")
        elif not isinstance(event, tuple):
            lines.append(f"websocket_frame, {orig}, fin, {'T' if event.fin else 'F'}, rsv, {event.rsv}, "
                         f"opcode, {OPCODE_NAMES[event.opcode]}, payload_len, {event.length}")
            if event.length:
                lines.append(f"websocket_frame_data, {orig}, len, {event.length}, data, "
                             f"{zeek_escape(event.payload[:120])}")
    return lines


def zeek_oracle(path: Path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("websocket_") and not line.startswith("websocket_established"):
            head, _uid, rest = line.split(", ", 2)
            out.append(f"{head}, {rest}")
    return out


# capture -> (oracle suffix, whether that btest script logs websocket_message)
ZEEK_TRACES = {
    "broker-websocket.pcap": ("events.out", True),
    "jupyter-websocket.pcap": ("events.out", True),
    "message-too-big-status.pcap": ("events.out", True),
    "two-binary-fragments.pcap": ("events.out", True),
    "wstunnel-http.pcap": ("events.out", True),
    "reply-ping-separate.pcap": ("coalesced-reply-ping.out-separate", False),
    "reply-ping-coalesced.pcap": ("coalesced-reply-ping.out-coalesced", False),
}


@pytest.mark.parametrize("capture", sorted(ZEEK_TRACES))
def test_zeek_frame_and_message_trace(capture):
    (events,) = websocket_events(ZEEK / capture)
    suffix, with_messages = ZEEK_TRACES[capture]
    expected = zeek_oracle(ZEEK / f"{capture}.expected.scripts.base.protocols.websocket.{suffix}")
    assert len(expected) > 5
    assert zeek_trace(events, with_messages) == expected


def anomalies_of(events) -> list[tuple]:
    return [e[2] for e in events if isinstance(e[2], tuple)]


def test_wstunnel_client_frames_are_unmasked():
    (events,) = websocket_events(ZEEK / "wstunnel-http.pcap")
    assert [(a[0], a[1]) for a in anomalies_of(events)] == [("unmasked-client-frame", 8),
                                                           ("unmasked-client-frame", 10)]


def test_oversized_close_frame():
    (events,) = websocket_events(ZEEK / "oversized-close-frame.pcapng")
    (close,) = [e for _, _, e in events if isinstance(e, Message) and e.opcode == 8]
    assert (close.size, close.close_code, len(close.close_reason.encode())) == (258, 1000, 256)
    assert [a[0] for a in anomalies_of(events)] == ["control-frame-too-long"]
    assert anomalies_of(events)[0][3] == {"opcode": 8, "length": 258}


def test_fragmented_http_reply_five_fragments_in_one_segment():
    (events,) = websocket_events(ZEEK / "fragmented-http-reply.pcap")
    data_frames = [e for _, fc, e in events if not fc and not isinstance(e, (Message, tuple)) and e.opcode in (0, 2)]
    assert [f.length for f in data_frames] == [1, 7, 9, 18, 21]
    assert {f.frame for f in data_frames} == {13}
    (message,) = [e for _, _, e in events if isinstance(e, Message) and e.opcode == 2 and e.fragments > 1]
    assert (message.size, message.fragments, message.frame) == (56, 5, 13)
    assert message.data == b"HTTP/1.1 200 OK\r\nServer: dont ask\r\nContent-Length: 0\r\n\r\n"


def test_compressed_and_baseline_sessions_carry_the_same_text():
    texts = {}
    for name in ("websocket_compressed.pcap", "websocket_baseline.pcap"):
        (events,) = websocket_events(ZEEK / name)
        messages = [(fc, e) for _, fc, e in events if isinstance(e, Message) and e.opcode == 1]
        texts[name] = [(fc, m.data) for fc, m in messages]
        assert all(m.compressed == (name == "websocket_compressed.pcap") for _, m in messages)
        assert anomalies_of(events) == []
    assert texts["websocket_compressed.pcap"] == texts["websocket_baseline.pcap"]
    assert (False, b"Zeek_WebSocket_Test_String_" * 50) in texts["websocket_compressed.pcap"]
    assert texts["websocket_compressed.pcap"][0][1].startswith(b"Hello_Zeek_Analyzer_")


def test_wstunnel_frame_counts():
    def count(name):
        totals = {}
        for events in websocket_events(ZEEK / name):
            for _, _, e in events:
                if not isinstance(e, (Message, tuple)):
                    totals[e.opcode] = totals.get(e.opcode, 0) + 1
        return totals
    assert count("wstunnel-https.pcap") == {2: 36, 8: 2}
    assert count("wstunnel-ssh.pcap") == {2: 144, 9: 7, 8: 4}


def test_suricata_deflate_stream_contains_the_toggle_once():
    (events,) = websocket_events(SURICATA / "example_websocket.pcap")
    messages = [e for _, fc, e in events if isinstance(e, Message) and not fc]
    assert len(messages) == 10 and all(m.compressed and m.opcode == 1 for m in messages)
    assert b"".join(m.data for m in messages).count(b"TOGGLE=5659131662f54334") == 1
    assert anomalies_of(events) == []


def test_suricata_control_frame_between_fragments():
    (events,) = websocket_events(SURICATA / "websocket-control-frag.pcap")
    client = [e for _, fc, e in events if isinstance(e, Message) and fc]
    assert [m.opcode for m in client] == [9, 1]
    assert b"MALWARE_DOWNLOAD cmd.exe /c powershell" in client[1].data
    assert client[1].fragments == 2


def test_suricata_unmasked_client_ping_and_pong():
    (events,) = websocket_events(SURICATA / "websocket-ping.pcap")
    controls = [(n, fc, e.opcode) for n, fc, e in events if isinstance(e, Message) and e.opcode in (9, 10)]
    assert controls == [(8, True, 9), (11, False, 10)]
    assert [(a[0], a[1]) for a in anomalies_of(events)] == [("unmasked-client-frame", 8)]


def test_suricata_basic_websockets_first_mask_and_texts():
    (events,) = websocket_events(SURICATA / "basic_websockets.pcap")
    frames = [(fc, e) for _, fc, e in events if not isinstance(e, (Message, tuple))]
    assert sum(1 for _, f in frames if f.opcode == 1) == 17
    assert [f.mask for fc, f in frames if fc][0] == bytes.fromhex("e2b695ed")
    assert [f.payload for fc, f in frames if not fc and f.length == 21] == [b"version,hybi-draft-13"]
