"""Request/response parsing details: tolerated irregularities, framing, limits and errors."""
import pytest

from analyzer.http import (RequestParser, ResponseParser, looks_like_request,
                           looks_like_response)


def parse_response(stream, **options):
    parser = ResponseParser(**options)
    return parser.feed(stream), parser


def parse_request(stream, **options):
    parser = RequestParser(**options)
    return parser.feed(stream), parser


# --- sniffing ---------------------------------------------------------------------------

@pytest.mark.parametrize("data, expected", [
    (b"GET ", True),
    (b"GET", False),
    (b"G", False),
    (b"", False),
    (b"GET /v1/listen HTTP/1.1\r\nHost: x\r\n", True),
    (b"GET /v1/listen HTTP/1.1\n", True),
    (b"GET /v1/listen HT", True),
    (b"M-SEARCH * HTTP/1.1\r\n", True),  # any token is a method
    (b"GET  /", False),  # empty target
    (b" GET /", False),
    (b"GET /a\r\n", False),  # HTTP/0.9-style line: not an Upgrade request
    (b"GET /a HTTP/x", False),
    (b"GET /a HTTP/1.1 extra", False),
    (b"GET /a\x00b HTTP/1.1", False),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", False),  # TLS ClientHello
    (b"SSH-2.0-OpenSSH_9.6\r\n", False),
])
def test_looks_like_request(data, expected):
    assert looks_like_request(data) is expected
    assert looks_like_request(memoryview(data)) is expected


@pytest.mark.parametrize("data, expected", [
    (b"HTTP/1.1 101 Switching Protocols\r\n", True),
    (b"HTTP/1.0 200 OK", True),
    (b"HTTP/1.", True),
    (b"HTTP/1", False),
    (b"HTTP/2 200\r\n", False),
    (b"http/1.1 200 OK", False),
    (b"\x81\x05hello", False),
    (b"", False),
])
def test_looks_like_response(data, expected):
    assert looks_like_response(data) is expected


# --- status line and header fields ------------------------------------------------------

@pytest.mark.parametrize("status_line, status, reason", [
    (b"HTTP/1.1 101 \r\n", 101, ""),
    (b"HTTP/1.1 101\r\n", 101, ""),
    (b"HTTP/1.1 101 Web Socket Protocol Handshake\r\n", 101, "Web Socket Protocol Handshake"),
    (b"HTTP/1.1 101 Switching Protocols \r\n", 101, "Switching Protocols "),
    (b"HTTP/1.0 503 Service Unavailable\r\n", 503, "Service Unavailable"),
])
def test_reason_phrase_is_kept_as_sent(status_line, status, reason):
    response, parser = parse_response(status_line + b"Content-Length: 0\r\n\r\n")
    assert (response.status, response.reason) == (status, reason)
    assert parser.error is None


def test_header_names_keep_their_case_and_lookups_ignore_it():
    response, _ = parse_response(b"HTTP/1.1 101 \r\nsec-websocket-accept: abc=\r\nDG-REQUEST-ID: 1\r\n\r\n")
    assert response.headers == [["sec-websocket-accept", "abc="], ["DG-REQUEST-ID", "1"]]
    assert response.header("Sec-WebSocket-Accept") == "abc="
    assert response.header("dg-request-id") == "1"
    assert response.header("dg-error") is None
    assert response.header_all("dg-error") == []


def test_duplicate_headers_are_kept_in_order():
    request, _ = parse_request(b"GET / HTTP/1.1\r\nSec-WebSocket-Protocol: token\r\nX: 1\r\n"
                               b"sec-websocket-protocol: bearer\r\n\r\n")
    assert request.header_all("Sec-WebSocket-Protocol") == ["token", "bearer"]
    assert request.header("SEC-WEBSOCKET-PROTOCOL") == "token"
    assert request.headers == [["Sec-WebSocket-Protocol", "token"], ["X", "1"],
                               ["sec-websocket-protocol", "bearer"]]


