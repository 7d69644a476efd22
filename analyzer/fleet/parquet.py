"""`--format parquet -o DIR`: captures.parquet, sessions.parquet, findings.parquet.

One row per capture, session and finding record (analyzer/fleet/records.py), with typed
columns: the fields people filter and group on are promoted to columns (timestamps in
UTC, frame numbers, codes, audio rate...); every session row also keeps its whole
contract object as JSON text (`session_json`), so any other field stays reachable
(`json_extract(session_json, '$.deepgram.results.final')` in DuckDB).  Rows are written
in row groups as records arrive, so memory does not grow with the fleet; each file
appears under its name only when complete.  Needs pyarrow (`pip install 'dgcap[fleet]'`).
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional

# Timestamps the same microsecond as the JSONL's ISO strings (rounded by datetime).
from .records import RecordSink, client_network, split_endpoint, utc_datetime

TABLES = ("captures", "sessions", "findings")
ROW_GROUP = 10_000
MISSING_PYARROW = "--format parquet needs pyarrow: pip install 'dgcap[fleet]'"


def pyarrow_available() -> bool:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def schemas() -> dict:
    """The pyarrow schema of each table (the column list is documented in json-contract.md)."""
    import pyarrow as pa
    ts = pa.timestamp("us", tz="UTC")
    s, i64, i32, f64, b = pa.string(), pa.int64(), pa.int32(), pa.float64(), pa.bool_()
    where = [("capture_path", s), ("capture_sha256", s)]
    frames = []
    for side in ("client", "server"):
        frames += [(f"{side}_{k}", i64) for k in ("text", "binary", "empty_binary", "ping", "pong", "close",
                                                 "payload_bytes", "first_frame", "last_frame")]
    return {
        "captures": pa.schema(where + [
            ("format", s), ("packets", i64), ("bytes", i64), ("compressed", b),
            ("first_time", ts), ("last_time", ts), ("error", s),
            ("session_count", i64), ("finding_count", i64), ("engine", s), ("stats_json", s)]),
        "sessions": pa.schema(where + [
            ("session_key", s), ("tcp_stream", i64),
            ("start_time", ts), ("end_time", ts), ("duration_seconds", f64), ("start_frame", i64), ("end_frame", i64),
            ("client", s), ("client_ip", s), ("client_port", i32), ("client_network", s),
            ("server", s), ("server_ip", s), ("server_port", i32),
            ("transport", s), ("websocket", b), ("midstream", b), ("endpoint", s),
            ("handshake_status", i32), ("handshake_reason", s), ("method", s), ("path", s),
            ("dg_request_id", s), ("dg_error", s), ("request_frame", i64), ("response_frame", i64),
            *frames,
            ("close_initiator", s), ("client_close_code", i32), ("client_close_reason", s), ("client_close_frame", i64),
            ("server_close_code", i32), ("server_close_reason", s), ("server_close_frame", i64),
            ("deepgram_close", s), ("tcp_end", s), ("tcp_end_by", s), ("tcp_end_frame", i64),
            ("gap_count", i32), ("client_silence_seconds", f64), ("client_silence_after_frame", i64),
            ("client_silence_start", ts), ("audio_silence_seconds", f64),
            ("audio_encoding", s), ("audio_sample_rate", i64), ("audio_seconds", f64), ("realtime_factor", f64),
            ("tls_version", s), ("tls_sni", s), ("tls_decryption", s),
            ("finding_count", i32), ("error_count", i32), ("warning_count", i32), ("finding_ids", pa.list_(s)),
            ("diagnosis", s), ("session_json", s)]),
        "findings": pa.schema(where + [
            ("session_key", s), ("tcp_stream", i64), ("client", s), ("server", s), ("endpoint", s),
            ("dg_request_id", s), ("time", ts), ("id", s), ("severity", s), ("message", s),
            ("frames", pa.list_(i64)), ("first_frame", i64), ("display_filter", s), ("details_json", s)]),
    }


def _json_text(value: Any) -> Optional[str]:
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _get(obj: Optional[dict], *keys: str) -> Any:
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def _longest(gaps: list[dict], kind: str) -> dict:
    """The longest client gap of that kind (the first of equals), or {}."""
    best: dict = {}
    for g in gaps:
        if g.get("kind") == kind and g["seconds"] > best.get("seconds", -1.0):
            best = g
    return best


def capture_row(record: dict) -> dict:
    c = record["capture"]
    return {"capture_path": c["path"], "capture_sha256": c["sha256"], "format": c.get("format"),
            "packets": c.get("packets"), "bytes": c.get("bytes"), "compressed": c.get("compressed"),
            "first_time": utc_datetime(c.get("first_time")), "last_time": utc_datetime(c.get("last_time")),
            "error": c.get("error"), "session_count": record["session_count"],
            "finding_count": record["finding_count"], "engine": _get(c, "stats", "engine", "name"),
            "stats_json": _json_text(c.get("stats"))}


def session_row(record: dict) -> dict:
    s = record["session"]
    hs = s.get("handshake") or {}
    close = s.get("close") or {}
    client_ip, client_port = split_endpoint(s["client"])
    server_ip, server_port = split_endpoint(s["server"])
    start, end = s.get("start_time"), s.get("end_time")
    row = {"capture_path": record["capture"]["path"], "capture_sha256": record["capture"]["sha256"],
           "session_key": record["session_key"], "tcp_stream": s["tcp_stream"],
           "start_time": utc_datetime(start), "end_time": utc_datetime(end),
           "duration_seconds": None if start is None or end is None else round(end - start, 6),
           "start_frame": s.get("start_frame"), "end_frame": s.get("end_frame"),
           "client": s["client"], "client_ip": client_ip, "client_port": client_port,
           "client_network": client_network(client_ip),
           "server": s["server"], "server_ip": server_ip, "server_port": server_port,
           "transport": s.get("transport"), "websocket": s.get("websocket"), "midstream": s.get("midstream"),
           "endpoint": s.get("endpoint"),
           "handshake_status": hs.get("status"), "handshake_reason": hs.get("reason"), "method": hs.get("method"),
           "path": hs.get("path"), "dg_request_id": hs.get("dg_request_id"), "dg_error": hs.get("dg_error"),
           "request_frame": hs.get("request_frame"), "response_frame": hs.get("response_frame"),
           "close_initiator": close.get("initiator"), "deepgram_close": _get(s, "deepgram", "close_explanation", "name"),
           "tcp_end": close.get("tcp_end"), "tcp_end_by": close.get("tcp_end_by"),
           "tcp_end_frame": close.get("tcp_end_frame")}
    for side in ("client", "server"):
        counts = _get(s, "frames", side) or {}
        for k in ("text", "binary", "empty_binary", "ping", "pong", "close", "payload_bytes", "first_frame",
                  "last_frame"):
            row[f"{side}_{k}"] = counts.get(k)
        frame = close.get(side) or {}
        row[f"{side}_close_code"] = frame.get("code")
        row[f"{side}_close_reason"] = frame.get("reason")
        row[f"{side}_close_frame"] = frame.get("frame")
    gaps = s.get("gaps") or []
    silence = _longest(gaps, "any")  # no frame of any kind: what NET-0001 measures
    row.update(gap_count=len(gaps), client_silence_seconds=silence.get("seconds"),
               client_silence_after_frame=silence.get("after_frame"),
               client_silence_start=utc_datetime(silence.get("start")),
               audio_silence_seconds=_longest(gaps, "audio").get("seconds"))
    audio = s.get("audio") or {}
    row.update(audio_encoding=audio.get("encoding"), audio_sample_rate=audio.get("sample_rate"),
               audio_seconds=audio.get("seconds"), realtime_factor=audio.get("realtime_factor"))
    tls = s.get("tls") or {}
    row.update(tls_version=tls.get("version"), tls_sni=tls.get("sni"), tls_decryption=tls.get("decryption"))
    ids, counts = record["finding_ids"], record["finding_counts"]
    row.update(finding_count=len(ids), error_count=counts["error"], warning_count=counts["warning"],
               finding_ids=ids,
               diagnosis=s.get("diagnosis"), session_json=_json_text(s))
    return row


def finding_row(record: dict) -> dict:
    f = record["finding"]
    where = record.get("session") or {}
    frames = f.get("frames") or []
    return {"capture_path": record["capture"]["path"], "capture_sha256": record["capture"]["sha256"],
            "session_key": record.get("session_key"), "tcp_stream": where.get("tcp_stream"),
            "client": where.get("client"), "server": where.get("server"), "endpoint": where.get("endpoint"),
            "dg_request_id": record.get("dg_request_id"), "time": utc_datetime(record.get("epoch")),
            "id": f["id"], "severity": f["severity"], "message": f["message"], "frames": frames,
            "first_frame": min(frames) if frames else None, "display_filter": f.get("display_filter"),
            "details_json": _json_text(f.get("details"))}


class ParquetSink(RecordSink):
    """Rows buffered per table and written a row group at a time; files renamed into DIR at close."""

    def __init__(self, folder: str, row_group: int = ROW_GROUP) -> None:
        super().__init__()
        import pyarrow.parquet as pq
        self._pq = pq
        self.folder = folder
        self.row_group = row_group
        self.schemas = schemas()
        self.rows = {t: [] for t in TABLES}
        self.writers: dict = {}
        self.tmp = {t: os.path.join(folder, f".{t}.parquet.{os.getpid()}.tmp") for t in TABLES}

    def _write(self, records: list[dict]) -> None:
        for r in records:
            kind = r["record"]
            if kind == "session":
                self.rows["sessions"].append(session_row(r))
            elif kind == "finding":
                self.rows["findings"].append(finding_row(r))
            else:
                self.rows["captures"].append(capture_row(r))
        for t in TABLES:
            if len(self.rows[t]) >= self.row_group:
                self._flush(t)

    def _flush(self, table: str) -> None:
        import pyarrow as pa
        rows, self.rows[table] = self.rows[table], []
        writer = self.writers.get(table)
        if writer is None:
            writer = self.writers[table] = self._pq.ParquetWriter(self.tmp[table], self.schemas[table],
                                                                 compression="zstd")
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=self.schemas[table]))

    def close(self) -> None:
        for t in TABLES:
            self._flush(t)  # also creates the file of a table with no rows (its schema only)
            self.writers.pop(t).close()
        for t in TABLES:
            os.replace(self.tmp[t], os.path.join(self.folder, f"{t}.parquet"))

    def abort(self) -> None:
        for w in self.writers.values():
            try:
                w.close()
            except Exception:
                pass
        self.writers.clear()
        for path in self.tmp.values():
            if os.path.exists(path):
                os.unlink(path)
