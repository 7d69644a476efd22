"""Fleets: a folder of 200 recorded captures and a corrupt one, as JSON, JSONL and Parquet,
locally and on a Dask cluster; the README's DuckDB queries over the Parquet tables.

The folder is built once (bench/fleet.py's build_fleet: the samples, editcap pieces of the
larger ones, copies moved by days, one corrupt pcap) and each output is made once per
module: the JSON report is the reference every other output must equal.
"""
from __future__ import annotations

import collections
import hashlib
import importlib.util
import statistics
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from referencing import Registry, Resource

from analyzer.commands.report import _dask_task as _real_dask_task
from analyzer.fleet import records as records_mod
from analyzer.fleet.records import CaptureRecorder, CaptureRef, RecordSink, file_sha256, iso_time
from analyzer.schema import RECORDS_SCHEMA_FILE, load_records_schema, load_schema, schema_resources
from test_report_helpers import CAPTURES, REPO

_spec = importlib.util.spec_from_file_location("fleet_bench", REPO / "bench" / "fleet.py")
fleet_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet_bench)

FLEET = 200
CORRUPT_ERROR = "not a readable pcap file: incomplete pcap file header (needs 24 bytes)"


def dgcap(*args, cwd: Path = REPO, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    e.pop("SSLKEYLOGFILE", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "analyzer.cli", *map(str, args)], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("fleet")
    made = fleet_bench.build_fleet(root / "captures", FLEET)
    return {"root": root, "folder": root / "captures", "made": made}


@pytest.fixture(scope="module")
def json_report(fleet) -> dict:
    out = fleet["root"] / "report.json"
    r = dgcap("report", fleet["folder"], "--format", "json", "-o", out, "-q", "-j", "2")
    return {"proc": r, "doc": json.loads(out.read_text())}


@pytest.fixture(scope="module")
def jsonl_run(fleet) -> dict:
    # To stdout, as it is piped into a log shipper; one process (-j 1).
    r = dgcap("report", fleet["folder"], "--format", "jsonl", "-q")
    return {"proc": r, "records": [json.loads(line) for line in r.stdout.splitlines()], "text": r.stdout}


def read_tables(folder: Path) -> dict[str, pa.Table]:
    return {t: pq.read_table(folder / f"{t}.parquet") for t in ("captures", "sessions", "findings")}


@pytest.fixture(scope="module")
def parquet_run(fleet) -> dict:
    out = fleet["root"] / "tables"
    r = dgcap("report", fleet["folder"], "--format", "parquet", "-o", out, "-q", "-j", "2")
    return {"proc": r, "dir": out, "tables": read_tables(out)}


@pytest.fixture(scope="module")
def dask_scheduler():
    """A Dask cluster of two single-threaded workers in this process, reached over TCP."""
    from distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                           host="127.0.0.1", dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def dask_run(fleet, dask_scheduler) -> dict:
    out = fleet["root"] / "dask-tables"
    r = dgcap("report", fleet["folder"], "--format", "parquet", "-o", out, "-q", "--scheduler", dask_scheduler)
    return {"proc": r, "dir": out, "tables": read_tables(out)}


def report_counts(doc: dict) -> dict:
    caps = doc["captures"]
    return {"captures": len(caps), "errors": sum(1 for c in caps if c["error"]),
            "sessions": sum(len(c["sessions"]) for c in caps),
            "findings": sum(len(s["findings"]) for c in caps for s in c["sessions"])
            + sum(len(c["findings"]) for c in caps)}


# -- the folder and the reference --------------------------------------------------------

def test_the_fleet_is_200_recorded_captures_and_a_corrupt_one(fleet):
    made = fleet["made"]
    samples = fleet_bench.samples()
    assert len(samples) == 26
    assert (len(made["originals"]), len(made["splits"]), len(made["copies"])) == (26, 19, 155)
    assert len(list(fleet["folder"].iterdir())) == 201
    moved = collections.Counter(days for _, days in made["copies"].values())
    # 155 copies in rounds of 26 samples: rounds 0 and 3 as is, 1 and 4 a day later, 2 and 5
    # two days later (the last round is 25 long); the 2 pcapng samples always as they are.
    assert moved == {0: 26 + 2 + 2 + 26 + 2 + 2, 1: 24 + 24, 2: 24 + 23}
    # A moved copy is the same traffic a day later: editcap -t, checked by its first packet.
    from analyzer.capture import open_capture
    name = next(n for n, (s, d) in made["copies"].items() if s == "dg_401.pcap" and d == 2)
    with open_capture(str(fleet["folder"] / name)) as moved_cap, \
            open_capture(str(CAPTURES / "dg_401.pcap")) as orig:
        assert next(iter(moved_cap.packets()))[1] - next(iter(orig.packets()))[1] == pytest.approx(2 * 86400)


def test_json_reference(json_report):
    r, doc = json_report["proc"], json_report["doc"]
    assert r.returncode == 2  # one capture could not be read: documented exit code 2
    assert r.stderr.strip().splitlines() == [f"dgcap: error: {json_report['doc']['captures'][-1]['path']}: "
                                             f"{CORRUPT_ERROR}"]
    assert report_counts(doc) == {"captures": 201, "errors": 1, "sessions": 218, "findings": 247}


# -- JSONL -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def records_validator():
    registry = Registry().with_resources(
        [(uri, Resource.from_contents(s)) for uri, s in schema_resources().items()])
    schema = load_records_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=registry, format_checker=jsonschema.FormatChecker())


