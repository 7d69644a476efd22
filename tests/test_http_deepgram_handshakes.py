"""Real-looking Deepgram handshakes, fed whole, split at every byte offset, one byte at a time,
and in any chunking hypothesis can think of: the parse must not depend on how TCP cut it."""
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.http import (Request, RequestParser, Response, ResponseParser, deflate_agreement,
                           parse_error_body, websocket_accept)

REQUEST_ID = "5a5c2f8e-61b4-4f0a-9a39-0d6c3c7e1b42"

CLIENT_HANDSHAKE = (
    b"GET /v1/listen?model=nova-3&encoding=linear16&sample_rate=16000&keyterm=Deepgram&keyterm=nova"
    b"&interim_results=true HTTP/1.1\r\n"
    b"Host: api.deepgram.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"Authorization: Token 0123456789abcdef0123456789abcdef01234567\r\n"
    b"User-Agent: deepgram-python-sdk/3.7.0\r\n"
    b"\r\n"
)
# A masked binary frame of 4 audio bytes, sent in the same segment as the request.
CLIENT_FIRST_FRAME = b"\x82\x84\x11\x22\x33\x44" + bytes(b ^ m for b, m in zip(b"\x00\x01\x02\x03", b"\x11\x22\x33\x44"))

EXPECTED_REQUEST = Request(
    method="GET",
    target="/v1/listen?model=nova-3&encoding=linear16&sample_rate=16000&keyterm=Deepgram&keyterm=nova"
           "&interim_results=true",
    path="/v1/listen",
    query={"model": "nova-3", "encoding": "linear16", "sample_rate": "16000",
           "keyterm": ["Deepgram", "nova"], "interim_results": "true"},
    version="HTTP/1.1",
    headers=[["Host", "api.deepgram.com"], ["Upgrade", "websocket"], ["Connection", "Upgrade"],
             ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="], ["Sec-WebSocket-Version", "13"],
             ["Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"],
             ["Authorization", "Token 0123456789abcdef0123456789abcdef01234567"],
             ["User-Agent", "deepgram-python-sdk/3.7.0"]],
    head_size=len(CLIENT_HANDSHAKE),
)

SERVER_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"upgrade: websocket\r\n"
    b"connection: upgrade\r\n"
    b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"sec-websocket-extensions: permessage-deflate; client_max_window_bits=15\r\n"
    b"dg-model-name: general-nova-3\r\n"
    b"dg-model-uuid: 40bd3654-e622-47c4-a111-63a61b23bfb4\r\n"
    b"dg-request-id: " + REQUEST_ID.encode() + b"\r\n"
    b"date: Thu, 21 Nov 2024 04:53:12 GMT\r\n"
    b"\r\n"
)
_RESULTS = b'{"type":"SpeechStarted","channel":[0,1],"timestamp":0.0}'
# Two unmasked server text frames that arrived in the same segment as the 101.
SERVER_FIRST_FRAMES = b"\x81" + bytes([len(_RESULTS)]) + _RESULTS + b"\x89\x00"

EXPECTED_101 = Response(
    version="HTTP/1.1", status=101, reason="Switching Protocols",
    headers=[["upgrade", "websocket"], ["connection", "upgrade"],
             ["sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="],
             ["sec-websocket-extensions", "permessage-deflate; client_max_window_bits=15"],
             ["dg-model-name", "general-nova-3"],
             ["dg-model-uuid", "40bd3654-e622-47c4-a111-63a61b23bfb4"],
             ["dg-request-id", REQUEST_ID], ["date", "Thu, 21 Nov 2024 04:53:12 GMT"]],
    head_size=len(SERVER_101), body=None, body_complete=True,
)

AUTH_ERROR_BODY = (b'{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id":"'
                   + REQUEST_ID.encode() + b'"}')
SERVER_401 = (
    b"HTTP/1.1 401 Unauthorized\r\n"
    b"content-type: application/json\r\n"
    b"dg-error: Invalid credentials.\r\n"
    b"dg-request-id: " + REQUEST_ID.encode() + b"\r\n"
    b"content-length: " + str(len(AUTH_ERROR_BODY)).encode() + b"\r\n"
    b"date: Thu, 21 Nov 2024 04:53:12 GMT\r\n"
    b"\r\n" + AUTH_ERROR_BODY
)
EXPECTED_401 = Response(
    version="HTTP/1.1", status=401, reason="Unauthorized",
    headers=[["content-type", "application/json"], ["dg-error", "Invalid credentials."],
             ["dg-request-id", REQUEST_ID], ["content-length", "112"],
             ["date", "Thu, 21 Nov 2024 04:53:12 GMT"]],
    head_size=len(SERVER_401) - len(AUTH_ERROR_BODY), body=AUTH_ERROR_BODY, body_complete=True,
    body_size=112,
)

QUERY_ERROR = (b'{"err_code":"INVALID_QUERY_PARAMETER","err_msg":"Failed to deserialize query parameters: '
               b'invalid value: string \\"english\\", expected a language code","request_id":"'
               + REQUEST_ID.encode() + b'"}')
