"""MessageAssembler: fragmentation, control frames, close parsing, RFC 6455 violations."""
from __future__ import annotations

import struct

import pytest
from websockets.frames import Close as WsClose
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode

from analyzer.websocket import (FrameParser, MessageAssembler, close_code_name,
                                close_code_valid)

MASK = b"\x01\x02\x03\x04"


def ws_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
             mask: bytes | None = None) -> bytes:
    length = len(payload)
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if mask is not None:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def run(wire_by_packet, from_client=True, deflate=None, extensions=False, **kw):
    """Parse [(packet_no, bytes)] and assemble; returns (messages, anomalies), each in order."""
    keep_binary = kw.pop("keep_binary", 64)
    parser = FrameParser(from_client, keep_binary=keep_binary)
    assembler = MessageAssembler(from_client, deflate, extensions, keep_binary=keep_binary, **kw)
    messages, anomalies = [], []
    for packet_no, wire in wire_by_packet:
        for frame in parser.feed(wire, packet_no, packet_no / 10):
            found, problems = assembler.frame(frame)
            messages += found
            anomalies += problems
    found, problems = assembler.finish()
    return messages + found, anomalies + list(problems)


def state_of(obj) -> dict:
    """Every data attribute of obj (lists copied): vars() for the pure-Python build and for
    the compiled one, whose classes have no __dict__."""
    state = {}
    for name in dir(obj):
        value = getattr(obj, name)
        if not name.startswith("__") and not callable(value):
            state[name] = list(value) if isinstance(value, list) else value
    return state


def test_whole_binary_answers_exactly_when_frame_returns_the_frame_as_message():
    # whole_binary(f) lets the pipeline skip frame(f) for an audio chunk: it must be True
    # only where frame(f) gives one message equal to the frame, no anomaly, no state change.
    wire = [ws_frame(2, b"a" * 10, mask=MASK), ws_frame(2, b"b" * 100, mask=MASK),
            ws_frame(2, b"c" * 300, mask=MASK), ws_frame(2, b"d" * 5, mask=MASK, rsv=4),
            ws_frame(2, b"e" * 5), ws_frame(2, b"f" * 5, mask=MASK, fin=False),
            ws_frame(2, b"g" * 5, mask=MASK), ws_frame(0, b"h" * 5, mask=MASK),
            ws_frame(1, b"text", mask=MASK), ws_frame(2, b"", mask=MASK),
            ws_frame(8, b"\x03\xe8", mask=MASK), ws_frame(2, b"i" * 5, mask=MASK)]
    parser = FrameParser(True, keep_binary=64)
    assembler = MessageAssembler(True, None, False, keep_binary=64, max_message=200)
    answers = []
    for packet_no, data in enumerate(wire, 1):
        for frame in parser.feed(data, packet_no, packet_no / 10):
            whole = assembler.whole_binary(frame)
            answers.append(whole)
            before = state_of(assembler)
            messages, anomalies = assembler.frame(frame)
            if whole:
                (m,) = messages
                assert anomalies == ()
                assert (m.opcode, m.data, m.size, m.wire_size, m.frame, m.time, m.first_frame,
                        m.start_time, m.complete) == (2, frame.payload, frame.length, frame.length,
                                                      frame.frame, frame.time, frame.first_frame,
                                                      frame.start_time, True)
                assert state_of(assembler) == before
    # 10 bytes, a 100-byte frame kept as its 64-byte prefix, the empty one: whole.  Too big
    # (300 > 200), RSV1, unmasked, unfinished, during a message, continuation, text, close,
    # after the close: not.
    assert answers == [True, True, False, False, False, False, False, False, False, True,
                       False, False]


def kinds(anomalies):
    return [a[0] for a in anomalies]


# -- fragmentation --------------------------------------------------------------

def test_fragmented_text_with_ping_between_fragments():
    wire = [(5, ws_frame(1, b"MALWARE_DOWNLOAD ", fin=False, mask=MASK)),
            (6, ws_frame(9, b"ping", mask=MASK)),
            (7, ws_frame(0, b"cmd.exe /c powershell", mask=MASK))]
    messages, anomalies = run(wire)
    assert anomalies == []
    ping, text = messages  # the ping is delivered first, the text when it completes
    assert (ping.opcode, ping.data, ping.frame, ping.size) == (9, b"ping", 6, 4)
    assert (text.opcode, text.data, text.fragments) == (1, b"MALWARE_DOWNLOAD cmd.exe /c powershell", 2)
    assert (text.first_frame, text.frame, text.start_time, text.time) == (5, 7, 0.5, 0.7)
    assert (text.size, text.wire_size, text.utf8_valid, text.complete, text.compressed) == (38, 38, True, True, False)


