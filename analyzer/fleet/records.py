"""Self-describing line records (`schema: "dgcap.records/1"`): capture, session, finding.

Built from the JSON contract's objects (`Session.to_json()`, `Finding.to_json()`,
`CaptureReport.to_json()`), so a record holds exactly what the JSON report holds, split
so that one line is one thing a SIEM can index: a `session` record as each connection
ends, one `finding` record per finding, and the `capture` record when the file is done
(it closes the capture: its counts say how many session and finding records came before).
docs/json-contract.md ("Line records") documents the keys; analyzer/schema/
dgcap.records.schema.json checks them.
"""
from __future__ import annotations

import copy
import hashlib
import ipaddress
import os
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional

RECORDS_SCHEMA = "dgcap.records/1"
RECORD_KINDS = ("capture", "session", "finding")
SEVERITIES = ("error", "warning", "info")

# Keys of the contract's session object repeated on its finding records, so an alert
# line says where it happened without a join.
_FINDING_SESSION_KEYS = ("tcp_stream", "client", "server", "transport", "endpoint")


@dataclass(frozen=True)
class CaptureRef:
    """A capture as every record names it: the path as given and its content's SHA-256."""
    path: str
    sha256: Optional[str]  # None when the file could not be read

    def to_json(self) -> dict:
        return {"path": self.path, "sha256": self.sha256}


def file_sha256(path: str, chunk: int = 1 << 20) -> Optional[str]:
    """Hex SHA-256 of the file's bytes (as stored: a .gz is hashed compressed), or None.

    Read before the analysis (session keys need it as the first session ends): at about
    1.6 GB/s against the analysis' ~150 MB/s, a tenth more time, mostly from page cache.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None  # a pipe or device: reading it here would take the bytes from the analysis
    except OSError:
        return None
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    try:
        with open(path, "rb", buffering=0) as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(view[:n])
    except OSError:
        return None
    return h.hexdigest()


def utc_datetime(epoch: Optional[float]) -> Optional[datetime]:
    """The instant as an aware datetime (microseconds rounded as Python rounds them), or None."""
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc)


def iso_time(epoch: Optional[float]) -> Optional[str]:
    """ISO 8601 in UTC with microseconds: `2026-11-21T05:07:34.493786Z`."""
    if epoch is None:
        return None
    return utc_datetime(epoch).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def session_key(ref: CaptureRef, tcp_stream: int) -> str:
    """`<capture sha256>:<tcp.stream>`: the same for the same bytes on any machine, any run.

    Wireshark gives every TCP connection of a file its own tcp.stream and a session is one
    connection, so the pair is unique within a file.  Two copies of one file (same bytes,
    other names) give the same keys: they hold the same traffic.
    """
    return f"{ref.sha256}:{tcp_stream}"


def split_endpoint(endpoint: str) -> tuple[str, Optional[int]]:
    """`"1.2.3.4:80"` or `"[2001:db8::1]:80"` -> (address, port)."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        return endpoint, None
    return host.strip("[]"), int(port)


