"""HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/) with Chrome DevTools' WebSocket
extension: one entry per session (its HTTP upgrade), `_resourceType: "websocket"` and
`_webSocketMessages` [{type: send|receive, time: epoch seconds, opcode, data}], as Chrome's
"Save all as HAR" writes them, so DevTools and HAR viewers open it.

Text is unmasked and inflated; close frames carry "<code> <reason>" (and `_closeCode`,
`_closeReason`); binary messages are summarised ("[binary N bytes, sha256 ...]" with
`_length`/`_sha256`) unless `binary=True`, which puts their base64 in `data` as Chrome does.
Reads only the session model and the message log, after redaction.
"""
from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Optional

from .. import __version__
from ..message_log import MessageLog, binary_summary
from ..websocket import OP_BINARY, OP_CLOSE
from ..model import CLIENT, CaptureReport, Session


# The model keeps no HTTP version; a WebSocket upgrade is HTTP/1.1 (RFC 6455 §4.1: "at least 1.1").
HTTP_VERSION = "HTTP/1.1"


def _iso(ts: Optional[float]) -> str:
    if ts is None:
        ts = 0.0
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(start: Optional[float], end: Optional[float]) -> float:
    if start is None or end is None or end < start:
        return 0.0
    return round((end - start) * 1000.0, 3)


def _host_port(address: str) -> tuple[str, str]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), port


def _url(session: Session) -> str:
    hs = session.handshake
    scheme = "wss" if session.transport.startswith("tls") else "ws"
    host = hs.request_header("host") or session.server
    return f"{scheme}://{host}{hs.target or '/'}"


def _query(hs) -> list[dict]:
    out = []
    for name, value in hs.query.items():
        for item in (value if isinstance(value, list) else [value]):
            out.append({"name": name, "value": "" if item is None else str(item)})
    return out


def _headers(headers: list) -> list[dict]:
    return [{"name": name, "value": value} for name, value in headers]


def _message(m, binary: bool) -> dict:
    out = {"type": "send" if m.direction == CLIENT else "receive", "time": m.time,
           "opcode": m.opcode}
    if m.opcode == OP_CLOSE:
        code = "" if m.close_code is None else str(m.close_code)
        out["data"] = f"{code} {m.close_reason or ''}".strip()
        out["_closeCode"] = m.close_code
        out["_closeReason"] = m.close_reason or ""
    elif m.opcode == OP_BINARY or m.sha256 is not None:
        if binary and m.data is not None:
            out["data"] = base64.b64encode(m.data).decode("ascii")
        else:
            out["data"] = f"[binary {binary_summary(m)}]"
        out["_length"] = m.size
        out["_sha256"] = m.sha256
        if not m.whole_hash:
            out["_sha256OfFirstBytes"] = m.hashed_bytes
    else:
        out["data"] = m.text or ""
    if not m.complete:
        out["_incomplete"] = True
    out["_frame"] = m.frame
    return out


def session_entry(session: Session, log: MessageLog, binary: bool = False) -> dict:
    hs = session.handshake
    start = hs.request_time if hs.request_time is not None else session.start_time
    end = session.end_time if session.end_time is not None else hs.response_time
    wait = _ms(start, hs.response_time)
    receive = _ms(hs.response_time, end) if hs.response_time is not None else 0.0
    body = hs.body or ""
    content = {"size": len(body.encode("utf-8")),
               "mimeType": hs.response_header("content-type") or "x-unknown"}
    if body:
        content["text"] = body
    server_host, server_port = _host_port(session.server)
    entry = {
        "startedDateTime": _iso(start),
        "time": round(wait + receive, 3),
        "request": {
            "method": hs.method or "GET", "url": _url(session),
            "httpVersion": HTTP_VERSION, "cookies": [],
            "headers": _headers(hs.request_headers), "queryString": _query(hs),
            "headersSize": -1, "bodySize": 0,
        },
        "response": {
            "status": hs.status or 0, "statusText": hs.reason or "",
            "httpVersion": HTTP_VERSION, "cookies": [],
            "headers": _headers(hs.response_headers), "content": content,
            "redirectURL": hs.response_header("location") or "",
            "headersSize": -1, "bodySize": len(body.encode("utf-8")) if body else -1,
        },
        "cache": {},
        "timings": {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1,
                    "send": 0, "wait": wait, "receive": receive},
        "serverIPAddress": server_host,
        "connection": _host_port(session.client)[1],
        "_resourceType": "websocket",
        "_webSocketMessages": [_message(m, binary) for m in log.messages(session)],
        "_dgcap": {"session": session.index, "tcp_stream": session.tcp_stream,
                   "client": session.client, "server": session.server,
                   "server_port": server_port, "transport": session.transport,
                   "midstream": session.midstream,
                   "findings": [{"id": f.id, "severity": f.severity, "frames": list(f.frames)}
                                for f in session.findings]},
    }
    if session.diagnosis:
        entry["comment"] = session.diagnosis
    return entry


def render_har(captures: list[CaptureReport], log: MessageLog, binary: bool = False) -> dict:
    """One HAR log for every session of every capture, in report order."""
    entries = [session_entry(s, log, binary) for cap in captures for s in cap.sessions]
    names = ", ".join(cap.path for cap in captures)
    return {"log": {
        "version": "1.2",
        "creator": {"name": "dgcap", "version": __version__},
        "pages": [],
        "entries": entries,
        "comment": f"WebSocket sessions reconstructed by dgcap from {names}",
    }}
