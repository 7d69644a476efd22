"""The tshark engine (`dgcap report --engine tshark`) against the same expectations as native.

Every captures/<name>.expected.json (computed by captures/oracle.py) must hold for the tshark
engine's output too, with the comparison helper of tests/test_captures.py.  Runs are cached
per capture and shared with tests/test_tshark_conformance.py.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from analyzer.cli import main
from analyzer.engines.compare import compare_reports
from analyzer.engines.tshark import TSHARK_MISSING, analyze_capture_tshark, decode_as_rules
from analyzer.model import CaptureReport
from analyzer.pipeline import Options, analyze_capture
from test_captures import EXPECTED, _subset

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
HAVE_TSHARK = shutil.which("tshark") is not None
needs_tshark = pytest.mark.skipif(not HAVE_TSHARK, reason="tshark not installed (apt-get install tshark); "
                                                          "the tshark engine needs it")


@dataclass
class Runs:
    native: CaptureReport
    tshark: CaptureReport
    frames: tuple  # (native, tshark): [(stream, direction, opcode, fin, rsv, masked, mask, length, frame, time, payload)]
    messages: tuple  # (native, tshark): [(stream, direction, opcode, frame, size, compressed, data, code, reason)]


def _hooks():
    frames, messages = [], []

    def frame(s, d, f):
        # A compressed frame's payload is the wire bytes for native and tshark's inflated bytes
        # for the tshark engine; the messages carry the comparable (inflated) content.
        frames.append((s.tcp_stream, d, f.opcode, f.fin, f.rsv, f.masked, f.mask, f.length, f.frame, f.time,
                       None if f.rsv & 4 else bytes(f.payload[:120])))

    def message(s, d, m):
        messages.append((s.tcp_stream, d, m.opcode, m.frame, m.size, m.compressed, bytes(m.data[:4096]),
                         m.close_code, m.close_reason))

    return frames, messages, frame, message


@functools.lru_cache(maxsize=None)
def run_engines(path: str, keylog: Optional[str] = None) -> Runs:
    """Both engines on one capture, with frame and message traces (cached; do not mutate)."""
    nf, nm, nfh, nmh = _hooks()
    tf, tm, tfh, tmh = _hooks()
    native = analyze_capture(path, Options(keylog=keylog, frame_hook=nfh, message_hook=nmh))
    other = analyze_capture_tshark(path, Options(keylog=keylog, frame_hook=tfh, message_hook=tmh), native=native)
    # The native engine interleaves connections in capture order, the tshark engine goes
    # connection by connection: compare per connection, in frame order.
    order = (lambda x: (x[0], x[3])), (lambda x: (x[0], x[8]))
    return Runs(native, other, (sorted(nf, key=order[1]), sorted(tf, key=order[1])),
                (sorted(nm, key=order[0]), sorted(tm, key=order[0])))


def keylog_for(expected: dict) -> Optional[str]:
    keys = CAPTURES / (expected["capture"].split(".")[0] + ".keys")
    return str(keys) if expected.get("use_keylog") and keys.exists() else None


@needs_tshark
@pytest.mark.parametrize("expected_file", EXPECTED, ids=[p.name.split(".")[0] for p in EXPECTED])
def test_tshark_engine_matches_expectations(expected_file):
    exp = json.loads(expected_file.read_text())
    out = run_engines(str(CAPTURES / exp["capture"]), keylog_for(exp)).tshark.to_json()
    problems = []
    for key in ("format", "packets"):
        if key in exp and exp[key] != out[key]:
            problems.append(f"{key}: expected {exp[key]!r}, got {out[key]!r}")
    sessions = out["sessions"]
    if len(sessions) != len(exp["sessions"]):
        problems.append(f"sessions: expected {len(exp['sessions'])}, got {len(sessions)}")
    for i, (es, s) in enumerate(zip(exp["sessions"], sessions), 1):
        es = dict(es)
        want_ids = es.pop("findings", None)
        absent = es.pop("absent_findings", [])
        es.pop("description", None)
        problems.extend(_subset(es, s, f"session {i}"))
        ids = [f["id"] for f in s["findings"]]
        problems.extend(f"session {i}: finding {fid} missing (have {ids})" for fid in want_ids or [] if fid not in ids)
        problems.extend(f"session {i}: finding {fid} should be absent" for fid in absent if fid in ids)
    assert not problems, "\n".join(problems)


def _tshark_version() -> str:
    first = subprocess.run(["tshark", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return re.match(r"TShark \(Wireshark\) (\d+\.\d+\.\d+)", first).group(1)


@needs_tshark
def test_reports_say_which_engine_built_them():
    runs = run_engines(str(CAPTURES / "dg_success.pcap"))
    assert runs.native.stats["engine"] == {"name": "native"}
    assert runs.tshark.stats["engine"] == {"name": "tshark", "version": _tshark_version()}
    assert runs.tshark.stats["tshark"]["decode_as"] == ["tcp.port==18001,http"]
    assert runs.tshark.to_json()["stats"]["engine"]["name"] == "tshark"


def test_native_report_names_its_engine():
    assert analyze_capture(str(CAPTURES / "dg_401.pcap")).stats["engine"] == {"name": "native"}


def test_decode_as_rules_follow_what_native_found():
    plain = analyze_capture(str(CAPTURES / "dg_multi.pcapng"))
    assert decode_as_rules(plain) == {"tcp.port==18012": "http"}
    tls = analyze_capture(str(CAPTURES / "tls13_aes128_success.pcap"), Options(server_names=("localhost",)))
    assert tls.sessions[0].transport == "tls"
    assert decode_as_rules(tls) == {"tcp.port==18021": "tls", "tls.port==18021": "http"}


@needs_tshark
def test_report_command_with_the_tshark_engine(capsys):
    """`dgcap report --engine tshark --format json`: the same sessions as native, engine named."""
    path = str(CAPTURES / "dg_net0001.pcap")
    assert main(["report", "--engine", "tshark", "--format", "json", path]) == 1  # NET-0001 is an error finding
    tshark = json.loads(capsys.readouterr().out)
    assert main(["report", "--format", "json", path]) == 1
    native = json.loads(capsys.readouterr().out)
    (t,), (n,) = tshark["captures"], native["captures"]
    assert t["stats"]["engine"] == {"name": "tshark", "version": _tshark_version()}
    assert n["stats"]["engine"] == {"name": "native"}
    assert t["sessions"] == n["sessions"]
    assert [f["id"] for f in t["sessions"][0]["findings"]] == ["deepgram-close", "client-gap", "audio-gap"]
    assert t["sessions"][0]["handshake"]["request_headers"][5] == ["Authorization", "Token ****cdef"]


def test_report_command_without_tshark(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["report", "--engine", "tshark", str(CAPTURES / "dg_success.pcap")]) == 2
    assert TSHARK_MISSING in capsys.readouterr().err


@needs_tshark
def test_tls_without_keys():
    """No key log: both engines see an encrypted session and measure gaps on TLS records."""
    path = str(CAPTURES / "tls13_net0001.pcap")
    # A short stream to "localhost" is a session without keys when named as a server.
    options = Options(server_names=("localhost",))
    native = analyze_capture(path, options)
    other = analyze_capture_tshark(path, options, native=native)
    (s,) = other.sessions
    assert (s.transport, s.websocket) == ("tls", False)
    assert [(g.kind, g.after_frame, g.before_frame, round(g.seconds, 6)) for g in s.gaps] == \
        [("any", 32, 38, 10.025617)]
    assert [f.id for f in s.findings] == [f.id for f in native.sessions[0].findings]
    assert {"client-gap", "tls-no-keys"} <= {f.id for f in s.findings}
    assert s.to_json()["tls"]["activity"] == native.sessions[0].to_json()["tls"]["activity"]
    assert (s.to_json()["tls"]["version"], s.to_json()["tls"]["cipher_suite"], s.to_json()["tls"]["decryption"]) == \
        ("TLS 1.3", "TLS_AES_256_GCM_SHA384", "no-keys")
    assert compare_reports(native, other) == []


@needs_tshark
def test_audio_bytes_from_tshark():
    """binary_hook gets every client payload byte as tshark unmasked it: the SHA-256 of the audio
    equals what the recording server received (captures/dg_multi.expected.json, scenario)."""
    digests: dict = {}

    def hook(session, frame, chunk):
        digests.setdefault(session.tcp_stream, hashlib.sha256()).update(bytes(chunk))

    analyze_capture_tshark(str(CAPTURES / "dg_multi.pcapng"), Options(binary_hook=hook))
    scenario = json.loads((CAPTURES / "dg_multi.expected.json").read_text())["scenario"]["sessions"]
    assert {k: v.hexdigest() for k, v in digests.items()} == \
        {0: scenario[0]["audio_sha256"], 2: scenario[2]["audio_sha256"]}


@needs_tshark
def test_capture_cut_short(tmp_path):
    """tshark exits with status 2 on a file cut inside a packet; the engine keeps the packets
    before the cut, as native does, and says so with a capture-truncated finding."""
    data = (CAPTURES / "dg_success.pcap").read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:53706 + 71])  # inside packet record 46
    native = analyze_capture(str(path))
    other = analyze_capture_tshark(str(path), Options(), native=native)
    assert (native.packets, other.packets) == (45, 45)
    (finding,) = other.findings
    assert (finding.id, finding.frames) == ("capture-truncated", [45])
    # The file's name is left out: the warning line that shows this message starts with it.
    assert finding.message == ("tshark: The file appears to have been cut short in the middle of a "
                               "packet. The report covers the 45 packets before it.")
    assert compare_reports(native, other) == []
    assert other.sessions[0].frames[0].binary == native.sessions[0].frames[0].binary == 15


@needs_tshark
def test_gzip_capture(tmp_path):
    path = tmp_path / "dg_success.pcap.gz"
    path.write_bytes(gzip.compress((CAPTURES / "dg_success.pcap").read_bytes()))
    native = analyze_capture(str(path))
    other = analyze_capture_tshark(str(path), Options(), native=native)
    assert (other.compressed, other.packets, len(other.sessions)) == (True, 90, 1)
    assert compare_reports(native, other) == []


@needs_tshark
@pytest.mark.parametrize("name,keys", [("dg_multi.pcapng", False), ("tls13_net0001.pcap", False),
                                       ("tls13_net0001.pcap", True), ("dg_deflate.pcap", False)])
def test_tshark_report_follows_the_json_schema(name, keys, capsys):
    """The JSON contract holds for the tshark engine's reports too (TLS object included)."""
    jsonschema = pytest.importorskip("jsonschema")
    from analyzer.schema import load_schema
    args = ["report", "--engine", "tshark", "--format", "json", str(CAPTURES / name)]
    if keys:
        args += ["--keylog", str(CAPTURES / "tls13_net0001.keys")]
    main(args)
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, load_schema())
    assert doc["captures"][0]["stats"]["engine"]["name"] == "tshark"