def test_bare_lf_folding_and_spaces_around_colon_are_tolerated():
    response, parser = parse_response(b"HTTP/1.1 101 Switching Protocols\n"
                                      b"Upgrade : websocket\n"
                                      b"X-Folded:  first\n"
                                      b" \t second\r\n"
                                      b"\tthird\n"
                                      b"X-Empty:\n"
                                      b"X-Empty-Folded:\n"
                                      b"  later\n"
                                      b"\nFRAME")
    assert parser.error is None
    assert response.headers == [["Upgrade", "websocket"], ["X-Folded", "first second third"],
                                ["X-Empty", ""], ["X-Empty-Folded", "later"]]
    assert response.head_size == len(b"HTTP/1.1 101 Switching Protocols\nUpgrade : websocket\n"
                                     b"X-Folded:  first\n \t second\r\n\tthird\nX-Empty:\n"
                                     b"X-Empty-Folded:\n  later\n\n")
    assert parser.leftover == b"FRAME"


def test_head_ending_in_lf_crlf_is_found():
    response, parser = parse_response(b"HTTP/1.1 101 \nA: b\n\r\nrest")
    assert response.headers == [["A", "b"]]
    assert response.head_size == 21
    assert parser.leftover == b"rest"


def test_utf8_header_values_are_decoded_and_other_bytes_fall_back_to_latin1():
    response, _ = parse_response(b"HTTP/1.1 400 Bad Request\r\ndg-error: language=espa\xc3\xb1ol\r\n"
                                 b"X: \xe9\r\nContent-Length: 0\r\n\r\n")
    assert response.headers == [["dg-error", "language=español"], ["X", "é"], ["Content-Length", "0"]]


# --- requests ---------------------------------------------------------------------------

def test_query_decoding():
    request, parser = parse_request(b"GET /v1/listen?model=nova-3&keyterm=a&keyterm=b&x=%20y+z&flag&&k=1&k=2&k=3"
                                    b"&%41=%zz HTTP/1.1\r\n\r\n")
    assert parser.error is None
    assert request.target == "/v1/listen?model=nova-3&keyterm=a&keyterm=b&x=%20y+z&flag&&k=1&k=2&k=3&%41=%zz"
    assert request.path == "/v1/listen"
    assert request.query == {"model": "nova-3", "keyterm": ["a", "b"], "x": " y z", "flag": "",
                             "k": ["1", "2", "3"], "A": "%zz"}
    assert request.version == "HTTP/1.1"


def test_target_without_query():
    request, _ = parse_request(b"GET /v1/listen HTTP/1.1\r\n\r\n")
    assert (request.target, request.path, request.query) == ("/v1/listen", "/v1/listen", {})
    assert request.body is None and request.body_complete is True


def test_request_with_content_length_body_waits_for_the_body():
    parser = RequestParser()
    assert parser.feed(b"POST /v1/auth/grant HTTP/1.1\r\nContent-Length: 5\r\n\r\nab") is None
    request = parser.feed(b"cdeGET")
    assert (request.method, request.body, request.body_size, request.head_size) == ("POST", b"abcde", 5, 51)
    assert parser.leftover == b"GET"


def test_request_with_chunked_body():
    request, parser = parse_request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert (request.body, request.chunked, request.body_complete) == (b"abc", True, True)
    assert parser.error is None


