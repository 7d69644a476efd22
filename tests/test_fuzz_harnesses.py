"""The atheris harnesses of fuzz/ in the test suite: their seed corpora replay cleanly, and
hypothesis drives the same properties with mutations of the real seeds (byte flips, cuts,
spliced duplicates).  Other test_fuzz_* modules import `harness`, `corpus` and `mutated`.

The seeds come from captures/ (fuzz/seeds.py): whole capture files, each connection's TCP
byte streams, HTTP heads, WebSocket frame streams, TLS record streams with their key logs,
and the Deepgram messages of every session.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "fuzz"
NAMES = ["pcap", "tcp", "http", "websocket", "deflate", "tls", "deepgram", "pipeline"]


def _load(name: str, filename: str):
    os.environ["DGCAP_FUZZ_NO_INSTRUMENT"] = "1"  # analyzer is imported already, uninstrumented
    for folder in (str(FUZZ), str(ROOT)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FUZZ / filename)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


seeds = _load("seeds", "seeds.py")


def harness(name: str):
    """The fuzz/fuzz_<name>.py module (its TestOneInput raises only on a bug)."""
    return _load(f"fuzz_{name}", f"fuzz_{name}.py")


@lru_cache(maxsize=None)
def corpus(name: str) -> tuple[bytes, ...]:
    """The seed corpus of a harness, as fuzz/run.py writes it, in a stable order."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        seeds.write_corpora(Path(tmp), [name])
        return tuple(sorted(p.read_bytes() for p in (Path(tmp) / name).iterdir()))


@st.composite
def mutated(draw, name: str, keep_prefix: int = 0, max_size: int | None = None):
    """A seed of harness `name` with byte flips, a cut and a spliced duplicate; the first
    `keep_prefix` bytes (the harness's mode bytes) are left alone."""
    data = bytearray(draw(st.sampled_from(corpus(name))))
    if max_size is not None:
        del data[max_size:]
    if len(data) > keep_prefix:
        for _ in range(draw(st.integers(0, 6))):
            i = draw(st.integers(keep_prefix, len(data) - 1))
            data[i] ^= draw(st.integers(1, 255))
        if draw(st.booleans()):
            a = draw(st.integers(keep_prefix, len(data)))
            b = draw(st.integers(a, min(len(data), a + 4096)))
            at = draw(st.integers(keep_prefix, len(data)))
            data[at:at] = data[a:b]
        if draw(st.integers(0, 3)) == 0:
            del data[draw(st.integers(keep_prefix, len(data))):]
    return bytes(data)


@pytest.mark.parametrize("name", NAMES)
def test_seed_corpus_replays_through_the_harness(name):
    module = harness(name)
    inputs = corpus(name)
    assert len(inputs) >= 10
    for data in inputs:
        module.TestOneInput(data)


def test_seeds_come_from_every_kind_of_sample():
    kinds = {name: len(corpus(name)) for name in NAMES}
    # Every capture file; a seed per plain-text connection with HTTP; both directions of
    # every WebSocket; the TLS connections with key logs; every session's messages.
    assert kinds["pcap"] == kinds["pipeline"] == len(seeds.capture_paths()) + 3
    assert len(seeds.tls_streams()) == 9
    # TLS 1.2 key logs have a CLIENT_RANDOM line, TLS 1.3 ones four traffic secrets (one of
    # them embedded in the pcapng); tls13_multi's three connections share one key log with
    # the secrets of all three.
    assert sorted(keylog.count("CLIENT_RANDOM ") + keylog.count("_TRAFFIC_SECRET") // 4
                  for keylog, _, _ in seeds.tls_streams()) == [1] * 6 + [3] * 3
    heads = seeds.http_heads()
    assert any(h.startswith(b"GET /v1/listen?") for h in heads)
    assert any(h.startswith(b"HTTP/1.1 101 ") for h in heads)
    assert any(h.startswith(b"HTTP/1.1 401 ") for h in heads)


# Every harness under hypothesis, on mutated real seeds.  The harnesses' own properties are
# the assertions (see each fuzz/fuzz_<name>.py): never an exception out of a parser, parses
# independent of chunking, frames and inflated text round-trip, no corrupted plaintext.
_SETTINGS = dict(deadline=None, derandomize=False, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large])


@settings(max_examples=60, **_SETTINGS)
@given(mutated("http", keep_prefix=1))
def test_http_harness_on_mutated_heads(data):
    harness("http").TestOneInput(data)


@settings(max_examples=40, **_SETTINGS)
@given(mutated("websocket", keep_prefix=2, max_size=4096))
def test_websocket_harness_on_mutated_streams(data):
    harness("websocket").TestOneInput(data)


@settings(max_examples=40, **_SETTINGS)
@given(mutated("tcp", keep_prefix=9, max_size=8192))
def test_tcp_harness_on_mutated_streams(data):
    harness("tcp").TestOneInput(data)


@settings(max_examples=60, **_SETTINGS)
@given(mutated("deflate", keep_prefix=1))
def test_deflate_harness_on_mutated_payloads(data):
    harness("deflate").TestOneInput(data)


@settings(max_examples=25, **_SETTINGS)
@given(mutated("tls", keep_prefix=2))
def test_tls_harness_on_mutated_records(data):
    harness("tls").TestOneInput(data)


@settings(max_examples=40, **_SETTINGS)
@given(mutated("deepgram", keep_prefix=1))
def test_deepgram_harness_on_mutated_sessions(data):
    harness("deepgram").TestOneInput(data)


@settings(max_examples=40, **_SETTINGS)
@given(mutated("pcap"))
def test_pcap_harness_on_mutated_captures(data):
    harness("pcap").TestOneInput(data)
