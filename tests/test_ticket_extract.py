"""`dgcap extract`: the ticket capture, checked with tshark as the independent reader.

On the recorded captures: tls13_multi.pcap (three concurrent TLS 1.3 sessions, one key log),
dg_success.pcap and dg_net0001.pcap (plain text).
"""
from __future__ import annotations

import hashlib
import json
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from analyzer.capture import open_capture
from tests.support import capture_synth as synth
from analyzer.capture.decode import PacketDecoder
from analyzer.capture.pcapng_writer import TLS_KEY_LOG_SECRETS
from analyzer.commands.extract import masked_bytes, patch_tcp_payload
from tests.test_report_helpers import CAPTURES, TEST_KEY, run_cli

MULTI = CAPTURES / "tls13_multi.pcap"
MULTI_KEYS = CAPTURES / "tls13_multi.keys"
PORT = 18041
TLS_DECODE = ["-d", f"tcp.port=={PORT},tls", "-d", f"tls.port=={PORT},http"]
KEY_BYTES = TEST_KEY.encode()


def tshark_rows(path, fields, dfilter, extra=()):
    cmd = ["tshark", "-r", str(path), *extra, "-Y", dfilter, "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def websocket_view(path, stream=None, keylog=None):
    """(opcode, payload length, text, close code, close reason) of every WebSocket frame."""
    extra = list(TLS_DECODE)
    if keylog:
        extra += ["-o", f"tls.keylog_file:{keylog}"]
    dfilter = "websocket" if stream is None else f"websocket && tcp.stream == {stream}"
    return tshark_rows(path, ["websocket.opcode", "websocket.payload_length", "websocket.payload.text",
                              "websocket.payload.close.status_code", "websocket.payload.close.reason"],
                       dfilter, extra)


def section_comment(path: Path) -> str:
    """The Section Header Block's opt_comment (little-endian pcapng, as written)."""
    data = path.read_bytes()
    block_type, length = struct.unpack_from("<II", data, 0)
    assert block_type == 0x0A0D0D0A
    pos, end = 8 + 16, length - 4
    while pos + 4 <= end:
        code, size = struct.unpack_from("<HH", data, pos)
        if code == 0:
            break
        if code == 1:
            return data[pos + 4:pos + 4 + size].decode()
        pos += 4 + size + (-size % 4)
    return ""


def embedded_keylog(path: Path) -> str:
    cap = open_capture(str(path))
    with cap:
        for _ in cap.packets():
            pass
        return "".join(blob.decode() for kind, blob in cap.secrets if kind == TLS_KEY_LOG_SECRETS)


@pytest.fixture(scope="module")
def multi_extracts(tmp_path_factory):
    """Sessions 1 and 3 of tls13_multi extracted with the key log (default: secrets redacted)."""
    out = tmp_path_factory.mktemp("extract")
    files = {}
    for n in (1, 3):
        target = out / f"s{n}.pcapng"
        r = run_cli("extract", str(MULTI), "--session", str(n), "--keylog", str(MULTI_KEYS), "-o", str(target))
        assert r.returncode == 0, r.stderr
        files[n] = (target, r.stdout)
    return files


def test_extract_keeps_exactly_the_session_packets(multi_extracts):
    original = tshark_rows(MULTI, ["frame.number", "frame.time_epoch", "frame.len"], "tcp.stream == 2")
    extracted = tshark_rows(multi_extracts[3][0], ["frame.number", "frame.time_epoch", "frame.len"], "frame")
    assert len(original) == len(extracted) == 21
    assert [(t, n) for _, t, n in original] == [(t, n) for _, t, n in extracted]
    assert (original[0][0], original[-1][0]) == ("55", "79")
    assert multi_extracts[3][1].startswith("wrote ") and "21 packets" in multi_extracts[3][1]
    assert "original frames 55-79" in multi_extracts[3][1]


@pytest.mark.parametrize("session,stream", [(1, 0), (3, 2)])
def test_extract_decrypts_with_no_key_log_and_shows_the_same_frames(multi_extracts, session, stream):
    with_keys = websocket_view(MULTI, stream, keylog=MULTI_KEYS)
    alone = websocket_view(multi_extracts[session][0])
    assert alone == with_keys
    exp = json.loads((CAPTURES / "tls13_multi.expected.json").read_text())["sessions"][stream]["frames"]
    opcodes = Counter(op for row in alone for op in row[0].split(","))  # frames sharing a packet
    wanted = Counter({"1": exp["client"]["text"] + exp["server"]["text"],
                      "2": exp["client"]["binary"] + exp["server"]["binary"],
                      "8": exp["client"]["close"] + exp["server"]["close"]})
    assert opcodes == +wanted
    assert opcodes["8"] == 2


def test_extract_embeds_only_that_sessions_secrets(multi_extracts, tmp_path):
    keys = embedded_keylog(multi_extracts[1][0])
    lines = keys.splitlines()
    # TLS 1.3: the four traffic secrets of one client random, nothing else.
    assert sorted(line.split()[0] for line in lines) == [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0"]
    assert len({line.split()[1] for line in lines}) == 1
    assert all(line in MULTI_KEYS.read_text().splitlines() for line in lines)
    # With only these secrets, the original capture decrypts session 1 and nothing else.
    only = tmp_path / "only.keys"
    only.write_text(keys)
    per_stream = Counter(row[0] for row in tshark_rows(
        MULTI, ["tcp.stream"], "websocket || http", [*TLS_DECODE, "-o", f"tls.keylog_file:{only}"]))
    everything = Counter(row[0] for row in tshark_rows(
        MULTI, ["tcp.stream"], "websocket || http", [*TLS_DECODE, "-o", f"tls.keylog_file:{MULTI_KEYS}"]))
    assert set(per_stream) == {"0"} and per_stream["0"] == everything["0"]
    assert everything["1"] > 0 and everything["2"] > 0


def test_every_finding_frame_carries_a_comment(multi_extracts):
    rows = tshark_rows(multi_extracts[3][0], ["frame.number", "frame.comment"], 'frame.comment contains "dgcap"')
    assert [r[0] for r in rows] == ["14", "15"]
    assert rows[0][1].startswith("dgcap: warning json-in-binary: ")
    assert rows[0][1].endswith("(session 3, original No. 72)")
    assert rows[1][1].startswith("dgcap: error deepgram-close: Deepgram closed the stream with 1008 DATA-0000 at frame 73")
    assert rows[1][1].endswith("(session 3, original No. 73)")
    # The commented packets are the original 72 and 73 (same time stamps).
    times = {r[0]: r[1] for r in tshark_rows(MULTI, ["frame.number", "frame.time_epoch"], "frame.number == 72 || frame.number == 73")}
    new = {r[0]: r[1] for r in tshark_rows(multi_extracts[3][0], ["frame.number", "frame.time_epoch"],
                                           "frame.number == 14 || frame.number == 15")}
    assert (new["14"], new["15"]) == (times["72"], times["73"])


def test_net0001_finding_comments(tmp_path):
    out = tmp_path / "n.pcapng"
    r = run_cli("extract", str(CAPTURES / "dg_net0001.pcap"), "--finding", "deepgram-close", "-o", str(out))
    assert r.returncode == 0, r.stderr
    rows = tshark_rows(out, ["frame.number", "frame.comment"], 'frame.comment contains "dgcap"')
    assert [r[0] for r in rows] == ["26", "30"]  # every packet kept: numbers equal the original's
    ids = {n: sorted(c.split(": ")[1] for c in comments.split(",dgcap")) for n, comments in rows}
    assert ids == {"26": ["warning audio-gap", "warning client-gap"],
                   "30": ["error deepgram-close", "warning audio-gap", "warning client-gap"]}


def test_section_comment_says_what_the_file_is(multi_extracts):
    text = section_comment(multi_extracts[3][0])
    sha = hashlib.sha256(MULTI.read_bytes()).hexdigest()
    assert text.splitlines()[0] == f"dgcap 0.1.0 extract of tls13_multi.pcap (SHA-256 {sha})"
    assert "session 3: 127.0.0.1:" in text and "tcp.stream 2 in the original, tls-decrypted" in text
    assert "21 packets, original frames 55 to 79; frame numbers in this file differ" in text
    assert "TLS secrets of these sessions only are embedded" in text
    assert "API keys and tokens are overwritten" in text


def test_api_key_in_no_byte_and_not_after_decryption(multi_extracts):
    for path, _ in multi_extracts.values():
        assert KEY_BYTES not in path.read_bytes()
        auth = tshark_rows(path, ["http.authorization"], "http.request", TLS_DECODE)
        assert auth == [["Token " + masked_bytes(KEY_BYTES).decode()]]
        assert auth[0][0] == "Token " + "*" * 35 + "cdef"


def test_keep_secrets_keeps_the_key_and_says_so(tmp_path):
    out = tmp_path / "keep.pcapng"
    r = run_cli("extract", str(MULTI), "--session", "1", "--keylog", str(MULTI_KEYS), "--keep-secrets",
                "-o", str(out))
    assert r.returncode == 0 and "--keep-secrets" in r.stderr
    assert tshark_rows(out, ["http.authorization"], "http.request", TLS_DECODE) == [["Token " + TEST_KEY]]
    assert "--keep-secrets: API keys and tokens are kept in the packets as sent" in section_comment(out)


def test_plain_text_key_overwritten_in_place(tmp_path):
    src = CAPTURES / "dg_success.pcap"
    out, kept = tmp_path / "s.pcapng", tmp_path / "k.pcapng"
    assert run_cli("extract", str(src), "--session", "1", "-o", str(out)).returncode == 0
    assert run_cli("extract", str(src), "--session", "1", "--keep-secrets", "-o", str(kept)).returncode == 0
    assert KEY_BYTES in src.read_bytes() and KEY_BYTES in kept.read_bytes()
    assert KEY_BYTES not in out.read_bytes()
    assert tshark_rows(out, ["http.authorization"], "http.request") == [["Token " + "*" * 35 + "cdef"]]
    # Same lengths and TCP analysis: the stream still reassembles into the same frames.
    assert websocket_view(out) == websocket_view(src)
    assert tshark_rows(out, ["frame.len", "tcp.seq"], "frame") == tshark_rows(src, ["frame.len", "tcp.seq"], "frame")
    assert tshark_rows(out, ["frame.number"], "tcp.analysis.flags") == tshark_rows(src, ["frame.number"], "tcp.analysis.flags")


def _tcp_checksum(src: bytes, dst: bytes, segment: bytes) -> int:
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(segment))
    data = pseudo + segment + b"\0" * (len(segment) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@pytest.mark.parametrize("offset", [0, 1, 5, 6])
def test_patch_updates_the_tcp_checksum(offset):
    payload = b"GET /v1/listen?token=" + KEY_BYTES + b" HTTP/1.1\r\n\r\n"
    seg = bytearray(synth.tcp(50000, 443, 123456, 1, synth.ACK | synth.PSH, payload,
                              options=b"\x01\x01\x08\x0a" + b"\0" * 8))
    struct.pack_into("!H", seg, 16, _tcp_checksum(synth.CLIENT_IP, synth.SERVER_IP, bytes(seg)))
    frame = synth.ethernet(synth.ipv4(bytes(seg)))
    decoded = PacketDecoder().decode(1, 1, frame)
    new = masked_bytes(KEY_BYTES)
    at = payload.index(KEY_BYTES) + offset
    patched = patch_tcp_payload(frame, decoded, [(at, new[offset:])])
    tcp_start = 14 + 20
    out_seg = patched[tcp_start:]
    assert out_seg[32 + at:32 + len(payload) - len(b" HTTP/1.1\r\n\r\n")] == new[offset:]
    stored = struct.unpack_from("!H", out_seg, 16)[0]
    zeroed = bytearray(out_seg)
    struct.pack_into("!H", zeroed, 16, 0)
    assert stored == _tcp_checksum(synth.CLIENT_IP, synth.SERVER_IP, bytes(zeroed))
    assert len(patched) == len(frame)


@pytest.mark.parametrize("args,message", [
    (["--session", "0"], "--session must be a session number (1 or more)"),
    (["--session", "4"], "no session 4; the capture has 3 sessions (1-3)"),
    (["--finding", "no-such-finding"], "no session has the finding 'no-such-finding'; findings present: "
                                       "deepgram-close, empty-binary-frame, json-in-binary"),
])
def test_bad_selection_is_one_line_and_exit_2(args, message, tmp_path):
    r = run_cli("extract", str(MULTI), "--keylog", str(MULTI_KEYS), *args, "-o", str(tmp_path / "x.pcapng"))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.pcapng").exists()


def test_missing_capture_and_no_selection(tmp_path):
    r = run_cli("extract", str(tmp_path / "nope.pcap"), "--session", "1")
    assert (r.returncode, r.stderr) == (2, f"dgcap: error: {tmp_path / 'nope.pcap'}: no such file\n")
    r = run_cli("extract", str(MULTI))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "one of the arguments --session --finding is required" in r.stderr


def test_tls_session_without_keys_says_it_stays_encrypted(tmp_path):
    out = tmp_path / "enc.pcapng"
    r = run_cli("extract", str(MULTI), "--session", "2", "-o", str(out))
    assert r.returncode == 0
    assert "session 2: no TLS secrets known for it (give --keylog): the extracted file stays encrypted" in r.stderr
    assert embedded_keylog(out) == ""
    assert tshark_rows(out, ["frame.number"], "websocket || http", TLS_DECODE) == []


def test_query_and_subprotocol_tokens_overwritten_across_packet_boundaries(tmp_path):
    """Hand-built edge case: the request line carries ?token=KEY (URL-encoded form too) and
    the subprotocol `token, KEY2`, and the request is cut into segments in the middle of both
    keys, with one segment retransmitted."""
    import base64 as b64
    from tests.test_report_helpers import GUID, Conversation, ws_frame

    key2 = "dgtest_fedcba9876543210fedcba9876543210"
    ws_key = b64.b64encode(b"0123456789abcdef").decode()
    accept = b64.b64encode(hashlib.sha1(ws_key.encode() + GUID).digest()).decode()
    request = (f"GET /v1/listen?model=nova-3&token={TEST_KEY}&access_token={TEST_KEY.replace('_', '%5F')} HTTP/1.1\r\n"
               f"Host: api.deepgram.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {ws_key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Protocol: token, {key2}\r\n\r\n").encode()
    cut1 = request.index(TEST_KEY.encode()) + 10
    cut2 = request.index(key2.encode()) + 7
    c = Conversation()
    c.send(0, request[:cut1])
    c.seq[0] -= cut1  # the first segment again (a retransmission)
    c.send(0, request[:cut1])
    c.send(0, request[cut1:cut2])
    c.send(0, request[cut2:])
    c.send(1, (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: token\r\n\r\n").encode())
    c.send(0, ws_frame(1, b'{"type":"KeepAlive"}', b"\x01\x02\x03\x04"))
    c.send(1, ws_frame(8, struct.pack("!H", 1000)))
    c.send(0, ws_frame(8, struct.pack("!H", 1000), b"\x01\x02\x03\x04"))
    c.fin(1)
    c.fin(0)
    src = tmp_path / "tokens.pcap"
    src.write_bytes(c.pcap())
    out = tmp_path / "tokens.pcapng"
    r = run_cli("extract", str(src), "--session", "1", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "secrets overwritten in 4 packet(s)" in r.stdout
    data = out.read_bytes()
    for secret in (TEST_KEY, TEST_KEY.replace("_", "%5F"), key2):
        assert secret.encode() not in data
        assert secret[-12:].encode() in src.read_bytes() and secret[-12:].encode() not in data
    original = tshark_rows(src, ["http.request.uri"], "http.request", ["-d", "tcp.port==18099,http"])
    assert original == [[f"/v1/listen?model=nova-3&token={TEST_KEY}&access_token={TEST_KEY.replace('_', '%5F')}"]]
    # tshark reassembles the same request, with the masks where the keys were.
    uri = tshark_rows(out, ["http.request.uri"], "http.request", ["-d", "tcp.port==18099,http"])
    assert uri == [["/v1/listen?model=nova-3&token=" + "*" * 35 + "cdef&access_token=" + "*" * 37 + "cdef"]]
    proto = tshark_rows(out, ["http.sec_websocket_protocol"], "http.request", ["-d", "tcp.port==18099,http"])
    assert proto == [["token, " + "*" * 35 + "3210"]]
    assert websocket_view(out) == websocket_view(src)


@pytest.mark.parametrize("capture", [p.name for p in sorted(CAPTURES.iterdir())
                                     if p.suffix in (".pcap", ".pcapng")])
def test_every_sample_session_extracts_exactly_its_stream(capture, tmp_path):
    """Each session of each recorded capture: the packets tshark puts in its tcp.stream, in
    order, with the same time stamps and lengths, and never the API key in the bytes."""
    from tests.test_report_helpers import keylog_for
    src = CAPTURES / capture
    keylog = keylog_for(src)
    exp = json.loads((CAPTURES / (src.stem + ".expected.json")).read_text())
    streams = [s["tcp_stream"] for s in exp["sessions"]]
    for n, stream in enumerate(streams, 1):
        out = tmp_path / f"{n}.pcapng"
        args = ["extract", str(src), "--session", str(n), "-o", str(out)]
        r = run_cli(*args, *(["--keylog", keylog] if keylog else []))
        assert r.returncode == 0, r.stderr
        original = tshark_rows(src, ["frame.time_epoch", "frame.len"], f"tcp.stream == {stream}")
        extracted = tshark_rows(out, ["frame.time_epoch", "frame.len"], "frame")
        assert [n for _, n in extracted] == [n for _, n in original]
        # Exact for microsecond captures; dumpcap's nanosecond ones (dg_multi) go through the
        # reader's float seconds, whose step at these dates is 2**-22 s (238 ns): within half.
        tolerance_ns = 120 if exp["format"] == "pcapng" else 0

        def ns(text: str) -> int:
            seconds, _, fraction = text.partition(".")
            return int(seconds) * 10**9 + int(fraction.ljust(9, "0"))
        assert max(abs(ns(a) - ns(b)) for (a, _), (b, _) in zip(extracted, original)) <= tolerance_ns
        assert KEY_BYTES not in out.read_bytes()
