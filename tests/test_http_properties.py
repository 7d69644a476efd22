"""Properties: generated messages parse back to what was generated, however they are chunked,
and no input makes the parsers raise."""
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.http import RequestParser, ResponseParser, deflate_agreement, parse_extensions

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(TCHARS, min_size=1, max_size=12)
# Field values: visible ASCII and inner spaces; no leading/trailing whitespace (values are stripped).
values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=20) | st.builds(
    lambda a, b: f"{a} {b}", st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1, max_size=8),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1, max_size=8))
fields = st.lists(st.tuples(tokens, values), max_size=8)
line_ends = st.sampled_from(["\r\n", "\n"])


def chunkings(data: bytes):
    return st.lists(st.integers(0, len(data)), max_size=10).map(
        lambda cuts: [data[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)])])


def feed_all(parser, chunks):
    return [m for m in (parser.feed(chunk) for chunk in chunks) if m is not None]


@settings(max_examples=200, deadline=None)
@given(st.data(), tokens, st.text(TCHARS.replace("?", "") + "/", min_size=1, max_size=20), fields, line_ends,
       st.binary(max_size=20))
def test_generated_request_round_trips_under_any_chunking(data, method, path, header_fields, eol, after):
    head = (f"{method} /{path} HTTP/1.1{eol}" + "".join(f"{n}: {v}{eol}" for n, v in header_fields) + eol).encode()
    chunks = data.draw(chunkings(head + after))
    parser = RequestParser()
    [request] = feed_all(parser, chunks)
    assert (request.method, request.target, request.path) == (method, f"/{path}", f"/{path}")
    assert request.headers == [[n, v] for n, v in header_fields]
    assert request.head_size == len(head)
    assert parser.leftover == after
    assert parser.error is None


@settings(max_examples=200, deadline=None)
@given(st.data(), st.integers(100, 599), st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=20),
       fields, st.binary(max_size=40), st.lists(st.integers(1, 40), max_size=4), line_ends)
def test_generated_response_round_trips_under_any_chunking(data, status, reason, header_fields, body, chunk_sizes, eol):
    header_fields = [(n, v) for n, v in header_fields
                     if n.lower() not in ("content-length", "transfer-encoding")]
    chunked = bool(chunk_sizes)
    if chunked:
        framing = f"Transfer-Encoding: chunked{eol}"
        encoded, rest = b"", body
        for size in chunk_sizes:
            piece, rest = rest[:size], rest[size:]
            if piece:
                encoded += b"%x%s%s%s" % (len(piece), eol.encode(), piece, eol.encode())
        encoded += b"%x%s%s%s" % (len(rest), eol.encode(), rest, eol.encode()) if rest else b""
        encoded += b"0" + eol.encode() + eol.encode()
    else:
        framing, encoded = f"Content-Length: {len(body)}{eol}", body
    head = (f"HTTP/1.1 {status} {reason}{eol}" + "".join(f"{n}: {v}{eol}" for n, v in header_fields)
            + framing + eol).encode()
    has_body = not (status < 200 or status in (204, 304))
    stream = head + encoded + b"NEXT"
    parser = ResponseParser()
    [response] = feed_all(parser, data.draw(chunkings(stream)))
    assert (response.status, response.reason, response.head_size) == (status, reason, len(head))
    assert response.headers[:len(header_fields)] == [[n, v] for n, v in header_fields]
    assert parser.error is None
    if has_body:
        assert (response.body, response.chunked, response.body_complete) == (body, chunked, True)
        assert parser.leftover == b"NEXT"
    else:
        assert response.body is None
        assert parser.leftover == encoded + b"NEXT"


@settings(max_examples=500, deadline=None)
@given(st.data(), st.binary(max_size=300), st.sampled_from([b"", b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n",
                                                            b"HTTP/1.1 400 x\r\nTransfer-Encoding: chunked\r\n\r\n"]))
def test_no_input_makes_the_parsers_raise(data, noise, prefix):
    stream = prefix + noise
    for parser in (RequestParser(max_header_bytes=128), ResponseParser(max_header_bytes=128, max_body_bytes=64)):
        chunks = data.draw(chunkings(stream))
        results = feed_all(parser, chunks)
        assert len(results) <= 1
        finished = parser.finish()
        assert parser.error is None or (isinstance(parser.error, str) and "\n" not in parser.error)
        if results:
            assert finished is results[0]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_extension_parsing_never_raises(text):
    assert isinstance(parse_extensions(text), list)
    agreement = deflate_agreement(text)
    assert agreement is None or set(agreement) >= {"server_max_window_bits", "client_max_window_bits"}