def test_jsonl_counts_equal_the_json_report(jsonl_run, json_report):
    r, recs = jsonl_run["proc"], jsonl_run["records"]
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and CORRUPT_ERROR in r.stderr
    kinds = collections.Counter(x["record"] for x in recs)
    expected = report_counts(json_report["doc"])
    assert kinds == {"capture": 201, "session": 218, "finding": 247}
    assert (kinds["capture"], kinds["session"], kinds["finding"]) == \
        (expected["captures"], expected["sessions"], expected["findings"])
    errors = [x for x in recs if x["record"] == "capture" and x["capture"]["error"]]
    assert len(errors) == 1
    assert errors[0]["capture"]["path"].endswith("zz_corrupt.pcap") and CORRUPT_ERROR in errors[0]["capture"]["error"]
    assert errors[0]["capture"]["sha256"] == hashlib.sha256((CAPTURES / "dg_401.pcap").read_bytes()[:16]).hexdigest()
    assert (errors[0]["session_count"], errors[0]["finding_count"]) == (0, 0)


def test_jsonl_lines_validate_and_describe_themselves(jsonl_run, records_validator):
    assert jsonl_run["text"].count("\n") == len(jsonl_run["records"]) == 201 + 218 + 247
    problems = []
    for i, rec in enumerate(jsonl_run["records"]):
        problems += [f"line {i + 1} ({rec['record']}): {e.message[:200]}" for e in records_validator.iter_errors(rec)]
        if rec["epoch"] is not None:
            assert rec["timestamp"] == datetime.fromtimestamp(rec["epoch"], tz=timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ")
    assert problems == []


def test_jsonl_sessions_are_the_report_sessions(jsonl_run, json_report):
    recs = jsonl_run["records"]
    by_capture = collections.defaultdict(list)
    for rec in recs:
        by_capture[rec["capture"]["path"]].append(rec)
    for cap in json_report["doc"]["captures"]:
        mine = by_capture[cap["path"]]
        sha = file_sha256(cap["path"])
        assert all(r["capture"]["sha256"] == sha for r in mine)
        sessions = {r["session"]["tcp_stream"]: r for r in mine if r["record"] == "session"}
        assert len(sessions) == len(cap["sessions"])
        for s in cap["sessions"]:
            rec = sessions[s["tcp_stream"]]
            assert rec["session_key"] == f"{sha}:{s['tcp_stream']}"
            assert rec["session"] == {k: v for k, v in s.items() if k not in ("index", "findings")}
            assert rec["finding_ids"] == [f["id"] for f in s["findings"]]
            found = [r["finding"] for r in mine if r["record"] == "finding" and r["session_key"] == rec["session_key"]]
            assert found == s["findings"]
        capture_level = [r["finding"] for r in mine if r["record"] == "finding" and r["session_key"] is None]
        assert capture_level == cap["findings"]
        # The capture record closes its capture's records and counts them.
        assert mine[-1]["record"] == "capture"
        assert (mine[-1]["session_count"], mine[-1]["finding_count"]) == (
            len(cap["sessions"]), sum(len(s["findings"]) for s in cap["sessions"]) + len(cap["findings"]))
        assert {k: v for k, v in mine[-1]["capture"].items() if k != "sha256"} == \
            {k: v for k, v in cap.items() if k not in ("sessions", "findings")}


def test_jsonl_streams_sessions_as_they_end(jsonl_run):
    # dg_multi.pcapng: tcp.stream 0 starts first and ends last, so its line comes after
    # streams 1 and 2: the records follow the connections' ends, not the report order.
    mine = [r for r in jsonl_run["records"] if r["capture"]["path"].endswith("orig_dg_multi.pcapng")]
    assert [(r["record"], r.get("finding", {}).get("id") or r.get("session", {}).get("tcp_stream")) for r in mine] == [
        ("session", 1), ("finding", "handshake-cause"), ("finding", "handshake-failed"),
        ("session", 2), ("finding", "empty-binary-frame"), ("session", 0), ("capture", None)]


def test_records_are_written_while_the_capture_is_read(tmp_path):
    # In-process: every session batch reaches the sink while analyze_capture is still
    # reading the file (from the pipeline's session hook), each in its own write; the
    # capture record comes after.
    from analyzer.commands.report import analyze_files
    from analyzer.pipeline import Options
    writes = []

    class Sink(RecordSink):
        def _write(self, batch):
            import traceback
            writes.append(([r["record"] for r in batch],
                           any(f.name == "analyze_capture" for f in traceback.extract_stack())))
    sink = Sink()
    captures, input_error = analyze_files([str(CAPTURES / "dg_multi.pcapng")], Options(), False, records=sink)
    assert not input_error and captures[0].sessions == []  # the records carry the sessions
    assert writes == [(["session", "finding", "finding"], True), (["session", "finding"], True),
                      (["session"], True), (["capture"], False)]
    # handshake-cause and handshake-failed are errors, empty-binary-frame a warning
    assert sink.counts == {"capture": 1, "session": 3, "finding": 3} and sink.error_findings == 2


def test_records_are_redacted(tmp_path):
    from analyzer.pipeline import Options, analyze_capture
    out = []
    for show in (False, True):
        batches = []
        recorder = CaptureRecorder(CaptureRef("x", "0" * 64), batches.extend, show_secrets=show)
        cap = analyze_capture(str(CAPTURES / "dg_success.pcap"), Options(session_hook=recorder.session_ended))
        recorder.capture_ended(cap)
        out.append(json.dumps(batches))
    assert "dgtest_0123456789abcdef0123456789abcdef" not in out[0] and "Token ****cdef" in out[0]
    assert "Token dgtest_0123456789abcdef0123456789abcdef" in out[1]  # control: it was there


def test_records_schema_covers_every_contract_key():
    # A key the JSON report's schema adds to a session or capture must be listed for the records too.
    report, recs = load_schema(), load_records_schema()
    session = recs["$defs"]["sessionRecord"]["properties"]["session"]
    assert set(session["properties"]) == set(report["$defs"]["session"]["properties"]) - {"index", "findings"}, \
        ("a session key of the report schema is missing from (or extra in) dgcap.records.schema.json: add it to "
         "$defs.sessionRecord.properties.session.properties as a $ref to the report schema's definition")
    capture = recs["$defs"]["captureRecord"]["properties"]["capture"]
    assert set(capture["properties"]) == set(report["$defs"]["capture"]["properties"]) - {"sessions", "findings"} \
        | {"sha256"}
    assert RECORDS_SCHEMA_FILE.name in (REPO / "docs" / "json-contract.md").read_text()


def test_record_helpers():
    assert iso_time(1795237654.493786) == "2026-11-21T05:07:34.493786Z"
    assert iso_time(None) is None
    assert records_mod.split_endpoint("[2001:db8::1]:443") == ("2001:db8::1", 443)
    assert records_mod.split_endpoint("10.1.2.3:5060") == ("10.1.2.3", 5060)
    assert records_mod.client_network("10.1.2.3") == "10.1.2.0/24"
    assert records_mod.client_network("2001:db8:1:2:3::9") == "2001:db8:1:2::/64"
    assert records_mod.client_network("::ffff:192.0.2.7") == "192.0.2.0/24"
    assert records_mod.client_network("not an address") is None
    assert file_sha256("/nonexistent/file.pcap") is None


# -- Parquet -------------------------------------------------------------------------------

def test_parquet_counts_equal_the_json_report(parquet_run, json_report):
    r, tables = parquet_run["proc"], parquet_run["tables"]
    assert r.returncode == 2 and r.stdout == ""
    assert CORRUPT_ERROR in r.stderr
    expected = report_counts(json_report["doc"])
    assert {t: tables[t].num_rows for t in tables} == {"captures": 201, "sessions": 218, "findings": 247}
    assert (tables["captures"].num_rows, tables["sessions"].num_rows, tables["findings"].num_rows) == \
        (expected["captures"], expected["sessions"], expected["findings"])
    errors = [row for row in tables["captures"].to_pylist() if row["error"]]
    assert len(errors) == 1 and errors[0]["capture_path"].endswith("zz_corrupt.pcap")
    assert sorted(os.listdir(parquet_run["dir"])) == ["captures.parquet", "findings.parquet", "sessions.parquet"]


def test_parquet_columns_are_typed(parquet_run):
    sessions = parquet_run["tables"]["sessions"].schema
    assert sessions.field("start_time").type == pa.timestamp("us", tz="UTC")
    assert sessions.field("tcp_stream").type == pa.int64()
    assert sessions.field("handshake_status").type == pa.int32()
    assert sessions.field("realtime_factor").type == pa.float64()
    assert sessions.field("websocket").type == pa.bool_()
    assert sessions.field("finding_ids").type == pa.list_(pa.string())
    findings = parquet_run["tables"]["findings"].schema
    assert findings.field("frames").type == pa.list_(pa.int64())
    assert findings.field("time").type == pa.timestamp("us", tz="UTC")


def test_parquet_rows_are_the_records(parquet_run, jsonl_run):
    recs = jsonl_run["records"]
    sessions = {(r["capture_path"], r["tcp_stream"]): r for r in parquet_run["tables"]["sessions"].to_pylist()}
    for rec in (r for r in recs if r["record"] == "session"):
        s = rec["session"]
        row = sessions[(rec["capture"]["path"], s["tcp_stream"])]
        assert row["session_key"] == rec["session_key"]
        assert json.loads(row["session_json"]) == s
        assert row["start_time"] == (datetime.fromtimestamp(s["start_time"], tz=timezone.utc)
                                     if s["start_time"] is not None else None)
        assert row["handshake_status"] == s["handshake"]["status"]
        assert row["client_last_frame"] == s["frames"]["client"]["last_frame"]
        assert row["server_close_code"] == ((s["close"]["server"] or {}).get("code"))
        assert row["realtime_factor"] == (s.get("audio") or {}).get("realtime_factor")
        assert row["finding_ids"] == rec["finding_ids"]
    findings = collections.Counter((r["capture_path"], r["session_key"], r["id"], r["first_frame"])
                                   for r in parquet_run["tables"]["findings"].to_pylist())
    assert findings == collections.Counter(
        (r["capture"]["path"], r["session_key"], r["finding"]["id"], min(r["finding"]["frames"], default=None))
        for r in recs if r["record"] == "finding")


def test_parquet_errors_are_one_line(tmp_path):
    capture = CAPTURES / "dg_401.pcap"
    r = dgcap("report", capture, "--format", "parquet")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == "dgcap: error: --format parquet writes a folder of tables: give it with -o DIR\n"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    r = dgcap("report", capture, "--format", "parquet", "-o", a_file)
    assert r.returncode == 2 and r.stderr.startswith(f"dgcap: error: {a_file}: not a folder")
    # Without pyarrow: one line that says how to get it, and nothing written.
    code = ("import sys; sys.modules['pyarrow'] = None; from analyzer.cli import main; "
            f"sys.exit(main(['report', {str(capture)!r}, '--format', 'parquet', '-o', {str(tmp_path / 'out')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == "dgcap: error: --format parquet needs pyarrow: pip install 'dgcap[fleet]'\n"
    assert not (tmp_path / "out").exists()


# -- the README's DuckDB queries -----------------------------------------------------------

def readme_queries() -> dict[str, str]:
    """The SQL blocks of the README's Fleets section, by the name in the comment before each."""
    text = (REPO / "README.md").read_text()
    found = dict(re.findall(r"<!-- query: ([a-z0-9-]+) -->\s*```sql\n(.*?)```", text, re.S))
    assert set(found) == {"findings-per-day", "net0001-last-client-frame", "slowest-rtf-by-network"}
    return found


def run_query(parquet_dir: Path, sql: str) -> list[tuple]:
    # The README queries read 'fleet/*.parquet': run them from a folder where fleet/ is the output.
    link = parquet_dir.parent / "q" / "fleet"
    link.parent.mkdir(exist_ok=True)
    if not link.exists():
        link.symlink_to(parquet_dir)
    cwd = os.getcwd()
    os.chdir(link.parent)
    try:
        return duckdb.connect().sql(sql).fetchall()
    finally:
        os.chdir(cwd)


def test_query_findings_per_day(parquet_run, json_report):
    rows = run_query(parquet_run["dir"], readme_queries()["findings-per-day"])
    # From the JSON report: each finding dated by its time, else its session's start, else the capture's.
    counts = collections.Counter()
    for cap in json_report["doc"]["captures"]:
        for f in cap["findings"]:
            counts[(f["time"] or cap["first_time"], f["id"], f["severity"])] += 1
        for s in cap["sessions"]:
            for f in s["findings"]:
                t = f["time"] if f["time"] is not None else s["start_time"]
                counts[(t, f["id"], f["severity"])] += 1
    per_day = collections.Counter()
    for (t, fid, sev), n in counts.items():
        per_day[(datetime.fromtimestamp(t, tz=timezone.utc).date(), fid, sev)] += n
    expected = sorted(((d, fid, sev, n) for (d, fid, sev), n in per_day.items()),
                      key=lambda x: (x[0], -x[3], x[1]))
    assert rows == expected
    # 21, 22 and 23 November 2026 (the moved copies), and 2 December for the editcap pieces of
    # flux_listen.pcap (recorded that day; no finding of the whole recording, so no moved one)
    assert sorted({r[0].isoformat() for r in rows}) == ["2026-11-21", "2026-11-22", "2026-11-23", "2026-12-02"]
    assert [r for r in rows if r[0].month == 12] == [(datetime(2026, 12, 2).date(), "midstream", "info", 2),
                                                     (datetime(2026, 12, 2).date(), "param-invalid", "error", 2)]
    day1 = {r[1]: r[3] for r in rows if r[0].day == 21}
    assert (day1["deepgram-close"], day1["midstream"], day1["tls-no-handshake"]) == (12, 11, 2)


def test_query_net0001_sessions(parquet_run, json_report):
    rows = run_query(parquet_run["dir"], readme_queries()["net0001-last-client-frame"])
    # Three recordings end in NET-0001, each in the original and its 2 + 2 + 2 copies... as counted
    # from the JSON report:
    expected = []
    for cap in json_report["doc"]["captures"]:
        for s in cap["sessions"]:
            close = [f for f in s["findings"] if f["id"] == "deepgram-close" and f["details"]["name"] == "NET-0001"]
            if close:
                any_gaps = [g for g in s["gaps"] if g["kind"] == "any"]
                gap = max(any_gaps, key=lambda g: g["seconds"]) if any_gaps else None
                expected.append((s["start_time"], cap["path"], s["tcp_stream"], s["handshake"]["dg_request_id"],
                                 close[0]["details"]["pattern"], gap and gap["after_frame"],
                                 gap and datetime.fromtimestamp(gap["start"], tz=timezone.utc),
                                 gap and round(gap["seconds"], 3), s["close"]["server"]["frame"]))
    expected = [e[1:] for e in sorted(expected, key=lambda e: (e[0], e[1]))]
    assert [tuple(r[:4]) + (r[4], r[5] and r[5].astimezone(timezone.utc), r[6], r[7]) for r in rows] == expected
    assert len(rows) == 21
    why = collections.Counter(r[3] for r in rows)
    assert why == {"client-gap": 7, "keepalive-without-audio": 7, "waited-for-server": 7}
    net = next(r for r in rows if r[0].endswith("010_orig_dg_net0001.pcap"))
    # The recording's own numbers (README example): silent after No. 26, server close No. 30.
    assert (net[4], net[6], net[7]) == (26, 10.008, 30)


def test_query_slowest_rtf_by_network(parquet_run, json_report):
    rows = run_query(parquet_run["dir"], readme_queries()["slowest-rtf-by-network"])
    groups = collections.defaultdict(list)
    for cap in json_report["doc"]["captures"]:
        for s in cap["sessions"]:
            rtf = (s.get("audio") or {}).get("realtime_factor")
            if rtf is not None:
                host = s["client"].rpartition(":")[0].strip("[]")
                net = "::/64" if host == "::1" else ".".join(host.split(".")[:3]) + ".0/24"
                groups[net].append((rtf, "slower-than-realtime" in [f["id"] for f in s["findings"]]))
    expected = sorted(((net, len(v), min(r for r, _ in v), round(statistics.median(r for r, _ in v), 3),
                        sum(1 for _, slow in v if slow)) for net, v in groups.items()), key=lambda x: (x[2], x[0]))
    assert rows == expected
    assert [r[:3] for r in rows] == [("127.0.0.0/24", 103, 0.186), ("::/64", 7, 0.936)]


# -- Dask -----------------------------------------------------------------------------------

def _sorted_rows(table: pa.Table, key: tuple) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: tuple("" if r[k] is None else str(r[k]) for k in key))


def test_dask_cluster_gives_the_same_rows(dask_run, parquet_run):
    r = dask_run["proc"]
    assert r.returncode == 2 and CORRUPT_ERROR in r.stderr and "Traceback" not in r.stderr
    keys = {"captures": ("capture_path",), "sessions": ("capture_path", "tcp_stream"),
            "findings": ("capture_path", "session_key", "id", "message")}
    for table, key in keys.items():
        assert dask_run["tables"][table].num_rows == parquet_run["tables"][table].num_rows
        assert _sorted_rows(dask_run["tables"][table], key) == _sorted_rows(parquet_run["tables"][table], key), table


def test_dask_task_failure_is_that_captures_error_row(dask_scheduler, monkeypatch):
    # A task that raises on its worker (here: on the second capture) is that capture's error
    # row, in the records too; the other captures are complete.
    from analyzer.commands.report import analyze_files
    from analyzer.pipeline import Options

    collected = []

    class Sink(RecordSink):
        def _write(self, batch):
            collected.extend(batch)
    files = [str(CAPTURES / n) for n in ("dg_401.pcap", FAIL_ON, "dg_400.pcap")]
    monkeypatch.setattr("analyzer.commands.report._dask_task", _failing_task)
    captures, input_error = analyze_files(files, Options(), False, records=Sink(), scheduler=dask_scheduler)
    assert input_error
    assert [c.error for c in captures] == [None, "worker failed: RuntimeError: boom on the worker", None]
    caps = [r for r in collected if r["record"] == "capture"]
    assert sorted((r["capture"]["path"], r["capture"]["error"]) for r in caps) == sorted(
        [(files[0], None), (files[1], "worker failed: RuntimeError: boom on the worker"), (files[2], None)])
    assert sum(1 for r in collected if r["record"] == "session") == 2


FAIL_ON = "dg_net0001.pcap"


def _failing_task(path, options, *args):
    if path.endswith(FAIL_ON):
        raise RuntimeError("boom on the worker")
    return _real_dask_task(path, options, *args)


def test_scheduler_local_equals_jobs(tmp_path):
    # dgcap starts its own LocalCluster (one worker process for -j 1): the same records as
    # the run without Dask.
    files = [CAPTURES / n for n in ("dg_net0001.pcap", "dg_multi.pcapng", "tls13_aes128_success.pcap")]
    plain = dgcap("report", *files, "--format", "jsonl", "-q")
    local = dgcap("report", *files, "--format", "jsonl", "-q", "--scheduler", "local", "-j", "1")
    assert (plain.returncode, local.returncode) == (1, 1), local.stderr
    assert plain.stdout.count("\n") == (1 + 3 + 1) + (3 + 3 + 1) + (1 + 1 + 1)  # sessions, findings, capture
    assert sorted(local.stdout.splitlines()) == sorted(plain.stdout.splitlines())


def test_scheduler_errors_are_one_line():
    capture = CAPTURES / "dg_401.pcap"
    r = dgcap("report", capture, "--scheduler", "not an address")
    assert r.returncode == 2
    assert r.stderr == ("dgcap: error: --scheduler 'not an address': give 'local' or a Dask scheduler address "
                        "like tcp://HOST:8786\n")
    # Nobody listens there: one line after Dask's connect timeout (set short here).
    r = dgcap("report", capture, "--format", "jsonl", "--scheduler", "tcp://127.0.0.1:9",
              env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr.startswith("dgcap: error: tcp://127.0.0.1:9: cannot reach the Dask scheduler (")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    code = ("import sys; sys.modules['distributed'] = None; from analyzer.cli import main; "
            f"sys.exit(main(['report', {str(capture)!r}, '--scheduler', 'local']))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert (r.returncode, r.stderr) == (2, "dgcap: error: --scheduler needs dask.distributed: "
                                           "pip install 'dgcap[fleet]'\n")