def test_zeek_five_fragment_binary_message():
    parts = [bytes([65 + i]) * n for i, n in enumerate((1, 7, 9, 18, 21))]
    wire = b"".join(ws_frame(2 if i == 0 else 0, p, fin=i == 4) for i, p in enumerate(parts))
    messages, anomalies = run([(13, wire)], from_client=False, keep_binary=120)
    (message,) = messages
    assert anomalies == []
    assert (message.opcode, message.fragments, message.size, message.frame, message.first_frame) == (2, 5, 56, 13, 13)
    assert message.data == b"".join(parts)
    assert message.utf8_valid is None


def test_binary_message_keeps_a_prefix_across_fragments():
    wire = ws_frame(2, b"abcd", fin=False) + ws_frame(0, b"efghij", fin=False) + ws_frame(0, b"klmnop")
    (message,), _ = run([(1, wire)], from_client=False, keep_binary=7)
    assert (message.data, message.size, message.fragments) == (b"abcdefg", 16, 3)


def test_binary_prefix_stops_at_a_truncated_fragment():
    # The parser kept 4 of the first fragment's 10 bytes: later bytes are not a prefix.
    wire = ws_frame(2, b"0123456789", fin=False) + ws_frame(0, b"abc")
    parser = FrameParser(False, keep_binary=4)
    assembler = MessageAssembler(False, None, False, keep_binary=64)
    results = [assembler.frame(f) for f in parser.feed(wire, 1, 0.0)]
    assert [(len(messages), anomalies) for messages, anomalies in results] == [(0, ()), (1, ())]
    message = results[1][0][0]
    assert (message.data, message.size) == (b"0123", 13)


def test_text_split_inside_a_multibyte_character_is_valid():
    text = "naïve café ✓".encode()
    wire = ws_frame(1, text[:3], fin=False) + ws_frame(0, text[3:12], fin=False) + ws_frame(0, text[12:])
    (message,), anomalies = run([(1, wire)], from_client=False)
    assert (message.data, message.utf8_valid, anomalies) == (text, True, [])


def test_unexpected_continuation():
    messages, anomalies = run([(3, ws_frame(0, b"orphan", mask=MASK))])
    assert messages == []
    assert anomalies == [("unexpected-continuation", 3, 0.3, {"length": 6})]


def test_expected_continuation_delivers_the_abandoned_message():
    wire = [(1, ws_frame(1, b"first ", fin=False, mask=MASK)), (2, ws_frame(1, b"second", mask=MASK))]
    messages, anomalies = run(wire)
    first, second = messages
    assert anomalies == [("expected-continuation", 2, 0.2, {"opcode": 1, "pending_first_frame": 1})]
    assert (first.data, first.complete, first.frame) == (b"first ", False, 1)
    assert (second.data, second.complete) == (b"second", True)


def test_finish_delivers_an_unfinished_message():
    messages, anomalies = run([(1, ws_frame(2, b"audio", fin=False, mask=MASK))])
    (message,) = messages
    assert (message.data, message.complete, message.fragments) == (b"audio", False, 1)
    assert anomalies == []


def test_message_too_big_truncates_but_counts():
    wire = ws_frame(1, b"x" * 20, fin=False) + ws_frame(0, b"y" * 20)
    (message,), anomalies = run([(9, wire)], from_client=False, max_message=25)
    assert (message.data, message.size, message.wire_size) == (b"x" * 20 + b"y" * 5, 40, 40)
    assert anomalies == [("message-too-big", 9, 0.9, {"size": 40, "max": 25})]


def test_single_frame_message_too_big():
    (message,), anomalies = run([(9, ws_frame(1, b"z" * 30))], from_client=False, max_message=10)
    assert (message.data, message.size) == (b"z" * 10, 30)
    assert anomalies == [("message-too-big", 9, 0.9, {"size": 30, "max": 10})]


