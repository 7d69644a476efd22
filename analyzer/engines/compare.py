"""Where two reports of the same capture disagree (native engine vs tshark engine).

Sessions are matched by tcp.stream (both engines use Wireshark's numbering).  For each
session the compared values are flattened to dotted names ("frames.client.binary",
"close.server.code", ...) so that a disagreement is one row: name, native value, tshark value.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..model import CaptureReport

FRAME_KEYS = ("text", "binary", "empty_binary", "continuation", "ping", "pong", "close", "other",
              "payload_bytes", "first_frame", "last_frame")
HANDSHAKE_KEYS = ("status", "reason", "method", "path", "query", "request_frame", "response_frame",
                  "request_headers", "response_headers", "body", "dg_request_id", "dg_error",
                  "accept_valid", "subprotocol", "extensions", "deflate")
SESSION_KEYS = ("client", "server", "transport", "websocket", "midstream", "start_frame", "end_frame")
DEEPGRAM_KEYS = ("endpoint", "messages", "transcript", "diagnosis")
TLS_KEYS = ("version", "cipher_suite", "sni", "decryption")

# The groups a difference belongs to, for the table (first matching prefix).
GROUPS = (("handshake.", "handshake"), ("frames.", "frames"), ("close.", "close"), ("gaps", "gaps"),
          ("findings", "findings"), ("tls.", "tls"), ("audio.", "deepgram"))


@dataclass
class Difference:
    capture: str
    tcp_stream: Optional[int]  # None: the capture itself
    name: str
    native: Any
    tshark: Any

    @property
    def group(self) -> str:
        for prefix, group in GROUPS:
            if self.name.startswith(prefix):
                return group
        return "deepgram" if self.name in DEEPGRAM_KEYS else "session"


def session_values(s: dict) -> dict:
    """The compared values of one session (its JSON form), flattened."""
    out: dict = {}
    for k in SESSION_KEYS:
        out[k] = s.get(k)
    hs = s.get("handshake") or {}
    for k in HANDSHAKE_KEYS:
        out[f"handshake.{k}"] = hs.get(k)
    for side in ("client", "server"):
        counts = (s.get("frames") or {}).get(side) or {}
        for k in FRAME_KEYS:
            out[f"frames.{side}.{k}"] = counts.get(k)
    close = s.get("close") or {}
    for side in ("client", "server"):
        cf = close.get(side)
        for k in ("code", "reason", "frame"):
            out[f"close.{side}.{k}"] = cf.get(k) if cf else None
    for k in ("initiator", "tcp_end", "tcp_end_by", "tcp_end_frame"):
        out[f"close.{k}"] = close.get(k)
    out["gaps"] = [(g["kind"], g["after_frame"], g["before_frame"], round(g["seconds"], 6), g["ended_by"])
                   for g in s.get("gaps") or []]
    findings: dict = {}
    for f in s.get("findings") or []:
        findings.setdefault(f["id"], []).extend(f.get("frames") or [])
    out["findings"] = sorted(findings)
    for fid, frames in findings.items():
        out[f"findings.{fid}.frames"] = sorted(set(frames))
    for k in DEEPGRAM_KEYS:
        out[k] = s.get(k)
    audio = s.get("audio") or {}
    for k in ("bytes", "chunks"):
        out[f"audio.{k}"] = audio.get(k)
    tls = s.get("tls")
    if tls is not None:
        for k in TLS_KEYS:
            out[f"tls.{k}"] = tls.get(k)
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
                and not isinstance(b, bool):
            return abs(a - b) <= 1e-6
    return a == b


def compare_sessions(capture: str, stream: int, native: dict, tshark: dict) -> list[Difference]:
    a, b = session_values(native), session_values(tshark)
    out = []
    for name in list(a) + [k for k in b if k not in a]:
        if not _same(a.get(name), b.get(name)):
            out.append(Difference(capture, stream, name, a.get(name), b.get(name)))
    return out


def compare_reports(native: CaptureReport, tshark: CaptureReport) -> list[Difference]:
    """Every disagreement between the two engines' reports of one capture."""
    path = native.path
    out: list[Difference] = []
    nj, tj = native.to_json(), tshark.to_json()
    for key in ("packets", "first_time", "last_time"):
        if not _same(nj.get(key), tj.get(key)):
            out.append(Difference(path, None, key, nj.get(key), tj.get(key)))
    ns = {s["tcp_stream"]: s for s in nj["sessions"]}
    ts = {s["tcp_stream"]: s for s in tj["sessions"]}
    # Native folds a proxy-to-server connection into its client leg's session (legs.py).
    folded = {leg["tcp_stream"] for s in nj["sessions"] for leg in (s.get("proxy") or {}).get("legs", ())
              if leg["leg"] == "proxy-to-server"}
    for stream in sorted(set(ns) | set(ts)):
        if stream in folded and stream not in ns:
            continue
        if stream not in ts:
            out.append(Difference(path, stream, "session", _label(ns[stream]), None))
        elif stream not in ns:
            out.append(Difference(path, stream, "session", None, _label(ts[stream])))
        else:
            out.extend(compare_sessions(path, stream, ns[stream], ts[stream]))
    return out


def _label(s: dict) -> str:
    status = (s.get("handshake") or {}).get("status")
    return f"{s['client']} -> {s['server']} ({s['transport']}, status {status})"
