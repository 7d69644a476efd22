"""Fuzz the HTTP/1.x upgrade parsers and the WebSocket negotiation helpers.

Input: byte 0 picks request (even) or response (odd) and the chunk size; the rest is one
direction's stream.  Properties: nothing raises; `error` is None or one line; the parse
does not depend on how the stream is chunked (same message, headers, body, error and
leftover as a one-piece feed); head_size never exceeds the input; header values go through
the extension / accept / error-body helpers without raising.
"""
from _common import Input, instrument, main

with instrument():
    from analyzer.http import (RequestParser, ResponseParser, body_text, deflate_agreement,
                               looks_like_request, looks_like_response, parse_error_body,
                               parse_extensions, websocket_accept)


def summary(message, parser):
    if message is None:
        return None, parser.error
    common = (message.head_size, [list(h) for h in message.headers], message.body,
              getattr(message, "body_complete", None), parser.leftover, parser.error)
    if hasattr(message, "method"):
        return (message.method, message.target, message.path, message.version, *common)
    return (message.version, message.status, message.reason, *common)


def parse(cls, stream: bytes, chunk: int, max_header: int):
    kwargs = {"max_header_bytes": max_header}
    if cls is ResponseParser:
        kwargs["max_body_bytes"] = 4096
    parser = cls(**kwargs)
    found = []
    for i in range(0, len(stream), chunk):
        m = parser.feed(stream[i:i + chunk])
        if m is not None:
            found.append(m)
    assert len(found) <= 1
    finished = parser.finish()
    if found:
        assert finished is found[0]
    message = finished
    if parser.error is not None:
        assert isinstance(parser.error, str) and "\n" not in parser.error, repr(parser.error)
    if message is not None:
        assert 0 < message.head_size <= len(stream)
    return message, parser


def TestOneInput(data: bytes) -> None:
    inp = Input(data)
    mode = inp.byte()
    stream = inp.rest()
    cls = ResponseParser if mode & 1 else RequestParser
    chunk = (mode >> 1) + 1
    max_header = 65536 if mode & 0x80 else 512
    whole, whole_parser = parse(cls, stream, max(1, len(stream)), max_header)
    pieces, pieces_parser = parse(cls, stream, chunk, max_header)
    a, b = summary(whole, whole_parser), summary(pieces, pieces_parser)
    if whole is None or pieces is None:
        # A head that fails is reported the same way however it arrived...
        assert (whole is None) == (pieces is None), (a, b)
    else:
        # ...and one that parses, parses to the same message.
        assert a == b, (a, b)
    looks_like_request(stream[:16])
    looks_like_response(stream[:16])
    if whole is not None:
        for name in ("sec-websocket-extensions", "sec-websocket-key", "content-type"):
            for value in whole.header_all(name):
                assert isinstance(parse_extensions(value), list)
                deflate_agreement(value)
                if name == "sec-websocket-key":
                    websocket_accept(value)
        if whole.body:
            parse_error_body(whole.body, whole.header("content-type"))
            body_text(whole.body)


if __name__ == "__main__":
    main(TestOneInput)