def test_incomplete_payload_makes_an_incomplete_message():
    parser = FrameParser(True)
    assembler = MessageAssembler(True, None, False)
    wire = ws_frame(1, b"hello world", mask=MASK)
    parser.feed(wire[:10], 1, 0.1)
    parser.hole(len(wire) - 10, 2, 0.2)
    (message,), anomalies = assembler.frame(parser.finish(3, 0.3))
    assert anomalies == ()
    assert (message.data, message.complete, message.size, message.utf8_valid) == (b"hell", False, 11, True)


# -- control frames and close ----------------------------------------------------

def test_close_with_code_and_reason():
    wire = WsFrame(Opcode.CLOSE, WsClose(1009, "over size limit (4 > 2 bytes)").serialize()).serialize(mask=True)
    (close,), anomalies = run([(10, wire)])
    assert (close.opcode, close.close_code, close.close_reason, close.utf8_valid) == (
        8, 1009, "over size limit (4 > 2 bytes)", True)
    assert (close.size, close.frame) == (31, 10)
    assert anomalies == []
    assert close_code_name(close.close_code) == "Message Too Big"


def test_empty_close():
    (close,), anomalies = run([(4, ws_frame(8, b"", mask=MASK))])
    assert (close.close_code, close.close_reason, close.data, close.utf8_valid) == (None, "", b"", None)
    assert anomalies == []


def test_one_byte_close():
    (close,), anomalies = run([(4, ws_frame(8, b"\x03", mask=MASK))])
    assert (close.close_code, close.close_reason) == (None, "")
    assert anomalies == [("close-payload-one-byte", 4, 0.4, {"byte": 3})]


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_invalid_close_codes(code):
    (close,), anomalies = run([(4, ws_frame(8, struct.pack("!H", code), mask=MASK))])
    assert close.close_code == code
    assert anomalies == [("invalid-close-code", 4, 0.4, {"code": code})]
    assert close_code_valid(code) is False


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                                  3000, 3999, 4000, 4999])
def test_valid_close_codes(code):
    (close,), anomalies = run([(4, ws_frame(8, struct.pack("!H", code) + b"ok", mask=MASK))])
    assert (close.close_code, close.close_reason, anomalies) == (code, "ok", [])


def test_close_reason_invalid_utf8_is_replaced_and_reported():
    (close,), anomalies = run([(4, ws_frame(8, b"\x03\xe8bad\xff!", mask=MASK))])
    assert (close.close_code, close.close_reason, close.utf8_valid) == (1000, "bad\ufffd!", False)
    assert anomalies == [("invalid-utf8", 4, 0.4, {"opcode": 8, "position": 3})]


def test_oversized_close_frame_is_kept_and_flagged():
    # Zeek's oversized-close-frame.pcapng: a 258-byte close (code + 256 bytes of reason).
    reason = b"C" * 256
    (close,), anomalies = run([(6, ws_frame(8, b"\x03\xe8" + reason))], from_client=False)
    assert (close.close_code, close.close_reason, close.size) == (1000, reason.decode(), 258)
    assert anomalies == [("control-frame-too-long", 6, 0.6, {"opcode": 8, "length": 258})]


def test_fragmented_control_frame():
    messages, anomalies = run([(2, ws_frame(9, b"pi", fin=False, mask=MASK))])
    assert [m.opcode for m in messages] == [9]
    assert anomalies == [("fragmented-control-frame", 2, 0.2, {"opcode": 9})]


def test_frame_after_close():
    wire = ws_frame(8, b"\x03\xe8", mask=MASK) + ws_frame(1, b"late", mask=MASK)
    messages, anomalies = run([(3, wire)])
    assert [m.opcode for m in messages] == [8, 1]
    assert anomalies == [("frame-after-close", 3, 0.3, {"opcode": 1, "close_frame": 3})]


def test_close_code_names():
    assert [close_code_name(c) for c in (1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011,
                                         1012, 1013, 1014, 1015)] == [
        "Normal Closure", "Going Away", "Protocol Error", "Unsupported Data", "No Status Received",
        "Abnormal Closure", "Invalid Frame Payload Data", "Policy Violation", "Message Too Big",
        "Mandatory Extension", "Internal Error", "Service Restart", "Try Again Later", "Bad Gateway",
        "TLS Handshake"]
    assert [close_code_name(c) for c in (None, 3000, 3001, 4000, 1500, 999, 5000)] == [
        "No Status Received", "Unauthorized", "Registered (unassigned)", "Private Use", "Unassigned",
        "Invalid", "Invalid"]
    # every edge of every range (mutmut: `<=` turned `<`, 2999 turned 3000...)
    assert [close_code_name(c) for c in (999, 1016, 2999, 3002, 3999, 4999, 5000)] == [
        "Invalid", "Unassigned", "Unassigned", "Registered (unassigned)", "Registered (unassigned)",
        "Private Use", "Invalid"]


