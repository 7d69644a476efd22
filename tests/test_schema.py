"""The JSON output validates against the shipped JSON Schema, and the schema really checks."""
from __future__ import annotations

import argparse
import copy
import importlib.resources
import json
from pathlib import Path

import jsonschema
import pytest

from analyzer.commands.report import render
from analyzer.schema import SCHEMA_FILE, load_schema
from test_report_helpers import CAPTURES, REPO, analyzed, corpus_captures, keylog_for, run_cli, sample_captures

ALL = sample_captures() + corpus_captures()


@pytest.fixture(scope="module")
def validator():
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _json_output(path: Path, tmp_path: Path) -> dict:
    """What `dgcap report PATH --format json` prints (the command's own render path)."""
    out = tmp_path / "report.json"
    render(analyzed(str(path), keylog_for(path)), argparse.Namespace(format="json", output=str(out), transcript=False))
    return json.loads(out.read_text())


def _errors(validator, doc) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]


def test_schema_is_draft_2020_12_and_shipped_as_package_data():
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema"] == {"const": "dgcap.report/1"}
    resource = importlib.resources.files("analyzer.schema").joinpath("dgcap.report.schema.json")
    assert resource.is_file() and json.loads(resource.read_text()) == schema
    assert SCHEMA_FILE.parent == REPO / "analyzer" / "schema"
    assert '"analyzer.schema" = ["*.schema.json"]' in (REPO / "pyproject.toml").read_text()
    assert "analyzer/schema/dgcap.report.schema.json" in (REPO / "docs" / "json-contract.md").read_text()


@pytest.mark.parametrize("path", ALL, ids=[p.name for p in ALL])
def test_every_capture_validates(validator, path, tmp_path):
    doc = _json_output(path, tmp_path)
    assert _errors(validator, doc) == []
    assert doc["captures"][0]["sessions"] or "corpus" in str(path) or path.name.startswith("ws_")


def test_folder_report_with_summary_validates(validator):
    r = run_cli("report", str(CAPTURES), "--format", "json", "-j", "2")
    doc = json.loads(r.stdout)
    assert "summary" in doc
    assert _errors(validator, doc) == []
    s = doc["summary"]
    for key in ("by_top_finding", "by_handshake", "by_close"):
        assert sum(g["sessions"] for g in s[key]) == s["sessions"]


def test_unreadable_capture_validates(validator, tmp_path):
    bad = tmp_path / "cut.pcap"
    bad.write_bytes(b"\xd4\xc3\xb2\xa1\x02\x00")
    r = run_cli("report", str(bad), "--format", "json")
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert doc["captures"][0]["error"] and doc["captures"][0]["format"] is None
    assert _errors(validator, doc) == []


def test_tls_without_keys_validates(validator, tmp_path):
    # Without keys, a 1-second stream to "localhost" is a session only when that server is named
    # as a (self-hosted) Deepgram server; otherwise it is one of the other connections.
    doc = json.loads(run_cli("report", str(CAPTURES / "tls13_net0001.pcap"), "--format", "json",
                             "--server-name", "localhost").stdout)
    (s,) = doc["captures"][0]["sessions"]
    assert s["transport"] == "tls" and s["tls"]["gaps_measured_on"] == "tls-records"
    assert _errors(validator, doc) == []


BROKEN = [
    ("no handshake", lambda d: d["captures"][0]["sessions"][0].pop("handshake"), "'handshake' is a required property"),
    ("severity", lambda d: d["captures"][0]["sessions"][0]["findings"][0].update(severity="fatal"), "'fatal' is not one of"),
    ("frames", lambda d: d["captures"][0]["sessions"][0]["findings"][0].update(frames=["30"]), "'30' is not of type 'integer'"),
    ("tcp_end", lambda d: d["captures"][0]["sessions"][0]["close"].update(tcp_end="closed"), "'closed' is not one of"),
    ("status", lambda d: d["captures"][0]["sessions"][0]["handshake"].update(status="101"), "'101' is not of type"),
    ("gap kind", lambda d: d["captures"][0]["sessions"][0]["gaps"][0].update(kind="silence"), "'silence' is not one of"),
    ("schema", lambda d: d.update(schema="dgcap.report/2"), "'dgcap.report/1' was expected"),
    ("transport", lambda d: d["captures"][0]["sessions"][0].update(transport="udp"), "'udp' is not one of"),
    ("counts", lambda d: d["captures"][0]["sessions"][0]["frames"]["client"].update(binary=-1), "less than the minimum"),
    ("close code", lambda d: d["captures"][0]["sessions"][0]["deepgram"]["close_explanation"].update(code="1011"),
     "'1011' is not of type 'integer'"),
    ("audio", lambda d: d["captures"][0]["sessions"][0]["audio"].update(bytes="32000"), "'32000' is not of type"),
    ("display filter", lambda d: d["captures"][0]["sessions"][0]["findings"][0].update(display_filter=7),
     "7 is not of type 'string'"),
    ("endpoint", lambda d: d["captures"][0]["sessions"][0].update(endpoint="v1/listen"), "'v1/listen' is not one of"),
]


@pytest.mark.parametrize("name,breaks,message", BROKEN, ids=[b[0] for b in BROKEN])
def test_schema_rejects_what_the_contract_forbids(validator, tmp_path, name, breaks, message):
    doc = _json_output(CAPTURES / "dg_net0001.pcap", tmp_path)
    assert _errors(validator, doc) == []
    bad = copy.deepcopy(doc)
    breaks(bad)
    errors = _errors(validator, bad)
    assert len(errors) == 1 and message in errors[0], errors


def test_schema_allows_added_keys(validator, tmp_path):
    doc = _json_output(CAPTURES / "dg_net0001.pcap", tmp_path)
    doc["captures"][0]["sessions"][0]["new_layer"] = {"anything": [1, 2]}
    doc["captures"][0]["sessions"][0]["handshake"]["new_key"] = None
    doc["new_top_level"] = True
    assert _errors(validator, doc) == []