def client_network(address: str) -> Optional[str]:
    """The /24 (IPv4) or /64 (IPv6) a client address belongs to, in CIDR form."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _envelope(kind: str, ref: CaptureRef, epoch: Optional[float]) -> dict:
    return {"record": kind, "schema": RECORDS_SCHEMA, "timestamp": iso_time(epoch), "epoch": epoch,
            "capture": ref.to_json()}


def session_records(ref: CaptureRef, session: dict) -> list[dict]:
    """The session record, then one finding record per finding, from a contract session object.

    `index` is left out: it is the position in the capture's session list, known only when
    the whole capture has been read, and these records are written as each session ends.
    """
    body = {k: v for k, v in session.items() if k not in ("index", "findings")}
    findings = session.get("findings") or []
    key = session_key(ref, session["tcp_stream"])
    record = _envelope("session", ref, session.get("start_time"))
    severities = [f["severity"] for f in findings]
    record.update(session_key=key, end_timestamp=iso_time(session.get("end_time")),
                  finding_ids=[f["id"] for f in findings],
                  finding_counts={sev: severities.count(sev) for sev in SEVERITIES}, session=body)
    out = [record]
    where = {k: session[k] for k in _FINDING_SESSION_KEYS if k in session}
    request_id = (session.get("handshake") or {}).get("dg_request_id")
    for f in findings:
        out.append(_finding_record(ref, f, session.get("start_time"), key, where, request_id))
    return out


def _finding_record(ref: CaptureRef, finding: dict, fallback_time: Optional[float],
                    key: Optional[str], where: Optional[dict], request_id: Optional[str]) -> dict:
    # A finding without a time of its own (a handshake never answered...) is dated by its
    # session's start, or the capture's first packet.
    when = finding.get("time")
    record = _envelope("finding", ref, when if when is not None else fallback_time)
    record.update(session_key=key, session=where, dg_request_id=request_id, finding=finding)
    return record


def capture_records(ref: CaptureRef, capture: dict, session_count: int, session_findings: int) -> list[dict]:
    """Capture-level finding records, then the capture record that closes the capture.

    `capture` is the contract capture object; its `sessions` are not read (they were
    recorded as they ended), so callers may pass it with an empty list.
    """
    out = [_finding_record(ref, f, capture.get("first_time"), None, None, None)
           for f in capture.get("findings") or []]
    body = {k: v for k, v in capture.items() if k not in ("sessions", "findings")}
    body["sha256"] = ref.sha256
    record = _envelope("capture", ref, capture.get("first_time"))
    record["capture"] = body
    record.update(session_count=session_count, finding_count=session_findings + len(out))
    out.append(record)
    return out


class CaptureRecorder:
    """The records of one capture, emitted as its sessions end and when it is done.

    `session_ended` is the pipeline's session hook; `capture_ended` takes the final
    CaptureReport and emits any session the hook did not see (an engine without the
    hook), the capture-level findings and the capture record.  `emit` receives lists of
    record dicts.
    """

    def __init__(self, ref: CaptureRef, emit: Callable[[list[dict]], None], show_secrets: bool):
        self.ref = ref
        self.emit = emit
        self.show_secrets = show_secrets
        self._streams: set[int] = set()
        self._findings = 0

    def session_ended(self, session) -> None:
        if not self.show_secrets:
            # In place: the session is final, and the CaptureReport that holds it is not
            # rendered again (the records are the output).
            from ..redact import redact_session
            redact_session(session)
        self._streams.add(session.tcp_stream)
        records = session_records(self.ref, session.to_json())
        self._findings += len(records) - 1
        self.emit(records)

    def capture_ended(self, cap) -> None:
        for s in cap.sessions:
            if s.tcp_stream not in self._streams:
                self.session_ended(s)
        shallow = copy.copy(cap)  # the capture object without its sessions, which are out already
        shallow.sessions = []
        self.emit(capture_records(self.ref, shallow.to_json(), len(self._streams), self._findings))


class RecordSink:
    """Where records go (JSONL text, Parquet tables); counts what passed through.

    `write` is called in the main process only, with each batch of one capture's records.
    """

    def __init__(self) -> None:
        self.counts = {kind: 0 for kind in RECORD_KINDS}
        self.error_findings = 0  # for the exit code: the sessions themselves are not kept

    def write(self, records: list[dict]) -> None:
        for r in records:
            self.counts[r["record"]] += 1
            if r["record"] == "finding" and r["finding"]["severity"] == "error":
                self.error_findings += 1
        self._write(records)

    def _write(self, records: list[dict]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class JsonlSink(RecordSink):
    """One record per line, flushed per batch so a reader downstream gets each session as it ends."""

    def __init__(self, out=None) -> None:
        super().__init__()
        self.out = out  # None: sys.stdout as it is at each write (a progress bar may wrap it)

    def _write(self, records: list[dict]) -> None:
        import json
        import sys
        out = self.out if self.out is not None else sys.stdout
        # json.dumps escapes control characters, so a record can never span two lines.
        out.write("".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n"
                               for r in records))
        out.flush()


__all__ = ["RECORDS_SCHEMA", "CaptureRef", "CaptureRecorder", "file_sha256", "iso_time", "session_key",
           "session_records", "capture_records", "split_endpoint", "client_network", "RecordSink", "JsonlSink"]