SERVER_400_CHUNKED = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"content-type: application/json\r\n"
    b"dg-error: Failed to deserialize query parameters: invalid value\r\n"
    b"dg-request-id: " + REQUEST_ID.encode() + b"\r\n"
    b"transfer-encoding: chunked\r\n"
    b"\r\n"
    + b"%x;part=1\r\n" % 40 + QUERY_ERROR[:40] + b"\r\n"
    + b"%X\r\n" % (len(QUERY_ERROR) - 40) + QUERY_ERROR[40:] + b"\r\n"
    b"0\r\n"
    b"x-trailer: done\r\n"
    b"\r\n"
)
EXPECTED_400 = Response(
    version="HTTP/1.1", status=400, reason="Bad Request",
    headers=[["content-type", "application/json"],
             ["dg-error", "Failed to deserialize query parameters: invalid value"],
             ["dg-request-id", REQUEST_ID], ["transfer-encoding", "chunked"]],
    head_size=SERVER_400_CHUNKED.index(b"\r\n\r\n") + 4, body=QUERY_ERROR, body_complete=True,
    body_size=len(QUERY_ERROR), chunked=True, trailers=[["x-trailer", "done"]],
)

CASES = [
    # (parser factory, stream, expected message, expected leftover)
    (RequestParser, CLIENT_HANDSHAKE + CLIENT_FIRST_FRAME, EXPECTED_REQUEST, CLIENT_FIRST_FRAME),
    (ResponseParser, SERVER_101 + SERVER_FIRST_FRAMES, EXPECTED_101, SERVER_FIRST_FRAMES),
    (ResponseParser, SERVER_101, EXPECTED_101, b""),
    (ResponseParser, SERVER_401, EXPECTED_401, b""),
    (ResponseParser, SERVER_400_CHUNKED, EXPECTED_400, b""),
]
CASE_IDS = ["request+frame", "101+frames", "101", "401", "400-chunked"]


def feed_chunks(parser, chunks):
    """Feed every chunk; returns the messages feed() handed back (must be exactly one)."""
    return [m for m in (parser.feed(chunk) for chunk in chunks) if m is not None]


def test_the_samples_are_what_the_tests_claim():
    assert websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert len(AUTH_ERROR_BODY) == 112
    assert len(QUERY_ERROR) > 40 and CLIENT_FIRST_FRAME == b"\x82\x84\x11\x22\x33\x44\x11\x23\x31\x47"


def test_each_sample_parses_whole():
    for factory, stream, expected, leftover in CASES:
        parser = factory()
        assert feed_chunks(parser, [stream]) == [expected]
        assert parser.leftover == leftover
        assert parser.error is None


def test_each_sample_split_at_every_offset():
    for factory, stream, expected, leftover in CASES:
        for offset in range(len(stream) + 1):
            parser = factory()
            view = memoryview(stream)
            assert feed_chunks(parser, [view[:offset], view[offset:]]) == [expected], offset
            assert parser.leftover == leftover, offset
            assert parser.error is None


def test_each_sample_one_byte_at_a_time():
    for factory, stream, expected, leftover in CASES:
        parser = factory()
        assert feed_chunks(parser, [stream[i:i + 1] for i in range(len(stream))]) == [expected]
        assert parser.leftover == leftover
        assert parser.error is None


def test_101_is_returned_by_the_feed_that_completes_its_head_with_the_frames_as_leftover():
    parser = ResponseParser()
    assert parser.feed(SERVER_101[:-1]) is None
    assert parser.leftover == b""
    assert parser.feed(SERVER_101[-1:] + SERVER_FIRST_FRAMES) == EXPECTED_101
    assert parser.leftover == SERVER_FIRST_FRAMES


def test_the_401_body_reads_as_deepgram_error():
    response = ResponseParser().feed(SERVER_401)
    assert response.header("DG-Error") == "Invalid credentials."
    assert parse_error_body(response.body, response.header("content-type")) == {
        "err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.", "request_id": REQUEST_ID}


def test_the_chunked_400_body_is_dechunked_json():
    response = ResponseParser().feed(SERVER_400_CHUNKED)
    assert json.loads(response.body)["err_code"] == "INVALID_QUERY_PARAMETER"


def test_the_101_extensions_give_the_deflate_agreement():
    response = ResponseParser().feed(SERVER_101)
    assert deflate_agreement(response.header("Sec-WebSocket-Extensions")) == {
        "server_no_context_takeover": False, "client_no_context_takeover": False,
        "server_max_window_bits": 15, "client_max_window_bits": 15}


@st.composite
def chunked_case(draw):
    factory, stream, expected, leftover = draw(st.sampled_from(CASES))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    return factory, [stream[a:b] for a, b in zip(bounds, bounds[1:])], expected, leftover


@settings(max_examples=300, deadline=None)
@given(chunked_case())
def test_any_chunking_gives_the_same_parse(case):
    factory, chunks, expected, leftover = case
    parser = factory()
    assert feed_chunks(parser, chunks) == [expected]
    assert parser.leftover == leftover
    assert parser.error is None
    assert parser.finish() == expected  # finish() after completion hands back the same message
    assert parser.error is None
