"""permessage-deflate inflation (Inflater) against zlib as the sender, under any fragmentation.

Messages compressed the way an RFC 7692 sender does (raw deflate, sync flush, trailer removed,
context kept across messages unless no_context_takeover) inflate back exactly, whatever the
window, however the payload is fragmented; the output limits are exact: `size` stops at
max_inflate (limit_hit) and `output` keeps exactly the first `keep` bytes.  Garbage never
raises.  The real compressed payloads of dg_deflate.pcap are among the inputs.
"""
from __future__ import annotations

import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.websocket.deflate import Inflater

from test_fuzz_harnesses import seeds

_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Real message texts (Deepgram JSON) and binary-ish payloads.
REAL_TEXTS = [p for _name, _path, _q, messages in seeds.deepgram_sessions()
              for _d, op, p, _s in messages if op == 1][:200]
texts = st.one_of(st.sampled_from(REAL_TEXTS), st.binary(max_size=3000),
                  st.builds(lambda t, n: t * n, st.binary(min_size=1, max_size=40), st.integers(1, 2000)))


def compress_messages(messages, bits: int, no_takeover: bool) -> list[bytes]:
    out = []
    c = None
    for m in messages:
        if c is None or no_takeover:
            c = zlib.compressobj(9, zlib.DEFLATED, -max(bits, 9))
        wire = c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH)
        assert wire[-4:] == b"\x00\x00\xff\xff"
        out.append(wire[:-4])
    return out


def fragments(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


@settings(max_examples=150, **_SETTINGS)
@given(st.lists(texts, min_size=1, max_size=6), st.integers(9, 15), st.booleans(),
       st.lists(st.integers(0, 1 << 16), max_size=6), st.integers(1, 5000))
def test_compressed_messages_inflate_back_exactly(messages, bits, no_takeover, cuts, keep):
    inflater = Inflater(bits, no_takeover, max_inflate=1 << 24)
    for message, wire in zip(messages, compress_messages(messages, bits, no_takeover)):
        inflater.begin(keep)
        for piece in fragments(wire, cuts):
            inflater.feed(piece)
        inflater.end(True)
        assert (inflater.error, inflater.limit_hit, inflater.window_exceeded) == (None, False, False)
        assert inflater.size == len(message)
        assert b"".join(inflater.output) == message[:keep] and inflater.kept == min(keep, len(message))


@settings(max_examples=60, **_SETTINGS)
@given(st.binary(min_size=1, max_size=200), st.integers(1, 500), st.integers(1, 300_000))
def test_max_inflate_is_exact(unit, repeat, limit):
    message = unit * repeat * 50
    [wire] = compress_messages([message], 15, False)
    inflater = Inflater(15, False, max_inflate=limit)
    inflater.begin(64)
    inflater.feed(wire)
    inflater.end(True)
    assert inflater.size == min(len(message), limit)
    assert inflater.limit_hit == (len(message) > limit)
    assert inflater.error is None
    assert b"".join(inflater.output) == message[:min(64, limit)]


@settings(max_examples=150, **_SETTINGS)
@given(st.lists(st.binary(max_size=500), min_size=1, max_size=6), st.integers(8, 15), st.booleans(),
       st.lists(st.booleans(), min_size=6, max_size=6))
def test_garbage_never_raises_and_stays_bounded(payloads, bits, no_takeover, finals):
    inflater = Inflater(bits, no_takeover, max_inflate=1 << 16)
    for payload, final in zip(payloads, finals):
        inflater.begin(100)
        inflater.feed(payload)
        inflater.end(final)
        assert inflater.size <= 1 << 16 and inflater.kept <= 100
        assert len(b"".join(inflater.output)) == inflater.kept
        assert inflater.error is None or isinstance(inflater.error, str)


def test_after_a_corrupt_message_the_context_is_reported_lost_then_recovers():
    texts = [b'{"type": "Results", "n": %d, "pad": "%s"}' % (i, b"x" * 40) for i in range(6)]
    wires = compress_messages(texts, 15, False)
    inflater = Inflater(15, False, max_inflate=1 << 20)
    results = []
    for i, wire in enumerate(wires):
        inflater.begin(1 << 16)
        inflater.feed(b"\xff\xff\xff" if i == 2 else wire)
        inflater.end(True)
        results.append((inflater.error is None, inflater.context_lost))
    # Message 2 is garbage; the next ones lost the shared history, and say so.
    assert results[:3] == [(True, False), (True, False), (False, False)]
    assert all(lost for _ok, lost in results[3:])
