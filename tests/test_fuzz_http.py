"""The HTTP parsers on the real upgrade exchanges of captures/, split at every byte.

Every request and response head of the samples (101s with the first WebSocket frames after
them, 400/401 with JSON bodies), fed as two chunks split at each position in turn, parses to
exactly what a one-piece feed gives, and `leftover` is exactly the bytes after the message.
Bytes flipped in them never make the parsers raise (the harness fuzz/fuzz_http.py, replayed in
tests/test_fuzz_harnesses.py, mutates them further).
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.http import RequestParser, ResponseParser

from test_fuzz_harnesses import seeds

EXCHANGES = seeds.http_exchanges()


def outcome(parser_cls, chunks):
    parser = parser_cls()
    found = [m for m in (parser.feed(c) for c in chunks) if m is not None]
    message = parser.finish()
    assert found == ([message] if message is not None else [])
    if message is None:
        return None, parser.error
    return ((getattr(message, "method", None), getattr(message, "target", None),
             getattr(message, "status", None), getattr(message, "reason", None),
             [list(h) for h in message.headers], message.head_size, message.body),
            parser.leftover, parser.error)


def test_every_real_head_parses_the_same_split_anywhere():
    assert len(EXCHANGES) >= 20
    checked = 0
    for req_head, req_left, resp_head, resp_left, _deflate, status in EXCHANGES:
        for cls, stream in ((RequestParser, req_head + req_left[:300]),
                            (ResponseParser, resp_head + resp_left[:300])):
            if not stream:
                continue
            reference = outcome(cls, [stream])
            assert reference[0] is not None and reference[-1] is None
            for k in range(1, len(stream)):
                assert outcome(cls, [stream[:k], stream[k:]]) == reference, (cls.__name__, k)
                checked += 1
    assert checked > 10_000


def test_leftover_is_exactly_what_follows_the_message():
    for req_head, req_left, resp_head, resp_left, _deflate, status in EXCHANGES:
        request = RequestParser()
        assert request.feed(req_head + req_left) is not None
        assert request.leftover == req_left
        if status == 101:
            response = ResponseParser()
            assert response.feed(resp_head + resp_left) is not None
            assert response.leftover == resp_left and response.error is None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(EXCHANGES))), st.booleans(), st.lists(st.tuples(st.integers(0, 1 << 16),
                                                                                  st.integers(1, 255)),
                                                                        min_size=1, max_size=6),
       st.integers(1, 50))
def test_flipped_bytes_in_real_heads_never_raise(index, response, flips, chunk):
    req_head, req_left, resp_head, resp_left, _d, _s = EXCHANGES[index]
    stream = bytearray(resp_head + resp_left[:200] if response and resp_head else req_head)
    for at, xor in flips:
        stream[at % len(stream)] ^= xor
    parser = (ResponseParser if response and resp_head else RequestParser)(max_header_bytes=1024)
    results = [m for m in (parser.feed(bytes(stream[i:i + chunk])) for i in range(0, len(stream), chunk))
               if m is not None]
    assert len(results) <= 1
    finished = parser.finish()
    assert parser.error is None or (isinstance(parser.error, str) and "\n" not in parser.error)
    if results:
        assert finished is results[0]
