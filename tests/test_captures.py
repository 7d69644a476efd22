"""End-to-end: every recorded capture in captures/ against its expectations.

captures/<name>.expected.json is written by captures/record.py from an independent
oracle (tshark's dissection of the same file plus what the scenario did); every key
present there must equal dgcap's JSON output for that session.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.pipeline import Options, analyze_capture

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
EXPECTED = sorted(CAPTURES.glob("*.expected.json"))


def _subset(expected, actual, where="") -> list[str]:
    """Every key in `expected` must be in `actual` with an equal value (floats to 1e-6)."""
    problems = []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        for k, v in expected.items():
            if k not in actual:
                problems.append(f"{where}.{k}: missing")
            else:
                problems.extend(_subset(v, actual[k], f"{where}.{k}"))
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: expected {expected!r}, got {actual!r}"]
        for i, (e, a) in enumerate(zip(expected, actual)):
            problems.extend(_subset(e, a, f"{where}[{i}]"))
    elif isinstance(expected, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        if abs(expected - actual) > 1e-6:
            problems.append(f"{where}: expected {expected}, got {actual}")
    elif expected != actual:
        problems.append(f"{where}: expected {expected!r}, got {actual!r}")
    return problems


def test_every_capture_has_expectations():
    captures = sorted(p for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng", ".gz"))
    assert captures, "no sample captures in captures/"
    for p in captures:
        base = p.name.split(".")[0]
        assert (CAPTURES / f"{base}.expected.json").exists(), p.name


@pytest.mark.parametrize("expected_file", EXPECTED, ids=[p.name.split(".")[0] for p in EXPECTED])
def test_capture_matches_expectations(expected_file):
    exp = json.loads(expected_file.read_text())
    path = CAPTURES / exp["capture"]
    keys = CAPTURES / (exp["capture"].split(".")[0] + ".keys")
    options = Options(keylog=str(keys) if exp.get("use_keylog") and keys.exists() else None)
    report = analyze_capture(str(path), options)
    out = report.to_json()
    problems = []
    for key in ("format", "packets"):
        if key in exp and exp[key] != out[key]:
            problems.append(f"{key}: expected {exp[key]!r}, got {out[key]!r}")
    sessions = out["sessions"]
    if len(sessions) != len(exp["sessions"]):
        problems.append(f"sessions: expected {len(exp['sessions'])}, got {len(sessions)}: "
                        f"{[(s['client'], s['server']) for s in sessions]}")
    for i, (es, s) in enumerate(zip(exp["sessions"], sessions), 1):
        es = dict(es)
        want_ids = es.pop("findings", None)
        absent = es.pop("absent_findings", [])
        es.pop("description", None)
        problems.extend(_subset(es, s, f"session {i}"))
        ids = [f["id"] for f in s["findings"]]
        for fid in want_ids or []:
            if fid not in ids:
                problems.append(f"session {i}: finding {fid} missing (have {ids})")
        for fid in absent:
            if fid in ids:
                problems.append(f"session {i}: finding {fid} should be absent")
    assert not problems, "\n".join(problems)
