"""Conformance: the native engine and the tshark engine agree on every capture we have.

Every sample capture in captures/ and every capture of the public corpus
(../shared/corpus/public: Zeek's and Suricata's own test captures) goes through both engines.
They must agree on everything `dgcap verify` compares (handshake, frame counts per direction
and opcode, payload bytes, close codes and reasons, TCP end, gaps, findings, the Deepgram
reading, TLS facts), and frame by frame and message by message: header fields, frame
numbers, times, unmasked payloads, reassembled and inflated message contents, close codes.

KNOWN_DIFFERENCES pins, per capture, a difference where tshark is demonstrably wrong, with the
evidence.  With tshark 4.0.17 and the engine's settings (decode-as rules from the native
engine, TCP reordering on) none of these 47 captures needs one: the cases where tshark and
native do differ are reproduced by the synthetic captures of tests/test_tshark_differences.py
and listed in docs/tshark-differences.md.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analyzer.engines.compare import compare_reports
from test_tshark_engine import keylog_for, run_engines

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None,
                                reason="tshark not installed (apt-get install tshark); the tshark engine needs it")

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "public"

SAMPLES = sorted(p for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))
CORPUS_FILES = sorted(p for p in CORPUS.rglob("*") if p.suffix in (".pcap", ".pcapng")) if CORPUS.is_dir() else []

# capture file name -> [(tcp_stream, compared value, native, tshark)], each with its evidence.
KNOWN_DIFFERENCES: dict = {}


def _keylog(path: Path):
    expected = path.with_name(path.name.split(".")[0] + ".expected.json")
    if path.parent == CAPTURES and expected.exists():
        return keylog_for(json.loads(expected.read_text()))
    return None


def _check(path: Path) -> None:
    runs = run_engines(str(path), _keylog(path))
    diffs = [(d.tcp_stream, d.name, d.native, d.tshark) for d in compare_reports(runs.native, runs.tshark)]
    assert diffs == KNOWN_DIFFERENCES.get(path.name, [])
    assert runs.native.sessions, "no session found: nothing was compared"
    native_frames, tshark_frames = runs.frames
    assert len(tshark_frames) == len(native_frames)
    for n, t in zip(native_frames, tshark_frames):
        assert t == n
    native_messages, tshark_messages = runs.messages
    assert len(tshark_messages) == len(native_messages)
    for n, t in zip(native_messages, tshark_messages):
        assert t == n


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_engines_agree_on_sample_capture(path):
    _check(path)


@pytest.mark.parametrize(
    "path", CORPUS_FILES or [pytest.param(None, marks=pytest.mark.skip(
        reason=f"conformance corpus not found at {CORPUS} (CI has it beside the checkout)"))],
    ids=[p.name for p in CORPUS_FILES] or ["corpus-missing"])
def test_engines_agree_on_corpus_capture(path):
    _check(path)


def test_corpus_is_the_documented_one():
    if not CORPUS.is_dir():
        pytest.skip(f"conformance corpus not found at {CORPUS}")
    assert len(CORPUS_FILES) == 20


def test_every_frame_type_is_exercised():
    """The agreement above covers every opcode, compression, fragmentation and TLS: the
    comparison is only as good as what the captures contain."""
    if not CORPUS.is_dir():
        pytest.skip(f"conformance corpus not found at {CORPUS}")
    opcodes, compressed, fragmented, tls = set(), False, False, False
    for path in SAMPLES + CORPUS_FILES:
        runs = run_engines(str(path), _keylog(path))
        for f in runs.frames[1]:
            opcodes.add(f[2])
            compressed |= bool(f[4] & 4)
            fragmented |= not f[3]
        tls |= any(s.transport == "tls-decrypted" for s in runs.tshark.sessions)
    assert opcodes == {0, 1, 2, 8, 9, 10}
    assert (compressed, fragmented, tls) == (True, True, True)