def test_request_transfer_encoding_without_chunked_is_an_error():
    request, parser = parse_request(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nxyz")
    assert parser.error == "request Transfer-Encoding does not end with chunked: 'gzip'"
    assert (request.method, request.body, request.body_complete) == ("POST", None, False)
    assert parser.leftover == b""


def test_feeding_after_completion_appends_to_leftover():
    parser = RequestParser()
    assert parser.feed(b"GET / HTTP/1.1\r\n\r\n\x81") is not None
    assert parser.feed(b"\x80") is None
    assert parser.feed(memoryview(b"\x01\x02")) is None
    assert parser.leftover == b"\x81\x80\x01\x02"


# --- response framing -------------------------------------------------------------------

def test_content_length_body_and_pipelined_leftover():
    response, parser = parse_response(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1")
    assert (response.body, response.body_complete, response.body_size) == (b"abc", True, 3)
    assert parser.leftover == b"HTTP/1.1"


def test_content_length_zero_completes_with_the_head():
    response, parser = parse_response(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    assert (response.body, response.body_complete) == (b"", True)


def test_repeated_equal_content_length_is_one_length():
    response, parser = parse_response(b"HTTP/1.1 400 x\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok")
    assert (response.body, parser.error) == (b"ok", None)


@pytest.mark.parametrize("value", [b"abc", b"1, 2", b"-1", b"", b"+3"])
def test_invalid_content_length_returns_the_head_with_an_error(value):
    response, parser = parse_response(b"HTTP/1.1 401 Unauthorized\r\ndg-error: Invalid credentials.\r\n"
                                      b"Content-Length: " + value + b"\r\n\r\n{}")
    assert parser.error == f"invalid Content-Length: {value.decode()!r}"
    assert (response.status, response.header("dg-error")) == (401, "Invalid credentials.")
    assert (response.body, response.body_complete) == (None, False)
    assert parser.feed(b"more") is None
    assert parser.leftover == b""


@pytest.mark.parametrize("status", [100, 101, 103, 204, 304])
def test_statuses_without_a_body_leave_everything_as_leftover(status):
    response, parser = parse_response(b"HTTP/1.1 %d x\r\nContent-Length: 4\r\n\r\nnext" % status)
    assert (response.status, response.body, response.body_complete) == (status, None, True)
    assert parser.leftover == b"next"


def test_100_continue_then_the_final_response_from_leftover():
    first, parser = parse_response(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n\x88\x00")
    assert first.status == 100
    second, parser2 = parse_response(parser.leftover)
    assert (second.status, parser2.leftover) == (101, b"\x88\x00")


def test_head_request_response_has_no_body():
    response, parser = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", request_method="HEAD")
    assert (response.body, response.body_complete, parser.leftover) == (None, True, b"")


def test_connect_2xx_is_a_tunnel():
    response, parser = parse_response(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03", request_method="CONNECT")
    assert (response.body, parser.leftover) == (None, b"\x16\x03\x03")


def test_read_until_close_completes_at_finish():
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.0 502 Bad Gateway\r\nContent-Type: text/html\r\n\r\n<html>") is None
    assert parser.feed(b"</html>") is None
    response = parser.finish()
    assert (response.status, response.body, response.body_complete, response.body_size) == (
        502, b"<html></html>", True, 13)
    assert parser.error is None
    assert parser.finish() is response


def test_transfer_encoding_not_ending_in_chunked_reads_until_close():
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 500 x\r\nTransfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\nabc") is None
    response = parser.finish()
    assert (response.body, response.chunked, response.body_complete) == (b"abc", False, True)


def test_chunked_wins_over_content_length():
    response, parser = parse_response(b"HTTP/1.1 400 x\r\nContent-Length: 100\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
                                      b"2\r\nhi\r\n0\r\n\r\n")
    assert (response.body, response.chunked, response.body_complete) == (b"hi", True, True)


def test_finish_with_a_partial_content_length_body():
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 10\r\n\r\n{\"err") is None
    response = parser.finish()
    assert (response.status, response.body, response.body_size, response.body_complete) == (
        401, b'{"err', 5, False)
    assert parser.error == "connection closed after 5 of 10 body bytes"


def test_finish_with_a_missing_final_chunk():
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 400 x\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=\"a;b\"\r\nabcd\r\n2\r") is None
    response = parser.finish()
    assert (response.body, response.chunked, response.body_complete) == (b"abcd", True, False)
    assert parser.error == "connection closed before the last chunk (4 body bytes decoded)"


def test_finish_inside_the_chunk_trailers():
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 400 x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\n")
    response = parser.finish()
    assert (response.body, response.body_complete) == (b"a", False)
    assert parser.error == "connection closed inside the chunked trailer section"


def test_chunk_sizes_tolerate_padding_extensions_and_bare_lf():
    response, parser = parse_response(b"HTTP/1.1 400 x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      b"a ; name=value;other\r\n0123456789\r\n 1\n!\n000\n\nafter")
    assert (response.body, response.body_complete, parser.error) == (b"0123456789!", True, None)
    assert parser.leftover == b"after"


@pytest.mark.parametrize("body, error", [
    (b"zz\r\n", "invalid chunk size line: b'zz'"),
    (b"\r\n", "invalid chunk size line: b''"),
    (b"2\r\nabcd\r\n", "chunk data not followed by a line end: b'cd'"),
    (b"0\r\nno colon\r\n\r\n", "malformed header line: 'no colon'"),
])
def test_broken_chunked_bodies_return_the_head_with_an_error(body, error):
    response, parser = parse_response(b"HTTP/1.1 400 x\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"tail")
    assert parser.error == error
    assert (response.status, response.body_complete) == (400, False)
    assert parser.leftover == b""
    assert parser.finish() is response
    assert parser.error == error


def test_body_beyond_max_body_bytes_is_counted_not_kept():
    response, parser = parse_response(b"HTTP/1.1 500 x\r\nContent-Length: 10\r\n\r\n0123456789", max_body_bytes=4)
    assert (response.body, response.body_size, response.body_complete) == (b"0123", 10, True)
    chunked, _ = parse_response(b"HTTP/1.1 500 x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n",
                                max_body_bytes=4)
    assert (chunked.body, chunked.body_size) == (b"abcd", 6)


# --- limits and errors ------------------------------------------------------------------

def test_oversized_header_section_stops_at_the_limit():
    parser = ResponseParser(max_header_bytes=100)
    stream = b"HTTP/1.1 101 \r\n" + b"X: " + b"a" * 200
    for i in range(99):
        assert parser.feed(stream[i:i + 1]) is None
    assert parser.error is None
    assert parser.feed(stream[99:100]) is None
    assert parser.error == "response header section longer than 100 bytes"
    assert parser.feed(b"\r\n\r\n") is None
    assert parser.finish() is None
    assert parser.error == "response header section longer than 100 bytes"


def test_header_section_of_exactly_the_limit_is_accepted_and_one_more_is_not():
    head = b"GET / HTTP/1.1\r\nX: " + b"a" * 30 + b"\r\n\r\n"
    request, parser = parse_request(head, max_header_bytes=len(head))
    assert (request.head_size, parser.error) == (len(head), None)
    request, parser = parse_request(head, max_header_bytes=len(head) - 1)
    assert request is None
    assert parser.error == f"request header section longer than {len(head) - 1} bytes"


def test_non_http_bytes_are_rejected_at_once():
    request, parser = parse_request(b"\x16\x03\x01\x02\x00")
    assert request is None
    assert parser.error == r"not an HTTP request: starts with b'\x16\x03\x01\x02\x00'"
    response, parser = parse_response(b"\x81\x05hello")
    assert response is None
    assert parser.error == r"not an HTTP response: starts with b'\x81\x05hello'"


def test_non_http_rejection_quotes_a_clipped_prefix():
    _, parser = parse_request(b"\x00" * 100)
    assert parser.error == "not an HTTP request: starts with b'" + r"\x00" * 24 + "...'"


def test_a_method_longer_than_the_sniff_window_is_not_http():
    _, parser = parse_request(b"A" * 255)
    assert parser.error is None
    _, parser = parse_request(b"A" * 256)
    assert parser.error == "not an HTTP request: starts with b'" + "A" * 24 + "...'"


@pytest.mark.parametrize("stream, error", [
    (b"HTTP/1.1 abc OK\r\n\r\n", "malformed status line: 'HTTP/1.1 abc OK'"),
    (b"HTTP/1.1 1011 x\r\n\r\n", "malformed status line: 'HTTP/1.1 1011 x'"),
    (b"HTTP/1.1 101 \r\nno colon here\r\n\r\n", "malformed header line: 'no colon here'"),
    (b"HTTP/1.1 101 \r\n: empty name\r\n\r\n", "malformed header line: ': empty name'"),
    (b"HTTP/1.1 101 \r\nBad Name: x\r\n\r\n", "malformed header line: 'Bad Name: x'"),
    (b"HTTP/1.1 101 \r\n folded: first\r\n\r\n",
     "malformed header line (continuation with no field before it): ' folded: first'"),
])
def test_malformed_response_heads(stream, error):
    response, parser = parse_response(stream)
    assert response is None
    assert parser.error == error
    assert parser.finish() is None
    assert parser.error == error


def test_malformed_request_line_after_a_plausible_prefix():
    request, parser = parse_request(b"GET /" + b"a" * 300 + b" HTTP/1.1 junk\r\n\r\n")
    assert request is None
    assert parser.error == "malformed request line: 'GET /" + "a" * 75 + "...'"


def test_finish_before_the_head_is_complete():
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 101 Switching")
    assert parser.finish() is None
    assert parser.error == "connection closed before the response head was complete (22 bytes)"
    parser = RequestParser()
    assert parser.finish() is None
    assert parser.error == "connection closed before any request bytes"


def test_errors_stay_one_line():
    _, parser = parse_response(b"HTTP/1.1 101 \r\nbad\x0bline\rwith\x00controls\r\n\r\n")
    assert parser.error == r"malformed header line: 'bad\x0bline\rwith\x00controls'"
    assert "\n" not in parser.error
