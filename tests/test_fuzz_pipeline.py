"""The whole pipeline on random mutations of the real captures.

analyze_capture() may raise CaptureError (a one-line message) and nothing else, whatever
happens to the file: bytes flipped anywhere, the file cut anywhere, records duplicated or
dropped.  A duplicated packet is an exact TCP retransmission, so it must not change what the
report says about the session.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.capture import CaptureError
from analyzer.model import Report
from analyzer.pipeline import Options, analyze_capture
from analyzer.redact import redact_session

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
PCAPS = sorted(p.name for p in CAPTURES.glob("*.pcap"))
SMALL = [n for n in PCAPS if (CAPTURES / n).stat().st_size < 200_000]
_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def records(data: bytes) -> tuple[bytes, list[bytes]]:
    """(file header, [record bytes]) of a little-endian pcap."""
    out, offset = [], 24
    while offset < len(data):
        caplen = struct.unpack_from("<I", data, offset + 8)[0]
        out.append(data[offset:offset + 16 + caplen])
        offset += 16 + caplen
    return data[:24], out


def keylog(name: str):
    keys = CAPTURES / (name.split(".")[0] + ".keys")
    return str(keys) if keys.exists() else None


def analyse(path: Path, name: str):
    """The mutated file through the pipeline, redaction and the JSON report: only
    CaptureError may come out."""
    try:
        report = analyze_capture(str(path), Options(keylog=keylog(name)))
    except CaptureError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    for session in report.sessions:
        redact_session(session)
    json.dumps(Report(captures=[report]).to_json(), allow_nan=False)
    return report


@st.composite
def byte_mutations(draw):
    name = draw(st.sampled_from(SMALL))
    data = bytearray((CAPTURES / name).read_bytes())
    for _ in range(draw(st.integers(1, 20))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= draw(st.integers(1, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))):]
    return name, bytes(data)


@settings(max_examples=50, **_SETTINGS)
@given(byte_mutations())
def test_random_byte_flips_and_cuts_never_raise_anything_but_capture_error(tmp_path_factory, case):
    name, data = case
    path = tmp_path_factory.mktemp("flip") / name
    path.write_bytes(data)
    analyse(path, name)


@st.composite
def record_mutations(draw):
    """Records flipped inside (headers intact: every packet still reaches the decoder), some
    duplicated, some dropped."""
    name = draw(st.sampled_from(PCAPS))
    header, recs = records((CAPTURES / name).read_bytes())
    out = []
    for rec in recs:
        action = draw(st.sampled_from(["keep"] * 6 + ["flip", "duplicate", "drop"]))
        if action == "drop":
            continue
        if action == "flip" and len(rec) > 16:
            rec = bytearray(rec)
            for _ in range(draw(st.integers(1, 4))):
                i = draw(st.integers(16, len(rec) - 1))
                rec[i] ^= draw(st.integers(1, 255))
            rec = bytes(rec)
        out.append(rec)
        if action == "duplicate":
            out.append(rec)
    return name, header + b"".join(out)


@settings(max_examples=40, **_SETTINGS)
@given(record_mutations())
def test_records_corrupted_dropped_and_duplicated_never_raise(tmp_path_factory, case):
    name, data = case
    path = tmp_path_factory.mktemp("records") / name
    path.write_bytes(data)
    report = analyse(path, name)
    assert report is not None  # the file structure is intact: it is always readable
    assert not [f for f in report.findings if f.id == "capture-truncated"]


def session_summary(report):
    out = []
    for s in report.sessions:
        j = s.to_json()
        frames = {d: {k: v for k, v in j["frames"][d].items() if k not in ("first_frame", "last_frame")}
                  for d in ("client", "server")}
        close = {k: (v if not isinstance(v, dict) else {kk: vv for kk, vv in v.items()
                                                        if kk in ("code", "reason")})
                 for k, v in j["close"].items() if k in ("client", "server", "initiator", "tcp_end", "tcp_end_by")}
        out.append((j["client"], j["server"], j["handshake"]["status"], j["handshake"]["path"],
                    frames, close, j.get("transcript")))
    return out


@settings(max_examples=30, **_SETTINGS)
@given(st.sampled_from([n for n in PCAPS if not n.startswith("tls")] + ["tls13_aes128_success.pcap"]),
       st.data())
def test_duplicated_packets_change_nothing_but_frame_numbers(tmp_path_factory, name, data):
    header, recs = records((CAPTURES / name).read_bytes())
    dup = data.draw(st.lists(st.integers(0, len(recs) - 1), min_size=1, max_size=12, unique=True))
    out = []
    for i, rec in enumerate(recs):
        out.append(rec)
        if i in dup:
            out.append(rec)  # a retransmission: the same bytes again, right after
    path = tmp_path_factory.mktemp("dup") / name
    path.write_bytes(header + b"".join(out))
    original = analyze_capture(str(CAPTURES / name), Options(keylog=keylog(name)))
    duplicated = analyze_capture(str(path), Options(keylog=keylog(name)))
    assert duplicated.packets == original.packets + len(dup)
    assert session_summary(duplicated) == session_summary(original)
    assert {f.id for s in duplicated.sessions for f in s.findings} <= \
        {f.id for s in original.sessions for f in s.findings} | {"tcp-retransmissions"}