def test_close_code_validity_at_every_edge():
    from analyzer.websocket.messages import close_code_valid
    assert [c for c in range(990, 5010) if close_code_valid(c)] == [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, *range(3000, 5000)]


# -- RFC violations -----------------------------------------------------------------

def test_unmasked_client_frame():
    messages, anomalies = run([(8, ws_frame(2, b"GET / HTTP/1.1"))], from_client=True)
    assert messages[0].data == b"GET / HTTP/1.1"
    assert anomalies == [("unmasked-client-frame", 8, 0.8, {"opcode": 2})]


def test_masked_server_frame():
    messages, anomalies = run([(8, ws_frame(1, b"hi", mask=MASK))], from_client=False)
    assert messages[0].data == b"hi"
    assert anomalies == [("masked-server-frame", 8, 0.8, {"opcode": 1})]


def test_rsv_without_extension():
    _, anomalies = run([(2, ws_frame(1, b"x", rsv=2, mask=MASK))])
    assert anomalies == [("rsv-without-extension", 2, 0.2, {"rsv": 2, "opcode": 1})]
    # Another extension was negotiated: its RSV bits are its own business.
    assert run([(2, ws_frame(1, b"x", rsv=2, mask=MASK))], extensions=True)[1] == []


def test_rsv1_only_on_the_first_frame_of_a_message_under_deflate():
    deflate = {"client_max_window_bits": 15}
    compressed = b"\xcaH\xcd\xc9\xc9\x07\x00"  # "hello", raw deflate, trailer stripped
    wire = (ws_frame(1, compressed[:3], rsv=4, fin=False, mask=MASK) + ws_frame(9, b"", rsv=4, mask=MASK)
            + ws_frame(0, compressed[3:], rsv=4, mask=MASK))
    messages, anomalies = run([(2, wire)], deflate=deflate, extensions=True)
    assert kinds(anomalies) == ["rsv-without-extension", "rsv-without-extension"]
    assert [a[3]["opcode"] for a in anomalies] == [9, 0]
    assert [(m.opcode, m.data) for m in messages] == [(9, b""), (1, b"hello")]


def test_reserved_opcodes():
    messages, anomalies = run([(2, ws_frame(3, b"x", mask=MASK) + ws_frame(11, b"y", mask=MASK))])
    assert messages == []
    assert anomalies == [("reserved-opcode", 2, 0.2, {"opcode": 3}), ("reserved-opcode", 2, 0.2, {"opcode": 11})]


def test_control_frame_too_long():
    _, anomalies = run([(2, ws_frame(10, b"p" * 126, mask=MASK))])
    assert anomalies == [("control-frame-too-long", 2, 0.2, {"opcode": 10, "length": 126})]


def test_invalid_utf8_text():
    (message,), anomalies = run([(2, ws_frame(1, b"ok \xc3\x28 no", mask=MASK))])
    assert message.utf8_valid is False
    assert message.text == "ok \ufffd( no"
    assert anomalies == [("invalid-utf8", 2, 0.2, {"opcode": 1, "position": 3})]


def test_truncated_text_may_end_inside_a_character():
    # keep_text cut the payload inside "é": not invalid, just incomplete.
    parser = FrameParser(False, keep_text=4)
    assembler = MessageAssembler(False, None, False)
    (frame,) = parser.feed(ws_frame(1, "abcé".encode()), 1, 0.0)
    (message,), anomalies = assembler.frame(frame)
    assert anomalies == ()
    assert (message.data, message.utf8_valid, message.size) == (b"abc\xc3", True, 5)


def test_anomaly_records_are_capped_and_counted():
    assembler = MessageAssembler(True, None, False)
    parser = FrameParser(True)
    reported = []
    for frame in parser.feed(ws_frame(9, b"") * 1200, 1, 0.0):
        messages, anomalies = assembler.frame(frame)
        assert [m.opcode for m in messages] == [9]
        reported += anomalies
    assert len(reported) == 1000
    assert assembler.anomalies_dropped == 200
    assert assembler.anomaly_counts == {"unmasked-client-frame": 1200}
